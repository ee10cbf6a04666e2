"""Data: import, browse, export and delete question sets (datasets.py; formats/ reads each file layout)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.steps import Step, plural

if TYPE_CHECKING:
    from core.store import Store


def _needs(store: Store) -> tuple[list[str], str]:
    return ["a question file (or the bundled samples)"], ""


STEP = Step(
    name="data", title="Data", order=10, icon=":material/library_books:",
    help="Import, browse, export and delete question sets.",
    tables=("datasets", "questions", "passages"),
    needs_first="a question file (or the bundled samples)",
    status_sql="SELECT (SELECT count(*) FROM questions), (SELECT count(*) FROM datasets), "
               "(SELECT max(created_at) FROM datasets)",
    holds=lambda a, b: f"{plural(a, 'question')} in {plural(b, 'dataset')}" if a else None,
    needs=_needs,
)
