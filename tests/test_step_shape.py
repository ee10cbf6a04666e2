"""The one step shape for solve, mine and evaluate: config classes build the CLI flags, every run has a
run record (same config = same run), the CLI runs each step as a job row (killed → interrupted,
SIGTERM → exit 130 after storing, same command resumes), and a failed job keeps its traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import jobs, runs
from core.cli import main
from core.jobs import JobContext
from core.steps.evaluate.eval_run import EvalConfig
from core.steps.mine.mining import MiningConfig
from core.steps.solve import solve
from core.store import Store
from tests.loopback import Loopback, Reply
from tests.minidata import import_mini

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def register(store: Store, name: str, srv: Loopback, **params) -> None:
    from core import models

    models.add_model(store, name, "openai", "qwen3-14b", base_url=srv.base_url,
                     params={"retry_base_s": 0.01, "timeout_s": 5, **params})


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.mark.parametrize("cls, command, flags", [
    (solve.SolveConfig, ["solve"], ["--dataset", "--model", "--samples", "--temperature", "--estimate", "--json"]),
    (MiningConfig, ["mine"], ["--pool", "--teacher", "--student", "--samples", "--rule", "--min-wrong", "--judge",
                              "--classifier", "--temperature", "--json"]),
    (EvalConfig, ["eval", "run"], ["--dataset", "--model", "--samples", "--temperature", "--label", "--json"]),
])
def test_cli_flags_come_from_the_config_class(capsys, cls, command, flags):
    code, out, _ = cli(capsys, *command, "--help")
    assert code == 0
    for flag in flags:
        assert flag in out, flag
    for name, field in cls.model_fields.items():  # every field is an option, with its help text
        assert "--" + name.replace("_", "-") in out
        assert field.description.split()[0] in out


def test_same_config_is_the_same_run(store, tmp_path):
    import_mini(store, tmp_path, n=3)
    with Loopback("openai") as srv:
        register(store, "srv", srv)
        cfg = solve.SolveConfig(dataset="mini", model="srv")
        solve.run(store, cfg, JobContext.local())
        solve.run(store, cfg, JobContext.local())
        solve.run(store, solve.SolveConfig(dataset="mini", model="srv", samples=2), JobContext.local())
    listed = runs.list_runs(store, "solve")
    assert len(listed) == 2 and {r["state"] for r in listed} == {"done"}
    same = next(r for r in listed if r["config"]["samples"] == 1)
    assert same["config_hash"] == cfg.digest() and same["code_version"]
    assert same["summary"]["cached"] == 3 and same["summary"]["requests_sent"] == 0  # the second run resumed
    assert runs.made_by(same).startswith(f"made by solve run {same['id']} · config {cfg.digest()} · code ")


def test_cli_mine_is_a_job_and_a_killed_run_reads_interrupted(tmp_path):
    db = str(tmp_path / "kill.duckdb")
    s = Store(db)
    import_mini(s, tmp_path, n=10)
    slow = lambda n, body: Reply(delay=0.1)  # noqa: E731
    with Loopback("openai", slow) as t, Loopback("openai", slow) as st:
        register(s, "teacher", t, concurrency=1)
        register(s, "student", st, concurrency=1)
        s.close()
        cmd = [sys.executable, "-m", "core", "--db", db, "mine", "--pool", "mini", "--teacher", "teacher",
               "--student", "student", "--json"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: t.count >= 3)
        proc.kill()  # kill -9: nothing gets to clean up
        proc.communicate(timeout=30)
        listed = subprocess.run([sys.executable, "-m", "core", "--db", db, "mine", "list", "--json"], cwd=ROOT,
                                env=ENV, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert [r["state"] for r in json.loads(listed.stdout)] == ["interrupted"]
        killed = json.loads(listed.stdout)[0]["run"]
        listed = subprocess.run([sys.executable, "-m", "core", "--db", db, "jobs", "list", "--json"], cwd=ROOT,
                                env=ENV, capture_output=True, text=True, timeout=60)
        assert [(j["kind"], j["state"]) for j in json.loads(listed.stdout)] == [("mine", "interrupted")]
        sent = t.count
        done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["cached"] >= sent - 1 and summary["cached"] + summary["requests_sent"] == 20
        assert summary["run"] == killed  # the same settings resume the killed run
    s = Store(db)
    try:
        # The same settings again resume the killed run: one run record, now done.
        assert s.rows("SELECT r.id, r.state FROM mining_runs m JOIN runs r ON r.id = m.id") == [
            {"id": summary["run"], "state": "done"}]
        assert [r["state"] for r in s.rows("SELECT state FROM jobs ORDER BY started_at")] == ["interrupted", "done"]
    finally:
        s.close()


def test_cli_eval_run_sigterm_stores_what_finished_and_exits_130(tmp_path):
    db = str(tmp_path / "term.duckdb")
    s = Store(db)
    import_mini(s, tmp_path, n=12)
    with Loopback("openai", lambda n, b: Reply(delay=0.1)) as srv:
        register(s, "srv", srv, concurrency=2)
        s.close()
        cmd = [sys.executable, "-m", "core", "--db", db, "eval", "run", "--dataset", "mini", "--model", "srv",
               "--json"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: srv.count >= 4)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        partial = json.loads(out)
        assert partial["stored"] is False and partial["requests_sent"] < 12
        assert "run the same command again" in err
        again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        final = json.loads(again.stdout)
        assert final["stored"] is True and final["cached"] == srv.count - final["requests_sent"]
        assert srv.count == 12  # nothing paid twice
    s = Store(db)
    try:
        states = [r["state"] for r in s.rows("SELECT state FROM runs WHERE step = 'evaluate'")]
        assert states == ["done"]  # one run record: the same config resumed it
        assert s.scalar("SELECT count(*) FROM predictions WHERE dataset = 'mini'") == 12
    finally:
        s.close()


def test_a_failed_job_keeps_its_traceback(store, capsys, tmp_path):
    def boom(ctx):
        raise RuntimeError("the disk is full")

    job_id = jobs.start(store, "demo", "fails", boom)
    assert jobs.wait(job_id, 10)
    job = jobs.get_job(store, job_id)
    assert job["state"] == "failed" and job["message"] == "RuntimeError: the disk is full"
    assert "Traceback (most recent call last)" in job["traceback"] and "in boom" in job["traceback"]
    store.close()
    code, out, _ = cli(capsys, "--db", str(tmp_path / "test.duckdb"), "jobs", "show", job_id)
    assert code == 0 and "message: RuntimeError: the disk is full" in out and "    Traceback" in out
    code, _, err = cli(capsys, "--db", str(tmp_path / "test.duckdb"), "jobs", "show", "nope")
    assert code == 1 and err.startswith("Error: no job 'nope'")


def test_one_context_carries_cancel_down_to_the_engine(store, tmp_path):
    import_mini(store, tmp_path, n=20)
    started = threading.Event()

    def script(n, body):
        started.set()
        return Reply(delay=0.05)

    with Loopback("openai", script) as srv:
        register(store, "srv", srv, concurrency=1)
        ctx = JobContext.local()
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(solve.solve(store, "mini", "srv", ctx=ctx)))
        worker.start()
        assert started.wait(10)
        ctx.cancel.set()
        worker.join(30)
    assert not worker.is_alive() and result["requests_sent"] < 20
