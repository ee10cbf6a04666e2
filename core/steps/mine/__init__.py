"""Mine: hard negatives, questions the teacher gets right and the student wrong, with both
reasoning paths (mining.py; classify.py tags subjects, judge.py checks unparsed replies,
mining_export.py writes them out)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.steps import Step, count, plural

if TYPE_CHECKING:
    from core.store import Store


def _needs(store: Store) -> tuple[list[str], str]:
    n_train, n_models = count(store, "SELECT count(*) FROM datasets WHERE split = 'train'"), count(store, "SELECT count(*) FROM models")
    missing = [] if n_train else ["a train pool (Data)"]
    if n_models < 2:
        missing.append(f"{2 - n_models} more registered model{'s' if 2 - n_models > 1 else ''} (Settings): "
                       "a teacher and a student")
    return missing, f"{plural(n_train, 'train pool')} and {plural(n_models, 'model')} registered: start a run"


STEP = Step(
    name="mine", title="Mine", order=20, icon=":material/search:",
    help="Hard-negative mining: teacher ✓ / student ✗, both reasoning paths kept.",
    tables=("mining_runs", "mining_items"),
    needs_first="a train pool and two registered models (teacher, student)",
    status_sql="SELECT (SELECT count(*) FROM mining_items WHERE kept AND run_id = r.id), 1, r.created_at "
               "FROM runs r WHERE r.step = 'mine' AND r.state = 'done' ORDER BY r.created_at DESC LIMIT 1",
    holds=lambda a, b: f"{plural(a, 'hard negative')} in the latest finished run" if a else None,
    needs=_needs,
)
