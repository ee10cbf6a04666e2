"""`train sweep`: one training setting tried at several values, run after run, compared on held-out pairs.

Each point of the grid is an ordinary run (same settings: same run), so a sweep stopped half-way
resumes where it stopped and a repeated sweep trains nothing. The sweep's own record (a `runs` row,
step "train-sweep") keeps the grid and, when done, the held-out margin and accuracy per setting.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from core.config import key_values
from core.errors import CoreError
from core.runs import StepConfig, finish_run, open_run
from core.steps.train.config import TrainConfig

if typing.TYPE_CHECKING:
    from core.store import Store


class SweepConfig(StepConfig):
    step: ClassVar[str] = "train-sweep"

    train: dict[str, Any] = Field(..., description="the settings every run shares (a TrainConfig)")
    grid: dict[str, list[Any]] = Field(..., min_length=1, description="setting -> values to try")


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """['beta=0.1,0.25', 'learning_rate=1e-5,5e-6'] -> {beta: [...], learning_rate: [...]} (validated)."""
    grid: dict[str, list[Any]] = {}
    for key, raw in key_values(items, "a sweep setting", "beta=0.1,0.25,0.5,0.8", dashes=True).items():
        field = TrainConfig.model_fields.get(key)
        if field is None or key in ("set_name", "base_model"):
            raise CoreError(f"unknown training setting {key!r}", hint="settings: " + ", ".join(
                k for k in TrainConfig.model_fields if k not in ("set_name", "base_model")))
        if typing.get_origin(field.annotation) is list:
            raise CoreError(f"{key} is a list and cannot be swept here", hint="set it with --param for every run")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not values:
            raise CoreError(f"no values for {key}", hint="e.g. beta=0.1,0.25,0.5,0.8")
        grid[key] = values
    return grid


def points(config: SweepConfig) -> list[tuple[dict[str, Any], TrainConfig]]:
    """Every (setting, full config) of the grid, checked before anything starts."""
    keys = list(config.grid)
    out = []
    for combo in itertools.product(*(config.grid[k] for k in keys)):
        setting = dict(zip(keys, combo))
        given = set(setting)
        values = TrainConfig.resolve(config.train | setting, given | set(config.train))
        out.append((setting, TrainConfig.parse(values)))
    return out


def label(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items())


def result_row(setting: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    from core.steps.train import ingest

    s = ingest.summary(run)
    h = s.get("heldout") or {}
    base, tuned = h.get("base") or {}, h.get("tuned") or {}
    return {"setting": setting, "label": label(setting), "run": run["id"], "state": run["state"],
            "heldout_pairs": h.get("pairs"), "base_margin": base.get("margin"), "tuned_margin": tuned.get("margin"),
            "base_accuracy": base.get("accuracy"), "tuned_accuracy": tuned.get("accuracy"),
            "loss": (s.get("final") or {}).get("loss"), "adapter_model": s.get("adapter_model")}


def run(store: Store, config: SweepConfig, on_progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
        stop: Callable[[], bool] | None = None, poll_s: float = 0.5) -> dict[str, Any]:
    """Train every point in turn (start, wait); returns {sweep, grid, results, stopped}."""
    from core.steps import train as training

    grid = points(config)
    sweep_id, _ = open_run(store, config)
    results: list[dict[str, Any]] = []
    stopped = False
    try:
        for i, (setting, train_config) in enumerate(grid):
            if stop and stop():
                stopped = True
                break
            run_id, _ = training.start(store, train_config)
            run_ = training.wait(store, run_id, poll_s=poll_s, stop=stop,
                                 on_progress=(lambda r, i=i: on_progress(i, len(grid), r)) if on_progress else None)
            if run_["state"] == "running":  # asked to stop: end this run too (it resumes next time)
                training.cancel(store, run_id)
                run_ = training.sync(store, run_id)
                stopped = True
            results.append(result_row(setting, run_))
            if stopped:
                break
    except BaseException as exc:
        finish_run(store, sweep_id, "failed", message=str(exc) or type(exc).__name__)
        raise
    summary = {"sweep": sweep_id, "grid": config.grid, "results": results, "stopped": stopped}
    finish_run(store, sweep_id, "cancelled" if stopped else "done", summary)
    return summary


def list_sweeps(store: Store) -> list[dict[str, Any]]:
    from core.runs import list_runs

    return list_runs(store, SweepConfig.step)
