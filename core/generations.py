"""The `generations` table: its one write path and the batch cache lookup.

Every request and response goes through `record`, whichever provider or step made it. Writes are
set-based (one INSERT of unnest(list) per column) because DuckDB's executemany costs ~2 ms a row,
which would serialise 64 concurrent requests on the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.store import Store


# (column, DuckDB type) in table order, minus nothing: a row dict must carry every one.
COLUMNS: list[tuple[str, str]] = [
    ("cache_key", "VARCHAR"), ("task", "VARCHAR"), ("dataset", "VARCHAR"), ("qid", "VARCHAR"),
    ("model", "VARCHAR"), ("provider", "VARCHAR"), ("model_id", "VARCHAR"), ("params", "VARCHAR"),
    ("prompt_hash", "VARCHAR"), ("sample", "INTEGER"), ("messages", "VARCHAR"), ("response", "VARCHAR"),
    ("reasoning", "VARCHAR"), ("answer", "INTEGER"), ("answer_reason", "VARCHAR"),
    ("answer_method", "VARCHAR"), ("finish_reason", "VARCHAR"), ("truncated", "BOOLEAN"),
    ("input_tokens", "INTEGER"), ("output_tokens", "INTEGER"), ("latency_s", "DOUBLE"),
    ("attempts", "INTEGER"), ("error", "VARCHAR"), ("created_at", "TIMESTAMP"), ("job_id", "VARCHAR"),
]
REF_COLUMNS: list[tuple[str, str]] = [
    ("dataset", "VARCHAR"), ("qid", "VARCHAR"), ("model", "VARCHAR"), ("task", "VARCHAR"),
    ("sample", "INTEGER"), ("cache_key", "VARCHAR"), ("job_id", "VARCHAR"), ("used_at", "TIMESTAMP"),
]
# What a run hands back per request: enough to score it, without the bulky messages.
RESULT_COLUMNS = ["cache_key", "response", "answer", "answer_reason", "answer_method", "finish_reason",
                  "truncated", "input_tokens", "output_tokens", "latency_s", "attempts", "error",
                  "created_at"]


def _insert_sql(table: str, columns: list[tuple[str, str]]) -> str:
    names = ", ".join(c for c, _ in columns)
    values = ", ".join(f"unnest(?::{t}[])" for _, t in columns)
    return f"INSERT OR REPLACE INTO {table} ({names}) SELECT {values}"


_INSERT_GENERATIONS = _insert_sql("generations", COLUMNS)
_INSERT_REFS = _insert_sql("generation_refs", REF_COLUMNS)


def _columnar(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[list[Any]]:
    return [[r[c] for r in rows] for c, _ in columns]


def record(store: Store, rows: list[dict[str, Any]], refs: list[dict[str, Any] | None] | None = None) -> None:
    """Store generation rows (a row with the same cache key is replaced: a retried error leaves no
    duplicate) and the question refs that used them, in one transaction."""
    refs = [r for r in refs or [] if r is not None]
    refs += [{**{c: r[c] for c, _ in REF_COLUMNS if c in r}, "used_at": r["created_at"]}
             for r in rows if r["dataset"] is not None and r["qid"] is not None]
    if not rows and not refs:
        return
    with store.transaction():
        if rows:
            store.execute(_INSERT_GENERATIONS, _columnar(rows, COLUMNS))
        if refs:
            store.execute(_INSERT_REFS, _columnar(_unique_refs(refs), REF_COLUMNS))


def _unique_refs(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # One statement may not touch a primary key twice; the last use wins.
    keyed = {(r["dataset"], r["qid"], r["model"], r["task"], r["sample"], r["cache_key"]): r for r in refs}
    return list(keyed.values())


def lookup(store: Store, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Stored rows WITHOUT error for these cache keys, in one query (10,000 keys in milliseconds)."""
    if not keys:
        return {}
    cols = ", ".join(RESULT_COLUMNS)
    rows = store.rows(f"SELECT {cols} FROM generations WHERE error IS NULL "
                      "AND cache_key IN (SELECT unnest(?::VARCHAR[]))", [list(set(keys))])
    return {r["cache_key"]: r for r in rows}


def mean_output_tokens(store: Store, model: str, task: str) -> float | None:
    """The model's typical reply length for this task so far (for cost estimates)."""
    return store.scalar("SELECT avg(output_tokens) FROM generations WHERE model = ? AND task = ? "
                        "AND error IS NULL AND output_tokens IS NOT NULL", [model, task])
