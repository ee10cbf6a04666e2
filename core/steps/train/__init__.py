"""Train: ORPO training of a student on a frozen preference set, as a background worker process.

config.py (TrainConfig, presets) · data.py (prompts rendered as the local provider renders them,
pairs checked) · preflight.py (lengths, GPU, estimates) · launcher.py (start / cancel / resume the
worker process) · worker.py (`python -m core.steps.train.worker RUN_DIR`, never opens the store) ·
ingest.py (the store owner reads the run folder, registers the adapter) · export.py · figures.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.steps import Step, count, plural

if TYPE_CHECKING:
    from core.store import Store

# The step's face, loaded on first use: listing the steps (the registry) must not load the launcher.
_FACE = {"PRESETS": "config", "TrainConfig": "config", "list_runs": "ingest", "show": "ingest", "sync": "ingest",
         "sync_all": "ingest", "template_mismatch": "ingest", "wait": "ingest", "cancel": "launcher",
         "resume": "launcher", "start": "launcher"}
__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name in _FACE:
        return getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _needs(store: Store) -> tuple[list[str], str]:
    return ([] if count(store, "SELECT count(*) FROM preference_sets") else ["a frozen preference set (Review)"]), \
        "a frozen preference set is there: start a run"


STEP = Step(
    name="train", title="Train", order=50, icon=":material/model_training:",
    help="ORPO fine-tuning as a background worker: start, follow, cancel, resume.",
    tables=("training_runs", "training_metrics"),
    needs_first="a frozen preference set",
    status_sql="SELECT count(*) FILTER (WHERE state = 'done'), count(*), max(created_at) FROM training_runs",
    holds=lambda a, b: f"{plural(a, 'finished run')} of {b:,}" if a else None,
    needs=_needs,
)
