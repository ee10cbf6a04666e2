"""What each pipeline step holds so far, for the Home page, the sidebar and `status`."""

from __future__ import annotations

from typing import Any

from core.store import Store

# (step, page file, what it needs first, SQL for (count, last time) or None while unbuilt)
STEPS: list[tuple[str, str, str, str | None]] = [
    ("Data", "data", "a question file (or the bundled samples)",
     "SELECT count(*) || ' questions in ' || (SELECT count(*) FROM datasets) || ' datasets', max(created_at) "
     "FROM questions JOIN datasets ON datasets.name = questions.dataset"),
    ("Mine", "mine", "a train pool and two registered models (teacher, student)", None),
    ("Augment", "augment", "hard negatives from a mining run", None),
    ("Review", "review", "generated preference pairs", None),
    ("Train", "train", "an accepted preference set", None),
    ("Evaluate", "evaluate", "a test set and a model (or imported predictions)", None),
    ("Visualise", "visualise", "train and test sets (and, later, augmented pairs)", None),
]


def register_step_query(step: str, sql: str) -> None:
    """Later modules say how to count what their step holds: SQL returning (summary, last time)."""
    for i, (name, page, needs, _) in enumerate(STEPS):
        if name == step:
            STEPS[i] = (name, page, needs, sql)


def status(store: Store) -> list[dict[str, Any]]:
    out = []
    for name, page, needs, sql in STEPS:
        holds, last = None, None
        if sql:
            try:
                with store.lock:
                    holds, last = store.con.execute(sql).fetchone()
            except Exception:  # a table a later migration adds; nothing to show yet
                holds = None
        empty = not holds or str(holds).startswith("0 ")
        out.append({"step": name, "page": page, "needs": needs, "holds": None if empty else holds,
                    "last": last if not empty else None})
    return out
