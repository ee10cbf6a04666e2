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
     "FROM runs r WHERE r.step = 'mine' AND r.state = 'done' ORDER BY r.created_at DESC LIMIT 1"),
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


def _count(store: Store, sql: str) -> int:
    with store.lock:
        return store.con.execute(sql).fetchone()[0] or 0


def needs(store: Store, step: str) -> str:
    """What `step` still lacks, counted from the store now (never a fixed sentence): "needs a train
    pool (Data) and 1 more registered model (Settings)", or "ready: …" when everything is there."""
    n_train = _count(store, "SELECT count(*) FROM datasets WHERE split = 'train'")
    n_test = _count(store, "SELECT count(*) FROM datasets WHERE split = 'test'")
    n_models = _count(store, "SELECT count(*) FROM models")
    missing: list[str] = []
    if step == "Data":
        missing.append("a question file (or the bundled samples)")
    elif step == "Mine":
        if not n_train:
            missing.append("a train pool (Data)")
        if n_models < 2:
            missing.append(f"{2 - n_models} more registered model{'s' if 2 - n_models > 1 else ''} (Settings): "
                           "a teacher and a student")
        ready = f"{plural(n_train, 'train pool')} and {plural(n_models, 'model')} registered: start a run"
    elif step == "Augment":
        if not _count(store, "SELECT count(*) FROM mining_items i JOIN runs r ON r.id = i.run_id "
                             "WHERE r.state = 'done' AND i.kept"):
            missing.append("hard negatives from a finished mining run (Mine)")
        ready = "hard negatives are waiting: generate pairs"
    elif step == "Review":
        if not _count(store, "SELECT count(*) FROM candidates"):
            missing.append("generated preference pairs (Augment)")
        ready = "pairs are waiting for review"
    elif step == "Train":
        if not _count(store, "SELECT count(*) FROM preference_sets"):
            missing.append("a frozen preference set (Review)")
        ready = "a frozen preference set is there: start a run"
    elif step == "Evaluate":
        if not n_test:
            missing.append("a test set (Data)")
        if not n_models:
            missing.append("a registered model (Settings) or a predictions CSV")
        ready = f"{plural(n_test, 'test set')} and {plural(n_models, 'model')}: run one or import predictions"
    elif step == "Visualise":
        if not n_test:
            missing.append("a test set (Data)")
        if not n_train and not _count(store, "SELECT count(*) FROM preference_sets"):
            missing.append("a train pool or a preference set")
        ready = "the sets are there: build a map"
    if missing:
        return "needs " + " and ".join(missing)
    return "ready: " + ready


def status(store: Store) -> list[dict[str, Any]]:
    """Every step's holdings. A query error is a bug and is raised, never hidden as 'empty'."""
    out = []
    for name, page, needs_first, sql in STEPS:
        holds, last = None, None
        if sql:
            with store.lock:
                row = store.con.execute(sql).fetchone()
            if row:
                holds, last = _holds(name, row[0] or 0, row[1] or 0), row[2]
        out.append({"step": name, "page": page, "needs": needs(store, name) if not holds else needs_first,
                    "holds": holds, "last": last if holds else None})
    return out
