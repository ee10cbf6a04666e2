"""Evaluate: accuracy, macro-F1 and CSAT points per subject against the base model, with
significance (eval_run.py runs a model; evaluation.py scores; predictions.py imports and compares;
gold_labels.py votes gold answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.steps import Step, count, plural

if TYPE_CHECKING:
    from core.store import Store


def _needs(store: Store) -> tuple[list[str], str]:
    n_test, n_models = count(store, "SELECT count(*) FROM datasets WHERE split = 'test'"), count(store, "SELECT count(*) FROM models")
    missing = [] if n_test else ["a test set (Data)"]
    if not n_models:
        missing.append("a registered model (Settings) or a predictions CSV")
    return missing, f"{plural(n_test, 'test set')} and {plural(n_models, 'model')}: run one or import predictions"


STEP = Step(
    name="evaluate", title="Evaluate", order=60, icon=":material/analytics:", aliases=("eval",),
    help="Score models on a test set and compare them.",
    tables=("eval_runs", "predictions", "gold_votes"),
    needs_first="a test set and a model (or imported predictions)",
    status_sql="SELECT count(*), count(DISTINCT dataset), max(created_at) FROM eval_runs",
    holds=lambda a, b: f"{plural(a, 'prediction set')} on {plural(b, 'test set')}" if a else None,
    needs=_needs,
)
