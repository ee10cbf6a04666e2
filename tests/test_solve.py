"""solve(), generations_for(), the solve job, and the `models` / `solve` CLI (Ctrl-C and resume included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loopback import Loopback, Reply
from minidata import import_mini

from core import generations, jobs, models
from core.cli import main
from core.steps.solve import solve
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent


def register(store, srv, name="srv", **params):
    return models.add_model(store, name, "openai", "qwen3-14b", base_url=srv.base_url,
                            params={"retry_base_s": 0.01, "timeout_s": 5, **params}, replace=True)


def test_summary_and_resume_from_the_store(store, tmp_path):
    import_mini(store, tmp_path, n=10)  # gold answers 1,2,3,4,5,1,2,...; the server always says 1
    with Loopback("openai", lambda n, b: Reply(text="모르겠다") if n == 3 else Reply()) as srv:
        register(store, srv)
        s = solve.solve(store, "mini", "srv", samples=2, temperature=0.7)
        assert tuple(s) == solve.SUMMARY_KEYS
        assert s["questions"] == 10 and s["samples"] == 2 and s["requests_sent"] == 20 and s["cached"] == 0
        assert s["answered"] == 19 and s["unparsed"] == 1 and s["errors"] == 0 and s["truncated"] == 0
        assert s["correct"] in (3, 4) and s["accuracy"] == round(s["correct"] / 20, 4)
        again = solve.solve(store, "mini", "srv", samples=2, temperature=0.7)
        assert again["requests_sent"] == 0 and again["cached"] == 20 and again["correct"] == s["correct"]
        assert srv.count == 20
        assert srv.requests[0]["body"]["temperature"] == 0.7


def test_generations_for_latest_per_question_and_sample(store, tmp_path):
    import_mini(store, tmp_path, n=4)
    with Loopback("openai") as srv:
        register(store, srv)
        solve.solve(store, "mini", "srv", samples=2, temperature=0.2)
        solve.solve(store, "mini", "srv", samples=1, temperature=0.9)
    rows = generations.generations_for(store, "mini", "srv")
    assert [(r["qid"], r["sample"]) for r in rows] == [(f"q{i}", k) for i in range(1, 5) for k in (0, 1)]
    latest = {r["qid"]: json.loads(r["params"])["temperature"] for r in rows if r["sample"] == 0}
    assert set(latest.values()) == {0.9}
    assert {json.loads(r["params"])["temperature"] for r in rows if r["sample"] == 1} == {0.2}
    assert rows[0]["gold"] == 1 and rows[0]["correct"] is True and rows[1]["subject"] == "국어"
    assert rows[0]["messages"] and rows[0]["response"]


def test_same_question_in_two_datasets_is_paid_once(store, tmp_path):
    import_mini(store, tmp_path, n=3, name="a")
    import_mini(store, tmp_path, n=3, name="b")
    with Loopback("openai") as srv:
        register(store, srv)
        solve.solve(store, "a", "srv")
        s = solve.solve(store, "b", "srv")
        assert srv.count == 3 and s["cached"] == 3
    assert len(generations.generations_for(store, "b", "srv")) == 3


def test_estimate_counts_cache_and_cost(store, tmp_path):
    import_mini(store, tmp_path, n=5)
    with Loopback("openai") as srv:
        register(store, srv, price_input_per_m=1.0, price_output_per_m=2.0, max_tokens=500)
        before = solve.estimate(store, "mini", "srv", samples=2)
        assert before["requests"] == 10 and before["to_send"] == 10 and before["cached"] == 0
        assert before["output_tokens"] == 10 * 500 and before["est_cost_usd"] > 0
        solve.solve(store, "mini", "srv", samples=2)
        after = solve.estimate(store, "mini", "srv", samples=2)
        assert after["to_send"] == 0 and after["est_cost_usd"] == 0


def test_solve_job_runs_in_the_background_and_cancels(store, tmp_path):
    import_mini(store, tmp_path, n=30)
    with Loopback("openai", lambda n, b: Reply(delay=0.05)) as srv:
        register(store, srv, concurrency=2)
        job_id = solve.start_job(store, solve.SolveConfig(dataset="mini", model="srv"))
        deadline = time.monotonic() + 10
        while srv.count < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert jobs.get_job(store, job_id)["state"] == "running"
        jobs.cancel(job_id)
        assert jobs.wait(job_id, 10)
        job = jobs.get_job(store, job_id)
        assert job["state"] == "cancelled" and job["result"]["requests_sent"] < 30
        job_id = solve.start_job(store, solve.SolveConfig(dataset="mini", model="srv"))
        assert jobs.wait(job_id, 20)
        job = jobs.get_job(store, job_id)
        assert job["state"] == "done" and job["done"] == 30 and job["total"] == 30
        assert srv.count == 30  # nothing sent twice
    assert store.scalar("SELECT count(*) FROM generations") == 30


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_models_and_solve(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "cli.duckdb")
    s = Store(db)
    import_mini(s, tmp_path, n=4)
    s.close()
    monkeypatch.setenv("SRV_KEY", "sk-should-never-show")
    with Loopback("openai") as srv:
        code, out, err = cli(capsys, "--db", db, "models", "add", "srv", "--provider", "openai", "--model", "qwen",
                             "--base-url", srv.base_url, "--param", "concurrency=4", "--param", "api_key_env=SRV_KEY")
        assert code == 0, err
        code, out, _ = cli(capsys, "--db", db, "models", "list", "--json")
        listed = json.loads(out)
        assert "sk-should-never-show" not in out and {m["name"] for m in listed} >= {"srv"}
        code, out, _ = cli(capsys, "--db", db, "models", "test", "srv")
        assert code == 0 and "answered" in out
        code, out, err = cli(capsys, "--db", db, "solve", "--dataset", "mini", "--model", "srv", "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert tuple(summary) == solve.SUMMARY_KEYS and summary["requests_sent"] == 4
        assert "to send" in err
        code, out, _ = cli(capsys, "--db", db, "solve", "--dataset", "mini", "--model", "srv")
        assert code == 0 and "4 served from the store" in out
        headers = {k.lower(): v for k, v in srv.requests[-1]["headers"].items()}
        assert headers["authorization"] == "Bearer sk-should-never-show"
    code, _, err = cli(capsys, "--db", db, "models", "add", "x", "--provider", "gemini", "--model", "g",
                       "--param", "temprature=1")
    assert code == 1 and "Error: bad param temprature" in err and "Hint:" in err
    code, _, err = cli(capsys, "--db", db, "models", "delete", "srv", "--yes")
    assert code == 0


def test_cli_ctrl_c_cancels_cleanly_and_rerun_resumes(tmp_path):
    db = str(tmp_path / "sigint.duckdb")
    s = Store(db)
    import_mini(s, tmp_path, n=24)
    with Loopback("openai", lambda n, b: Reply(delay=0.1)) as srv:
        register(s, srv, concurrency=2)
        s.close()
        cmd = [sys.executable, "-m", "core", "--db", db, "solve", "--dataset", "mini", "--model", "srv", "--json"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while srv.count < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        partial = json.loads(out)
        assert "run the same command again" in err and partial["requests_sent"] < 24
        assert srv.count == partial["requests_sent"]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        final = json.loads(done.stdout)
        assert final["cached"] == partial["requests_sent"] and final["cached"] + final["requests_sent"] == 24
        assert srv.count == 24
    s = Store(db)
    try:
        assert s.scalar("SELECT count(*) FROM generations") == 24
        assert s.scalar("SELECT count(DISTINCT cache_key) FROM generations") == 24
    finally:
        s.close()
