"""ORPO training of a student on a frozen preference set, as a background worker process.

config.py (TrainConfig, presets) · data.py (prompts rendered as the local provider renders them,
pairs checked) · preflight.py (lengths, GPU, estimates) · launcher.py (start / cancel / resume the
worker process) · worker.py (`python -m core.training.worker RUN_DIR`, never opens the store) ·
ingest.py (the store owner reads the run folder, registers the adapter) · export.py · figures.py.
"""

from __future__ import annotations

from core.training.config import PRESETS, TrainConfig
from core.training.ingest import list_runs, show, sync, sync_all, template_mismatch, wait
from core.training.launcher import cancel, resume, start

__all__ = ["PRESETS", "TrainConfig", "cancel", "list_runs", "resume", "show", "start", "sync", "sync_all",
           "template_mismatch", "wait"]
