"""What each pipeline step holds, for the Home page, the sidebar and `status`.

Counted from the store on every call (never cached), with plural forms right. This module imports
only the store: each step's count is plain SQL over the tables its migration made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.store import Store


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural_form or word + 's')}"


# (step, page file, what it needs first, SQL returning (count, detail count, last time) or None)
STEPS: list[tuple[str, str, str, str | None]] = [
    ("Data", "data", "a question file (or the bundled samples)",
     "SELECT (SELECT count(*) FROM questions), (SELECT count(*) FROM datasets), "
     "(SELECT max(created_at) FROM datasets)"),
    ("Mine", "mine", "a train pool and two registered models (teacher, student)",
     "SELECT (SELECT count(*) FROM mining_items WHERE kept AND run_id = r.id), 1, r.created_at "
     "FROM mining_runs r WHERE r.state = 'done' ORDER BY r.created_at DESC LIMIT 1"),
    ("Augment", "augment", "hard negatives from a mining run",
     "SELECT count(*), count(*) FILTER (WHERE failed_gate IS NULL), max(created_at) FROM candidates"),
    ("Review", "review", "generated preference pairs",
     "SELECT (SELECT count(*) FROM candidates WHERE status = 'accepted'), (SELECT count(*) FROM preference_sets), "
     "(SELECT max(reviewed_at) FROM candidates)"),
    ("Train", "train", "a frozen preference set",
     "SELECT count(*) FILTER (WHERE state = 'done'), count(*), max(created_at) FROM training_runs"),
    ("Evaluate", "evaluate", "a test set and a model (or imported predictions)",
     "SELECT count(*), count(DISTINCT dataset), max(created_at) FROM eval_runs"),
    ("Visualise", "visualise", "a test set and a train pool or preference set",
     "SELECT count(*), coalesce(sum(n_points), 0), max(created_at) FROM projection_runs"),
]


def _holds(step: str, a: int, b: int) -> str | None:
    if not a and not (step == "Review" and b):
        return None
    return {
        "Data": f"{plural(a, 'question')} in {plural(b, 'dataset')}",
        "Mine": f"{plural(a, 'hard negative')} in the latest finished run",
        "Augment": f"{plural(a, 'candidate')}, {b:,} passing every gate",
        "Review": f"{plural(a, 'accepted pair')}, {plural(b, 'frozen set')}",
        "Train": f"{plural(a, 'finished run')} of {b:,}",
        "Evaluate": f"{plural(a, 'prediction set')} on {plural(b, 'test set')}",
        "Visualise": f"{plural(a, 'map')} of {plural(b, 'point')}",
    }.get(step, f"{a:,}")


def status(store: Store) -> list[dict[str, Any]]:
    """Every step's holdings. A query error is a bug and is raised, never hidden as 'empty'."""
    out = []
    for name, page, needs, sql in STEPS:
        holds, last = None, None
        if sql:
            with store.lock:
                row = store.con.execute(sql).fetchone()
            if row:
                holds, last = _holds(name, row[0] or 0, row[1] or 0), row[2]
        out.append({"step": name, "page": page, "needs": needs, "holds": holds, "last": last if holds else None})
    return out
