"""What each step owns and what its rows reference, so deleting a dataset or a model removes
everything derived from it (after showing the counts) or refuses, naming what depends on it.

Each entry is (step, table, condition): the rows of `table` that belong to the deleted name `$1`.
Entries are listed derived-first (a condition may read a parent table that a later entry empties).
Blockers are frozen artefacts that must never silently lose their provenance: they are named, not
deleted. A table that a later migration adds and that is not here yet is simply not touched: a step
that adds a table adds its line here (tests/test_cascade.py checks every table is declared).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import CoreError

if TYPE_CHECKING:
    from core.store import Store

_POOL_RUNS = "SELECT id FROM mining_runs WHERE pool = $1"

# Rows derived from a dataset (train pool, seed or test set), derived-first.
DATASET: list[tuple[str, str, str]] = [
    ("augment", "candidate_versions", "candidate_id IN (SELECT id FROM candidates WHERE pool = $1)"),
    ("augment", "candidates", "pool = $1"),
    ("augment", "structures", f"pool = $1 OR mining_run IN ({_POOL_RUNS})"),
    # Run records whose config names the dataset: solve/evaluate (dataset), mine (pool), augment (a
    # mining run of it), map (dataset, train/test side, or one of its sets).
    ("steps", "runs", "json_extract_string(config, '$.dataset') = $1 OR json_extract_string(config, '$.pool') = $1 "
                      f"OR json_extract_string(config, '$.mining_run') IN ({_POOL_RUNS}) "
                      "OR $1 IN (json_extract_string(config, '$.train'), json_extract_string(config, '$.test')) "
                      "OR list_contains(CAST(json_extract(config, '$.sets') AS VARCHAR[]), $1)"),
    ("mine", "mining_items", f"run_id IN ({_POOL_RUNS})"),
    ("mine", "mining_runs", "pool = $1"),
    ("evaluate", "predictions", "dataset = $1"),
    ("evaluate", "eval_runs", "dataset = $1"),
    ("evaluate", "gold_votes", "dataset = $1"),
    ("visualise", "projections", "set_name = $1 OR key IN (SELECT key FROM projection_runs WHERE list_contains(sets, $1))"),
    ("visualise", "projection_runs", "list_contains(sets, $1)"),
    # Replies first made for this set and used by no other set (a shared question keeps its reply).
    ("solve", "generations", "dataset = $1 AND cache_key NOT IN "
                             "(SELECT cache_key FROM generation_refs WHERE dataset <> $1)"),
    ("solve", "generation_refs", "dataset = $1"),
    ("solve", "batch_requests", "dataset = $1"),
    ("data", "questions", "dataset = $1"),
    ("data", "passages", "dataset = $1"),
    ("data", "datasets", "name = $1"),
]
# Frozen artefacts made from a dataset: (what, table, key column, condition).
DATASET_BLOCKERS: list[tuple[str, str, str, str]] = [
    ("preference set", "preference_pairs", "set_name",
     "pair_id IN (SELECT id FROM candidates WHERE pool = $1)"),
]

_ENGINE_EVAL = "source = 'engine' AND json_extract_string(detail, '$.model') = $1"
# Rows derived from a registered model, derived-first.
MODEL: list[tuple[str, str, str]] = [
    ("evaluate", "predictions", "EXISTS (SELECT 1 FROM eval_runs e WHERE e.dataset = predictions.dataset "
                                f"AND e.model = predictions.model AND e.{_ENGINE_EVAL})"),
    ("evaluate", "eval_runs", _ENGINE_EVAL),
    ("steps", "runs", "step IN ('solve', 'evaluate') AND json_extract_string(config, '$.model') = $1"),
    ("solve", "generation_refs", "model = $1"),
    ("solve", "generations", "model = $1"),
    ("solve", "batch_requests", "model = $1"),
    ("solve", "provider_batches", "model = $1"),
    ("registry", "models", "name = $1"),
]
MODEL_BLOCKERS: list[tuple[str, str, str, str]] = [
    ("mining run", "runs", "id", "step = 'mine' AND $1 IN (json_extract_string(config, '$.teacher'), "
                                 "json_extract_string(config, '$.student'), json_extract_string(config, '$.judge'), "
                                 "json_extract_string(config, '$.classifier'))"),
    ("training run", "training_runs", "id", "base_model = $1 OR adapter_model = $1"),
    ("run", "runs", "id", "step NOT IN ('solve', 'evaluate', 'mine') AND $1 IN ("
                          "json_extract_string(config, '$.teacher'), json_extract_string(config, '$.model'), "
                          "json_extract_string(config, '$.base_model'), json_extract_string(config, '$.student'))"),
]
# Tables that are neither derived from a dataset nor a model: history and caches keyed by content.
INDEPENDENT = ("jobs", "schema_migrations", "embeddings", "preference_sets", "preference_pairs",
               "training_runs", "training_metrics")

KINDS = {"dataset": (DATASET, DATASET_BLOCKERS), "model": (MODEL, MODEL_BLOCKERS)}


@dataclass
class Plan:
    """What deleting `name` would remove (table -> rows) and what stops it (one line each)."""

    kind: str
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    blockers: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """The counts as a user reads them before confirming: only tables that lose rows."""
        return [f"{n:,} {table}" for table, n in self.counts.items() if n]


def _tables(store: Store) -> set[str]:
    return {r["table_name"] for r in store.rows("SELECT table_name FROM information_schema.tables")}


def plan(store: Store, kind: str, name: str) -> Plan:
    """Count, without deleting, what goes with this dataset or model."""
    entries, blockers = KINDS[kind]
    have = _tables(store)
    out = Plan(kind, name)
    for _step, table, cond in entries:
        if table in have:  # names and conditions come from the constants above; the value is bound
            out.counts[table] = store.scalar(f"SELECT count(*) FROM {table} WHERE {cond}", [name])
    for what, table, key, cond in blockers:
        if table in have:
            found = [r["k"] for r in store.rows(f"SELECT DISTINCT {key} AS k FROM {table} WHERE {cond} ORDER BY 1",
                                                [name])]
            if found:
                out.blockers.append(f"{what}{'s' if len(found) > 1 else ''} {', '.join(map(str, found[:10]))}"
                                    + (f" and {len(found) - 10} more" if len(found) > 10 else ""))
    return out


def delete_rows(store: Store, kind: str, name: str) -> Plan:
    """Delete the name and everything derived from it, inside the caller's transaction (an import
    that replaces a dataset); refuse when blocked, before deleting anything."""
    p = plan(store, kind, name)
    if p.blockers:
        raise CoreError(f"{kind} {name!r} is used by {'; '.join(p.blockers)}",
                        hint="delete those first (they are frozen and keep their provenance)")
    entries, _ = KINDS[kind]
    have = _tables(store)
    for _step, table, cond in entries:
        if table in have:
            store.execute(f"DELETE FROM {table} WHERE {cond}", [name])
    return p


def delete(store: Store, kind: str, name: str) -> Plan:
    """Delete the name and everything derived from it in one transaction; refuse when blocked."""
    with store.transaction():
        return delete_rows(store, kind, name)
