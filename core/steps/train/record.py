"""A training run's record: how it is read (row, folder, whether a worker is alive) and where its
state is written: its run record (`runs`, through core/runs.py, as for every
step) and its process details (`training_runs`, keyed by the run id), kept in step.

The launcher and the ingest call these; nothing else writes either table for training. What each
state means (the lock decides liveness, the worker's status how it ended) stays theirs.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import runs
from core.config import WORKSPACE
from core.errors import NotFound
from core.runs import code_version
from core.steps.train import liveness

if TYPE_CHECKING:
    from core.steps.train.config import TrainConfig
    from core.store import Store

# The process details the ingest keeps up to date (values bound, names from this list only).
DETAILS = ("config", "pid", "progress", "backend", "metrics_lines", "heldout")


def open_run(store: Store, config: TrainConfig) -> str:
    """A run record for a new training run. The same settings on a set replaced under its name since
    are new content: a run of its own, leaving the earlier run's record as it was."""
    taken = bool(store.scalar("SELECT count(*) FROM training_runs WHERE config_hash = ?", [config.digest()]))
    run_id, _ = runs.open_run(store, config, new=taken)
    return run_id


def create(store: Store, run_id: str, config: TrainConfig, set_hash: str | None, backend: str, run_dir: str,
           template: dict[str, Any], preflight: dict[str, Any]) -> None:
    """The process details of a run about to start (state running: its worker is spawned next)."""
    store.execute(
        "INSERT INTO training_runs (id, set_name, set_hash, base_model, state, backend, run_dir, config, config_hash, "
        "code_version, template, preflight, updated_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, config.set_name, set_hash, config.base_model, backend, run_dir, config.model_dump_json(),
         config.digest(), code_version(), json.dumps(template, ensure_ascii=False),
         json.dumps(preflight, ensure_ascii=False, default=str), datetime.now()])


def update(store: Store, run_id: str, *, touch: bool = False, **values: Any) -> None:
    """Set process details (DETAILS) of a run; touch: also its updated_at."""
    unknown = set(values) - set(DETAILS)
    if unknown:
        raise ValueError(f"not a training detail: {sorted(unknown)}")
    cols = [f"{k} = {'coalesce(?, backend)' if k == 'backend' else '?'}" for k in values]
    params = [json.dumps(v, ensure_ascii=False, default=str) if k in ("progress", "heldout") and v is not None else v
              for k, v in values.items()]
    if touch:
        cols.append("updated_at = ?")
        params.append(datetime.now())
    store.execute(f"UPDATE training_runs SET {', '.join(cols)} WHERE id = ?", [*params, run_id])


def running(store: Store, run_id: str, message: str | None = None, pid: int | None = None) -> None:
    """Running again (a resumed worker, or a run marked failed whose worker turns out alive)."""
    store.execute("UPDATE training_runs SET state = 'running', pid = coalesce(?, pid), message = ?, "
                  "finished_at = NULL, updated_at = ? WHERE id = ?", [pid, message, datetime.now(), run_id])
    runs.mark_running(store, run_id)


def ended(store: Store, run_id: str, state: str, message: str | None = None, *, run_message: str | None = None,
          summary: dict[str, Any] | None = None, adapter_model: str | None = None) -> None:
    """Done, failed or cancelled. run_message: the run record's one line, when it differs from the
    process details' message (a failure keeps its last log lines there)."""
    now = datetime.now()
    store.execute("UPDATE training_runs SET state = ?, message = ?, summary = coalesce(?, summary), "
                  "adapter_model = coalesce(?, adapter_model), finished_at = ?, updated_at = ? WHERE id = ?",
                  [state, message, json.dumps(summary, ensure_ascii=False, default=str) if summary is not None else None,
                   adapter_model, now, now, run_id])
    runs.finish_run(store, run_id, state, summary, message=run_message if run_message is not None else message)


# Workers this process started: polled so they never linger as zombies, and their exit codes kept.
CHILDREN: dict[int, subprocess.Popen] = {}


def runs_root(store: Store) -> Path:
    """Run folders live beside the DuckDB file (the workspace), under runs/train/."""
    base = Path(store.path).resolve().parent if store.path != ":memory:" else WORKSPACE
    return base / "runs" / "train"


def get(store: Store, run_id: str) -> dict[str, Any]:
    rows = store.rows("SELECT * FROM training_runs WHERE id = ?", [run_id])
    if not rows:
        raise NotFound(f"no training run {run_id!r}", hint="list them with: python -m core train list")
    row = rows[0]
    for col in ("config", "summary", "template", "preflight", "progress", "heldout"):
        row[col] = json.loads(row[col]) if row.get(col) else None
    return row


def alive(run_dir: str | Path | None) -> bool:
    """Does a worker hold this run folder's lock (i.e. is it still running)?"""
    if not run_dir:
        return False
    for child in list(CHILDREN.values()):  # reap our own finished children (no zombies); poll keeps the code
        child.poll()
    return liveness.held(run_dir)


def exit_code(pid: int | None) -> int | None:
    """The worker's exit code when this process started it (after a restart: unknown)."""
    child = CHILDREN.get(pid or -1)
    return child.poll() if child is not None else None


def live_runs(store: Store) -> list[str]:
    return [r["id"] for r in store.rows("SELECT id, run_dir FROM training_runs WHERE state = 'running'")
            if alive(r["run_dir"])]
