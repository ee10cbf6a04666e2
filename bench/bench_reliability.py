"""Reliability figures for the README: time to give up on a dead or hanging server, requests re-sent
after kill -9, and `models test` against a down server.

    .venv/bin/python bench/bench_reliability.py [--questions 2000]

1. Dead server (a port that accepts and hangs up), default model params: how long until the run
   stops, and how many connections it made (the old engine retried every one of N questions).
2. Hanging server (never answers), timeout_s=2: how long until the run stops (one timeout, not N).
3. kill -9 of a CLI solve at a random moment while 16 requests are in flight, then a re-run: how
   many already-answered requests the re-run sent again (goal: 0; only those in flight are re-sent).
A benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from loopback import Loopback, Reply  # noqa: E402 (test double, reused here)
from minidata import import_mini  # noqa: E402
from test_reliability import Slammer  # noqa: E402

from core import engine, models  # noqa: E402
from core.engine import Request  # noqa: E402
from core.errors import CoreError  # noqa: E402
from core.store import Store  # noqa: E402


def reqs(n: int) -> list[Request]:
    return [Request([{"role": "user", "content": f"q{i}"}], "t", dataset="d", qid=f"q{i}", n_choices=5)
            for i in range(n)]


def dead_server(store: Store, n: int) -> None:
    with Slammer() as dead:
        m = models.add_model(store, "dead", "openai", "x", base_url=dead.base_url, replace=True)
        t = time.perf_counter()
        try:
            engine.run(store, m, reqs(n))
        except CoreError as exc:
            message = exc.message
        print(f"dead server, {n:,} questions, default params: stopped after {time.perf_counter() - t:.2f} s, "
              f"{dead.accepted} connection(s) (old engine: {n:,} x 6 attempts with backoff)\n  {message}")


def hanging_server(store: Store, n: int) -> None:
    with Loopback("openai", lambda i, b: Reply(delay=600), lifetime_s=900) as srv:
        m = models.add_model(store, "hang", "openai", "x", base_url=srv.base_url, params={"timeout_s": 2},
                             replace=True)
        t = time.perf_counter()
        try:
            engine.run(store, m, reqs(n))
        except CoreError:
            pass
        print(f"hanging server, {n:,} questions, timeout_s=2: stopped after {time.perf_counter() - t:.2f} s, "
              f"{srv.count} request(s) sent")


def models_test(store: Store) -> None:
    with Slammer() as dead:
        models.add_model(store, "down", "openai", "x", base_url=dead.base_url, replace=True)
        t = time.perf_counter()
        out = engine.test_model(store, "down")
        print(f"models test, down server: {time.perf_counter() - t:.2f} s, {dead.accepted} attempt(s): {out['error'][:80]}")


def kill_and_rerun(tmp: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    kill_after = rng.randint(n // 5, n // 2)
    got = threading.Event()

    def script(i: int, body: dict) -> Reply:
        if i >= kill_after:
            got.set()
        return Reply(delay=rng.uniform(0.01, 0.2))

    with Loopback("openai", script, lifetime_s=900) as srv:
        db = tmp / f"kill{seed}.duckdb"
        s = Store(db)
        import_mini(s, tmp, n=n, name="pool")
        models.add_model(s, "student", "openai", "x", base_url=srv.base_url, params={"concurrency": 16})
        s.close()
        env = {**os.environ, "CSAT_DB": str(db)}
        cmd = [sys.executable, "-m", "core", "solve", "--dataset", "pool", "--model", "student", "--json"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got.wait(300)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = [r["body"]["messages"][-1]["content"] for r in srv.requests]
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        second = [r["body"]["messages"][-1]["content"] for r in srv.requests[len(first):]]
    resent = len(set(first) & set(second))
    print(f"kill -9 after {len(first)} of {n} requests sent (16 in flight at most): the re-run sent {len(second)}, "
          f"of which {resent} had been sent before (≤ 16: only those in flight)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=2000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    store = Store(tmp / "bench.duckdb")
    dead_server(store, args.questions)
    hanging_server(store, args.questions)
    models_test(store)
    store.close()
    for seed in (1, 2, 3):
        kill_and_rerun(tmp, 300, seed)


if __name__ == "__main__":
    main()
