"""The evaluate step: run a registered model on a test set and store its predictions (K samples,
majority vote). Same shape as every step: `EvalConfig` builds the CLI options (`eval run`) and
the Evaluate page's form; the run is a job with a run record (same config = same run, resumed
from the generation cache); storing predictions lives in core/predictions.py, the report in
core/evaluation.py, gold labels in core/gold_labels.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from core import jobs, runs
from core.jobs import JobContext
from core.runs import StepConfig

if TYPE_CHECKING:
    from core.store import Store


class EvalConfig(StepConfig):
    """One evaluation run: which model answers the test set, how many times, stored under what label."""

    step: ClassVar[str] = "evaluate"

    dataset: str = Field(description="test set")
    model: str = Field(title="Model", description="registered model")
    samples: int = Field(1, ge=1, le=100, title="Samples (K)", description="K samples, majority vote (a tie is no answer)")
    temperature: float | None = Field(None, ge=0, le=2, title="Temperature", description="sampling temperature (default: the model's)")
    label: str | None = Field(None, title="Store as", description="store under this name, e.g. base, orpo-v1 (default: the model's)")


def run_step(store: Store, config: EvalConfig, ctx: JobContext) -> dict[str, Any]:
    """The job body: run record, solve + vote + store, summary (with `stored` and `label`)."""
    from core.predictions import run_model

    with runs.recording(store, config, ctx.job_id) as run_id:
        summary = run_model(store, config.dataset, config.model, config.samples, config.temperature, ctx=ctx,
                            label=config.label)
    summary = summary | {"label": config.label or config.model, "run": run_id}
    runs.finish_run(store, run_id, "cancelled" if ctx.cancelled() else "done", summary)
    return summary


def start_job(store: Store, config: EvalConfig) -> str:
    """Evaluation as a background job (progress, cost, cancel, resume); returns the job id."""
    from core import pricing
    from core.solve import _model, estimate

    m = _model(store, config.model)
    est = estimate(store, config.dataset, m, config.samples, config.temperature)
    return jobs.start(
        store, "eval", f"{m.name} on {config.dataset} ×{config.samples}", lambda ctx: run_step(store, config, ctx),
        params=config.model_dump(), total=est["requests"], est_cost_usd=est["est_cost_usd"],
        cost=lambda i, o: pricing.cost_usd(m, i, o))


def prompt_warning(store: Store, config: EvalConfig) -> str | None:
    """A tuned model evaluated with another thinking/prefill than it was trained with (issue 13)."""
    from core.training import template_mismatch

    return template_mismatch(store, config.model)


def run_for(store: Store, dataset: str, label: str) -> dict[str, Any] | None:
    """The newest evaluate run that stored `label` on `dataset` (for 'made by' beside its results)."""
    for r in runs.list_runs(store, "evaluate"):
        cfg = r["config"] or {}
        if cfg.get("dataset") == dataset and (cfg.get("label") or cfg.get("model")) == label:
            return r
    return None
