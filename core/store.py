"""The one DuckDB file that holds all state, its migrations, and the single-owner rule.

DuckDB lets one process open a file read-write (and blocks readers while it does), so the
process that opens the Store owns it; threads of that process share one connection behind a
lock. See DESIGN.md §3.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core.errors import StoreLocked
from core.migrations import all_migrations

_LOCK_PID = re.compile(r"PID (\d+)")


class Store:
    """A DuckDB connection that has run every migration. Open one per process."""

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(self.path)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            pid = _LOCK_PID.search(str(exc))
            holder = f" by process {pid.group(1)}" if pid else ""
            raise StoreLocked(
                f"The store {self.path} is in use{holder} (probably the dashboard)",
                hint="stop it, or pass --db / CSAT_DB to use another file",
            ) from None
        self.lock = threading.RLock()
        self.migrate()

    # -- migrations -------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        with self.lock:
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
            )
            done = {r[0] for r in self.con.execute("SELECT name FROM schema_migrations").fetchall()}
            applied = []
            for name, fn in all_migrations():
                if name in done:
                    continue
                self.con.execute("BEGIN")
                try:
                    fn(self.con)
                    self.con.execute("INSERT INTO schema_migrations (name) VALUES (?)", [name])
                    self.con.execute("COMMIT")
                except Exception:
                    self.con.execute("ROLLBACK")
                    raise
                applied.append(name)
            return applied

    def schema_version(self) -> int:
        return self.scalar("SELECT count(*) FROM schema_migrations")

    # -- access -----------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.lock:
            self.con.execute(sql, params or [])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.lock:
                self.con.executemany(sql, rows)

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            cur = self.con.execute(sql, params or [])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        with self.lock:
            row = self.con.execute(sql, params or []).fetchone()
        return row[0] if row else None

    def df(self, sql: str, params: Sequence[Any] | None = None):
        with self.lock:
            return self.con.execute(sql, params or []).df()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All-or-nothing writes: a failed import leaves what was stored untouched."""
        with self.lock:
            self.con.execute("BEGIN")
            try:
                yield self
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.con.close()
