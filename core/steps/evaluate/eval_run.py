"""The evaluate step: run a registered model on a test set and store its predictions (K samples,
majority vote). Same shape as every step: `EvalConfig` builds the CLI options (`evaluate run`) and
the Evaluate page's form; the run is a job with a run record (same config = same run, resumed
from the generation cache); storing predictions lives in core/steps/evaluate/predictions.py, the report in
core/steps/evaluate/evaluation.py, gold labels in core/steps/evaluate/gold_labels.py."""

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
    label: str | None = Field(None, title="Store as", description="store under this name, e.g. base, orpo-v1 "
                              "(default: the model's; a slice's adds the slice, e.g. 'base [first 20 · 국어]')")
    limit: int | None = Field(None, ge=1, title="First N questions",
                              description="score a slice: only the first N questions (after the subject filter; default: all)")
    subject: str | None = Field(None, title="Subject", description="score a slice: only this subject's questions (default: all)")

    def digest(self) -> str:
        """As every step's, but a whole-set run hashes as it did before slices existed (limit and subject
        count only when set), so a store's runs keep their identity; a different slice is another run."""
        import hashlib
        import json

        unset = {k for k in ("limit", "subject") if getattr(self, k) is None}
        canon = json.dumps(self.model_dump(mode="json", exclude=set(self.not_identity) | unset), sort_keys=True,
                           ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()[:12]

    def slice_text(self) -> str | None:
        """The slice in words ("first 20 · 국어"), None for the whole set."""
        parts = ([f"first {self.limit}"] if self.limit else []) + ([self.subject] if self.subject else [])
        return " · ".join(parts) or None

    def stored_label(self) -> str:
        """The prediction set's name: the label given, else the model's (with the slice, so a slice never
        replaces the model's predictions on the whole set)."""
        return self.label or (f"{self.model} [{self.slice_text()}]" if self.slice_text() else self.model)


def run(store: Store, config: EvalConfig, ctx: JobContext) -> dict[str, Any]:
    """The job body: run record, solve + vote + store, summary (with `stored` and `label`)."""
    from core.steps.evaluate.predictions import run_model

    with runs.recording(store, config, ctx.job_id) as run_id:
        summary = run_model(store, config.dataset, config.model, config.samples, config.temperature, ctx=ctx,
                            label=config.stored_label(), limit=config.limit, subject=config.subject)
    summary = summary | {"label": config.stored_label(), "run": run_id, "slice": config.slice_text()}
    runs.finish_run(store, run_id, "cancelled" if ctx.cancelled() else "done", summary)
    return summary


def start_job(store: Store, config: EvalConfig) -> str:
    """Evaluation as a background job (progress, cost, cancel, resume); returns the job id."""
    from core import pricing
    from core.steps.solve.solve import _model, estimate

    m = _model(store, config.model)
    check_slice(store, config)
    est = estimate(store, config.dataset, m, config.samples, config.temperature, limit=config.limit,
                   subject=config.subject)
    part = f" [{config.slice_text()}]" if config.slice_text() else ""
    return jobs.start(
        store, "eval", f"{m.name} on {config.dataset}{part} ×{config.samples}", lambda ctx: run(store, config, ctx),
        params=config.model_dump(), total=est["requests"], est_cost_usd=est["est_cost_usd"],
        cost=lambda i, o: pricing.cost_usd(m, i, o))


def check_slice(store: Store, config: EvalConfig) -> None:
    """A subject the set does not have is a typo, not an empty run: refuse it, naming the subjects."""
    from core.errors import CoreError
    from core.steps.data import datasets

    if config.subject is None:
        return
    datasets.require(store, config.dataset)
    have = subjects(store, config.dataset)
    if config.subject not in have:
        raise CoreError(f"{config.dataset!r} has no questions of subject {config.subject!r}",
                        hint=f"subjects: {', '.join(have) or 'none'}")


def subjects(store: Store, dataset: str) -> list[str]:
    """The subjects of a set's questions, for the slice's subject choice."""
    return [r["subject"] for r in store.rows(
        "SELECT DISTINCT subject FROM questions WHERE dataset = ? AND subject IS NOT NULL ORDER BY subject", [dataset])]


def prompt_warning(store: Store, config: EvalConfig) -> str | None:
    """A tuned model evaluated with another thinking/prefill than it was trained with (issue 13)."""
    from core.steps.train import template_mismatch

    return template_mismatch(store, config.model)


def run_for(store: Store, dataset: str, label: str) -> dict[str, Any] | None:
    """The newest evaluate run that stored `label` on `dataset` (for 'made by' beside its results)."""
    for r in runs.list_runs(store, "evaluate"):
        cfg = r["config"] or {}
        if cfg.get("dataset") != dataset:
            continue
        try:
            stored = EvalConfig(**cfg).stored_label()
        except Exception:  # noqa: BLE001 - a run record from an older config: its label as it was written
            stored = cfg.get("label") or cfg.get("model")
        if stored == label:
            return r
    return None
