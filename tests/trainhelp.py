"""Helpers for the training tests: a frozen preference set written as the m007 contract defines it."""

from __future__ import annotations

import hashlib
import json

import pytest

SYSTEM = "당신은 수능 문제를 푸는 학생입니다. 마지막 줄에 {\"Answer\":\"N\"} 형식으로 답하세요."


def pair(i: int, user: str | None = None, chosen: str | None = None, rejected: str | None = None) -> dict:
    return {"prompt": [{"role": "system", "content": SYSTEM},
                       {"role": "user", "content": user or f"다음 수능 문제를 풀어 주세요. 문제 {i}: 윗글의 내용과 일치하지 않는 것은?"}],
            "chosen": chosen or '지문과 <보기>에 근거하여 판단한다. 정답은 ③번입니다.\n{"Answer":"3"}',
            "rejected": rejected or f'법률행위는 의사표시를 요소로 한다. Answer: {i % 5 + 1}\n{{"Answer":"{i % 4 + 1}"}}'}


def make_set(store, name: str, pairs: list[dict]) -> str:
    canon = json.dumps(pairs, ensure_ascii=False, sort_keys=True)
    store.execute("INSERT INTO preference_sets (name, source, hash, n_pairs) VALUES (?, 'import:test', ?, ?)",
                  [name, hashlib.sha256(canon.encode()).hexdigest(), len(pairs)])
    for i, p in enumerate(pairs):
        prompt = p["prompt"] if isinstance(p["prompt"], str) else json.dumps(p["prompt"], ensure_ascii=False)
        store.execute("INSERT INTO preference_pairs (set_name, idx, pair_id, prompt, chosen, rejected, subject) "
                      "VALUES (?, ?, ?, ?, ?, ?, '국어')", [name, i, f"{name}-{i}", prompt, p["chosen"], p["rejected"]])
    return name


# Small, fast settings for a tiny model on CPU.
TINY = {"max_length": 256, "max_prompt_length": 160, "max_completion_length": 64, "backend": "cpu",
        "gradient_accumulation_steps": 2, "learning_rate": 1e-3, "warmup_ratio": 0.0, "save_steps": 1,
        "gradient_checkpointing": False, "load_in_4bit": False, "optim": "adamw_torch"}


def kill_leftover_workers(root) -> list[int]:
    """Teardown: end any worker still running on a run folder under `root` (a failed test must not
    leave a 100,000-step run behind). Matches by command line, so nothing else is touched."""
    from pathlib import Path

    import psutil

    from core.steps.train import launcher, liveness

    killed = []
    for status in Path(root).rglob("status.json"):
        try:
            pid = json.loads(status.read_text())["pid"]
            proc = psutil.Process(pid)
            cmd = proc.cmdline()
        except (OSError, ValueError, KeyError, psutil.Error):
            continue
        if liveness.names_run(cmd, status.parent):
            launcher.kill_tree(pid, status.parent)
            killed.append(pid)
    return killed


# -- helpers shared by the training test modules ----------------------------------------------------
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 240


def until(cond, what: str):
    """Poll a condition on real state (no timing assertion: the deadline only stops a hung test)."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=DEADLINE_S, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def config(**over):
    """A TrainConfig for set "s" on the "tiny" model with the TINY settings."""
    from core.steps.train.config import TrainConfig

    return TrainConfig(**{"set_name": "s", "base_model": "tiny", **TINY, **over})


def add_tiny(store, folder: str):
    """Register the tiny Qwen3 as "tiny" (thinking off, greedy) and a 6-pair set "s"."""
    from core import models

    models.add_model(store, "tiny", "local", folder, params={"thinking": False, "temperature": 0, "max_tokens": 4})
    make_set(store, "s", [pair(i) for i in range(6)])
    return store


# Imported by the training test modules (autouse there); `tiny` and the tiny Qwen3 are conftest's.
@pytest.fixture(autouse=True)
def no_worker_left_behind(tmp_path):
    yield
    kill_leftover_workers(tmp_path)
