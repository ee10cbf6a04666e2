"""Hard-negative mining: the outcome rule, end-to-end runs against loopback servers and a tiny local
Qwen3, the judge, resume after cancel, questions without answers, the subject classifier, the CLI.

The pool is six questions on two passages; every prompt carries its question's tag "[qN]", so the
scripted servers answer per question (and per sample, by arrival order of identical requests).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from core import models
from core.cli import main
from core.cli.mine import SUMMARY_KEYS
from core.errors import CoreError, NotFound
from core.jobs import JobContext
from core.steps.mine import classify, mining, mining_export
from core.store import Store
from tests.loopback import Loopback
from tests.minedata import (
    C5,
    FAST,
    GOLD,
    OUTCOME,
    STUDENT,
    TEACHER,
    UNPARSED,
    VERDICTS,
    Script,
    _q,
    by_qid,
    gen,
    pool,
    register,
    solve_text,
)


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


# ---- the rule --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gold, teacher, student, rule, m, want", [
    (3, [3], [1], "majority", 1, "hard_negative"),
    (3, [3], [3], "majority", 1, "both_correct"),
    (3, [1], [2], "majority", 1, "both_wrong"),
    (3, [1], [3], "majority", 1, "student_only"),
    (None, [3], [1], "majority", 1, "no_answer"),
    (None, [], [], "hard", 2, "no_answer"),
    # majority over K: plurality of the sampled answers; a tie for first place is no majority
    (3, [3, 3, 1], [3, 1, 1], "majority", 1, "hard_negative"),
    (3, [3, 1, 2], [3, 3, 1], "majority", 1, "student_only"),  # teacher: three-way tie
    (3, [3, 3, 1, 1], [3, 3, 3, 1], "majority", 1, "student_only"),  # teacher: 2-2 tie
    (3, [3, 3, 1, 2], [3, 3, 1, 1], "majority", 1, "hard_negative"),  # plurality 3 vs student tie
    (3, [3, 3, 1, 2, 4], [3, 1, 1, 2, 4], "majority", 1, "hard_negative"),
    # unparsed (None) answers count as wrong: they vote, they do not abstain
    (3, [None], [3], "majority", 1, "student_only"),
    (3, [3], [None], "majority", 1, "hard_negative"),
    (3, [3, None, None], [1, 1, 1], "majority", 1, "both_wrong"),
    (3, [3, 3, None], [None, None, 3], "majority", 1, "hard_negative"),
    (3, [3, None], [3, 3], "majority", 1, "student_only"),  # 1-1 tie with "no answer"
    (3, [None, None, None], [None, None, None], "majority", 1, "both_wrong"),
    # hard: the student is wrong when wrong in at least m of K (the teacher still by majority)
    (3, [3, 3, 3], [3, 3, 1], "hard", 1, "hard_negative"),
    (3, [3, 3, 3], [3, 3, 1], "hard", 2, "both_correct"),
    (3, [3, 3, 3], [3, None, 1], "hard", 2, "hard_negative"),
    (3, [3, 3, 3], [3, None, 1], "hard", 3, "both_correct"),
    (3, [3, 3, 3], [1, 1, 1], "hard", 3, "hard_negative"),
    (3, [1, 1, 3], [3, 3, 3], "hard", 1, "student_only"),
    (3, [1, 1, 3], [3, 1, 3], "hard", 1, "both_wrong"),
])
def test_classify_outcome(gold, teacher, student, rule, m, want):
    assert mining.classify_outcome(gold, teacher, student, rule, m) == want


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError):
        mining.MiningConfig(pool="p", teacher="t", student="s", samples=0)
    with pytest.raises(ValueError):
        mining.MiningConfig(pool="p", teacher="t", student="s", rule="strict")
    with pytest.raises(ValueError):
        mining.MiningConfig(pool="p", teacher="t", student="s", unknown=1)


# ---- deterministic end to end: two loopback servers ----------------------------------------------------


def test_mine_exact_counts_paths_and_cache(store, tmp_path):
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        register(store, t, s)
        cfg = mining.MiningConfig(pool="kice", teacher="teacher", student="student")
        summary = mining.run(store, cfg)
        run = summary.pop("run")
        assert summary == {"pool": "kice", "teacher": "teacher", "student": "student", "questions": 6,
                           "hard_negatives": 2, "both_correct": 1, "both_wrong": 1, "student_only": 1,
                           "no_answer": 1, "judged_kept": 0, "teacher_accuracy": 0.6, "student_accuracy": 0.4,
                           "requests_sent": 10, "cached": 0, "errors": 0, "error_reasons": {}}
        assert (t.count, s.count) == (5, 5)  # the question without an answer is never sent
        assert mining.get_run(store, run)["state"] == "done"
        assert mining.get_run(store, run)["summary"] == summary | {"run": run}

        items = by_qid(mining.items(store, run))
        assert {q: i["outcome"] for q, i in items.items()} == OUTCOME
        assert [q for q, i in items.items() if i["kept"]] == ["1", "4"]
        q1 = items["1"]
        assert (q1["gold"], q1["teacher_answers"], q1["student_answers"]) == (1, [1], [4])
        assert (q1["teacher_correct"], q1["student_wrong"], q1["subject"]) == (1, 1, "국어")
        assert (q1["golden_answer"], q1["failed_answer"]) == (1, 4)
        assert q1["golden_response"] == solve_text("교사", 1, 1)
        assert q1["failed_response"] == solve_text("학생", 1, 4)
        # Paths are references to generation rows, not copies.
        golden, failed = gen(store, q1["golden_key"]), gen(store, q1["failed_key"])
        assert (golden["model"], golden["qid"], golden["answer"], golden["task"]) == ("teacher", "1", 1, "solve")
        assert (failed["model"], failed["qid"], failed["answer"]) == ("student", "1", 4)
        columns = {c["column_name"] for c in store.rows("DESCRIBE mining_items")}
        assert {"golden_key", "failed_key"} <= columns and not {"response", "reasoning"} & columns
        # Teacher unparseable on q5: no golden path, not a hard negative.
        q5 = items["5"]
        assert (q5["teacher_answers"], q5["golden_key"], q5["failed_key"], q5["kept"]) == ([None], None, None, False)
        assert gen(store, store.scalar("SELECT cache_key FROM generation_refs WHERE model = 'teacher' AND qid = '5'")
                   )["response"] == UNPARSED
        # Both wrong: listed with the student's mistake beside it, not kept.
        assert (items["3"]["kept"], items["3"]["golden_key"], items["3"]["failed_answer"]) == (False, None, 1)
        # Both right, no judge: listed, not kept, no failed path.
        assert (items["2"]["kept"], items["2"]["judge_key"], items["2"]["failed_key"]) == (False, None, None)
        assert items["2"]["golden_answer"] == 3
        # No gold answer: listed as such, nothing picked.
        q6 = items["6"]
        assert (q6["gold"], q6["kept"], q6["golden_key"], q6["failed_key"], q6["teacher_correct"]) == (
            None, False, None, None, 0)

        assert [i["qid"] for i in mining.items(store, run, kept=True)] == ["1", "4"]
        assert [i["qid"] for i in mining.items(store, run, outcome="both_wrong")] == ["3"]
        assert [i["qid"] for i in mining.items(store, run, subject="한국사")] == ["4", "5", "6"]
        assert [i["qid"] for i in mining.items(store, run, kept=True, subject="한국사")] == ["4"]
        assert mining.by_subject(store, run) == [
            {"subject": "국어", "outcome": "both_correct", "n": 1}, {"subject": "국어", "outcome": "both_wrong", "n": 1},
            {"subject": "국어", "outcome": "hard_negative", "n": 1},
            {"subject": "한국사", "outcome": "hard_negative", "n": 1},
            {"subject": "한국사", "outcome": "no_answer", "n": 1},
            {"subject": "한국사", "outcome": "student_only", "n": 1}]

        # A re-run is the same run and costs nothing: every reply comes from the cache, no new rows.
        again = mining.run(store, cfg)
        assert again == summary | {"run": run, "requests_sent": 0, "cached": 10}
        assert (t.count, s.count) == (5, 5)  # the question without an answer is never sent
    assert store.scalar("SELECT count(*) FROM generations") == 10
    assert [r["run"] for r in mining.list_runs(store)] == [run]
    assert all(r["state"] == "done" and r["hard_negatives"] == 2 for r in mining.list_runs(store))

    out = tmp_path / "out" / "hn.jsonl"
    assert mining_export.export_hard_negatives(store, run, out) == 2
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["1", "4"]
    first = lines[0]
    assert (first["run"], first["pool"], first["outcome"], first["subject"], first["answer"]) == (
        run, "kice", "hard_negative", "국어", 1)
    assert first["question"] == "[q1] 윗글에 대한 설명으로 적절한 것은?" and first["paragraph"] == "첫째 지문이다."
    assert first["choices"] == C5 and (first["teacher"], first["student"]) == ("teacher", "student")
    assert first["golden"] == {"generation": items["1"]["golden_key"], "answer": 1,
                               "reasoning": solve_text("교사", 1, 1)}
    assert first["failed"] == {"generation": items["1"]["failed_key"], "answer": 4,
                               "reasoning": solve_text("학생", 1, 4)}
    assert first["judge"] is None and lines[1]["failed"]["answer"] == 3


def test_mine_k_samples_majority_and_hard_rule(store, tmp_path):
    pool(store, tmp_path)
    teacher = {1: [1, 1, 1], 2: [3, 3, 3], 3: [5, None, None], 4: [2, 2, 1], 5: [None] * 3, 6: [1, 1, 1]}
    student = {1: [1, 4, None], 2: [3, 3, 1], 3: [1, 1, 1], 4: [3, 3, 3], 5: [4, 4, 4], 6: [2, 2, 2]}
    with Loopback("gemini", Script("교사", teacher)) as t, Loopback("openai", Script("학생", student)) as s:
        register(store, t, s)
        base = {"pool": "kice", "teacher": "teacher", "student": "student", "samples": 3}
        counts = ("hard_negatives", "both_correct", "both_wrong", "student_only", "no_answer")
        got = mining.run(store, mining.MiningConfig(**base))
        assert ([got[k] for k in counts], got["requests_sent"], got["cached"]) == ([2, 1, 1, 1, 1], 30, 0)
        items = by_qid(mining.items(store, got["run"]))
        assert {q: i["outcome"] for q, i in items.items()} == OUTCOME
        q1 = items["1"]
        assert Counter(q1["student_answers"]) == Counter([1, 4, None]) and q1["student_wrong"] == 2
        assert q1["teacher_correct"] == 3
        assert (q1["failed_answer"], gen(store, q1["failed_key"])["model"]) == (4, "student")  # a real wrong answer
        assert (items["4"]["teacher_correct"], items["3"]["teacher_correct"]) == (2, 1)
        assert gen(store, items["3"]["golden_key"])["answer"] == 5  # its one correct sample, though not a majority

        for m, want in ((1, [3, 0, 1, 1, 1]), (2, [2, 1, 1, 1, 1]), (3, [1, 2, 1, 1, 1])):
            got = mining.run(store, mining.MiningConfig(**base, rule="hard", min_wrong=m))
            assert ([got[k] for k in counts], got["requests_sent"], got["cached"]) == (want, 0, 30), m
        hard3 = by_qid(mining.items(store, got["run"]))
        assert (hard3["1"]["outcome"], hard3["4"]["outcome"]) == ("both_correct", "hard_negative")
        assert (t.count, s.count) == (15, 15)
        with pytest.raises(CoreError, match="min_wrong 4 exceeds samples 3"):
            mining.run(store, mining.MiningConfig(**base, rule="hard", min_wrong=4))
    assert store.scalar("SELECT count(*) FROM generations") == 30


def test_mine_unknown_pool_or_model(store, tmp_path):
    with pytest.raises(NotFound, match="no dataset named 'kice'"):
        mining.run(store, mining.MiningConfig(pool="kice", teacher="teacher", student="student"))
    pool(store, tmp_path)
    with pytest.raises(NotFound, match="no model named 'teacher'"):
        mining.run(store, mining.MiningConfig(pool="kice", teacher="teacher", student="student"))
    assert store.scalar("SELECT count(*) FROM mining_runs") == 0


def test_missing_key_marks_run_failed(store, tmp_path, monkeypatch):
    pool(store, tmp_path)
    monkeypatch.delenv("GEMINI_API_KEY")
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        register(store, t, s)
        with pytest.raises(CoreError, match="no API key"):
            mining.run(store, mining.MiningConfig(pool="kice", teacher="teacher", student="student"))
        assert (t.count, s.count) == (0, 0)
    assert [(r["state"], r.get("hard_negatives")) for r in mining.list_runs(store)] == [("failed", None)]


# ---- the judge ----------------------------------------------------------------------------------------


def test_judge_keeps_both_correct_only_when_it_prefers_the_teacher(store, tmp_path):
    pool(store, tmp_path)
    right = {q: GOLD[q] or 1 for q in GOLD}
    judge_script = Script("심판", verdicts=VERDICTS)
    with Loopback("gemini", Script("교사", right)) as t, Loopback("openai", Script("학생", right)) as s, \
            Loopback("openai", judge_script) as j:
        register(store, t, s, j)
        cfg = mining.MiningConfig(pool="kice", teacher="teacher", student="student", judge="judge")
        got = mining.run(store, cfg)
        assert {k: got[k] for k in ("questions", "hard_negatives", "both_correct", "judged_kept", "no_answer",
                                    "requests_sent", "cached")} == {
            "questions": 6, "hard_negatives": 0, "both_correct": 5, "judged_kept": 2, "no_answer": 1,
            "requests_sent": 15, "cached": 0}
        assert (t.count, s.count, j.count, judge_script.kinds["judge"]) == (5, 5, 5, 5)
        # The judge sees both reasoning paths.
        prompt = json.dumps(j.requests[0]["body"], ensure_ascii=False)
        assert "교사 풀이" in prompt and "학생 풀이" in prompt

        items = by_qid(mining.items(store, got["run"]))
        assert [q for q, i in items.items() if i["kept"]] == ["1", "5"]
        assert {q: (i["judge_preferred"], i["judge_reason"]) for q, i in items.items()} == {
            "1": ("teacher", "교사 풀이가 근거를 더 정확히 든다."), "2": ("student", "학생 풀이가 더 간결하다."),
            "3": ("tie", "두 풀이의 질이 같다."), "4": (None, "unparseable judge output"),
            "5": ("teacher", "선지 검토가 빠짐없다."), "6": (None, None)}
        verdict = gen(store, items["4"]["judge_key"])
        assert (verdict["task"], verdict["model"], verdict["response"]) == ("judge", "judge", VERDICTS[4])
        assert items["6"]["judge_key"] is None
        # The pair: the teacher's golden path and the student's (correct but weaker) path.
        q1 = items["1"]
        assert (q1["outcome"], q1["golden_answer"], q1["failed_answer"]) == ("both_correct", 1, 1)
        assert q1["failed_response"] == solve_text("학생", 1, 1)
        out = tmp_path / "kept.jsonl"
        assert mining_export.export_hard_negatives(store, got["run"], out) == 2
        first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
        assert first["judge"] == {"preferred": "teacher", "reason": "교사 풀이가 근거를 더 정확히 든다."}
        assert first["failed"]["reasoning"] == solve_text("학생", 1, 1)

        again = mining.run(store, cfg)
        assert (again["judged_kept"], again["requests_sent"], again["cached"]) == (2, 0, 15)
        assert j.count == 5


def test_judge_not_called_without_both_correct(store, tmp_path):
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", {q: 5 for q in GOLD})) as s, \
            Loopback("openai", Script("심판", verdicts=VERDICTS)) as j:
        register(store, t, s, j)
        got = mining.run(store, mining.MiningConfig(pool="kice", teacher="teacher", student="student", judge="judge"))
        assert (got["both_correct"], got["judged_kept"], j.count) == (0, 0, 0)


# ---- resume after cancel ------------------------------------------------------------------------------


@pytest.mark.parametrize("side, stop_at", [("teacher", 2), ("student", 1)])
def test_cancel_then_resume_sends_only_the_rest(store, tmp_path, side, stop_at):
    pool(store, tmp_path)
    cancel = threading.Event()

    def hook(n: int) -> None:
        if n == stop_at:
            cancel.set()

    one = {"concurrency": 1}  # one request in flight: exactly stop_at + 1 replies finish before the stop
    ts = Script("교사", TEACHER, hook=hook if side == "teacher" else None)
    ss = Script("학생", STUDENT, hook=hook if side == "student" else None)
    with Loopback("gemini", ts) as t, Loopback("openai", ss) as s:
        register(store, t, s, teacher_params=one if side == "teacher" else None,
                 student_params=one if side == "student" else None)
        cfg = mining.MiningConfig(pool="kice", teacher="teacher", student="student")
        first = mining.run(store, cfg, JobContext.local(cancel))
        assert set(first) == {"run", "state"} and first["state"] == "cancelled"
        assert mining.get_run(store, first["run"])["state"] == "cancelled"
        assert store.scalar("SELECT count(*) FROM mining_items WHERE run_id = ?", [first["run"]]) == 0
        sent = (stop_at + 1, 0) if side == "teacher" else (5, stop_at + 1)  # the unanswered one is never sent
        assert (t.count, s.count) == sent
        assert store.scalar("SELECT count(*) FROM generations") == sum(sent)

        second = mining.run(store, cfg, JobContext.local(threading.Event()))
        assert second["run"] == first["run"]  # the same config resumes the cancelled run
        assert (second["requests_sent"], second["cached"]) == (10 - sum(sent), sum(sent))
        assert (t.count, s.count) == (5, 5)
        assert second["hard_negatives"] == 2 and second["both_correct"] == 1
    assert store.scalar("SELECT count(*) FROM generations") == 10
    assert store.rows("SELECT model, qid, sample, count(*) AS n FROM generations GROUP BY ALL HAVING n > 1") == []
    assert [r["state"] for r in mining.list_runs(store)] == ["done"]


# ---- subjects ------------------------------------------------------------------------------------------


UNLABELLED = [{"id": "u1", "paragraph": "과목이 적히지 않은 지문이다.",
               "problems": [_q(1, 1), _q(2, 2), _q(3, 3), _q(4, 4, subject="국어")]}]
LABELS = {1: '{"subject": "윤리와 사상"}', 2: '{"subject": "수학"}', 3: '분류 결과: {"subject": "한국사"}'}


def subjects(store: Store, name: str) -> dict[str, tuple[str, str]]:
    return {r["qid"]: (r["subject"], r["subject_source"]) for r in store.rows(
        "SELECT qid, subject, subject_source FROM questions WHERE dataset = ? ORDER BY position", [name])}


def test_classifier_labels_unknown_subjects_from_the_list(store, tmp_path):
    pool(store, tmp_path, UNLABELLED, "unl")
    assert subjects(store, "unl") == {"1": ("unknown", "unknown"), "2": ("unknown", "unknown"),
                                      "3": ("unknown", "unknown"), "4": ("국어", "column")}
    script = Script("분류", labels=LABELS)
    with Loopback("openai", script) as c:
        models.add_model(store, "clf", "openai", "clf-model", base_url=c.base_url, params=FAST)
        assert classify.classify_subjects(store, "unl", "clf") == 2
        assert (c.count, script.kinds["classify"]) == (3, 3)  # q4 has a subject: not asked
        assert subjects(store, "unl") == {"1": ("윤리와 사상", "classifier"), "2": ("unknown", "unknown"),
                                          "3": ("한국사", "classifier"), "4": ("국어", "column")}
        # Only q2 is still unknown; its (out-of-list) reply is cached, so nothing is sent or changed.
        assert classify.classify_subjects(store, "unl", "clf") == 0
        assert c.count == 3
    assert store.scalar("SELECT count(*) FROM generations WHERE task = 'classify'") == 3


def test_mine_with_classifier_reports_per_subject(store, tmp_path):
    pool(store, tmp_path, UNLABELLED, "unl")
    right = {1: 1, 2: 2, 3: 3, 4: 4}
    with Loopback("gemini", Script("교사", right)) as t, Loopback("openai", Script("학생", {q: 5 for q in right})) as s, \
            Loopback("openai", Script("분류", labels=LABELS)) as c:
        register(store, t, s)
        models.add_model(store, "clf", "openai", "clf-model", base_url=c.base_url, params=FAST)
        got = mining.run(store, mining.MiningConfig(pool="unl", teacher="teacher", student="student",
                                                     classifier="clf"))
        assert (got["hard_negatives"], got["requests_sent"], c.count) == (4, 11, 3)
        assert mining.by_subject(store, got["run"]) == [
            {"subject": "unknown", "outcome": "hard_negative", "n": 1},
            {"subject": "국어", "outcome": "hard_negative", "n": 1},
            {"subject": "윤리와 사상", "outcome": "hard_negative", "n": 1},
            {"subject": "한국사", "outcome": "hard_negative", "n": 1}]
        assert [i["subject"] for i in mining.items(store, got["run"])] == ["윤리와 사상", "unknown", "한국사", "국어"]


# ---- the tiny local model as the student ------------------------------------------------------------------


def test_mine_with_local_student(store, tmp_path, tiny_qwen):
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t:
        models.add_model(store, "teacher", "gemini", "gemini-2.5-flash", base_url=t.base_url, params=FAST)
        models.add_model(store, "tiny", "local", str(tiny_qwen), params={"max_tokens": 24, "temperature": 0})
        cfg = mining.MiningConfig(pool="kice", teacher="teacher", student="tiny")
        got = mining.run(store, cfg)
        assert (got["questions"], got["requests_sent"], got["cached"], t.count) == (6, 10, 0, 5)
        outcomes = ("hard_negatives", "both_correct", "both_wrong", "student_only", "no_answer", "errors")
        assert sum(got[k] for k in outcomes) == 6 and got["no_answer"] == 1
        items = by_qid(mining.items(store, got["run"]))
        assert sorted(items) == ["1", "2", "3", "4", "5", "6"]
        assert all(i["outcome"] in mining.OUTCOMES for i in items.values())
        counted = Counter(i["outcome"] for i in items.values())
        assert [counted[o] for o in mining.OUTCOMES] == [got[k] for k in outcomes]
        # The teacher is right on 1, 2, 4; wrong on 3 and unparseable on 5: those are never hard negatives.
        assert {items[q]["outcome"] for q in "124"} <= {"hard_negative", "both_correct"}
        assert {items[q]["outcome"] for q in "35"} <= {"both_wrong", "student_only"}
        assert items["6"]["outcome"] == "no_answer"
        for q, i in items.items():
            assert i["kept"] == (i["outcome"] == "hard_negative")
            sent = 0 if i["outcome"] == "no_answer" else 1  # no gold: listed, never sent
            assert len(i["student_answers"]) == sent and len(i["teacher_answers"]) == sent
            if i["outcome"] == "hard_negative":
                golden, failed = gen(store, i["golden_key"]), gen(store, i["failed_key"])
                assert (golden["model"], golden["qid"], golden["answer"]) == ("teacher", q, GOLD[int(q)])
                assert (failed["model"], failed["provider"], failed["qid"]) == ("tiny", "local", q)
                assert failed["answer"] != GOLD[int(q)] and failed["error"] is None
        assert store.scalar("SELECT count(*) FROM generations WHERE model = 'tiny'") == 5  # not question 6 (no gold)

        again = mining.run(store, cfg)
        assert (again["requests_sent"], again["cached"], t.count) == (0, 10, 5)
        assert {k: again[k] for k in outcomes} == {k: got[k] for k in outcomes}


# ---- CLI ------------------------------------------------------------------------------------------------


def cli(capsys, db: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_mine_list_export(capsys, tmp_path):
    db = tmp_path / "cli.duckdb"
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        st = Store(db)
        pool(st, tmp_path)
        register(st, t, s)
        st.close()

        rc, out, err = cli(capsys, db, "mine", "list")
        assert (rc, out) == (0, "No mining runs yet.\n")
        rc, out, err = cli(capsys, db, "mine", "--pool", "kice", "--teacher", "teacher", "--student", "student",
                           "--json")
        assert (rc, err) == (0, "")
        got = json.loads(out)
        assert list(got) == list(SUMMARY_KEYS)
        run = got["run"]
        assert isinstance(run, str) and run.startswith("mine-")  # a run record like every step's
        assert got == {"run": run, "pool": "kice", "teacher": "teacher", "student": "student", "questions": 6,
                       "hard_negatives": 2, "both_correct": 1, "both_wrong": 1, "student_only": 1, "judged_kept": 0,
                       "requests_sent": 10, "cached": 0, "errors": 0, "error_reasons": {}}

        rc, out, err = cli(capsys, db, "mine", "--pool", "kice", "--teacher", "teacher", "--student", "student")
        assert (rc, err) == (0, "")
        assert out == (f"run {run}: kice (6 questions), teacher teacher 60.0%, student student 40.0%: "
                       "2 hard negatives, 1 both correct (0 kept by the judge), 1 both wrong, 1 student only, "
                       "1 without a gold answer (skipped); 0 requests sent, 10 cached\n")
        assert (t.count, s.count) == (5, 5)  # the question without an answer is never sent

    rc, out, err = cli(capsys, db, "mine", "list", "--json")
    assert (rc, err) == (0, "")
    runs = json.loads(out)
    assert [r["run"] for r in runs] == [run]  # the same settings mined twice: one run
    assert [list(r) for r in runs] == [[*SUMMARY_KEYS, "state"]]
    assert runs[0] == got | {"requests_sent": 0, "cached": 10, "state": "done"}

    rc, out, err = cli(capsys, db, "mine", "list")
    assert rc == 0 and out.splitlines()[0].startswith(f"run {run}: kice (6 questions)")

    dest = tmp_path / "hn.jsonl"
    rc, out, err = cli(capsys, db, "mine", "export", run, "--out", str(dest))
    assert (rc, out, err) == (0, f"Wrote 2 hard negatives to {dest}.\n", "")
    lines = [json.loads(x) for x in dest.read_text(encoding="utf-8").splitlines()]
    assert [(x["id"], x["golden"]["answer"], x["failed"]["answer"]) for x in lines] == [("1", 1, 4), ("4", 2, 3)]
    assert [(x["golden"]["reasoning"], x["failed"]["reasoning"]) for x in lines] == [
        (solve_text("교사", 1, 1), solve_text("학생", 1, 4)), (solve_text("교사", 4, 2), solve_text("학생", 4, 3))]
    st = Store(db)
    try:
        keys = {r["qid"]: (r["golden_key"], r["failed_key"]) for r in mining.items(st, run, kept=True)}
    finally:
        st.close()
    assert [(x["golden"]["generation"], x["failed"]["generation"]) for x in lines] == [keys["1"], keys["4"]]


def test_cli_errors(capsys, tmp_path):
    db = tmp_path / "cli.duckdb"
    st = Store(db)
    pool(st, tmp_path)
    st.close()
    rc, out, err = cli(capsys, db, "mine", "--teacher", "teacher", "--student", "student", "--json")
    assert (rc, out) == (1, "")
    assert err.splitlines() == ["Error: missing --pool", "Hint: add --help to see every setting"]
    rc, out, err = cli(capsys, db, "mine", "--pool", "nope", "--teacher", "teacher", "--student", "student")
    assert rc == 1 and err.splitlines()[0] == "Error: no dataset named 'nope'"
    rc, out, err = cli(capsys, db, "mine", "--pool", "kice", "--teacher", "teacher", "--student", "student")
    assert rc == 1 and err.splitlines()[0] == "Error: no model named 'teacher'"
    rc, out, err = cli(capsys, db, "mine", "--pool", "kice", "--teacher", "t", "--student", "s", "--samples", "0")
    assert rc == 1 and err.startswith("Error: bad mine setting samples:")
    rc, out, err = cli(capsys, db, "mine", "export", "nope", "--out", str(tmp_path / "x.jsonl"))
    assert rc == 1 and err.splitlines()[0] == "Error: no mining run 'nope'"
    assert not (tmp_path / "x.jsonl").exists()
