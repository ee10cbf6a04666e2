"""A training run's record as this process sees it: its row, its folder, whether a worker is alive.

Below launcher, ingest and preflight (each reads a run; none of them is needed to read one).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import WORKSPACE
from core.errors import NotFound
from core.training import liveness

if TYPE_CHECKING:
    from core.store import Store

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
