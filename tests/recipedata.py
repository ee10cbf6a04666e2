"""Recipe test data: a 10-question pool and a 4-question test set (each question tagged, so a scripted
teacher knows its key), a loopback teacher that answers every solve right and every augment request
as tests/augmentdata.py's AugmentOracle does, and a recipe TOML around the tiny Qwen3 student."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from tests.augmentdata import SEED_TOPICS, TEST_TOPICS, AugmentOracle, choices_of, write_jsonl
from tests.loopback import Reply

TAG = re.compile(r"\[([rt])(\d+)\]")
POOL_TEXTS = [SEED_TOPICS[i % len(SEED_TOPICS)] + f" 이 설명은 {i}번째 자료이다." for i in range(10)]
TEST_TEXTS = [TEST_TOPICS[0], TEST_TOPICS[1], SEED_TOPICS[3], SEED_TOPICS[4]]
# A pool question that copies a test question (the bundle's overlap figures must show it).
POOL_TEXTS[9] = TEST_TEXTS[2]


def gold(kind: str, k: int) -> int:
    return (k % 5) + 1


def write_data(tmp_path: Path) -> tuple[Path, Path]:
    pool = [{"id": f"r{k}", "paragraph": f"[r{k}] {POOL_TEXTS[k]}", "question": "윗글의 내용과 일치하는 것은?",
             "choices": choices_of(POOL_TEXTS[k] + " 가 나 다 라 마 바 사 아 자 차 카 타 파 하 거 너"),
             "answer": gold("r", k), "points": 2, "subject": ["한국사", "생활과 윤리"][k % 2]} for k in range(10)]
    test = [{"id": f"t{k}", "paragraph": f"[t{k}] {TEST_TEXTS[k]}", "question": "윗글의 내용과 일치하는 것은?",
             "choices": choices_of(TEST_TEXTS[k] + " 가 나 다 라 마 바 사 아 자 차 카 타 파 하 거 너"),
             "answer": gold("t", k), "points": 3, "subject": ["국어", "한국사"][k % 2]} for k in range(4)]
    return write_jsonl(tmp_path / "pool.jsonl", pool), write_jsonl(tmp_path / "test.jsonl", test)


class Teacher:
    """Right on every solve; augment requests as AugmentOracle; counts what arrives (per body)."""

    def __init__(self, delay: float = 0.0, hook=None):
        self.augment = AugmentOracle()
        self.delay, self.hook = delay, hook
        self.lock = threading.Lock()
        self.kinds: dict[str, int] = {}

    def kind(self, body: dict) -> str:
        if "lora_path" in body:
            return "load_adapter"  # vLLM's runtime LoRA endpoint (the [serve] section)
        text = json.dumps(body, ensure_ascii=False)
        if "세 가지를 분석하세요" in text:
            return "structure"
        if "[전이 대상]" in text:
            return "blueprint"
        return "resolve" if "[증" in text else "solve"

    def __call__(self, n: int, body: dict) -> Reply:
        kind = self.kind(body)
        with self.lock:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if self.hook:
            self.hook(kind, self.kinds[kind])
        reply = Reply(text="loaded") if kind == "load_adapter" else self.augment.reply(body)
        if reply is None:
            m = TAG.search(json.dumps(body, ensure_ascii=False))
            reply = Reply(text=f"근거를 확인하였다.\n{{\"Answer\":\"{gold(m.group(1), int(m.group(2)))}\"}}")
        reply.delay = self.delay
        return reply


TRAIN = """
[train]
max_steps = 2
gradient_accumulation_steps = 1
max_length = 320
max_prompt_length = 192
max_completion_length = 64
long_prompts = "truncate"
learning_rate = 1e-3
warmup_ratio = 0.0
save_steps = 1
gradient_checkpointing = false
load_in_4bit = false
optim = "adamw_torch"
backend = "cpu"
"""


def recipe(tmp_path: Path, base_url: str, tiny_qwen: str, *, name: str = "t", rounds: int = 2,
           stop: list[str] | None = None, extra: str = "") -> Path:
    pool, test = write_data(tmp_path)
    text = f"""
name = "{name}"
pool = "pool10"
test = "exam"
teacher = "teacher"
student = "tiny"
rounds = {rounds}
{extra}
[data]
pool_file = "{pool}"
test_file = "{test}"

[models.teacher]
provider = "openai"
model = "big"
base_url = "{base_url}"
params = {{ concurrency = 2, max_retries = 2, retry_base_s = 0.01 }}

[models.tiny]
provider = "local"
model = "{tiny_qwen}"
params = {{ thinking = false, temperature = 0, max_tokens = 4 }}

[augment]
per_seed = 1

[review]
accept = "passing"
{TRAIN}
[stop]
when = {json.dumps(stop or [])}
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path
