"""What each pipeline step holds, for the Home page, the sidebar and `status`.

Counted from the store on every call (never cached) by each step's own SQL in its registry entry
(core/steps/<step>/__init__.py), with plural forms right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.steps import by_name, steps

if TYPE_CHECKING:
    from core.store import Store


def needs(store: Store, step: str) -> str:
    """What `step` (a name or title) still lacks, counted from the store now (never a fixed sentence):
    "needs a train pool (Data) and 1 more registered model (Settings)", or "ready: …"."""
    s = next((s for s in steps() if s.title == step), None) or by_name(step)
    missing, ready = s.needs(store)
    return "needs " + " and ".join(missing) if missing else "ready: " + ready


def status(store: Store) -> list[dict[str, Any]]:
    """Every page step's holdings. A query error is a bug and is raised, never hidden as 'empty'."""
    out = []
    for s in steps():
        if not s.page:
            continue
        holds, last = None, None
        if s.status_sql:
            with store.lock:
                row = store.con.execute(s.status_sql).fetchone()
            holds = s.holds(row[0] or 0, row[1] or 0) if row else None
            last = row[2] if row else None
        out.append({"step": s.title, "page": s.name, "needs": needs(store, s.title) if not holds else s.needs_first,
                    "holds": holds, "last": last if holds else None})
    return out
