"""Reliability under failure (issue 11): nothing paid twice, no API failure counted as an answer,
nothing hangs. Real subprocesses, real DuckDB, loopback servers speaking the OpenAI wire format."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from loopback import Loopback, Reply
from minidata import import_mini

from core import engine, journal, models
from core.engine import Request
from core.errors import CoreError, ImportFailed
from core.providers.base import parse_retry_after
from core.steps.data import datasets

ROOT = Path(__file__).resolve().parent.parent
FAST = {"retry_base_s": 0.01, "timeout_s": 5}


def reqs(n: int, prefix: str = "q") -> list[Request]:
    return [Request([{"role": "user", "content": f"{prefix}{i}"}], "tmpl", dataset="d", qid=f"{prefix}{i}",
                    n_choices=5) for i in range(n)]


def add(store, base_url: str, name: str = "m", **params):
    return models.add_model(store, name, "openai", "qwen3-14b", base_url=base_url, params={**FAST, **params},
                            replace=True)


class Slammer:
    """A TCP server that accepts and hangs up at once (a crashed backend behind a live port):
    every request is a connection failure, and the server counts the attempts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def run_with_deadline(fn, seconds: float, cancel: threading.Event):
    """Run fn in a thread; if it has not ended after `seconds`, cancel it (so the old, hanging
    behaviour fails the test instead of stalling the suite) and report that it hung."""
    box: dict = {}
    done = threading.Event()

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            box["error"] = exc
        done.set()

    threading.Thread(target=target, daemon=True).start()
    hung = not done.wait(seconds)
    if hung:
        cancel.set()
        done.wait(30)
    return hung, box


# ---- item 3: nothing hangs ------------------------------------------------------------------------

def test_dead_server_trips_the_breaker_after_a_few_attempts(store):
    with Slammer() as dead:
        m = add(store, dead.base_url, concurrency=8, max_retries=2)
        with pytest.raises(CoreError) as err:
            engine.run(store, m, reqs(300))
    # Old behaviour: every one of the 300 requests tried 3 times (900 connections).
    assert dead.accepted <= 8 + m.params.breaker_failures
    assert "paused" in err.value.message and "in a row" in err.value.message
    assert "check that" in (err.value.hint or "")
    # Nothing was counted as a reply: the next run sends them all.
    assert store.scalar("SELECT count(*) FROM generations WHERE error IS NULL") == 0


def test_hanging_server_trips_the_breaker_on_timeouts(store):
    with Loopback("openai", lambda n, body: Reply(delay=60)) as srv:
        m = add(store, srv.base_url, concurrency=4, max_retries=1, timeout_s=0.3, breaker_failures=4)
        cancel = threading.Event()
        hung, box = run_with_deadline(lambda: engine.run(store, m, reqs(200), cancel=cancel), 60, cancel)
        assert not hung
        assert isinstance(box.get("error"), CoreError) and "timed out" in box["error"].message
        assert srv.count <= 2 * 4 + 4  # old: 200 requests x 2 attempts, 0.3 s each


def test_a_gateway_in_front_of_a_dead_server_trips_the_breaker(store):
    with Loopback("openai", lambda n, body: Reply(status=502)) as gateway:
        m = add(store, gateway.base_url, concurrency=4, max_retries=3)
        with pytest.raises(CoreError, match="paused.*HTTP 502"):
            engine.run(store, m, reqs(200))
        assert gateway.count <= 4 + m.params.breaker_failures  # old: 200 x 4 attempts


def test_a_server_that_answers_resets_the_breaker(store):
    # Two connection failures, then answers, repeatedly: never 3 failures in a row, never paused.
    with Loopback("openai", lambda n, body: Reply(delay=5) if n % 3 < 2 else Reply()) as srv:
        m = add(store, srv.base_url, concurrency=1, max_retries=3, timeout_s=0.2, breaker_failures=3)
        run = engine.run(store, m, reqs(4))
    assert all(r is not None and r["error"] is None for r in run.rows)


@pytest.mark.parametrize("step", ["solve", "mine", "eval"])
def test_a_model_that_only_answers_429_is_paused_within_the_bound(db_env, tmp_path, capsys, step):
    """Old: 429s never counted toward the breaker (each wait capped, their sum not), so a server
    answering 429 for ever held a 45-question solve for about 15 minutes."""
    from core.cli import main
    from core.store import Store

    bound, conc, wait = 1.5, 4, 0.2  # every retry waits `wait` (the server's Retry-After)
    s = Store(db_env)
    import_mini(s, tmp_path, n=45, name="pool")
    with Loopback("openai", lambda n, b: Reply(status=429, headers={"Retry-After": str(wait)})) as srv, \
            Loopback("openai") as ok:
        add(s, srv.base_url, name="limited", concurrency=conc, max_backoff_s=wait, max_rate_limit_wait_s=bound)
        add(s, ok.base_url, name="teacher")
        s.close()
        args = {"solve": ["solve", "--dataset", "pool", "--model", "limited"],
                "mine": ["mine", "--pool", "pool", "--teacher", "teacher", "--student", "limited"],
                "eval": ["eval", "run", "--dataset", "pool", "--model", "limited"]}[step]
        code = main(["--db", str(db_env), *args, "--json"])
        out, err = capsys.readouterr()
        # Attempts in the window: one per worker per `wait`, plus each worker's first attempt on the
        # questions whose retries ran out (max_retries 5). Old: 45 questions x 6 attempts = 270.
        assert srv.count <= conc * (bound / wait + 1 + bound / (5 * wait) + 2), srv.count
    assert code == 1
    failed = json.loads(out)
    assert failed["state"] == "failed"
    for text in (failed["error"], err):
        assert "model 'limited' paused: rate limited (HTTP 429) on every request for" in text
        assert f"past max_rate_limit_wait_s = {bound:g} s (last: HTTP 429" in text
    assert [line for line in err.splitlines() if line.startswith("Error:")][0].startswith("Error: model 'limited'")
    s = Store(db_env)
    assert s.scalar("SELECT count(*) FROM generations WHERE error IS NULL AND model = 'limited'") == 0
    s.close()


def test_retry_after_is_capped_by_max_backoff(store):
    script = lambda n, body: Reply(status=429, headers={"Retry-After": "3600"}) if n == 0 else Reply()  # noqa: E731
    with Loopback("openai", script) as srv:
        m = add(store, srv.base_url, concurrency=1, max_backoff_s=0.2)
        cancel = threading.Event()
        hung, box = run_with_deadline(lambda: engine.run(store, m, reqs(1), cancel=cancel), 30, cancel)
        assert not hung, "a Retry-After of an hour stalled the run"
        assert box["result"].rows[0]["error"] is None and srv.count == 2


def test_retry_after_under_the_cap_is_honoured_and_http_dates_parse(store):
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: retry now
    assert parse_retry_after("nan") is None and parse_retry_after("soon") is None
    with pytest.raises(CoreError, match="max_backoff_s"):
        models.parse_params({"max_backoff_s": -1})
    with pytest.raises(CoreError, match="breaker_failures"):
        models.parse_params({"breaker_failures": 0})


def test_models_test_makes_one_attempt_with_a_short_timeout(store, monkeypatch):
    monkeypatch.setattr(engine, "TEST_TIMEOUT_S", 0.3)
    with Loopback("openai", lambda n, body: Reply(delay=30)) as srv:
        add(store, srv.base_url, name="slow", timeout_s=4, max_retries=5)
        out = engine.test_model(store, "slow")
        assert srv.count == 1  # old: 6 attempts of 4 s each
    assert not out["ok"] and "timed out after 0.3 s" in out["error"]
    with Slammer() as dead:
        add(store, dead.base_url, name="dead", max_retries=5)
        out = engine.test_model(store, "dead")
        assert dead.accepted == 1 and not out["ok"]


# ---- item 7: the openai provider reads OPENAI_API_KEY -----------------------------------------------

def auth(request: dict) -> str | None:
    return {k.lower(): v for k, v in request["headers"].items()}.get("authorization")


def test_openai_provider_reads_openai_api_key_by_default(store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-000")
    with Loopback("openai") as srv:
        m = add(store, srv.base_url)
        engine.run(store, m, reqs(1))
        assert auth(srv.requests[0]) == "Bearer sk-test-not-a-real-key-000"
        monkeypatch.delenv("OPENAI_API_KEY")
        engine.run(store, m, reqs(1, "other"))  # a local server needs no key: still works without one
        assert auth(srv.requests[1]) == "Bearer not-needed"
    assert "sk-test" not in json.dumps(store.rows("SELECT * FROM models"), default=str)


# ---- item 2: a crash pays only for what was in flight ----------------------------------------------

def test_journal_recovers_replies_a_dead_run_left_behind(store):
    with Loopback("openai") as srv:
        m = add(store, srv.base_url)
        first = engine.run(store, m, reqs(3))
    # A journal segment as a killed process leaves it: two whole lines and a torn one.
    from core.generations import COLUMNS

    row = store.rows("SELECT * FROM generations WHERE cache_key = ?", [first.rows[0]["cache_key"]])[0]
    row = {c: row[c] for c, _ in COLUMNS}
    store.execute("DELETE FROM generations")
    j = journal.Journal(store)
    j.append(row)
    j.append(row | {"cache_key": "other", "qid": None, "dataset": None})
    os.write(j.fd, b'{"cache_key": "torn')
    os.close(j.fd)
    with journal._LIVE_LOCK:
        journal._LIVE.clear()  # the writer "died"
    assert engine.plan(store, m, reqs(3))["cached"] == 1  # folded before the lookup
    assert store.scalar("SELECT count(*) FROM generations") == 2
    assert not journal.leftovers(store)
    assert first.rows[0]["cache_key"] in {r["cache_key"] for r in store.rows("SELECT cache_key FROM generations")}


def _cli(db: Path, *args: str) -> subprocess.Popen:
    env = {"GEMINI_API_KEY": "test-key-for-loopback", **os.environ, "HF_HUB_OFFLINE": "1", "CSAT_DB": str(db),
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _prepare(tmp_path: Path, base_url: str, n: int, concurrency: int) -> Path:
    from core.store import Store

    db = tmp_path / "kill.duckdb"
    s = Store(db)
    import_mini(s, tmp_path, n=n, name="pool")
    add(s, base_url, name="student", concurrency=concurrency)
    s.close()
    return db


def _question(body: dict) -> str:
    return body["messages"][-1]["content"]


@pytest.mark.parametrize("how", ["kill", "term"])
def test_after_a_kill_the_rerun_sends_only_what_was_in_flight(tmp_path, how):
    """Requests 1..40 are answered at once, later ones wait; the solve is stopped when the server
    holds `conc` waiting requests (so every earlier reply has been handled by the client).
    kill -9: the re-run sends exactly the waiting requests again, plus those never sent.
    SIGTERM: the waiting requests are answered and stored, the CLI exits 130, nothing is re-sent."""
    n, answered, conc = 60, 40, 4
    arrived, release = threading.Event(), threading.Event()

    def script(i, body):
        if i + 1 >= answered + conc:
            arrived.set()
        if i >= answered:
            release.wait(120)  # in flight until the test lets go
        return Reply()

    with Loopback("openai", script) as srv:
        db = _prepare(tmp_path, srv.base_url, n, conc)
        proc = _cli(db, "solve", "--dataset", "pool", "--model", "student", "--json")
        assert arrived.wait(120), proc.communicate(timeout=30)
        proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        head = ""
        if how == "term":
            while "Cancelling" not in (line := proc.stderr.readline()) and line:  # the cancel is set
                head += line
            release.set()  # the requests in flight come back: they are paid for, so they are stored
        out, err = proc.communicate(timeout=120)
        err = head + err
        release.set()
        first = [_question(r["body"]) for r in srv.requests]
        in_flight = set(first[answered:])
        assert len(in_flight) == conc and len(first) == answered + conc
        assert proc.returncode == (-signal.SIGKILL if how == "kill" else 130), err
        again = _cli(db, "solve", "--dataset", "pool", "--model", "student", "--json")
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        second = [_question(r["body"]) for r in srv.requests[len(first):]]
    resent = set(first) & set(second)
    # Old engine: every reply of the last 0.5 s / 64 rows was lost with the process (here all 40).
    assert resent == (in_flight if how == "kill" else set())
    assert len(second) == n - len(first) + len(resent)
    assert json.loads(out)["cached"] == n - len(second)


class Gated:
    """A server script wrapper that, from request number `close_at` on, holds every reply until
    `release` (so "in flight" is exact: received, no reply written), and records what it answered."""

    def __init__(self, script, close_at: float = float("inf")):
        self.script, self.close_at = script, close_at
        self.closed, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.answered: list[str] = []
        self.held = 0

    def __call__(self, i, body):
        reply = self.script(i, body)
        if i >= self.close_at:
            self.closed.set()
        if self.closed.is_set():
            with self.lock:
                self.held += 1
            self.release.wait(120)
        with self.lock:
            self.answered.append(json.dumps(body, sort_keys=True, ensure_ascii=False))
        return reply


def _bodies(srv: Loopback, start: int = 0) -> list[str]:
    return [json.dumps(r["body"], sort_keys=True, ensure_ascii=False) for r in srv.requests[start:]]


def _kill_step(d: Path, step: str):
    """(wire, script, requests a whole run sends or None, make(base_url) -> (db, argv), concurrency)
    for a step over a small pool, its store prepared in d."""
    from core.store import Store

    if step == "augment":
        from tests.augmentdata import FAST as AUGMENT_FAST
        from tests.augmentdata import Teacher, mine, seed_data

        db = d / "kill.duckdb"
        s = Store(db)
        teacher = Teacher(seed_data(s, d))
        mining_run = mine(s)
        s.close()

        def make(base_url):
            s = Store(db)
            models.add_model(s, "writer", "gemini", "gemini-2.5-flash", base_url=base_url, params=AUGMENT_FAST)
            s.close()
            return db, ["augment", "--run", mining_run, "--teacher", "writer", "--per-seed", "2"]

        return "gemini", teacher, None, make, AUGMENT_FAST["concurrency"]

    def make(base_url):
        db = _prepare(d, base_url, 40, 4)
        s = Store(db)
        models.add_model(s, "teacher", "openai", "teacher-model", base_url=base_url,  # not the student's id
                         params={**FAST, "concurrency": 4}, replace=True)
        s.close()
        return db, (["solve", "--dataset", "pool", "--model", "student"] if step == "solve" else
                    ["mine", "--pool", "pool", "--teacher", "teacher", "--student", "student"])

    return "openai", lambda i, body: Reply(), 40 if step == "solve" else 80, make, 4


@pytest.mark.parametrize("step", ["solve", "mine", "augment"])
def test_kill_at_many_moments_resends_only_what_was_in_flight(tmp_path, step):
    """kill -9 at 8 moments spread over the run (after a different number of requests each, and a
    different pause once the workers wait, so it lands before, during or after a fold of the journal
    into the store): the re-run sends exactly the requests that were in flight, never a reply that
    had arrived. (Issue 21: 0-10 re-sent beyond what was in flight at ten moments.)"""
    import random

    rnd = random.Random(21)
    for k in range(8):
        d = tmp_path / f"moment{k}"
        d.mkdir()
        wire, script, total, make, conc = _kill_step(d, step)
        gate = Gated(script, close_at=1 + k * ((total or 20) - 2) // 8)  # this request and later are held
        with Loopback(wire, gate) as srv:
            db, argv = make(srv.base_url)
            proc = _cli(db, *argv, "--json")
            assert gate.closed.wait(120), proc.communicate(timeout=30)
            # Every worker holding a request has handled its previous reply (a worker sends its next
            # request only then); near a phase's end fewer are busy: then allow 2 s for the last ones.
            deadline = time.monotonic() + 2
            while gate.held < conc and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rnd.uniform(0, 0.6))  # so the kill lands anywhere in a fold's cycle
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            if step == "augment" and k == 4:  # old: "… None seeds, None candidates, None passed"
                listed, _ = _cli(db, "augment", "list").communicate(timeout=60)
                assert "None" not in listed and " seeds, " in listed, listed
            first = _bodies(srv)
            with gate.lock:
                in_flight = set(first) - set(gate.answered)
            gate.close_at, gate.closed = float("inf"), threading.Event()
            gate.release.set()
            again = _cli(db, *argv, "--json")
            out, err = again.communicate(timeout=180)
            assert again.returncode == 0, err
            second = _bodies(srv, len(first))
        resent = set(first) & set(second)
        assert in_flight and resent == in_flight, (k, len(resent - in_flight), len(in_flight))
        assert len(second) == len(set(second)) and len(first) == len(set(first))
        if total is not None:
            assert len(set(first) | set(second)) == total


def test_replies_reach_the_journal_while_the_store_is_busy(store, monkeypatch):
    """A reply that arrived is journaled at once, whatever else the run waits on: the store's lock
    (held by a fold, or by the CLI reading its job row) or the disk. Old: the progress callback
    (the job row's UPDATE, waiting on that lock) and one fdatasync per reply ran on the event loop,
    so later replies sat unread in their sockets, and a kill -9 lost them although they had arrived
    (issue 21: up to 10 re-sent beyond what was in flight)."""
    synced_on: list[str] = []
    real_sync = os.fdatasync

    def slow_sync(fd):
        synced_on.append(threading.current_thread().name)
        time.sleep(0.005)
        real_sync(fd)

    monkeypatch.setattr(journal.os, "fdatasync", slow_sync)
    started, busy = threading.Event(), threading.Event()

    def script(i, body):
        started.set()
        busy.wait(30)  # every reply comes while the store is held
        return Reply()

    def lines() -> int:
        return sum(p.read_bytes().count(b"\n") for p in journal.journal_dir(store).glob("*.jsonl"))

    box: dict = {}
    with Loopback("openai", script) as srv:
        m = add(store, srv.base_url, concurrency=4)
        progress = lambda p: store.execute("SELECT 1")  # noqa: E731 (as the job row's write: needs the lock)
        loop = threading.Thread(target=lambda: box.update(run=engine.run(store, m, reqs(20), progress=progress)),
                                name="engine-loop")
        loop.start()
        assert started.wait(30)
        with store.lock:  # the store is busy (a fold, a reader) for as long as the replies take
            busy.set()
            for _ in range(300):
                if lines() == 20:
                    break
                time.sleep(0.05)
            journaled = lines()
        loop.join(60)
    assert journaled == 20  # old: 1 (the loop waited on the lock after the first reply)
    assert synced_on and "engine-loop" not in synced_on  # old: every fdatasync on the event loop
    assert all(r["error"] is None for r in box["run"].rows)
    assert store.scalar("SELECT count(*) FROM generations") == 20 and not journal.leftovers(store)


# ---- item 1: an API failure is never an answer ------------------------------------------------------

def _fails_on(numbers: set[int]):
    """A student server whose replies to questions "(n)" are malformed (not JSON): a failed request."""
    def script(i, body):
        text = _question(body)
        if any(f"({k})" in text for k in numbers):
            return Reply(raw=b"<html>bad gateway</html>")
        return Reply(text='검토 결과 ②가 맞다.\n{"Answer":"2"}')
    return script


def test_mined_question_whose_samples_errored_is_error_never_mined_and_resent(store, tmp_path):
    from core.steps.mine import mining

    import_mini(store, tmp_path, n=6, name="pool")  # gold answers 1, 2, 3, 4, 5, 1
    broken = {1, 3}
    with Loopback("openai") as teacher, Loopback("openai", lambda i, b: _fails_on(broken)(i, b)) as student:
        add(store, teacher.base_url, name="teacher")
        add(store, student.base_url, name="student")  # a malformed reply is not retried: one attempt
        cfg = mining.MiningConfig(pool="pool", teacher="teacher", student="student")
        first = mining.run(store, cfg)
        items = {i["qid"]: i for i in mining.items(store, first["run"])}
        assert {q for q, i in items.items() if i["outcome"] == "error"} == {"q1", "q3"}
        for q in ("q1", "q3"):  # old: a kept hard negative whose failed path is {generation: null}
            assert not items[q]["kept"] and items[q]["failed_key"] is None and items[q]["golden_key"] is None
            assert items[q]["error"].startswith("student: malformed response")
        assert first["errors"] == 2 and sum(first["error_reasons"].values()) == 2
        from core.cli.mine import _line

        assert ", 2 errored (no outcome, re-sent next run: 2x student: malformed response" in _line(first)
        # The teacher always says 1, the student 2: q6 is a hard negative, q2 student only, q4/q5 both wrong.
        assert (first["hard_negatives"], first["student_only"], first["both_wrong"]) == (1, 1, 2)
        assert (first["teacher_accuracy"], first["student_accuracy"]) == (0.25, 0.25)  # over the 4 with outcomes
        sent = student.count
        broken.clear()  # the student's server recovers
        second = mining.run(store, cfg)
        assert student.count - sent == 2  # exactly the two failed requests are sent again
        assert second["errors"] == 0 and second["questions"] == 6
        items = {i["qid"]: i for i in mining.items(store, second["run"])}
        assert items["q1"]["outcome"] == "hard_negative" and items["q3"]["outcome"] == "both_wrong"


def test_a_run_where_every_request_failed_fails_and_says_why(store, tmp_path, db_env):
    from core.steps.mine import mining
    from core.store import Store

    import_mini(store, tmp_path, n=4, name="pool")
    with Loopback("openai", lambda i, b: Reply(status=400)) as dead, Loopback("openai") as ok:
        add(store, dead.base_url, name="dead")  # HTTP 400: not retried
        add(store, ok.base_url, name="ok")
        with pytest.raises(CoreError, match="every one of the 4 requests to 'dead' failed"):
            mining.run(store, mining.MiningConfig(pool="pool", teacher="ok", student="dead"))
        assert mining.list_runs(store)[0]["state"] == "failed"  # old: done, "4 both wrong", exit 0
        # The CLI: exit 1 and one Error line, on a store of its own.
        store.close()
        cli_store = Store(db_env)
        import_mini(cli_store, tmp_path, n=4, name="pool")
        add(cli_store, dead.base_url, name="dead")
        with socket.socket() as sock:  # a port nothing listens on: the circuit breaker fails the job
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        add(cli_store, f"http://127.0.0.1:{closed}/v1", name="gone")
        cli_store.close()
        # As a user runs it: one Error line and a Hint, no traceback logged before them (the job keeps it).
        r = subprocess.run([sys.executable, "-m", "core", "--db", str(db_env), "solve", "--dataset", "pool",
                            "--model", "gone", "--json"], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parent.parent)
        dead_run = subprocess.run([sys.executable, "-m", "core", "--db", str(db_env), "solve", "--dataset", "pool",
                                   "--model", "dead", "--json"], capture_output=True, text=True, timeout=120,
                                  cwd=Path(__file__).resolve().parent.parent)
    assert dead_run.returncode == 1 and "failed" in dead_run.stderr, dead_run.stderr
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")] and "job" not in r.stderr.split("Error:")[0]


def test_evaluation_keeps_no_answer_error_apart_from_a_wrong_answer(store, tmp_path):
    from core.steps.evaluate import evaluation, predictions

    import_mini(store, tmp_path, n=5, name="test")
    with Loopback("openai", _fails_on({1, 2})) as srv:
        add(store, srv.base_url, name="m")
        predictions.run_model(store, "test", "m")
    rows = {r["qid"]: r for r in store.rows("SELECT qid, answer, error FROM predictions WHERE model = 'm'")}
    assert rows["q1"]["answer"] is None and rows["q1"]["error"].startswith("malformed response")
    assert rows["q3"]["answer"] == 2 and rows["q3"]["error"] is None  # a parsed wrong answer (gold 3)
    rep = evaluation.report(store, "test")["models"][0]
    assert (rep["correct"], rep["unanswered"], rep["errors"]) == (0, 2, 2)
    assert set(evaluation.prediction_errors(store, "test", "m")) == {"q1", "q2"}
    assert evaluation.shown_answer(None, rows["q1"]["error"]) == "no answer (error)"
    assert evaluation.shown_answer(None) == "no answer" and evaluation.shown_answer(2) == "2"


# ---- items 5, 6, 9: bad input is a row-numbered refusal, never a crash or a silent change -----------

def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"id": "ok", "question": "옳은 것은?", "choices": ["가", "나", "다", "라"], "answer": 2}'


@pytest.mark.parametrize("line, problem", [
    ('{"id": "a", "question": "q", "choices": ["가", "나"], "answer": Infinity}', "not a whole number"),
    ('{"id": "a", "question": "q", "choices": ["가", "나"], "answer": 1e999}', "not a whole number"),
    ('{"id": "a", "question": "q", "choices": ["가", "나"], "answer": "Infinity"}', "not a choice number"),
    ('{"id": "a", "question": "q", "choices": ["가", "나"], "answer": ' + "9" * 5000 + "}", "unreadable value"),
    ('{"id": "a", "question": "q", "choices": ["가", "나"], "answer": "' + "9" * 5000 + '"}', "not a choice number"),
    ('{"id": "a", "question": "q", "choices": ["가", "나"], "x": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ('{"id": "a", "question": "q\\ud800", "choices": ["가", "나"], "answer": 1}', "unpaired surrogate"),
    ('{"id": "a", "question": "q", "choices": ["가", "나"], "answer": 1, "points": 1e999}', "points"),
])
def test_unreadable_values_are_row_numbered_refusals(store, tmp_path, line, problem):
    path = _jsonl(tmp_path / "bad.jsonl", [GOOD, line])
    with pytest.raises(ImportFailed) as err:  # old: OverflowError / RecursionError / ValueError / DuckDB error
        datasets.import_file(store, path, "bad", "train")
    assert [i.where for i in err.value.issues] == ["line 2"] and problem in err.value.issues[0].message
    assert store.scalar("SELECT count(*) FROM questions") == 0
    result = datasets.import_file(store, path, "bad", "train", skip_bad=True)  # --skip-bad leaves it out
    assert result.imported == 1 and [i.where for i in result.skipped] == ["line 2"]


def test_unreadable_answers_in_every_importer_and_eval_import(store, tmp_path):
    from core.steps.evaluate import predictions

    boost = tmp_path / "b.csv"
    boost.write_text('id,paragraph,problems\nx1,지문,"{\'question\': \'q\', \'choices\': [\'가\', \'나\'], '
                     "'answer': 1e999}\"\n", encoding="utf-8")
    kmmlu = tmp_path / "k.csv"
    kmmlu.write_text("question,A,B,C,D,answer\nq,가,나,다,라,inf\n", encoding="utf-8")
    kice = tmp_path / "k.json"
    kice.write_text('[{"id": "p", "paragraph": "지문", "problems": [{"question": "q", "choices": ["가", "나"], '
                    '"answer": 1e999, "score": 2}]}]', encoding="utf-8")
    for path, where in ((boost, "row 1 (id x1)"), (kmmlu, "row 1"), (kice, "passage 1, question 1 (no. 1)")):
        with pytest.raises(ImportFailed) as err:
            datasets.import_file(store, path, "x", "train")
        assert [i.where for i in err.value.issues] == [where], path.name
    sub = tmp_path / "sub.csv"
    sub.write_text("id,answer\n1,3\n2,Infinity\n3,1e999\n", encoding="utf-8")
    with pytest.raises(ImportFailed) as err:
        predictions.read_predictions_csv(sub)
    assert [i.where for i in err.value.issues] == ["row 2", "row 3"]


def test_duplicate_passage_ids_are_refused_never_overwritten(store, tmp_path):
    kice = tmp_path / "k.json"
    kice.write_text(json.dumps([
        {"id": "p1", "paragraph": "첫째 지문", "problems": [{"question": "q1", "choices": ["가", "나"], "answer": 1}]},
        {"id": "p1", "paragraph": "둘째 지문", "problems": [{"question": "q2", "choices": ["가", "나"], "answer": 2}]},
    ], ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ImportFailed) as err:  # old: question 1 shown with passage 2's text
        datasets.import_file(store, kice, "k", "test")
    assert [i.where for i in err.value.issues] == ["passage 2, question 1 (no. 2)"]
    assert "passage id 'p1' already names a different passage" in err.value.issues[0].message
    generic = _jsonl(tmp_path / "g.jsonl", [
        '{"id": "1", "passage_id": "p", "paragraph": "A", "question": "q", "choices": ["가", "나"]}',
        '{"id": "2", "passage_id": "p", "paragraph": "A", "question": "q", "choices": ["가", "나"]}',
        '{"id": "3", "passage_id": "p", "paragraph": "B", "question": "q", "choices": ["가", "나"]}'])
    result = datasets.import_file(store, generic, "g", "test", skip_bad=True)
    assert result.imported == 2 and [i.where for i in result.skipped] == ["line 3"]
    assert store.rows("SELECT text FROM passages WHERE dataset = 'g'") == [{"text": "A"}]


def test_control_characters_are_removed_and_said(store, tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", [
        '{"id": "1", "question": "옳은\\u0000 것은?\\u001b[31m", "choices": ["가\\u0007", "나"], "answer": 1}', GOOD])
    result = datasets.import_file(store, path, "c", "test")
    q = store.rows("SELECT question, choices FROM questions WHERE qid = '1'")[0]
    assert q == {"question": "옳은 것은?[31m", "choices": ["가", "나"]}  # old: NUL and ESC stored raw
    assert result.notes == ["removed 3 control character(s) (NUL, escape codes and the like) from 1 row(s)"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_with_a_bom_are_read(store, tmp_path, codec):
    text = "question,A,B,C,D,answer\n대한민국의 수도는?,서울,부산,대구,인천,1\n"
    path = tmp_path / "k.csv"
    data = text.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    result = datasets.import_file(store, path, "k", "test")  # old: "not readable text: binary data"
    assert result.imported == 1 and store.scalar("SELECT question FROM questions") == "대한민국의 수도는?"


def test_a_long_csv_field_imports_and_a_duplicate_column_is_refused(store, tmp_path):
    long = "가" * 200_000
    path = tmp_path / "long.csv"
    path.write_text(f'question,A,B,C,D,answer\n"{long}",1,2,3,4,1\n', encoding="utf-8")
    assert datasets.import_file(store, path, "long", "test").imported == 1  # old: field larger than field limit
    assert len(store.scalar("SELECT question FROM questions")) == 200_000
    dup = tmp_path / "dup.csv"
    dup.write_text("question,A,B,C,D,answer,answer\nq,1,2,3,4,1,2\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="duplicate column.*'answer'"):  # old: kept the last one silently
        datasets.import_file(store, dup, "dup", "test")
    unterminated = tmp_path / "open.csv"
    unterminated.write_text('question,A,B,C,D,answer\nq,1,2,3,4,1\n"' + "x" * 10 + "\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"open\.csv"):
        datasets.import_file(store, unterminated, "open", "test")


# ---- item 8: data in labels renders as text ----------------------------------------------------------

MARKUP = "[click](http://evil.example) ![x](http://evil.example/a.png) :red[alarm] $x^2$"


def test_data_page_escapes_data_in_labels(db_env, tmp_path):
    from pagetest import clear_cached_store, open_page

    from core.store import Store

    clear_cached_store()
    src = _jsonl(tmp_path / "m.jsonl", [json.dumps({
        "id": "[id](http://evil.example)", "subject": ":red[subject]", "question": MARKUP,
        "choices": ["가", "나"], "answer": 1}, ensure_ascii=False)])
    s = Store(db_env)
    datasets.import_file(s, src, "[set](http://evil.example)", "train")
    s.close()
    clear_cached_store()
    at = open_page("pages/data.py")
    labels = [e.label for e in at.expander] + [c.label for c in at.checkbox]
    browse = next(lbl for lbl in labels if "evil" in lbl and "subject" in lbl)
    # old: "[id](http://evil.example) · :red[subject] · 정답 1 — [click](http://evil.example) ![x]…"
    assert "](" not in browse.replace("\\](", "") and ":red[" not in browse and "$x" not in browse
    assert "\\[click\\](http\u2060://" in browse and "\\:\u2060red\\[subject\\]" in browse
    delete = next(lbl for lbl in labels if lbl.startswith("Yes, delete"))
    assert "\\[set\\](http\u2060://" in delete  # old: "Yes, delete '[set](http://evil.example)' …"
    # The import preview caption of an uploaded file escapes the same way.
    next(t for t in at.text_input if "path" in t.label).set_value(str(src)).run()
    assert not at.exception
    preview = next(c.value for c in at.caption if c.value.startswith("id "))
    assert preview.startswith("id \\[id\\](http\u2060://") and "\\:\u2060red\\[subject\\]" in preview
    clear_cached_store()


def test_escaping_also_defuses_autolinks_icons_and_directives():
    """Backslashes cannot stop GFM autolinks or :material/icons: (checked in Chromium: they became
    links and icons); a word joiner does. ':red' would start a directive and vanish from the body."""
    from pages._ui import label_text, text

    for out in (label_text("see http://evil.example, www.evil.example, a@evil.example :material/home:"),
                text("see http://evil.example, www.evil.example, a@evil.example :material/home:")):
        assert "http://" not in out.replace("\\", "") and "www." not in out.replace("\\", "")
        assert "@evil" not in out and ":material/" not in out.replace("\\", "")
        assert out.replace("\u2060", "").replace("\\", "") == \
            "see http://evil.example, www.evil.example, a@evil.example :material/home:"  # nothing else changes
    assert text(":red[alarm] 1: 옳은 것은? (단위: %)") == "\\:\u2060red\\[alarm\\] 1: 옳은 것은? (단위: %)"


def test_data_show_never_echoes_stored_control_characters(db_env, tmp_path, capsys):
    from core.cli import main
    from core.store import Store

    s = Store(db_env)
    datasets.import_file(s, _jsonl(tmp_path / "ok.jsonl", [GOOD]), "old", "test")
    # A store made before imports cleaned text may still hold NUL and escape codes.
    s.execute("UPDATE questions SET question = 'bad\x00 \x1b[2J 질문'")
    s.close()
    assert main(["--db", str(db_env), "data", "show", "old"]) == 0
    out = capsys.readouterr().out
    assert "\x00" not in out and "\x1b" not in out  # old: echoed raw (a terminal runs the escape)
    assert "bad\\x00 \\x1b[2J 질문" in out
