"""Augment: new questions with each hard negative's logic, by blueprint prompting, each with a
chosen and a rejected reasoning, gated (augment.py; gates.py: the gates; similarity.py: n-gram overlap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.steps import Step, count, plural

if TYPE_CHECKING:
    from core.store import Store


def _needs(store: Store) -> tuple[list[str], str]:
    kept = count(store, "SELECT count(*) FROM mining_items i JOIN runs r ON r.id = i.run_id "
                        "WHERE r.state = 'done' AND i.kept")
    return ([] if kept else ["hard negatives from a finished mining run (Mine)"]), \
        "hard negatives are waiting: generate pairs"


STEP = Step(
    name="augment", title="Augment", order=30, icon=":material/auto_awesome:",
    help="Augment: new questions with the same logic as each hard negative, gated.",
    tables=("structures", "candidates", "candidate_versions"),
    needs_first="hard negatives from a mining run",
    status_sql="SELECT count(*), count(*) FILTER (WHERE failed_gate IS NULL), max(created_at) FROM candidates",
    holds=lambda a, b: f"{plural(a, 'candidate')}, {b:,} passing every gate" if a else None,
    needs=_needs,
)
