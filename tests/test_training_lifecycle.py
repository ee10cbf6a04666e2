"""Training lifecycle with real worker processes on CPU: cancel mid-run (no process left), SIGKILL
(failed with the log tail) then resume from the checkpoint, Ctrl-C while `train start --wait` waits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from trainhelp import (  # noqa: F401 (fixtures)
    DEADLINE_S,
    ROOT,
    TINY,
    add_tiny,
    config,
    kill_leftover_workers,
    make_set,
    no_worker_left_behind,
    pair,
    until,
)

from core import models
from core.errors import CoreError
from core.steps.train import files, ingest, launcher, record
from core.store import Store


def test_cancel_mid_run_leaves_no_process(tiny):
    run_id, what = launcher.start(tiny, config(max_steps=100_000, save_steps=1000))
    assert what == "started"
    run = record.get(tiny, run_id)
    until(lambda: ingest.sync(tiny, run_id)["progress"] and tiny.scalar(
        "SELECT count(*) FROM training_metrics WHERE run_id = ?", [run_id]) >= 1, "the first logged step")
    tree = [psutil.Process(run["pid"]), *psutil.Process(run["pid"]).children(recursive=True)]
    cancelled = launcher.cancel(tiny, run_id)
    assert cancelled["state"] == "cancelled" and "cancelled" in cancelled["message"]
    for p in tree:
        assert not p.is_running() or p.status() == psutil.STATUS_ZOMBIE, f"process {p.pid} survived the cancel"
    assert not record.alive(run["run_dir"])
    assert tiny.scalar("SELECT state FROM runs WHERE id = ?", [run_id]) == "cancelled"
    with pytest.raises(CoreError, match="not running"):
        launcher.cancel(tiny, run_id)

def test_sigkill_marks_failed_with_log_tail_then_resume_continues_from_checkpoint(tiny):
    make_set(tiny, "s12", [pair(i) for i in range(12)])
    cfg = config(set_name="s12", max_steps=12, save_steps=1, gradient_accumulation_steps=3)
    run_id, _ = launcher.start(tiny, cfg)
    run = record.get(tiny, run_id)
    run_dir = Path(run["run_dir"])
    until(lambda: files.last_checkpoint(run_dir), "a first checkpoint")
    os.kill(run["pid"], signal.SIGKILL)
    failed = until(lambda: (r := ingest.sync(tiny, run_id))["state"] != "running" and r, "the run to be settled")
    assert failed["state"] == "failed", failed["message"]
    # "killed (SIGKILL)" when this process could read the exit status, a plain "ended without finishing" otherwise
    assert "killed" in failed["message"] and "--- last log lines ---" in failed["message"]
    assert "[worker] run" in failed["message"]  # the log tail itself
    ckpt = files.last_checkpoint(run_dir)
    step_at_kill = int(ckpt.name.split("-")[1])
    assert step_at_kill < 12

    assert launcher.start(tiny, cfg) == (run_id, "resumed")  # same settings = same run: it resumes
    done = ingest.wait(tiny, run_id, poll_s=0.1)
    assert done["state"] == "done", done["message"]
    status = files.read_json(run_dir / files.STATUS)
    assert status["attempt"] == 2 and status["resumed_from"] == ckpt.name
    steps = [r["step"] for r in tiny.rows("SELECT step FROM training_metrics WHERE run_id = ? ORDER BY step", [run_id])]
    assert steps == list(range(1, 13))  # every step once: repeated steps after the checkpoint replaced
    assert done["summary"]["steps"] == 12 and models.get_model(tiny, done["adapter_model"]).adapter
    log = (run_dir / files.LOG).read_text()
    assert log.count("=== worker started") == 2 and "resuming from checkpoint-" in log
    assert launcher.start(tiny, cfg) == (run_id, "done")  # the same settings again: that finished run

    # The set replaced under its name (new content): the same settings are a new run.
    tiny.execute("DELETE FROM preference_pairs WHERE set_name = 's12'")
    tiny.execute("DELETE FROM preference_sets WHERE name = 's12'")
    make_set(tiny, "s12", [pair(i, rejected="틀린 풀이") for i in range(12)])
    new_id, what = launcher.start(tiny, cfg)
    assert what == "started" and new_id != run_id
    assert launcher.cancel(tiny, new_id)["state"] == "cancelled"

def test_ctrl_c_while_waiting_cancels_the_run_and_exits_130(tiny):
    tiny.close()
    db = Path(tiny.path)
    args = [sys.executable, "-m", "core", "--db", str(db), "train", "start", "--set", "s", "--base", "tiny", "--wait",
            *[x for k, v in (TINY | {"max_steps": 100_000, "save_steps": 1}).items() for x in ("--param", f"{k}={v}")]]
    cli_proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
    runs = db.parent / "runs" / "train"
    # The CLI holds the store; the run folder shows progress: wait for a logged step.
    # Also wait for the first checkpoint: a step is logged before its checkpoint is written (save_steps=1).
    metrics = until(lambda: next((p for p in runs.glob("*/metrics.jsonl")
                                  if p.stat().st_size and files.last_checkpoint(p.parent)), None),
                    "a logged step and its checkpoint")
    worker_pid = json.loads((metrics.parent / files.STATUS).read_text())["pid"]
    cli_proc.send_signal(signal.SIGINT)
    _, err = cli_proc.communicate(timeout=DEADLINE_S)
    assert cli_proc.returncode == 130, err
    assert "train resume" in err
    assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE
    store = Store(db)
    try:
        run = record.get(store, metrics.parent.name)
        assert run["state"] == "cancelled" and files.last_checkpoint(metrics.parent) is not None
    finally:
        store.close()
