"""Solve a dataset with a registered model: K samples per question with the solve prompt, scored.

The first step of mining and of evaluation. Every reply goes through the engine, so a re-run (or a
run stopped halfway) costs only what is not stored yet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core import datasets, engine, generations, jobs, pricing, prompts
from core.engine import Progress, Request
from core.errors import CoreError
from core.models import Model, get_model

if TYPE_CHECKING:
    from core.store import Store

SUMMARY_KEYS = ("questions", "samples", "requests_sent", "cached", "answered", "correct", "accuracy",
                "unparsed", "truncated", "errors")


def _model(store: Store, model: str | Model) -> Model:
    return model if isinstance(model, Model) else get_model(store, model)


def _check(samples: int) -> None:
    if samples < 1:
        raise CoreError(f"samples must be at least 1 (got {samples})")


def solve_requests(store: Store, dataset: str, samples: int = 1,
                   gold_only: bool = False) -> tuple[list[dict[str, Any]], list[Request]]:
    """The dataset's questions and one request per (question, sample), in file order.

    gold_only: only questions with a gold answer (mining cannot use the others: don't pay for them).
    """
    _check(samples)
    qs = [q for q in datasets.questions(store, dataset) if not gold_only or q["answer"] is not None]
    reqs = []
    for q in qs:
        messages, template_hash = prompts.solve_messages(q)
        reqs += [Request(messages, template_hash, sample=k, task="solve", dataset=dataset, qid=q["qid"],
                         n_choices=len(q["choices"])) for k in range(samples)]
    return qs, reqs


def _params(temperature: float | None) -> dict[str, Any]:
    return {} if temperature is None else {"temperature": temperature}


def estimate(store: Store, dataset: str, model: str | Model, samples: int = 1,
             temperature: float | None = None, gold_only: bool = False) -> dict[str, Any]:
    """What a run would send and roughly cost, before it starts (cached requests cost nothing).

    Output tokens: the model's mean reply length on this task so far, else ~1k, capped by max_tokens.
    est_cost_usd is None when the model's prices are unknown (set price_*_per_m params).
    """
    m = _model(store, model)
    _, reqs = solve_requests(store, dataset, samples, gold_only)
    plan = engine.plan(store, m, reqs, _params(temperature))
    per_reply = generations.mean_output_tokens(store, m.name, "solve") or pricing.DEFAULT_OUTPUT_TOKENS
    if plan["max_tokens"]:
        per_reply = min(per_reply, plan["max_tokens"])
    out_tokens = int(per_reply * plan["to_send"])
    return {**plan, "output_tokens": out_tokens,
            "est_cost_usd": pricing.cost_usd(m, plan["input_tokens"], out_tokens)}


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
          cancel: threading.Event | None = None, progress: Callable[[Progress], None] | None = None,
          job_id: str | None = None, gold_only: bool = False) -> dict[str, Any]:
    """Run `model` over `dataset`, K samples per question; returns the summary (SUMMARY_KEYS).

    Cancel stops sending; what finished is stored and the next call resumes from there.
    """
    m = _model(store, model)
    qs, reqs = solve_requests(store, dataset, samples, gold_only)
    run = engine.run(store, m, reqs, params=_params(temperature), job_id=job_id, cancel=cancel,
                     progress=progress)
    return summarise(qs, reqs, run.rows, samples, run.progress)


def start_job(store: Store, dataset: str, model: str, samples: int = 1, temperature: float | None = None) -> str:
    """Start `solve` as a background job; returns the job id (poll jobs.get_job, stop with jobs.cancel)."""
    m = _model(store, model)
    est = estimate(store, dataset, m, samples, temperature)
    return jobs.start(
        store, "solve", f"{m.name} solves {dataset} ×{samples}",
        lambda ctx: solve(store, dataset, m, samples, temperature, cancel=ctx.cancel, progress=ctx.progress,
                          job_id=ctx.job_id),
        params={"dataset": dataset, "model": m.name, "samples": samples, "temperature": temperature},
        total=est["requests"], est_cost_usd=est["est_cost_usd"],
        cost=lambda i, o: pricing.cost_usd(m, i, o))


def generations_for(store: Store, dataset: str, model: str, task: str = "solve",
                    prompt_hash: str | None = None, qid: str | None = None) -> list[dict[str, Any]]:
    """The latest stored reply per (question, sample) of `model` on `dataset`, in file order, with the
    gold answer, subject and points beside it. Errors are included (their `error` is set).

    prompt_hash: only replies to this template version (default: whichever is latest).
    qid: only this question (a page showing one question need not read the whole set).
    """
    hash_filter = ("AND g.prompt_hash = ? " if prompt_hash else "") + ("AND r.qid = ?" if qid else "")
    params: list[Any] = [dataset, model, task] + ([prompt_hash] if prompt_hash else []) + ([qid] if qid else [])
    return store.rows(f"""
        WITH latest AS (
            SELECT r.dataset, r.qid, r.sample, r.cache_key, r.used_at,
                   row_number() OVER (PARTITION BY r.qid, r.sample ORDER BY r.used_at DESC) AS rn
            FROM generation_refs r JOIN generations g ON g.cache_key = r.cache_key
            WHERE r.dataset = ? AND r.model = ? AND r.task = ? {hash_filter})
        SELECT l.dataset, l.qid, l.sample, g.model, g.provider, g.model_id, g.cache_key, g.prompt_hash,
               g.params, g.messages, g.response, g.reasoning, g.answer, g.answer_reason, g.answer_method,
               g.finish_reason, g.truncated, g.input_tokens, g.output_tokens, g.latency_s, g.attempts,
               g.error, g.created_at, g.job_id, l.used_at,
               q.answer AS gold, q.subject, q.points, q.answer IS NOT NULL AND g.answer = q.answer AS correct
        FROM latest l JOIN generations g ON g.cache_key = l.cache_key
        LEFT JOIN questions q ON q.dataset = l.dataset AND q.qid = l.qid
        WHERE l.rn = 1
        ORDER BY q.position NULLS LAST, l.qid, l.sample""", params)


def live_summary(store: Store, dataset: str, model: str, samples: int = 1) -> dict[str, Any]:
    """What has finished so far of `model` on `dataset` (first K samples): for live panels."""
    rows = [g for g in generations_for(store, dataset, model) if g["sample"] < samples]
    ok = [g for g in rows if g["error"] is None]
    gold = [g for g in ok if g["gold"] is not None and g["answer"] is not None]
    return {
        "finished": len(rows), "errors": len(rows) - len(ok),
        "answered": sum(g["answer"] is not None for g in ok),
        "unparsed": sum(g["answer"] is None for g in ok),
        "truncated": sum(bool(g["truncated"]) for g in ok),
        "answered_gold": len(gold),
        "accuracy": (sum(bool(g["correct"]) for g in gold) / len([g for g in ok if g["gold"] is not None]))
        if any(g["gold"] is not None for g in ok) else 0.0,
    }
