"""kill -9 of a CLI solve or mine at a few moments (0.2 s server latency, 16-way), then a re-run:
how many requests the re-run sent beyond those in flight at the kill, and for those, how long before
the kill the server had written their reply.

    .venv/bin/python bench/bench_kill.py [--questions 600] [--moments 1.5,2.3,3.1,4.0]

"In flight" here is the server's view: received, reply not yet written at the kill. A reply the
server wrote a few milliseconds before the kill may still sit unread in the client's socket: the
process never had it, so the re-run sends it again. The test (tests/test_reliability.py) holds the
replies at each kill moment so "in flight" is exact there and asserts 0 extra; this prints how
wide the unread window is without that hold. A benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import test_reliability as tr  # noqa: E402 (test helpers, reused here)
from loopback import Loopback, Reply  # noqa: E402

from core import models  # noqa: E402
from core.store import Store  # noqa: E402

LATENCY_S = 0.2


def moment(tmp: Path, step: str, n: int, at: float) -> None:
    log: list[tuple[str, float]] = []  # (request body, when its reply was written)
    lock = threading.Lock()

    def script(i: int, body: dict) -> Reply:
        time.sleep(LATENCY_S)
        with lock:
            log.append((str(body), time.monotonic()))
        return Reply()

    with Loopback("openai", script, lifetime_s=900) as srv:
        db = tr._prepare(tmp, srv.base_url, n, 16)
        s = Store(db)
        models.add_model(s, "teacher", "openai", "teacher-model", base_url=srv.base_url, params={"concurrency": 16})
        s.close()
        argv = (["solve", "--dataset", "pool", "--model", "student"] if step == "solve" else
                ["mine", "--pool", "pool", "--teacher", "teacher", "--student", "student"])
        proc = tr._cli(db, *argv, "--json")
        while not srv.count and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(at)
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        time.sleep(LATENCY_S + 0.2)  # the replies in flight are written (to a dead socket)
        sent_first = [str(r["body"]) for r in srv.requests]
        with lock:
            written = {b: t for b, t in log}
        tr._cli(db, *argv, "--json").communicate(timeout=900)
        second = {str(r["body"]) for r in srv.requests[len(sent_first):]}
    in_flight = {b for b in sent_first if written.get(b, killed + 1) > killed}
    extra = (second & set(sent_first)) - in_flight
    ages = sorted(round((killed - written[b]) * 1000) for b in extra)
    print(f"{step} kill at {at:g} s: {len(sent_first)} sent, {len(in_flight)} in flight, re-sent "
          f"{len(second & set(sent_first))}: {len(extra)} beyond those in flight"
          + (f" (replies written {', '.join(map(str, ages))} ms before the kill)" if extra else ""), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=600)
    ap.add_argument("--moments", default="1.5,2.3,3.1,4.0")
    args = ap.parse_args()
    for step in ("solve", "mine"):
        for at in (float(x) for x in args.moments.split(",")):
            tmp = Path(tempfile.mkdtemp())
            try:
                moment(tmp, step, args.questions if step == "solve" else args.questions // 2, at)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
