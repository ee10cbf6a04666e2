"""Solve a dataset with a registered model: K samples per question with the solve prompt, scored.

The first step of mining and of evaluation, and a step of its own (`SolveConfig`, `python -m core
solve`, the Settings page's solve panel). Every reply goes through the engine, so a re-run (or a
run stopped halfway) costs only what is not stored yet. Stored replies are read back through
core/generations.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from core import engine, generations, jobs, pricing, prompts, runs
from core.engine import Progress, Request
from core.errors import CoreError
from core.jobs import JobContext
from core.models import Model, get_model
from core.runs import StepConfig
from core.steps.data import datasets

if TYPE_CHECKING:
    from core.store import Store

SUMMARY_KEYS = ("questions", "samples", "requests_sent", "cached", "answered", "correct", "accuracy",
                "unparsed", "truncated", "errors")


class SolveConfig(StepConfig):
    """One solve run: which model answers which set, how many times."""

    step: ClassVar[str] = "solve"

    dataset: str = Field(description="dataset to solve")
    model: str = Field(description="registered model")
    samples: int = Field(1, ge=1, le=100, description="replies per question")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature (default: the model's)")
    limit: int | None = Field(None, ge=1, description="only the first N questions, for a quick trial (default: all)")


def _model(store: Store, model: str | Model) -> Model:
    return model if isinstance(model, Model) else get_model(store, model)


def _check(samples: int) -> None:
    if samples < 1:
        raise CoreError(f"samples must be at least 1 (got {samples})")


def solve_requests(store: Store, dataset: str, samples: int = 1, gold_only: bool = False,
                   limit: int | None = None, subject: str | None = None) -> tuple[list[dict[str, Any]], list[Request]]:
    """The dataset's questions and one request per (question, sample), in file order.

    gold_only: only questions with a gold answer (mining cannot use the others: don't pay for them).
    limit: only the first N questions (a quick trial of a slow or paid model); subject: only that
    subject's questions (before the limit).
    """
    _check(samples)
    qs = [q for q in datasets.questions(store, dataset, subject=subject) if not gold_only or q["answer"] is not None]
    qs = qs[:limit] if limit else qs
    reqs = []
    for q in qs:
        messages, template_hash = prompts.solve_messages(q)
        reqs += [Request(messages, template_hash, sample=k, task="solve", dataset=dataset, qid=q["qid"],
                         n_choices=len(q["choices"])) for k in range(samples)]
    return qs, reqs


def _params(temperature: float | None) -> dict[str, Any]:
    return {} if temperature is None else {"temperature": temperature}


def estimate(store: Store, dataset: str, model: str | Model, samples: int = 1,
             temperature: float | None = None, gold_only: bool = False, limit: int | None = None,
             subject: str | None = None) -> dict[str, Any]:
    """What a run would send and roughly cost, before it starts (cached requests cost nothing).

    Output tokens: the model's mean reply length on this task so far, else ~1k, capped by max_tokens.
    est_cost_usd is None when the model's prices are unknown (set price_*_per_m params).
    """
    m = _model(store, model)
    _, reqs = solve_requests(store, dataset, samples, gold_only, limit, subject)
    plan = engine.plan(store, m, reqs, _params(temperature))
    per_reply = generations.mean_output_tokens(store, m.name, "solve") or pricing.DEFAULT_OUTPUT_TOKENS
    if plan["max_tokens"]:
        per_reply = min(per_reply, plan["max_tokens"])
    out_tokens = int(per_reply * plan["to_send"])
    return {**plan, "output_tokens": out_tokens,
            "est_cost_usd": pricing.cost_usd(m, plan["input_tokens"], out_tokens)}


def estimate_text(est: dict[str, Any]) -> str:
    """The one-line cost estimate every page and the CLI show before a run starts."""
    cost = ("cost unknown: set price_input_per_m / price_output_per_m" if est.get("est_cost_usd") is None
            else "no API cost" if est["est_cost_usd"] == 0 else f"≈ ${est['est_cost_usd']:.4f}")
    return (f"{est['to_send']} requests to send, {est['cached']} cached; ≈ {est['input_tokens']:,} input + "
            f"≈ {est['output_tokens']:,} output tokens, {cost}")


def summarise(qs: list[dict[str, Any]], reqs: list[Request], rows: list[dict[str, Any] | None],
              samples: int, progress: Progress) -> dict[str, Any]:
    gold = {q["qid"]: q["answer"] for q in qs}
    done = [(req, row) for req, row in zip(reqs, rows) if row is not None]
    scored = sum(1 for r in reqs if gold[r.qid] is not None)
    correct = sum(1 for req, row in done if row["answer"] is not None and row["answer"] == gold[req.qid])
    return {
        "questions": len(qs), "samples": samples,
        "requests_sent": progress.sent, "cached": progress.cached,
        "answered": sum(1 for _, row in done if row["answer"] is not None),
        "correct": correct,
        # Over every question x sample with a gold answer: a missing or unparsed reply counts as wrong.
        "accuracy": round(correct / scored, 4) if scored else None,
        "unparsed": sum(1 for _, row in done if row["error"] is None and row["answer"] is None),
        "truncated": sum(1 for _, row in done if row["truncated"]),
        "errors": sum(1 for _, row in done if row["error"] is not None),
    }


def solve(store: Store, dataset: str, model: str | Model, samples: int = 1, temperature: float | None = None,
          ctx: JobContext | None = None, gold_only: bool = False, limit: int | None = None,
          subject: str | None = None) -> dict[str, Any]:
    """Run `model` over `dataset`, K samples per question; returns the summary (SUMMARY_KEYS).

    ctx carries cancel and progress (a direct call gets a local one). Cancel stops sending; what
    finished is stored and the next call resumes from there.
    """
    ctx = ctx or JobContext.local()
    m = _model(store, model)
    qs, reqs = solve_requests(store, dataset, samples, gold_only, limit, subject)
    run = engine.run(store, m, reqs, params=_params(temperature), job_id=ctx.job_id, cancel=ctx.cancel,
                     progress=ctx.progress)
    _refuse_if_all_failed(m, run)
    return summarise(qs, reqs, run.rows, samples, run.progress)


def _refuse_if_all_failed(m: Model, run: engine.RunResult) -> None:
    """A run where every request failed has no result to report: it fails and says why (the failed
    requests are stored as errors, never as answers, and are sent again by the next run)."""
    finished = [r for r in run.rows if r is not None]
    if run.cancelled or not finished or any(r["error"] is None for r in finished):
        return
    raise CoreError(f"every one of the {len(finished)} requests to {m.name!r} failed, so nothing was counted "
                    f"as an answer (first error: {finished[0]['error']})",
                    hint=f"check the model with `models test {m.name}`; failed requests are sent again on the next run")


def run(store: Store, config: SolveConfig, ctx: JobContext) -> dict[str, Any]:
    """The solve step as a job body: a run record (resumed for the same config), the solve, its summary."""
    with runs.recording(store, config, ctx.job_id) as run_id:
        summary = solve(store, config.dataset, config.model, config.samples, config.temperature, ctx=ctx,
                        limit=config.limit)
    runs.finish_run(store, run_id, "cancelled" if ctx.cancelled() else "done", summary)
    return summary


def start_job(store: Store, config: SolveConfig) -> str:
    """Start `solve` as a background job; returns the job id (poll jobs.get_job, stop with jobs.cancel)."""
    m = _model(store, config.model)
    est = estimate(store, config.dataset, m, config.samples, config.temperature, limit=config.limit)
    first = f" (first {config.limit})" if config.limit else ""
    return jobs.start(
        store, "solve", f"{m.name} solves {config.dataset}{first} ×{config.samples}",
        lambda ctx: run(store, config, ctx),
        params=config.model_dump(), total=est["requests"], est_cost_usd=est["est_cost_usd"],
        cost=lambda i, o: pricing.cost_usd(m, i, o))


def last_run(store: Store, dataset: str, model: str) -> dict[str, Any] | None:
    """The newest solve run of this model on this set (for 'made by' under its results)."""
    return next((r for r in runs.list_runs(store, "solve")
                 if (r["config"] or {}).get("dataset") == dataset and (r["config"] or {}).get("model") == model), None)
