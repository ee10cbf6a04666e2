"""Background jobs: states, progress, cancel, and jobs left behind by a dead process."""

from __future__ import annotations

import threading
from datetime import datetime

from core import jobs
from core.errors import CoreError


def wait_state(store, job_id, timeout=10.0):
    assert jobs.wait(job_id, timeout)
    return jobs.get_job(store, job_id)


def test_done_with_result_and_final_progress(store):
    def fn(ctx):
        for i in range(1, 101):
            ctx.progress(done=i, total=100, input_tokens=i * 10, output_tokens=i)
        return {"ok": True}

    job_id = jobs.start(store, "demo", "count to 100", fn, params={"n": 100}, total=100,
                        cost=lambda i, o: (i + o) / 1e6)
    job = wait_state(store, job_id)
    assert job["state"] == "done" and job["result"] == {"ok": True} and job["params"] == {"n": 100}
    assert job["done"] == 100 and job["input_tokens"] == 1000 and job["est_cost_usd"] == 0.0011
    assert job["finished_at"] is not None and not job["live"]


def test_progress_writes_are_throttled(store, monkeypatch):
    writes = []
    original = store.execute

    def counting(sql, params=None):
        if sql.startswith("UPDATE jobs SET done"):
            writes.append(sql)
        return original(sql, params)

    monkeypatch.setattr(store, "execute", counting)
    job_id = jobs.start(store, "demo", "many updates",
                        lambda ctx: [ctx.progress(done=i, total=5000) for i in range(5000)] and None)
    wait_state(store, job_id)
    assert len(writes) <= 5


def test_cancel_ends_cancelled(store):
    started = threading.Event()

    def fn(ctx):
        started.set()
        ctx.cancel.wait(10)  # waits on the event itself, not a polling sleep
        return {"stopped": True}

    job_id = jobs.start(store, "demo", "forever", fn)
    assert started.wait(5)
    assert jobs.get_job(store, job_id)["state"] == "running"
    assert jobs.cancel(job_id)
    job = wait_state(store, job_id)
    assert job["state"] == "cancelled" and "resume" in job["message"]
    assert not jobs.cancel(job_id)


def test_failures_keep_a_plain_message(store):
    def bad(ctx):
        raise CoreError("no API key for model 'flash'", hint="set GEMINI_API_KEY")

    job = wait_state(store, jobs.start(store, "demo", "bad", bad))
    assert job["state"] == "failed" and "GEMINI_API_KEY" in job["message"]
    job = wait_state(store, jobs.start(store, "demo", "crash", lambda ctx: 1 / 0))
    assert job["state"] == "failed" and job["message"].startswith("ZeroDivisionError")


def test_jobs_left_running_by_a_dead_process_read_as_interrupted(store):
    store.execute("INSERT INTO jobs (id, kind, label, state, started_at, updated_at) "
                  "VALUES ('dead1', 'solve', 'old', 'running', ?, ?)", [datetime.now(), datetime.now()])
    job = jobs.get_job(store, "dead1")
    assert job["state"] == "interrupted" and "again" in job["message"]
    assert [j["id"] for j in jobs.list_jobs(store, kind="solve")] == ["dead1"]
