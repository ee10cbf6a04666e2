"""Review: decisions, edits with version history, bulk accept, filters, provenance both ways, CLI.

Candidates are seeded with plain SQL following core/migrations/m006_augment.py (the contract Augment
writes), on top of a real imported pool, a mining run with its golden/failed generations and the
structures of the seeds, so provenance is followed through real rows.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from core import models
from core.cli import main
from core.errors import CoreError, NotFound
from core.steps.review import review
from core.store import Store
from tests.loopback import Loopback, Reply
from tests.minidata import import_mini

RUN = "augment-t1"
MINING = "mine-t1"
POOL = "pool"
GATES = ("schema", "choices", "chosen_answer", "rejected_answer", "language", "contamination", "duplicate", "resolve")


def reasoning(lines: list[str], answer: int) -> str:
    return "\n".join(lines + [f'{{"Answer": "{answer}"}}'])


def gates(failed: str | None) -> dict:
    out = {}
    for g in GATES:
        if g == failed:
            out[g] = {"ok": False, "reason": f"{g} failed in the fixture"}
            break
        out[g] = {"ok": True, "reason": ""}
    return out


# (id, seed, idx, subject, failed gate, topic): distinct texts, so no candidate is a near-copy of another
CANDIDATES = [
    ("cand-a", "q1", 0, "생활과 윤리", None, "칸트는 도덕 법칙에 대한 존경에서 비롯된 행위만이 도덕적 가치를 지닌다고 보았다"),
    ("cand-b", "q1", 1, "생활과 윤리", None, "벤담은 쾌락의 양을 계산하여 사회 전체의 행복을 늘리는 법을 옹호하였다"),
    ("cand-c", "q2", 0, "정치와 법", "resolve", "헌법 재판소는 법률이 기본권을 과도하게 제한하는지 심사한다"),
    ("cand-d", "q2", 1, "정치와 법", "choices", "국회의원 선거에서 비례 대표 의석은 정당 득표율에 따라 배분된다"),
    ("cand-e", "q2", 2, "정치와 법", None, "지방 자치 단체의 조례는 법령의 범위 안에서 제정된다"),
]
CHOICES = {
    "cand-a": ["의무에서 나온 행위를 중시한다", "결과의 유용성을 우선한다", "덕의 습관화를 강조한다",
               "감정을 도덕의 근거로 삼는다", "사회 계약을 중시한다"],
    "cand-b": ["쾌락의 질을 구분한다", "최대 다수의 최대 행복을 추구한다", "의무를 결과보다 앞세운다",
               "자연법을 따른다", "공동체의 덕을 기른다"],
    "cand-c": ["위헌 법률 심판을 한다", "탄핵 소추를 의결한다", "예산안을 심의한다", "조약을 체결한다", "법률안을 공포한다"],
    "cand-d": ["득표율로 배분한다", "득표율로 배분한다", "지역구 당선자로 정한다", "추첨으로 정한다", "임명으로 정한다"],
    "cand-e": ["법령의 범위 안에서 제정한다", "헌법보다 우선한다", "국회가 제정한다", "대통령령으로 폐지된다",
               "주민 투표 없이는 무효이다"],
}


def _generation(store: Store, key: str, task: str, model: str, qid: str, response: str, answer: int) -> None:
    store.execute("INSERT INTO generations (cache_key, task, dataset, qid, model, provider, model_id, sample, messages, "
                  "response, answer, created_at) VALUES (?, ?, ?, ?, ?, 'gemini', ?, 0, ?, ?, ?, ?)",
                  [key, task, POOL, qid, model, model, json.dumps([{"role": "user", "content": "문제"}]), response,
                   answer, datetime.now()])


def seed_review(store: Store, tmp_path) -> dict[str, str]:
    """A pool, a mining run with two hard negatives, an augment run with five candidates."""
    import_mini(store, tmp_path, n=3, name=POOL)
    store.execute("INSERT INTO runs (id, step, config, config_hash, state) VALUES (?, 'mine', ?, 'h-mine', 'done')",
                  [MINING, json.dumps({"pool": POOL, "teacher": "teacher", "student": "student"})])
    store.execute("INSERT INTO mining_runs (id, pool, teacher, student) VALUES (?, ?, 'teacher', 'student')",
                  [MINING, POOL])
    for qid, gold in (("q1", 1), ("q2", 2)):
        _generation(store, f"gold-{qid}", "solve", "teacher", qid, reasoning([f"교사 풀이 {qid}"], gold), gold)
        _generation(store, f"fail-{qid}", "solve", "student", qid, reasoning([f"학생 풀이 {qid}"], 5), 5)
        store.execute("INSERT INTO mining_items (run_id, qid, outcome, kept, gold, golden_key, failed_key) "
                      "VALUES (?, ?, 'hard_negative', true, ?, ?, ?)", [MINING, qid, gold, f"gold-{qid}", f"fail-{qid}"])
        _generation(store, f"struct-{qid}", "structure", "teacher", qid, '{"structure": "정책 목표 → 수단"}', None)
        store.execute("INSERT INTO structures (run_id, mining_run, pool, seed_qid, structure, gen_key) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      [RUN, MINING, POOL, qid, json.dumps({"structure": "정책 목표 → 수단의 정합성 판단",
                                                           "error_pattern": "비슷한 시대의 다른 인물과 혼동"},
                                                          ensure_ascii=False), f"struct-{qid}"])
    store.execute("INSERT INTO runs (id, step, config, config_hash, state) VALUES (?, 'augment', ?, 'h', 'done')",
                  [RUN, json.dumps({"run": MINING, "teacher": "teacher", "per_seed": 3})])
    for cid, seed, idx, subject, failed, topic in CANDIDATES:
        _generation(store, f"bp-{cid}", "augment", "teacher", seed, "{}", None)
        chosen = reasoning(["선지를 차례로 검토한다.", f"{topic}는 점에서 세 번째 선지가 옳다.", "따라서 정답은 3번이다."], 3)
        rejected = reasoning(["선지를 차례로 검토한다.", f"{topic}는 점을 다른 사상가와 혼동하였다.", "따라서 답은 4번이다."], 4)
        store.execute(
            "INSERT INTO candidates (id, run_id, mining_run, pool, seed_qid, idx, target, subject, passage, question, "
            "extra, choices, answer, chosen, rejected, gen_key, gates, failed_gate) "
            "VALUES (?, ?, ?, ?, ?, ?, '조선 후기', ?, ?, ?, ?, ?, 3, ?, ?, ?, ?, ?)",
            [cid, RUN, MINING, POOL, seed, idx, subject, f"{topic}.", f"{topic.split()[0]} 관련 설명으로 옳은 것은?",
             None, CHOICES[cid], chosen, rejected,
             f"bp-{cid}", json.dumps(gates(failed)), failed])
    return {"run": RUN, "mining": MINING, "pool": POOL}


def solver(n: int, body: dict) -> Reply:
    """The loopback teacher: re-solves every candidate as ③ (the fixture's answer)."""
    return Reply(text='선지를 하나씩 검토하면 ③이 옳다.\n{"Answer":"3"}')


def register_teacher(store: Store, srv: Loopback) -> None:
    models.add_model(store, "teacher", "gemini", "gemini-2.5-flash", base_url=srv.base_url,
                     params={"concurrency": 2, "max_retries": 2, "retry_base_s": 0.01})


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


@pytest.fixture
def teacher():
    with Loopback("gemini", solver) as srv:
        yield srv


@pytest.fixture
def seeded(store, tmp_path, teacher):
    register_teacher(store, teacher)
    return seed_review(store, tmp_path)


def test_list_filters_and_counts(store, seeded):
    assert [p["id"] for p in review.list_pairs(store, run=RUN)] == [c[0] for c in CANDIDATES]
    assert [p["id"] for p in review.list_pairs(store, run=RUN, gate="passed")] == ["cand-a", "cand-b", "cand-e"]
    assert [p["id"] for p in review.list_pairs(store, run=RUN, gate="failed")] == ["cand-c", "cand-d"]
    assert [p["id"] for p in review.list_pairs(store, run=RUN, gate="resolve")] == ["cand-c"]
    assert [p["id"] for p in review.list_pairs(store, run=RUN, subject="생활과 윤리")] == ["cand-a", "cand-b"]
    assert [p["id"] for p in review.list_pairs(store, run=RUN, seed="q2")] == ["cand-c", "cand-d", "cand-e"]
    c = review.counts(store, RUN)
    assert (c["total"], c["pending"], c["passed"], c["accepted"], c["to_target"]) == (5, 5, 3, 0, 200)
    f = review.facets(store, RUN)
    assert f == {"subject": ["생활과 윤리", "정치와 법"], "seed": ["q1", "q2"], "failed_gate": ["choices", "resolve"]}
    with pytest.raises(CoreError, match="unknown review status"):
        review.list_pairs(store, status="maybe")


def test_decisions_are_versioned(store, seeded):
    review.accept(store, ["cand-a"])
    review.reject(store, "cand-b", "정답이 둘이다")
    review.reset(store, "cand-b")
    review.accept(store, ["cand-b"], reason="다시 보니 맞다")
    a, b = review.get_pair(store, "cand-a"), review.get_pair(store, "cand-b")
    assert (a["status"], b["status"], b["review_reason"]) == ("accepted", "accepted", "다시 보니 맞다")
    assert [(h["version"], h["action"]) for h in review.history(store, "cand-b")] == [
        (1, "created"), (2, "rejected"), (3, "reset"), (4, "accepted")]
    assert review.history(store, "cand-b")[1]["reason"] == "정답이 둘이다"
    assert b["version"] == 4
    with pytest.raises(CoreError, match="needs a reason"):
        review.reject(store, "cand-c", "  ")
    with pytest.raises(NotFound):
        review.accept(store, ["cand-a", "nope"])
    # a candidate whose reply failed the schema may lack its reasoning: it cannot be accepted as a pair
    store.execute("UPDATE candidates SET chosen = NULL, failed_gate = 'schema' WHERE id = 'cand-d'")
    with pytest.raises(CoreError, match="cannot accept cand-d: it has no chosen"):
        review.accept(store, ["cand-c", "cand-d"])
    assert review.get_pair(store, "cand-c")["status"] == "pending"


def test_edit_keeps_every_version(store, seeded, teacher):
    before = review.get_pair(store, "cand-a")
    out = review.edit(store, "cand-a", {"question": "수정된 발문으로 옳은 것은?", "choices": ["ㄱ", "ㄴ", "ㄷ", "ㄹ", "ㅁ"],
                                        "chosen": before["chosen"]}, reason="발문 다듬기")
    assert out["changed"] == ["choices", "question"]  # an unchanged field is not a change
    hist = review.history(store, "cand-a")
    assert [h["action"] for h in hist] == ["created", "edited"]
    assert hist[0]["fields"]["question"] == before["question"]  # the original is kept
    assert hist[1]["fields"]["question"] == "수정된 발문으로 옳은 것은?"
    assert hist[1]["fields"]["choices"] == ["ㄱ", "ㄴ", "ㄷ", "ㄹ", "ㅁ"]
    assert review.get_pair(store, "cand-a")["question"] == "수정된 발문으로 옳은 것은?"
    if out["note"] is None:  # Augment's gates re-ran: the edited question was re-solved once by the teacher
        assert teacher.count == 1 and out["gates"]["resolve"]["ok"] is True and out["failed_gate"] is None
    assert review.edit(store, "cand-a", {"question": "수정된 발문으로 옳은 것은?"})["changed"] == []
    assert len(review.history(store, "cand-a")) == 2
    for bad, msg in (({"answer": 7}, "1–5"), ({"choices": ["a", "b"]}, "five"), ({"chosen": " "}, "empty"),
                     ({"gates": "{}"}, "cannot edit")):
        with pytest.raises(CoreError, match=msg):
            review.edit(store, "cand-a", bad)
    assert len(review.history(store, "cand-a")) == 2


def test_edit_reruns_gates(store, seeded):
    """An edit that breaks the chosen answer fails a gate again (Augment's gates re-run)."""
    review.accept(store, ["cand-a"])
    p = review.get_pair(store, "cand-a")
    broken = p["chosen"].replace('{"Answer": "3"}', '{"Answer": "2"}')
    out = review.edit(store, "cand-a", {"chosen": broken})
    assert out["failed_gate"] == "chosen_answer"
    assert out["status"] == "pending"  # an accepted pair whose edit fails a gate is decided again
    assert [h["action"] for h in review.history(store, "cand-a")][-2:] == ["edited", "reset"]


def test_bulk_accept_takes_only_passing_pending(store, seeded):
    review.reject(store, "cand-e", "어색한 문장")
    assert review.passing_pending(store, RUN) == ["cand-a", "cand-b"]
    with pytest.raises(CoreError, match="not the 3 confirmed"):
        review.accept_passing(store, RUN, expected=3)
    assert review.counts(store, RUN)["accepted"] == 0
    assert review.accept_passing(store, RUN, expected=2) == ["cand-a", "cand-b"]
    statuses = {p["id"]: p["status"] for p in review.list_pairs(store, run=RUN)}
    assert statuses == {"cand-a": "accepted", "cand-b": "accepted", "cand-c": "pending", "cand-d": "pending",
                        "cand-e": "rejected"}
    assert review.history(store, "cand-a")[-1]["reason"] == "bulk: passed every gate"
    assert review.accept_passing(store, RUN) == []
    with pytest.raises(NotFound):
        review.accept_passing(store, "augment-none")


def test_provenance_both_ways(store, seeded):
    prov = review.provenance(store, "cand-c")
    assert prov["seed"]["qid"] == "q2" and prov["seed"]["choices"] == ["가", "나", "다", "라", "마"]
    assert prov["mining_run"]["id"] == MINING
    assert prov["golden"]["response"].startswith("교사 풀이 q2") and prov["failed"]["answer"] == 5
    assert prov["structure"]["structure"]["error_pattern"] == "비슷한 시대의 다른 인물과 혼동"
    assert prov["generation"]["cache_key"] == "bp-cand-c"
    assert [s["id"] for s in prov["siblings"]] == ["cand-d", "cand-e"]
    assert [p["id"] for p in review.pairs_from_seed(store, POOL, "q1")] == ["cand-a", "cand-b"]


def test_diverge_marks_differing_lines_and_answers():
    chosen = reasoning(["선지를 차례로 검토한다.", "갑은 목표를 세웠다.", "따라서 정답은 3번이다."], 3)
    rejected = reasoning(["선지를 차례로 검토한다.", "을과 혼동했다.", "따라서 답은 4번이다."], 4)
    d = review.diverge(chosen, rejected)
    assert d["first"] == 1 and d["answers"] == (3, 4)
    assert [same for _, same in d["chosen"]] == [True, False, False, False]
    assert review.diverge("같다", "같다")["first"] is None


def test_cli_list_accept_reject_edit(db_env, tmp_path, capsys):
    store = Store(db_env)
    seed_review(store, tmp_path)
    store.close()
    assert main(["pairs", "list", "--run", RUN, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [c[0] for c in CANDIDATES] and rows[0]["status"] == "pending"
    assert main(["pairs", "accept", "--run", RUN, "--passing", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accepted"] == 3 and out["counts"]["accepted"] == 3
    assert main(["pairs", "reject", "cand-c", "--reason", "정답이 둘"]) == 0
    assert main(["pairs", "accept", "cand-d"]) == 0
    capsys.readouterr()
    assert main(["pairs", "list", "--run", RUN, "--status", "accepted", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["cand-a", "cand-b", "cand-d", "cand-e"]
    assert main(["pairs", "list", "--run", RUN, "--status", "rejected", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["review_reason"] == "정답이 둘"
    assert main(["pairs", "edit", "cand-d", "--question", "고친 발문은?", "--json"]) == 0
    edited = json.loads(capsys.readouterr().out)
    assert edited["changed"] == ["question"]
    assert main(["pairs", "show", "cand-d"]) == 0
    shown = capsys.readouterr().out
    assert "고친 발문은?" in shown and "edited" in shown and "same seed: cand-c, cand-e" in shown
    assert main(["pairs", "reject", "cand-a", "--reason", ""]) == 1
    assert "Error: a rejection needs a reason" in capsys.readouterr().err
    assert main(["pairs", "accept", "--passing"]) == 1
    assert main(["pairs", "list", "--status", "maybe"]) == 1
