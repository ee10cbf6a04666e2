"""Review: a person accepts, edits or rejects each generated pair side by side, and freezes the
accepted ones into a preference set, what training reads (review.py; preference_sets.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.steps import Step, count, plural

if TYPE_CHECKING:
    from core.store import Store


def _needs(store: Store) -> tuple[list[str], str]:
    return ([] if count(store, "SELECT count(*) FROM candidates") else ["generated preference pairs (Augment)"]), \
        "pairs are waiting for review"


STEP = Step(
    name="review", title="Review", order=40, icon=":material/rate_review:", aliases=("pairs",),
    help="Review preference pairs and manage frozen preference sets (what training reads).",
    tables=("preference_sets", "preference_pairs"),
    needs_first="generated preference pairs",
    status_sql="SELECT (SELECT count(*) FROM candidates WHERE status = 'accepted'), "
               "(SELECT count(*) FROM preference_sets), (SELECT max(reviewed_at) FROM candidates)",
    holds=lambda a, b: f"{plural(a, 'accepted pair')}, {plural(b, 'frozen set')}" if a or b else None,
    needs=_needs,
)
