"""Reports over stored predictions: per model and per subject, and paired comparisons.

Only questions with a gold answer count; a question with no prediction counts as unanswered
(wrong), so every model is scored on the same n — except a slice (`evaluate run --limit/--subject`):
it is scored on the questions it ran, says so (`slice`), and is compared on the questions both share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import stats
from core.errors import NotFound
from core.steps.data import datasets

if TYPE_CHECKING:
    from core.store import Store


def _table(store: Store, dataset: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Gold questions with every model's prediction (None when missing)."""
    datasets.require(store, dataset)
    qs = [q for q in datasets.questions(store, dataset) if q["answer"] is not None]
    models = [r["model"] for r in store.rows(
        "SELECT model FROM eval_runs WHERE dataset = ? ORDER BY created_at, model", [dataset])]
    preds: dict[tuple[str, str], dict] = {
        (r["model"], r["qid"]): r for r in store.rows(
            "SELECT model, qid, answer, truncated, votes, error FROM predictions WHERE dataset = ?", [dataset])}
    for q in qs:
        q["has"] = {m: (m, q["qid"]) in preds for m in models}  # a prediction row (a slice has only its own)
        q["pred"] = {m: (preds.get((m, q["qid"])) or {}).get("answer") for m in models}
        q["truncated"] = {m: bool((preds.get((m, q["qid"])) or {}).get("truncated")) for m in models}
        # "no answer (error)": the model's replies failed; apart from a parsed wrong or unparsed answer
        q["error"] = {m: (preds.get((m, q["qid"])) or {}).get("error") for m in models}
    return qs, models


def slices(store: Store, dataset: str) -> dict[str, dict[str, Any]]:
    """The prediction sets on `dataset` that score a slice: label -> {limit, subject, questions}."""
    import json

    out = {}
    for r in store.rows("SELECT model, detail FROM eval_runs WHERE dataset = ? AND source = 'engine'", [dataset]):
        try:
            part = (json.loads(r["detail"] or "{}") or {}).get("slice")
        except ValueError:
            part = None
        if part:
            out[r["model"]] = part
    return out


def slice_text(part: dict[str, Any] | None) -> str | None:
    """A slice in words, as core/steps/evaluate/eval_run.py:EvalConfig.slice_text writes it."""
    if not part:
        return None
    return " · ".join(([f"first {part['limit']}"] if part.get("limit") else [])
                      + ([part["subject"]] if part.get("subject") else [])) or None


def _covered(qs: list[dict[str, Any]], sliced: dict[str, Any], *labels: str) -> list[dict[str, Any]]:
    """The questions every one of `labels` is scored on: all, or those its slice (theirs) ran."""
    return [q for q in qs if all(q["has"][m] for m in labels if m in sliced)]


def _scores(qs: list[dict[str, Any]], model: str) -> dict[str, Any]:
    gold = [q["answer"] for q in qs]
    pred = [q["pred"][model] for q in qs]
    correct = sum(g == p for g, p in zip(gold, pred))
    points, max_points = stats.csat_points([g == p for g, p in zip(gold, pred)], [q["points"] for q in qs])
    return {
        "questions": len(qs), "correct": correct,
        "accuracy": stats.accuracy(gold, pred) if qs else 0.0,
        "macro_f1": stats.macro_f1(gold, pred) if qs else 0.0,
        "points": points, "max_points": max_points,  # None when the source has no points
    }


def report(store: Store, dataset: str) -> dict[str, Any]:
    """The `evaluate report --json` contract."""
    all_qs, models = _table(store, dataset)
    sliced = slices(store, dataset)
    out = []
    for m in models:
        qs = _covered(all_qs, sliced, m)
        row = {"model": m, **_scores(qs, m), "slice": slice_text(sliced.get(m))}
        points, max_points = stats.csat_points([q["pred"][m] == q["answer"] for q in qs], [q["points"] for q in qs])
        row |= {"points": points, "max_points": max_points,
                "unanswered": sum(q["pred"][m] is None for q in qs),  # errors included
                "errors": sum(q["error"][m] is not None for q in qs),  # no answer (error): the API failed
                "truncated": sum(q["truncated"][m] for q in qs)}
        row["by_subject"] = {
            s: _scores([q for q in qs if q["subject"] == s], m)
            for s in sorted({q["subject"] for q in qs})}
        out.append(row)
    return {"dataset": dataset, "questions": len(all_qs), "models": out}


def _require_model(models: list[str], label: str, dataset: str) -> None:
    if label not in models:
        raise NotFound(f"no predictions {label!r} on {dataset!r}", hint=f"have: {', '.join(models) or 'none'}")


def compare(store: Store, dataset: str, a: str, b: str, n_resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Paired statistics of b against a: McNemar, passage-clustered bootstrap, per-subject Holm."""
    qs, models = _table(store, dataset)
    _require_model(models, a, dataset)
    _require_model(models, b, dataset)
    qs = _covered(qs, slices(store, dataset), a, b)  # a slice: the questions both answered
    ok_a = [q["pred"][a] == q["answer"] for q in qs]
    ok_b = [q["pred"][b] == q["answer"] for q in qs]
    # Questions sharing a passage are not independent: they move together in the bootstrap.
    clusters = [q["passage_id"] or f"q:{q['qid']}" for q in qs]
    boot = stats.paired_bootstrap_ci(ok_a, ok_b, clusters, n_resamples=n_resamples, seed=seed) if qs else None
    subjects = sorted({q["subject"] for q in qs})
    per_subject = []
    for s in subjects:
        idx = [i for i, q in enumerate(qs) if q["subject"] == s]
        mc = stats.mcnemar_exact([ok_a[i] for i in idx], [ok_b[i] for i in idx])
        per_subject.append({"subject": s, "questions": len(idx),
                            "accuracy_a": sum(ok_a[i] for i in idx) / len(idx),
                            "accuracy_b": sum(ok_b[i] for i in idx) / len(idx),
                            "diff": (sum(ok_b[i] for i in idx) - sum(ok_a[i] for i in idx)) / len(idx),
                            "fixed": mc["b_only"], "broken": mc["a_only"], "p_value": mc["p_value"]})
    for row, adj in zip(per_subject, stats.holm([r["p_value"] for r in per_subject])):
        row["p_holm"] = adj

    def item(q: dict[str, Any]) -> dict[str, Any]:
        return {"qid": q["qid"], "subject": q["subject"], "answer": q["answer"], "a": q["pred"][a], "b": q["pred"][b]}

    return {
        "dataset": dataset, "a": a, "b": b, "questions": len(qs),
        "accuracy_a": sum(ok_a) / len(qs) if qs else 0.0, "accuracy_b": sum(ok_b) / len(qs) if qs else 0.0,
        "mcnemar": stats.mcnemar_exact(ok_a, ok_b),
        "bootstrap": boot, "by_subject": per_subject,
        "fixed": [item(q) for q, x, y in zip(qs, ok_a, ok_b) if y and not x],
        "broken": [item(q) for q, x, y in zip(qs, ok_a, ok_b) if x and not y],
    }


def prediction_errors(store: Store, dataset: str, label: str) -> dict[str, str]:
    """Why a question of this prediction set has no answer, where its replies failed (qid -> error)."""
    return {r["qid"]: r["error"] for r in store.rows(
        "SELECT qid, error FROM predictions WHERE dataset = ? AND model = ? AND error IS NOT NULL", [dataset, label])}


def shown_answer(answer: int | None, error: str | None = None) -> str:
    """A prediction in words: the choice number, "no answer (error)" when the model's replies
    failed (an API error is never an answer), or "no answer" (unparsed, a tie, or missing)."""
    if answer is not None:
        return str(answer)
    return "no answer (error)" if error else "no answer"


def positions(store: Store, dataset: str) -> list[dict[str, Any]]:
    """How often each choice number is the gold answer and each model's answer (position bias)."""
    qs, models = _table(store, dataset)
    sliced = slices(store, dataset)
    rows = []
    series = {"gold": [q["answer"] for q in qs]} | {m: [q["pred"][m] for q in _covered(qs, sliced, m)]
                                                    for m in models}
    for who, values in series.items():
        for choice in range(1, 6):
            rows.append({"who": who, "choice": choice, "count": sum(v == choice for v in values), "n": len(values)})
        if who != "gold":
            rows.append({"who": who, "choice": "none", "count": sum(v is None for v in values), "n": len(values)})
    return rows


def confusion(store: Store, dataset: str, model: str) -> dict[str, Any]:
    qs, models = _table(store, dataset)
    _require_model(models, model, dataset)
    qs = _covered(qs, slices(store, dataset), model)
    matrix = stats.confusion([q["answer"] for q in qs], [q["pred"][model] for q in qs], n_choices=5)
    return {"model": model, "n": len(qs), "matrix": matrix.tolist(),
            "gold": [1, 2, 3, 4, 5], "predicted": [1, 2, 3, 4, 5, "none"]}


def report_rows(rep: dict[str, Any]) -> list[dict[str, Any]]:
    """The report flattened for CSV: one row per model × (overall + each subject)."""
    rows = []
    for m in rep["models"]:
        rows.append({"model": m["model"], "subject": "(all)", "questions": m["questions"], "correct": m["correct"],
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "points": m["points"],
                     "max_points": m["max_points"], "unanswered": m["unanswered"]})
        for s, v in m["by_subject"].items():
            rows.append({"model": m["model"], "subject": s, **v})
    return rows


def report_csv(rep: dict[str, Any]) -> str:
    """The report as CSV text (one row per model × subject): the page's download and `evaluate export`."""
    import csv
    import io

    rows = report_rows(rep)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["model"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
