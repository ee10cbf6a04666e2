"""The Gemini Batch API (params batch=true; core/batchapi.py, GeminiProvider.batch_create/batch_get)
against a loopback server speaking the endpoints google-genai calls: one batch per set of requests,
re-attached (never paid twice) after a kill, its state shown as progress, priced at half."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopback import GeminiBatchLoopback, Reply
from minidata import import_mini

from core import jobs, models, pricing
from core.errors import CoreError
from core.providers import gemini
from core.steps.solve import solve
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


def register(store, srv, **params):
    return models.add_model(store, "flash", "gemini", "gemini-2.5-flash", base_url=srv.base_url, replace=True,
                            params={"batch": True, "batch_poll_s": 0.05, "retry_base_s": 0.01, **params})


def test_inline_batch_answers_a_solve_and_its_state_is_the_progress(store, tmp_path):
    import_mini(store, tmp_path, n=5)
    with GeminiBatchLoopback() as srv:
        register(store, srv)
        srv.release.set()
        job = solve.start_job(store, solve.SolveConfig(dataset="mini", model="flash", temperature=0.5))
        assert jobs.wait(job, 30)
        row = jobs.get_job(store, job)
        assert row["state"] == "done", row["message"]
        assert row["result"]["requests_sent"] == 5 and row["result"]["answered"] == 5
        assert "batch batches/b1: succeeded, 5 requests" in row["message"]
        assert len(srv.creates) == 1 and srv.live == 0
        sent = srv.creates[0]["batch"]["inputConfig"]["requests"]["requests"]
        assert len(sent) == 5 and sent[0]["request"]["generationConfig"]["temperature"] == 0.5
        assert "윗글" in sent[0]["request"]["contents"][-1]["parts"][0]["text"]
        assert sent[0]["request"]["systemInstruction"]["parts"][0]["text"]
        assert store.scalar("SELECT state FROM provider_batches") == "stored"
        again = solve.solve(store, "mini", "flash", temperature=0.5)
        assert again["cached"] == 5 and again["requests_sent"] == 0 and len(srv.creates) == 1


def test_a_batch_over_the_inline_limit_goes_as_an_uploaded_file(store, tmp_path, monkeypatch):
    monkeypatch.setattr(gemini, "INLINE_LIMIT", 10)
    import_mini(store, tmp_path, n=3)
    with GeminiBatchLoopback() as srv:
        register(store, srv)
        srv.release.set()
        s = solve.solve(store, "mini", "flash", samples=2)
        assert s["answered"] == 6 and s["errors"] == 0
        assert srv.creates[0]["batch"]["inputConfig"] == {"fileName": "files/s1"}
        assert srv.uploads["files/s1"].decode("utf-8").count("\n") == 6 and srv.live == 0


def test_a_run_killed_after_create_reattaches_to_the_same_batch(tmp_path):
    db = tmp_path / "kill.duckdb"
    s = Store(db)
    import_mini(s, tmp_path, n=4)
    with GeminiBatchLoopback() as srv:
        register(s, srv)
        s.close()
        env = {**os.environ, "GEMINI_API_KEY": "test-key", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "core", "--db", str(db), "solve", "--dataset", "mini",
                                 "--model", "flash"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while srv.gets < 2 and time.monotonic() < deadline:  # created, stored, polled: mid-way
                time.sleep(0.05)
            assert srv.gets >= 2 and len(srv.creates) == 1
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        srv.release.set()
        s = Store(db)
        assert s.scalar("SELECT state FROM provider_batches WHERE name = 'batches/b1'") in ("pending", "running")
        summary = solve.solve(s, "mini", "flash")
        assert summary["answered"] == 4 and summary["requests_sent"] == 4
        assert len(srv.creates) == 1 and srv.live == 0  # re-attached: one create, nothing paid twice
        s.close()


def test_an_expired_batch_fails_the_run_and_the_next_run_submits_anew(store, tmp_path):
    import_mini(store, tmp_path, n=2)
    with GeminiBatchLoopback(end_state="BATCH_STATE_EXPIRED") as srv:
        register(store, srv)
        srv.release.set()
        with pytest.raises(CoreError, match="expired"):
            solve.solve(store, "mini", "flash")
        srv.end_state = "BATCH_STATE_SUCCEEDED"
        assert solve.solve(store, "mini", "flash")["answered"] == 2
        assert len(srv.creates) == 2


def test_batch_price_is_half_and_only_gemini_has_a_batch_api(store):
    live = models.add_model(store, "live", "gemini", "gemini-2.5-flash")
    batch = models.add_model(store, "b", "gemini", "gemini-2.5-flash", params={"batch": True})
    assert pricing.cost_usd(batch, 1e6, 1e6) == pricing.cost_usd(live, 1e6, 1e6) / 2 == 1.4
    with pytest.raises(CoreError, match="no batch API"):
        models.add_model(store, "o", "openai", "qwen", base_url="http://127.0.0.1:9/v1", params={"batch": True})


def test_requests_that_failed_inside_a_batch_go_in_a_new_batch(store, tmp_path):
    import_mini(store, tmp_path, n=2)
    with GeminiBatchLoopback(script=lambda n, req: Reply(status=500)) as srv:
        register(store, srv)
        srv.release.set()
        with pytest.raises(CoreError, match="every one of the 2 requests"):
            solve.solve(store, "mini", "flash")  # the batch succeeded, each of its replies is an error
        srv.script = lambda n, req: Reply()
        assert solve.solve(store, "mini", "flash")["answered"] == 2
        assert len(srv.creates) == 2  # not the stored batch again (its errors would come back forever)
