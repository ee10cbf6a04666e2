"""Training you can trust, with real worker processes on CPU: a live run is never called dead (whatever
its recorded start time says), a killed one is failed at once, a wrong mark heals, resume refuses a
live or finished run, a second worker on the same run refuses to start, and the held-out check shows
a run that learned a consistent style (tuned margin above base) on pairs it never trained on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from trainhelp import (  # noqa: F401 (fixtures)
    ROOT,
    add_tiny,
    config,
    kill_leftover_workers,
    make_set,
    no_worker_left_behind,
    pair,
    until,
)

from core.errors import CoreError
from core.steps.train import files, ingest, launcher, record, sweep


def _first_step(store, run_id):
    until(lambda: ingest.sync(store, run_id) and store.scalar(
        "SELECT count(*) FROM training_metrics WHERE run_id = ?", [run_id]) >= 1, "the first logged step")


def test_a_live_worker_is_running_whatever_its_recorded_start_time_and_refuses_a_twin(tiny):
    run_id, _ = launcher.start(tiny, config(max_steps=100_000, save_steps=1000))
    _first_step(tiny, run_id)
    # What psutil's drifting create_time did: the stored start time no longer matches the process.
    tiny.execute("UPDATE training_runs SET pid_create_time = 1.0 WHERE id = ?", [run_id])
    for _ in range(3):
        assert ingest.sync(tiny, run_id)["state"] == "running"
    assert record.live_runs(tiny) == [run_id]
    with pytest.raises(CoreError, match="still running"):
        launcher.resume(tiny, run_id)
    run = record.get(tiny, run_id)
    twin = subprocess.run([sys.executable, "-m", "core.steps.train.worker", run["run_dir"]], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert twin.returncode == 3 and "another worker holds" in twin.stdout
    # Marked failed by mistake while alive: the next sync heals it.
    tiny.execute("UPDATE training_runs SET state = 'failed', message = 'wrong' WHERE id = ?", [run_id])
    healed = ingest.sync(tiny, run_id)
    assert healed["state"] == "running" and "still running" in healed["message"]
    # SIGKILL: the lock goes with the process, and the very next sync after it is gone says failed.
    os.kill(run["pid"], signal.SIGKILL)
    until(lambda: not record.alive(run["run_dir"]), "the killed worker's lock to be released")
    failed = ingest.sync(tiny, run_id)
    assert failed["state"] == "failed" and "killed (SIGKILL)" in failed["message"]
    summary = ingest.summary(failed)
    assert summary["reason"] and "SIGKILL" in summary["reason"]


def test_done_wins_a_wrong_mark_heals_and_a_finished_run_is_not_trained_again(tiny):
    cfg = config(max_steps=2)
    run_id, _ = launcher.start(tiny, cfg)
    done = ingest.wait(tiny, run_id, poll_s=0.2)
    assert done["state"] == "done" and done["summary"]["steps"] == 2
    tiny.execute("UPDATE training_runs SET state = 'failed', message = 'the worker process ended without finishing' "
                 "WHERE id = ?", [run_id])
    tiny.execute("UPDATE runs SET state = 'failed' WHERE id = ?", [run_id])
    healed = ingest.sync(tiny, run_id)
    assert healed["state"] == "done" and tiny.scalar("SELECT state FROM runs WHERE id = ?", [run_id]) == "done"
    with pytest.raises(CoreError, match="already finished"):
        launcher.resume(tiny, run_id)
    # Logging and checkpoint intervals change no result: the same run, shown as finished.
    assert launcher.start(tiny, config(max_steps=2, logging_steps=2, save_steps=7)) == (run_id, "done")
    # A worker started by hand on the finished folder trains nothing.
    run_dir = Path(done["run_dir"])
    until(lambda: not record.alive(run_dir), "the finished worker to exit")
    again = subprocess.run([sys.executable, "-m", "core.steps.train.worker", str(run_dir)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert again.returncode == 0 and "already finished" in again.stdout
    assert files.read_json(run_dir / files.STATUS)["step"] == 2
    assert tiny.scalar("SELECT count(*) FROM training_runs") == 1


STYLE_CHOSEN = "지문의 근거를 차례로 확인한다. 첫째, 선택지를 본문과 대조한다. 둘째, 틀린 진술을 고른다. 따라서 정답은 {n}번이다.\n{{\"Answer\":\"{n}\"}}"
STYLE_REJECTED = "음 잘 모르겠지만 그냥 찍으면 {m}번 같다 ㅎㅎ 아마도?? Answer: {m}"


def styled_pairs(n: int) -> list[dict]:
    return [pair(i, user=f"다음 수능 문제를 풀어 주세요. 문제 {i}: 윗글에 대한 설명으로 적절하지 않은 것은?",
                 chosen=STYLE_CHOSEN.format(n=i % 5 + 1), rejected=STYLE_REJECTED.format(m=(i + 2) % 5 + 1))
            for i in range(n)]


def test_heldout_check_shows_a_consistent_style_was_learned(tiny):
    make_set(tiny, "styled", styled_pairs(20))
    cfg = config(set_name="styled", heldout_fraction=0.2, max_steps=8, gradient_accumulation_steps=1,
                 per_device_train_batch_size=2, learning_rate=2e-3, beta=0.5, eval_steps=4, heldout_gen_tokens=8)
    run_id, _ = launcher.start(tiny, cfg)
    done = ingest.wait(tiny, run_id, poll_s=0.2)
    assert done["state"] == "done", done["message"]
    spec = json.loads((Path(done["run_dir"]) / files.CONFIG).read_text("utf-8"))
    held_idx = spec["heldout"]
    trained = {json.loads(ln)["idx"] for ln in (Path(done["run_dir"]) / files.PAIRS).read_text("utf-8").splitlines()}
    assert len(held_idx) == 4 and trained.isdisjoint(held_idx) and len(trained) == 16  # never trained on
    h = done["heldout"]
    assert h["pairs"] == 4 and [x["step"] for x in h["history"]] == [0, 4, 8]
    assert h["history"][0]["margin"] == pytest.approx(h["base"]["margin"], abs=1e-3)  # LoRA starts as the base
    assert h["tuned"]["margin"] > h["base"]["margin"], h
    assert h["tuned"]["accuracy"] >= h["base"]["accuracy"]
    assert h["base"]["gen_len_mean"] is not None and h["tuned"]["gen_len_mean"] is not None
    out = ingest.summary(done)["heldout"]
    assert set(out) == {"pairs", "base", "tuned"} and set(out["tuned"]) == {"accuracy", "margin"}


def test_sweep_runs_each_setting_once_and_compares_them_on_heldout_pairs(tiny):
    make_set(tiny, "styled", styled_pairs(10))
    base = {k: v for k, v in config(set_name="styled", max_steps=2, heldout_fraction=0.2).model_dump(mode="json").items()}
    cfg = sweep.SweepConfig(train=base, grid=sweep.parse_grid(["beta=0.1,0.5"]))
    first = sweep.run(tiny, cfg, poll_s=0.2)
    assert [r["label"] for r in first["results"]] == ["beta=0.1", "beta=0.5"]
    assert all(r["state"] == "done" and r["heldout_pairs"] == 2 and r["tuned_margin"] is not None for r in first["results"])
    assert len({r["run"] for r in first["results"]}) == 2
    again = sweep.run(tiny, cfg, poll_s=0.2)  # the same sweep again trains nothing
    assert [r["run"] for r in again["results"]] == [r["run"] for r in first["results"]]
    assert tiny.scalar("SELECT count(*) FROM training_runs") == 2
    assert sweep.list_sweeps(tiny)[0]["summary"]["results"][0]["label"] == "beta=0.1"
    with pytest.raises(CoreError, match="unknown training setting"):
        sweep.parse_grid(["betta=0.1,0.2"])
    with pytest.raises(CoreError, match="bad train setting beta"):
        sweep.points(sweep.SweepConfig(train=base, grid={"beta": ["-1"]}))


def test_two_processes_on_cpu_train_with_the_same_metrics_shape_as_one(tiny):
    """The multi-GPU path (data parallel over N processes), rehearsed on a CPU with 2 processes."""
    from core.steps.train import preflight

    one_id, _ = launcher.start(tiny, config(max_steps=2))
    one = ingest.wait(tiny, one_id, poll_s=0.2)
    pf = preflight.preflight(tiny, config(max_steps=2, num_processes=2))
    assert pf["processes"] == 2 and pf["effective_batch"] == 2 * 1 * 2 and any("share its cores" in w for w in pf["warnings"])
    two_id, _ = launcher.start(tiny, config(max_steps=2, num_processes=2))
    run = record.get(tiny, two_id)
    assert "torch.distributed.run" in " ".join(__import__("psutil").Process(run["pid"]).cmdline())
    two = ingest.wait(tiny, two_id, poll_s=0.2)
    assert one["state"] == "done" and two["state"] == "done", two["message"]
    m1, m2 = ingest.metrics(tiny, one_id), ingest.metrics(tiny, two_id)
    assert [m["step"] for m in m2] == [1, 2] == [m["step"] for m in m1]
    assert {k for k, v in m2[-1].items() if v is not None} >= {k for k, v in m1[-1].items() if v is not None} - {
        "tokens_per_s", "steps_per_s"}
    assert two["heldout"]["tuned"] is not None and two["heldout"]["pairs"] == one["heldout"]["pairs"] == 1
    assert Path(two["run_dir"], files.ADAPTER, "adapter_model.safetensors").is_file()
    log = "\n".join(files.log_tail(Path(two["run_dir"]), 200))
    assert "another worker holds" not in log
