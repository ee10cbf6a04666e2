"""The pipeline's steps: one package each, and this registry, the one list of them.

A step is a package `core/steps/<name>/` whose `__init__.py` defines `STEP = Step(...)`: its name
(the package, the CLI noun and the page's URL are that one name), where it sits in the flow, what it
holds and what it needs first (counted from the store for Home, the sidebar and `status`), and the
tables it owns (the delete cascade declares each of them). app.py, the CLI, core/pipeline.py and
tests/test_cascade.py read `steps()`; adding a step is adding one package (and its page and CLI
module). The step packages' `__init__` files import nothing heavy: listing the steps loads no engine.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.store import Store


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural_form or word + 's')}"


def count(store: Store, sql: str) -> int:
    with store.lock:
        return store.con.execute(sql).fetchone()[0] or 0


@dataclass(frozen=True)
class Step:
    name: str  # package, CLI noun, page URL
    title: str  # what the page and Home call it
    order: int  # place in the flow
    help: str  # the CLI noun's help line
    icon: str = ""
    page: bool = True  # has a dashboard page (pages/<name>.py)
    aliases: tuple[str, ...] = ()  # earlier CLI nouns that still work (hidden from help)
    tables: tuple[str, ...] = ()  # tables this step's migrations made and it owns
    needs_first: str = ""  # what it needs, in one phrase
    # SQL returning (count, detail count, last time), and the sentence those counts make
    status_sql: str | None = None
    holds: Callable[[int, int], str | None] = lambda a, b: None
    # (store) -> (what is missing, the ready sentence), counted now
    needs: Callable[[Store], tuple[list[str], str]] = field(default=lambda store: ([], ""))


@cache
def steps() -> tuple[Step, ...]:
    """Every step package's STEP, in flow order."""
    found = []
    for mod in pkgutil.iter_modules(__path__):
        if mod.ispkg:
            found.append(importlib.import_module(f"{__name__}.{mod.name}").STEP)
    return tuple(sorted(found, key=lambda s: s.order))


def by_name(name: str) -> Step:
    """A step by its name or an alias (`map` is `visualise`)."""
    for s in steps():
        if name == s.name or name in s.aliases:
            return s
    raise KeyError(name)
