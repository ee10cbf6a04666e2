"""The ordered, recorded list of schema migrations: the bottom layer, importing nothing above it.

Each migration is a module `mNNN_name.py` in this package with one function `up(con)`; the file
names give the order, and `schema_migrations` records which ran. Shipped migrations are never
edited (STYLE.md): a change to a table is a new module. Steps own their tables (see `OWNERS` in
core/cascade.py for what references what) but never register them at import time, so opening a
Store loads no domain module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import duckdb

Migration = tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]


def all_migrations() -> list[Migration]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name[:1] == "m" and m.name[1:4].isdigit())
    return [(name, importlib.import_module(f"{__name__}.{name}").up) for name in names]
