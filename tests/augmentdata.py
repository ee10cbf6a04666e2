"""Augment test data (shared by test_augment, test_pages_augment and test_preference_sets).

A train pool of up to six seed questions (each its own passage, tagged "[qN]") and a test set of two;
a mining run over the pool with a loopback teacher that is always right and a student always wrong
(every question a hard negative); and the augment teacher's script: per seed a structure (garbage
for seed 6), per (seed, variant) one scripted blueprint, per candidate a re-solve. Ten blueprints
hit every gate once (see SCENARIOS).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path

from core import models
from core.steps.data import datasets
from core.steps.mine import mining
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
        summary = mining.run(store, mining.MiningConfig(pool="pool", teacher="m-teacher", student="m-student"))
    assert summary["hard_negatives"] == n
    return summary["run"]


def writer(store: Store, srv: Loopback, name: str = "writer") -> str:
    models.add_model(store, name, "gemini", "gemini-2.5-flash", base_url=srv.base_url, params=FAST)
    return name


class AugmentOracle:
    """A well-behaved augment teacher for any pool (e.g. the whole-pipeline browser test): every seed
    gets a valid structure and, per variant, a valid blueprint on its own topic (assigned in arrival
    order, so candidates never duplicate each other), and re-solves name the key. `reply(body)` is
    None for requests that are not augment requests (a solve of a pool question: answer it yourself).
    """

    def __init__(self, answer: int = 2):
        self.answer = answer
        self.topics: dict[str, int] = {}
        self.lock = threading.Lock()

    def reply(self, body: dict) -> Reply | None:
        text = json.dumps(body, ensure_ascii=False)
        if "세 가지를 분석하세요" in text:
            return Reply(text=json.dumps({"structure": "자료의 조건 → 선지 진술과의 정합성 판단",
                                          "golden_steps": ["발문 확인", "자료에서 근거 찾기", "선지 하나씩 검토"],
                                          "error_pattern": "비슷한 개념을 혼동함"}, ensure_ascii=False))
        if "[전이 대상]" in text:
            seed = text.split("[원래 문항]", 1)[-1].split("[원래 문항의 정답]", 1)[0]
            variant = VARIANT.search(text).group(1)
            with self.lock:
                k = self.topics.setdefault(f"{seed}|{variant}", len(self.topics))
            passage = TOPICS[k % len(TOPICS)]
            wrong = self.answer % 5 + 1
            return Reply(text=json.dumps({
                "passage": passage, "question": f"[증{k}] {STEM}", "choices": choices_of(passage),
                "answer": self.answer, "chosen": reasoning(self.answer),
                "rejected": reasoning(wrong, "비슷한 개념을 혼동하였다."), "target": f"주제 {k}"}, ensure_ascii=False))
        if "[증" in text:
            return Reply(text=f"선지를 검토하였다.\n{{\"Answer\":\"{self.answer}\"}}")
        return None
