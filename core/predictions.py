"""Predictions per (dataset, model label): from the engine, from a CSV made elsewhere, or gold votes.

A label is whatever the user calls a set of predictions: a registered model's name, "base",
"orpo-v2", a competition submission. Gold answers keep their source (file, vote, person).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import datasets
from core.errors import ImportFailed, NotFound
from core.formats.base import Issue, check_size, parse_answer, read_text
from core.stats import fleiss_kappa, majority_vote
from core.store import Store


@dataclass
class StoredPredictions:
    dataset: str
    model: str
    stored: int
    unknown_ids: list[str] = field(default_factory=list)  # in the file, not in the dataset
    missing: int = 0  # dataset questions with no prediction (count as unanswered)


def save_predictions(store: Store, dataset: str, model: str, answers: Mapping[str, int | None], *,
                     source: str, detail: str | None = None,
                     votes: Mapping[str, Sequence[int | None]] | None = None,
                     truncated: Mapping[str, bool] | None = None) -> StoredPredictions:
    """Replace the predictions of `model` on `dataset` in one transaction."""
    qids = {q["qid"] for q in datasets.questions(store, dataset)}
    unknown = sorted(set(answers) - qids)
    rows = [(dataset, model, qid, answers[qid], list((votes or {}).get(qid) or []) or None,
             bool((truncated or {}).get(qid, False))) for qid in answers if qid in qids]
    with store.transaction():
        store.execute("DELETE FROM predictions WHERE dataset = ? AND model = ?", [dataset, model])
        store.execute("DELETE FROM eval_runs WHERE dataset = ? AND model = ?", [dataset, model])
        store.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?)", rows)
        store.execute("INSERT INTO eval_runs (dataset, model, source, detail) VALUES (?, ?, ?, ?)",
                      [dataset, model, source, detail])
    return StoredPredictions(dataset, model, len(rows), unknown, len(qids) - len(rows))


def read_predictions_csv(path: str | Path) -> dict[str, int | None]:
    """`id,answer` (a competition submission); answers 1–5, blank = no answer. All-or-nothing."""
    path = Path(path)
    check_size(path)
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "id" not in fields or "answer" not in fields:
        raise ImportFailed(f"{path.name} needs columns id,answer", hint=f"columns found: {', '.join(fields) or 'none'}")
    out: dict[str, int | None] = {}
    issues = []
    for i, row in enumerate(reader, 1):
        row = {k.strip().lower(): v for k, v in row.items() if k}
        qid = (row.get("id") or "").strip()
        try:
            answer = parse_answer(row.get("answer"))
            if answer is not None and not 1 <= answer <= 5:
                raise ValueError(f"answer {answer} is not 1–5")
        except ValueError as exc:
            issues.append(Issue(f"row {i}", str(exc)))
            continue
        if not qid:
            issues.append(Issue(f"row {i}", "id is empty"))
        elif qid in out:
            issues.append(Issue(f"row {i}", f"duplicate id {qid!r}"))
        else:
            out[qid] = answer
    if issues:
        raise ImportFailed(f"{len(issues)} bad row(s) in {path.name}; nothing was stored", issues)
    if not out:
        raise ImportFailed(f"{path.name} has no predictions")
    return out


def import_predictions(store: Store, dataset: str, path: str | Path, model: str) -> StoredPredictions:
    answers = read_predictions_csv(path)
    datasets.require(store, dataset)
    known = {q["qid"] for q in datasets.questions(store, dataset)}
    if not set(answers) & known:
        raise ImportFailed(f"none of the {len(answers)} ids in {Path(path).name} are in dataset {dataset!r}",
                           hint="is this the right dataset?")
    return save_predictions(store, dataset, model, answers, source="import", detail=Path(path).name)


def run_model(store: Store, dataset: str, model: str, samples: int = 1, temperature: float | None = None,
              cancel: Any = None, progress: Callable | None = None, label: str | None = None,
              job_id: str | None = None) -> dict[str, Any]:
    """Solve the set with a registered model (cached engine), majority vote over K samples, store.

    A cancelled run stores no predictions (its generations are cached; running again resumes).
    """
    from core.solve import generations_for, solve

    summary = solve(store, dataset, model, samples=samples, temperature=temperature, cancel=cancel,
                    progress=progress, job_id=job_id)
    if cancel is not None and cancel.is_set():
        return summary | {"stored": False}
    by_q: dict[str, list[dict]] = {}
    for g in generations_for(store, dataset, model):
        if g["sample"] < samples:
            by_q.setdefault(g["qid"], []).append(g)
    answers, votes, truncated = {}, {}, {}
    for qid, gens in by_q.items():
        votes[qid] = [g["answer"] if g["error"] is None else None for g in gens]
        answers[qid] = majority_vote(votes[qid])["label"]  # a tie is no answer, never a guess
        truncated[qid] = any(g["truncated"] for g in gens)
    detail = json.dumps({"model": model, "samples": samples, "temperature": temperature}, ensure_ascii=False)
    save_predictions(store, dataset, label or model, answers, source="engine", detail=detail,
                     votes=votes, truncated=truncated)
    return summary | {"stored": True}


def start_run_job(store: Store, dataset: str, model: str, samples: int = 1, temperature: float | None = None,
                  label: str | None = None) -> str:
    """`run_model` as a background job (progress, cancel, resume); returns the job id."""
    from core import jobs, pricing
    from core.solve import _model, estimate

    m = _model(store, model)
    est = estimate(store, dataset, m, samples, temperature)
    return jobs.start(
        store, "eval", f"{m.name} on {dataset} ×{samples}",
        lambda ctx: run_model(store, dataset, m.name, samples, temperature, cancel=ctx.cancel,
                              progress=ctx.progress, label=label, job_id=ctx.job_id),
        params={"dataset": dataset, "model": m.name, "samples": samples, "temperature": temperature,
                "label": label}, total=est["requests"], est_cost_usd=est["est_cost_usd"],
        cost=lambda i, o: pricing.cost_usd(m, i, o))


def reasoning_for(store: Store, dataset: str, label: str, qid: str) -> list[dict[str, Any]]:
    """The stored replies behind an engine-made prediction (none for imported predictions)."""
    detail = store.scalar("SELECT detail FROM eval_runs WHERE dataset = ? AND model = ? AND source = 'engine'",
                          [dataset, label])
    if not detail:
        return []
    from core.solve import generations_for

    samples = json.loads(detail).get("samples") or 1
    model = json.loads(detail).get("model") or label
    return [g for g in generations_for(store, dataset, model, qid=qid) if g["sample"] < samples]


def list_runs(store: Store, dataset: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM eval_runs" + (" WHERE dataset = ?" if dataset else "") + " ORDER BY created_at"
    return store.rows(sql, [dataset] if dataset else [])


def delete_predictions(store: Store, dataset: str, model: str) -> None:
    if not store.scalar("SELECT count(*) FROM eval_runs WHERE dataset = ? AND model = ?", [dataset, model]):
        raise NotFound(f"no predictions {model!r} on {dataset!r}")
    with store.transaction():
        store.execute("DELETE FROM predictions WHERE dataset = ? AND model = ?", [dataset, model])
        store.execute("DELETE FROM eval_runs WHERE dataset = ? AND model = ?", [dataset, model])


# ---- gold labels by majority vote (the original project labelled its test set this way) -------

def vote_gold_labels(store: Store, dataset: str, voters: Sequence[str]) -> dict[str, Any]:
    """Majority over every sample of every chosen prediction label; ties stay unlabelled."""
    if not voters:
        raise ImportFailed("choose at least one set of predictions to vote with")
    have = {r["model"] for r in list_runs(store, dataset)}
    unknown = [v for v in voters if v not in have]
    if unknown:
        raise NotFound(f"no predictions {', '.join(map(repr, unknown))} on {dataset!r}",
                       hint=f"have: {', '.join(sorted(have)) or 'none'}")
    rows = store.rows(
        "SELECT model, qid, answer, votes FROM predictions WHERE dataset = ? AND list_contains(?, model)",
        [dataset, list(voters)])
    ballots: dict[str, list[int | None]] = {q["qid"]: [] for q in datasets.questions(store, dataset)}
    for r in rows:
        ballots.setdefault(r["qid"], []).extend(r["votes"] or [r["answer"]])
    results = []
    with store.transaction():
        store.execute("DELETE FROM gold_votes WHERE dataset = ?", [dataset])
        for qid, ballot in ballots.items():
            v = majority_vote(ballot)
            results.append({"qid": qid, **v})
            store.execute(
                "INSERT INTO gold_votes (dataset, qid, label, votes, voters, agreement, tie) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [dataset, qid, v["label"], json.dumps(v["votes"]), list(voters), v["agreement"], v["tie"]])
    agreed = [r for r in results if r["label"] is not None]
    kappa, kappa_items = _kappa(list(ballots.values()))
    return {
        "dataset": dataset, "voters": list(voters), "questions": len(results), "labelled": len(agreed),
        "ties": sum(r["tie"] for r in results), "no_votes": sum(r["n"] == 0 for r in results),
        "unanimous": sum(r["agreement"] == 1.0 for r in agreed),
        "mean_agreement": (sum(r["agreement"] for r in agreed) / len(agreed)) if agreed else None,
        "fleiss_kappa": kappa, "kappa_items": kappa_items,
        "disagreements": [r for r in results if r["label"] is None or r["agreement"] < 1.0],
    }


def _kappa(ballots: list[list[int | None]]) -> tuple[float | None, int]:
    """Fleiss' kappa over the items with the most common number of votes (the statistic needs equal
    counts); "no answer" is a category of its own. None when fewer than 2 votes per item."""
    sizes = Counter(len(b) for b in ballots if len(b) >= 2)
    if not sizes:
        return None, 0
    size = sizes.most_common(1)[0][0]
    rows = [[b.count(c) for c in (None, 1, 2, 3, 4, 5)] for b in ballots if len(b) == size]
    value = fleiss_kappa(np.array(rows))
    return (None if math.isnan(value) else round(value, 4)), len(rows)


def apply_gold_labels(store: Store, dataset: str, decisions: Mapping[str, int] | None = None,
                      min_agreement: float = 0.0) -> int:
    """Write voted labels (and a person's decisions, which win) as the dataset's answers.

    A vote never overwrites an answer from the file or from a person; it fills blanks and
    replaces earlier votes.
    """
    decisions = dict(decisions or {})
    voted = store.rows("SELECT qid, label, agreement FROM gold_votes WHERE dataset = ? AND label IS NOT NULL",
                       [dataset])
    n = 0
    with store.transaction():
        for r in voted:
            if r["qid"] not in decisions and r["agreement"] >= min_agreement:
                n += store.scalar(
                    "UPDATE questions SET answer = ?, answer_source = 'vote' WHERE dataset = ? AND qid = ? "
                    "AND (answer IS NULL OR answer_source = 'vote') RETURNING 1", [r["label"], dataset, r["qid"]]) or 0
        for qid, answer in decisions.items():
            store.execute("UPDATE questions SET answer = ?, answer_source = 'person' WHERE dataset = ? AND qid = ?",
                          [int(answer), dataset, qid])
            n += 1
    return n
