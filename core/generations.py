"""The `generations` table: its one write path, the batch cache lookup, and every read of stored replies.

Every request and response goes through `record`, whichever provider or step made it. Writes are
set-based (one INSERT of unnest(list) per column) because DuckDB's executemany costs ~2 ms a row,
which would serialise 64 concurrent requests on the store. Steps read stored replies only through
the functions below (`generations_for`, `by_question`, `by_keys`, `live_summary`), never by SQL
of their own.
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


def by_question(store: Store, dataset: str, model: str, samples: int, task: str = "solve",
                qid: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The first `samples` latest replies of `model` per question: {qid: [reply, ...]} in file order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for g in generations_for(store, dataset, model, task, qid=qid):
        if g["sample"] < samples:
            out.setdefault(g["qid"], []).append(g)
    return out


def solved_on(store: Store, dataset: str) -> list[dict[str, Any]]:
    """Models with stored solve replies on `dataset` (from any step: Settings' Solve, mining, a run):
    [{"model", "questions", "replies", "samples"}], where `samples` is the K every answered question
    has. The Evaluate page offers them as prediction sets served from the cache."""
    return store.rows("""
        WITH per_q AS (
            SELECT r.model, r.qid, count(DISTINCT r.sample) AS k, count(DISTINCT r.sample) AS n
            FROM generation_refs r JOIN generations g ON g.cache_key = r.cache_key
            WHERE r.dataset = ? AND r.task = 'solve' AND g.error IS NULL
            GROUP BY r.model, r.qid)
        SELECT model, count(*) AS questions, sum(n)::INTEGER AS replies, min(k)::INTEGER AS samples
        FROM per_q GROUP BY model ORDER BY model""", [dataset])


def by_keys(store: Store, keys: list[str | None]) -> dict[str, dict[str, Any]]:
    """Reply text, reasoning and extracted answer by cache key (paths a step points at, quoted replies)."""
    wanted = [k for k in keys if k]
    if not wanted:
        return {}
    return {r["cache_key"]: r for r in store.rows(
        "SELECT cache_key, response, reasoning, answer FROM generations "
        "WHERE cache_key IN (SELECT unnest(?::VARCHAR[]))", [list(set(wanted))])}


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
