"""The run folder: the only thing the worker and the store owner share (DESIGN.md §3).

RUN_DIR/
  config.json     what to train (TrainConfig, the resolved base folder, the prompt rendering)
  pairs.jsonl     the pairs as the worker trains on them (rendered, checked)
  status.json     the worker's state, rewritten atomically: state, step, backend, message, final metrics
  metrics.jsonl   one line per logged step (TrainerCallback.on_log), appended
  heldout.jsonl   the held-out pairs (never trained on), scored before, during and after training
  heldout_scores.jsonl  one line per scoring: {step, which: base|tuned, accuracy, margin, ...}
  worker.lock     held (flock) by the live worker for its whole life: the only proof it is alive
  worker.json     the live worker's pid and command line (to end its process tree)
  train.log       the worker's stdout and stderr
  checkpoints/    checkpoint-N folders (resume starts from the last complete one)
  adapter/        the LoRA adapter when the run finished
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG, PAIRS, STATUS, METRICS, LOG = "config.json", "pairs.jsonl", "status.json", "metrics.jsonl", "train.log"
CHECKPOINTS, ADAPTER = "checkpoints", "adapter"
HELDOUT, HELDOUT_SCORES, LOCK, WORKER = "heldout.jsonl", "heldout_scores.jsonl", "worker.lock", "worker.json"

# TRL's logged names -> metric columns (training_metrics) and summary keys.
KEYS = {"loss": "loss", "nll_loss": "nll_loss", "log_odds_ratio": "log_odds_ratio", "log_odds_chosen": "log_odds_chosen",
        "rewards/chosen": "rewards_chosen", "rewards/rejected": "rewards_rejected", "rewards/margins": "rewards_margins",
        "rewards/accuracies": "rewards_accuracies", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}


def write_json(path: Path, obj: Any) -> None:
    """Write-then-rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def log_tail(run_dir: Path, lines: int = 30) -> list[str]:
    """The last lines of the worker's log (progress-bar carriage returns folded)."""
    path = Path(run_dir) / LOG
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = [ln.rsplit("\r", 1)[-1] for ln in text.splitlines()]
    return [ln for ln in out if ln.strip()][-lines:]


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint: trainer_state.json is written last, so it marks completeness."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()
            and p.name.split("-")[-1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines only: a line still being written (no newline yet) is left for the next read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return out
