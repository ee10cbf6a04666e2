"""Start, cancel and resume training workers; tell a live worker from a vanished one.

A worker is `python -m core.steps.train.worker RUN_DIR`, started with an argument list (never a shell)
in its own session, so it outlives a closed browser or a restarted dashboard and can be ended as a
whole process tree. Alive means: it holds RUN_DIR/worker.lock (core/steps/train/liveness.py), never a
comparison of clock-derived start times. After a restart the owner finds the run by its lock and
ingests what it missed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from core.errors import CoreError
from core.runs import ROOT
from core.steps.train import files, liveness, record

if TYPE_CHECKING:
    from core.steps.train.config import TrainConfig
    from core.store import Store

def worker_argv(run_dir: Path, num_processes: int = 1, backend: str = "cpu") -> list[str]:
    """The worker's command: one process, or N data-parallel ones (accelerate launch on GPUs; torchrun,
    which accelerate itself runs underneath, on a CPU, where accelerate launches one process only)."""
    worker = ["-m", "core.steps.train.worker", str(run_dir)]
    if num_processes <= 1:
        return [sys.executable, *worker]
    if backend == "cpu":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(num_processes),
                *worker]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            *worker]


def _spawn(run_dir: Path) -> int:
    """Start the worker holding the run's lock from before its first instruction. Returns its pid.

    With several processes the launcher (accelerate / torchrun) holds the lock for them all."""
    try:
        fd = liveness.acquire(run_dir)
    except liveness.Held:
        raise CoreError(f"a worker still holds the run folder {run_dir}",
                        hint="wait for it, or cancel it: python -m core train cancel RUN") from None
    env = dict(os.environ, PYTHONUNBUFFERED="1", TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env[liveness.ENV_FD] = str(fd)
    try:
        with open(run_dir / files.LOG, "ab") as log:
            log.write(f"\n=== worker started {datetime.now().isoformat(timespec='seconds')} ===\n".encode())
            log.flush()
            spec = files.read_json(run_dir / files.CONFIG) or {}
            cfg = spec.get("config") or {}
            argv = worker_argv(run_dir, int(cfg.get("num_processes") or 1), spec.get("backend") or "cpu")
            proc = subprocess.Popen(argv, cwd=str(ROOT),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, pass_fds=(fd,))
    finally:
        os.close(fd)  # the worker holds the lock from here on (it inherited the same open file)
    record.CHILDREN[proc.pid] = proc
    return proc.pid


def _refuse_if_busy(store: Store, backend: str, except_run: str | None = None) -> None:
    busy = [r for r in record.live_runs(store) if r != except_run]
    if busy and backend != "cpu":
        raise CoreError(f"run {busy[0]} is already training on the GPU",
                        hint=f"wait for it, or cancel it: python -m core train cancel {busy[0]}")


def start(store: Store, config: TrainConfig) -> tuple[str, str]:
    """Start a run for this config. Returns (run id, what happened: started | resumed | running | done).

    The same config (same hash) on the same set content is the same run: a finished one is shown, a
    live one is attached to, a failed or cancelled one resumes from its last checkpoint. A set replaced
    under the same name since is new content: a new run.
    """
    from core.steps.train import data, ingest, preflight

    set_hash = store.scalar("SELECT hash FROM preference_sets WHERE name = ?", [config.set_name])
    existing = store.rows("SELECT id, state FROM training_runs WHERE config_hash = ? AND set_hash IS NOT DISTINCT FROM ? "
                          "ORDER BY created_at DESC LIMIT 1", [config.digest(), set_hash])
    if existing:
        run_id = existing[0]["id"]
        state = ingest.sync(store, run_id)["state"]
        if state == "done":
            return run_id, "done"
        if state == "running":
            return run_id, "running"
        resume(store, run_id, config)
        return run_id, "resumed"
    prepared = data.prepare(store, config)
    check = preflight.preflight(store, config, prepared)
    if not prepared["rows"]:
        raise CoreError(f"no pair of set {config.set_name!r} is left to train on ({len(prepared['dropped'])} dropped, "
                        f"{len(prepared['heldout'])} held out)",
                        hint="raise max_prompt_length / max_length, use --long-prompts truncate, or lower heldout_fraction")
    if check["missing_modules"]:
        raise CoreError(next(w for w in check["warnings"] if w.startswith("target_modules")),
                        hint="set --param target_modules=… to module names the model has")
    _refuse_if_busy(store, check["backend"])
    run_id = record.open_run(store, config)
    run_dir = record.runs_root(store) / run_id
    (run_dir / files.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    base = prepared["base"]
    spec = {"run_id": run_id, "config": config.model_dump(mode="json"),
            "base": {"name": base.name, "model_id": base.model_id, "folder": base.folder, "params": base.params,
                     "registered": base.registered},
            "template": prepared["template"], "dropped": prepared["dropped"], "truncated": prepared["truncated"],
            "heldout": [r["idx"] for r in prepared["heldout"]], "backend": check["backend"]}
    files.write_json(run_dir / files.CONFIG, spec)
    data.write_pairs(run_dir / files.PAIRS, prepared["rows"])
    data.write_pairs(run_dir / files.HELDOUT, prepared["heldout"])
    record.create(store, run_id, config, prepared["set"]["hash"], check["backend"], str(run_dir),
                  prepared["template"], check)
    record.update(store, run_id, pid=_spawn(run_dir))
    return run_id, "started"


def resume(store: Store, run_id: str, config: TrainConfig | None = None) -> str:
    """Start the worker again on the run's folder: it continues from the last complete checkpoint.

    config: the same run's settings with other values for settings that change no result (logging,
    checkpoint intervals): the worker uses them from here on."""
    from core.steps.train import ingest

    run = ingest.sync(store, run_id)
    if run["state"] == "done":
        raise CoreError(f"run {run_id} already finished ({(run.get('summary') or {}).get('steps')} steps)",
                        hint=f"its model: {run['adapter_model']}; more steps are a new run (another max_steps)")
    if run["state"] == "running" or record.alive(run["run_dir"]):
        raise CoreError(f"run {run_id} is still running: its worker holds the run folder",
                        hint=f"wait for it, or cancel it: python -m core train cancel {run_id}")
    _refuse_if_busy(store, run.get("backend") or "cpu", except_run=run_id)
    run_dir = Path(run["run_dir"])
    if not (run_dir / files.CONFIG).is_file():
        raise CoreError(f"the folder of run {run_id} is gone ({run_dir})", hint="start a new run")
    if config is not None:
        spec = files.read_json(run_dir / files.CONFIG) or {}
        files.write_json(run_dir / files.CONFIG, spec | {"config": config.model_dump(mode="json")})
        record.update(store, run_id, config=config.model_dump_json())
    ckpt = files.last_checkpoint(run_dir)
    pid = _spawn(run_dir)
    record.running(store, run_id, f"resumed from {ckpt.name}" if ckpt else "restarted (no checkpoint yet)", pid=pid)
    return ckpt.name if ckpt else "start"


def kill_tree(pid: int | None, run_dir: str | Path, timeout: float = 10.0) -> bool:
    """End the run's worker and everything it started; True if it was alive.

    The pid is trusted only while its command line names this run folder (a recycled pid is left
    alone); the lock tells when it is really gone."""
    if not record.alive(run_dir):
        _reap(pid or -1)
        return False
    procs: list[psutil.Process] = []
    try:
        root = psutil.Process(pid)
        if liveness.names_run(root.cmdline(), run_dir):
            procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _reap(pid or -1, timeout=min(timeout, 5.0))
    _, survivors = psutil.wait_procs(procs, timeout=timeout)
    for p in survivors:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(survivors, timeout=timeout)
    if procs:
        try:  # anything left in the worker's own session (it leads one)
            os.killpg(procs[0].pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _reap(pid or -1)
    end = time.monotonic() + timeout
    while record.alive(run_dir) and time.monotonic() < end:  # the kernel frees the lock as the last holder exits
        time.sleep(0.05)
    return True


def _reap(pid: int, timeout: float = 0.0) -> None:
    child = record.CHILDREN.get(pid)
    if child is not None:
        try:
            child.wait(timeout=timeout) if timeout else child.poll()
        except subprocess.TimeoutExpired:
            pass


def cancel(store: Store, run_id: str) -> dict[str, Any]:
    """End the run's process tree (freeing the GPU); the run can resume from its last checkpoint."""
    from core.steps.train import ingest

    run = ingest.sync(store, run_id)
    if run["state"] != "running":
        raise CoreError(f"run {run_id} is not running (it is {run['state']})",
                        hint="resume it with: python -m core train resume " + run_id if run["state"] != "done" else None)
    kill_tree(run["pid"], run["run_dir"])
    ingest.ingest_metrics(store, run_id, Path(run["run_dir"]))
    ckpt = files.last_checkpoint(Path(run["run_dir"]))
    msg = f"cancelled; resume continues from {ckpt.name}" if ckpt else "cancelled before the first checkpoint"
    record.ended(store, run_id, "cancelled", msg)
    return record.get(store, run_id)
