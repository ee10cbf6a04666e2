"""Predictions per (dataset, model label): from the engine (run_model) or from a CSV made elsewhere.

Evaluation is three modules: this one stores predictions (and runs a model to make them; the step
with its config and job is core/steps/evaluate/eval_run.py), core/steps/evaluate/evaluation.py reports on them, and
core/steps/evaluate/gold_labels.py builds gold answers by majority vote over them.

A label is whatever the user calls a set of predictions: a registered model's name, "base",
"orpo-v2", a competition submission. Gold answers keep their source (file, vote, person).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ImportFailed, NotFound
from core.stats import majority_vote
from core.steps.data import datasets
from core.steps.data.formats.base import Issue, check_size, parse_answer, read_text, shown_name

if TYPE_CHECKING:
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
                     truncated: Mapping[str, bool] | None = None,
                     errors: Mapping[str, str | None] | None = None) -> StoredPredictions:
    """Replace the predictions of `model` on `dataset` in one transaction.

    errors: per question, why it has no answer when its replies failed ("no answer (error)"),
    kept apart from a parsed wrong answer and from an unparsed reply."""
    qids = {q["qid"] for q in datasets.questions(store, dataset)}
    unknown = sorted(set(answers) - qids)
    rows = [(dataset, model, qid, answers[qid], list((votes or {}).get(qid) or []) or None,
             bool((truncated or {}).get(qid, False)), (errors or {}).get(qid))
            for qid in answers if qid in qids]
    with store.transaction():
        store.execute("DELETE FROM predictions WHERE dataset = ? AND model = ?", [dataset, model])
        store.execute("DELETE FROM eval_runs WHERE dataset = ? AND model = ?", [dataset, model])
        store.executemany("INSERT INTO predictions (dataset, model, qid, answer, votes, truncated, error) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
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
    return save_predictions(store, dataset, model, answers, source="import", detail=shown_name(Path(path)))


def run_model(store: Store, dataset: str, model: str, samples: int = 1, temperature: float | None = None,
              ctx: Any = None, label: str | None = None, limit: int | None = None,
              subject: str | None = None) -> dict[str, Any]:
    """Solve the set with a registered model (cached engine), majority vote over K samples, store.

    limit / subject: a slice of the set (the first N questions, of one subject): only its questions
    are stored, and the prediction set records the slice (core/steps/evaluate/evaluation.py scores it on them).
    ctx (core.jobs.JobContext) carries cancel and progress. A cancelled run stores no predictions
    (its generations are cached; running again resumes). The step around it: core/steps/evaluate/eval_run.py.
    """
    from core.generations import by_question
    from core.steps.solve.solve import solve, solve_requests

    summary = solve(store, dataset, model, samples=samples, temperature=temperature, ctx=ctx, limit=limit,
                    subject=subject)
    if ctx is not None and ctx.cancelled():
        return summary | {"stored": False}
    sliced = limit is not None or subject is not None
    in_slice = {q["qid"] for q in solve_requests(store, dataset, 1, limit=limit, subject=subject)[0]} if sliced else None
    by_q = by_question(store, dataset, model, samples)
    answers, votes, truncated, errors = {}, {}, {}, {}
    for qid, gens in by_q.items():
        if in_slice is not None and qid not in in_slice:
            continue  # replies from another run of this model, outside the slice
        votes[qid] = [g["answer"] if g["error"] is None else None for g in gens]
        answers[qid] = majority_vote(votes[qid])["label"]  # a tie is no answer, never a guess
        truncated[qid] = any(g["truncated"] for g in gens)
        failed = next((g["error"] for g in gens if g["error"] is not None), None)
        if failed is not None:  # an API failure is "no answer (error)", never a vote; re-sent next run
            answers[qid], errors[qid] = None, failed
    detail = {"model": model, "samples": samples, "temperature": temperature}
    if sliced:
        detail["slice"] = {"limit": limit, "subject": subject, "questions": len(in_slice or ())}
    save_predictions(store, dataset, label or model, answers, source="engine",
                     detail=json.dumps(detail, ensure_ascii=False), votes=votes, truncated=truncated, errors=errors)
    return summary | {"stored": True}


def reasoning_for(store: Store, dataset: str, label: str, qid: str) -> list[dict[str, Any]]:
    """The stored replies behind an engine-made prediction (none for imported predictions)."""
    detail = store.scalar("SELECT detail FROM eval_runs WHERE dataset = ? AND model = ? AND source = 'engine'",
                          [dataset, label])
    if not detail:
        return []
    from core.generations import by_question

    samples = json.loads(detail).get("samples") or 1
    model = json.loads(detail).get("model") or label
    return by_question(store, dataset, model, samples, qid=qid).get(qid, [])


def list_runs(store: Store, dataset: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM eval_runs" + (" WHERE dataset = ?" if dataset else "") + " ORDER BY created_at"
    return store.rows(sql, [dataset] if dataset else [])


def delete_predictions(store: Store, dataset: str, model: str) -> None:
    if not store.scalar("SELECT count(*) FROM eval_runs WHERE dataset = ? AND model = ?", [dataset, model]):
        raise NotFound(f"no predictions {model!r} on {dataset!r}")
    with store.transaction():
        store.execute("DELETE FROM predictions WHERE dataset = ? AND model = ?", [dataset, model])
        store.execute("DELETE FROM eval_runs WHERE dataset = ? AND model = ?", [dataset, model])
