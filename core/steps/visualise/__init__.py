"""Visualise: embeddings of the sets, a UMAP map of training data against the test set, overlap
figures, neighbours and why answers flipped (mapping.py; jitcache.py keeps UMAP's compiled code)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.steps import Step, count, plural

if TYPE_CHECKING:
    from core.store import Store


def _needs(store: Store) -> tuple[list[str], str]:
    missing = [] if count(store, "SELECT count(*) FROM datasets WHERE split = 'test'") else ["a test set (Data)"]
    if not count(store, "SELECT count(*) FROM datasets WHERE split = 'train'") and not count(store, "SELECT count(*) FROM preference_sets"):
        missing.append("a train pool or a preference set")
    return missing, "the sets are there: build a map"


STEP = Step(
    name="visualise", title="Visualise", order=70, icon=":material/scatter_plot:", aliases=("map",),
    help="Visualise: embed sets, map them with UMAP, measure overlap, neighbours, flips.",
    tables=("projection_runs", "projections"),
    needs_first="a test set and a train pool or preference set",
    status_sql="SELECT count(*), coalesce(sum(n_points), 0), max(created_at) FROM projection_runs",
    holds=lambda a, b: f"{plural(a, 'map')} of {plural(b, 'point')}" if a else None,
    needs=_needs,
)
