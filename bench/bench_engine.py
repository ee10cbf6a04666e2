"""Engine benchmark: throughput against a loopback server with fixed latency, and cache serving speed.

    .venv/bin/python bench/bench_engine.py [--latency 1.0] [--concurrency 64] [--requests 640]

Prints achieved req/s ÷ ideal min(concurrency / latency, rate limit) (goal ≥ 0.9) and the time to
serve 10,000 cached requests (goal < 2 s). The server runs in its own process so that it does not
share the client's GIL. The default latency (1 s) is at the fast end of real LLM calls; a last row
at a quarter of it shows where client CPU (mostly the SDKs' HTTP stack, ~4-5 ms a request on a
2-core machine) becomes the ceiling. A benchmark, not a test: it prints ratios and asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from loopback import Loopback, Reply  # noqa: E402 (test double, reused here)

from core import engine, generations, models  # noqa: E402
from core.engine import Request  # noqa: E402
from core.store import Store  # noqa: E402

PROMPT = "다음 수능 문제를 풀어 주세요. 지문과 <보기>를 근거로 차근차근 추론하세요. " * 40  # ~2,000 chars


def serve(wire: str, latency: float, ready: mp.Queue, stop: mp.Event) -> None:
    with Loopback(wire, lambda n, b: Reply(delay=latency), max_threads=512, lifetime_s=600) as srv:
        ready.put(srv.base_url)
        stop.wait()


def requests(n: int, tag: str) -> list[Request]:
    return [Request([{"role": "user", "content": f"{PROMPT}\n[{tag} {i}]"}], "bench", dataset="bench",
                    qid=f"{tag}{i}", n_choices=5) for i in range(n)]


def throughput(store: Store, wire: str, latency: float, concurrency: int, n: int, rpm: float | None) -> None:
    ready, stop = mp.Queue(), mp.Event()
    proc = mp.Process(target=serve, args=(wire, latency, ready, stop), daemon=True)
    proc.start()
    try:
        base_url = ready.get(timeout=30)
        name = f"{wire}-{concurrency}-{rpm}"
        params = {"concurrency": concurrency, "timeout_s": 30, "max_retries": 0, "api_key_env": "BENCH_KEY",
                  **({"rpm": rpm} if rpm else {})}
        m = models.add_model(store, name, "gemini" if wire == "gemini" else "openai", "gemini-2.5-flash",
                             base_url=base_url, params=params, replace=True)
        engine.run(store, m, requests(concurrency, f"warm-{name}"))  # connections and imports, not timed
        start = time.perf_counter()
        run = engine.run(store, m, requests(n, name))
        elapsed = time.perf_counter() - start
    finally:
        stop.set()
        proc.join(5)
    ideal = min(concurrency / latency, rpm / 60 if rpm else float("inf"))
    got = run.progress.sent / elapsed
    limit = f", rpm {rpm:g} (burst {max(1, rpm / 60):g})" if rpm else ""
    print(f"{wire:7s} concurrency {concurrency}, latency {latency:g} s{limit}: {run.progress.sent} sent in "
          f"{elapsed:.2f} s = {got:.1f} req/s; ideal {ideal:.1f} -> ratio {got / ideal:.3f} "
          f"(errors {run.progress.errors})")


def cached(store: Store, n: int) -> None:
    m = models.add_model(store, "cached", "openai", "qwen3-14b", base_url="http://127.0.0.1:9/v1", replace=True)
    reqs = requests(n, "cached")
    gen = engine.resolve_params(m, None)
    now = datetime.now()
    rows = [{"cache_key": engine.cache_key(m, {}, gen, r), "task": r.task, "dataset": r.dataset, "qid": r.qid,
             "model": m.name, "provider": m.provider, "model_id": m.model_id, "params": "{}",
             "prompt_hash": r.prompt_hash, "sample": 0, "messages": "[]",
             "response": '풀이 ...\n{"Answer":"3"}', "reasoning": None, "answer": 3, "answer_reason": "JSON",
             "answer_method": "json", "finish_reason": "stop", "truncated": False, "input_tokens": 900,
             "output_tokens": 700, "latency_s": 1.0, "attempts": 1, "error": None, "created_at": now,
             "job_id": None} for r in reqs]
    generations.record(store, rows)
    store.execute("CHECKPOINT")
    start = time.perf_counter()
    run = engine.run(store, m, reqs)  # the server does not exist: anything not cached would fail
    elapsed = time.perf_counter() - start
    print(f"cache: {run.progress.cached} of {n} served from the store in {elapsed:.2f} s "
          f"(goal < 2 s -> ratio {elapsed / 2:.2f} of budget; sent {run.progress.sent})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=640)
    ap.add_argument("--cached", type=int, default=10_000)
    args = ap.parse_args()
    os.environ.setdefault("BENCH_KEY", "loopback-needs-no-key")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        c, lat, n = args.concurrency, args.latency, args.requests
        for wire in ("openai", "gemini"):
            throughput(store, wire, lat, c, n, None)
        # A limit below concurrency / latency: the bucket's one-second burst is included in the ratio.
        throughput(store, "openai", lat, c, n // 2, 60 * c / lat * 0.5)
        throughput(store, "openai", lat / 4, c, n * 2, None)
        cached(store, args.cached)
        store.close()


if __name__ == "__main__":
    main()
