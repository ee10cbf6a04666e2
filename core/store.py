"""The one DuckDB file that holds all state, its migrations, and the single-owner rule.

DuckDB lets one process open a file read-write (and blocks readers while it does), so the
process that opens the Store owns it; threads of that process share one connection behind a
lock. See DESIGN.md §3.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core import store_owner
from core.errors import CoreError, MigrationFailed, StoreCorrupt, StoreLocked, StoreTooNew
from core.migrations import all_migrations

_NOT_READABLE = ("permission denied", "read-only file system", "is a directory")


def migration_number(name: str) -> int:
    """m015_job_traceback -> 15: the schema version a store has once that migration ran."""
    return int(name[1:4])


def backups(path: str | Path) -> list[Path]:
    """The copies kept before migrations (`<db>.v<N>.bak`), newest schema first."""
    p = Path(path)
    found = [(int(m.group(1)), b) for b in p.parent.glob(p.name + ".v*.bak")
             if (m := re.fullmatch(re.escape(p.name) + r"\.v(\d+)\.bak", b.name))]
    return [b for _, b in sorted(found, reverse=True)]


def corrupt_error(path: str, exc: BaseException) -> StoreCorrupt:
    reason = str(exc).split("\n")[0].removeprefix("IO Error: ")
    copies = backups(path)
    if copies:
        todo = (f"the copy kept before the last migration opens: `python -m core --db {copies[0]} data list` "
                "(take sets out with `data export NAME`, or move the damaged file aside and copy that one in "
                "its place), or ")
    else:
        todo = "restore the file from a backup of your own, or "
    return StoreCorrupt(f"The store {path} is damaged and cannot be opened ({reason})",
                        hint=f"{todo}start a new store with --db / CSAT_DB; the damaged file is left as it is")


def open_error(path: str, exc: duckdb.Error) -> CoreError:
    """Why DuckDB could not open the file, in words a user can act on."""
    text = str(exc)
    low = text.lower()
    if "lock" in low and ("conflicting" in low or "could not set lock" in low):
        h = store_owner.holder(path, text)
        if h["kind"] == "a CLI run":
            todo = "wait for it to finish, or stop it (Ctrl-C, or kill " + str(h["pid"]) + "; finished work is kept)"
        elif h["kind"].startswith("the dashboard"):
            todo = "use the dashboard for this, or stop it (Ctrl-C where it runs)"
        else:
            todo = "stop it" + (f" (kill {h['pid']})" if h.get("pid") else "")
        return StoreLocked(f"The store {path} is in use by {store_owner.describe(h)}",
                           hint=f"{todo}, or pass --db / CSAT_DB to use another file")
    if "version number" in low or "newer version" in low or "storage version" in low:
        return StoreTooNew(f"The store {path} was written by a newer DuckDB than this one "
                           f"({duckdb.__version__}): {text.splitlines()[0]}",
                           hint="upgrade duckdb (pip install -U -r requirements.txt), or pass --db / CSAT_DB")
    if any(k in low for k in _NOT_READABLE):
        return StoreCorrupt(f"The store {path} cannot be opened: {text.splitlines()[0]}",
                            hint="check the file's permissions and the disk, or pass --db / CSAT_DB")
    return corrupt_error(path, exc)


class Store:
    """A DuckDB connection that has run every migration. Open one per process."""

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        self._token: str | None = None
        self.backup: Path | None = None  # the copy kept before this open migrated the store
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(self.path)
        except duckdb.Error as exc:
            raise open_error(self.path, exc) from None
        self.lock = threading.RLock()
        try:
            self.migrate()
        except CoreError:
            self.con.close()
            raise
        except duckdb.Error as exc:  # a damaged block found while reading the schema
            self.con.close()
            raise corrupt_error(self.path, exc) from None
        if self.path != ":memory:":
            self._token = store_owner.claim(self.path)
            # A process that never calls close (the dashboard) still removes its sidecar at exit.
            self._release = weakref.finalize(self, store_owner.release, self.path, self._token)

    # -- migrations -------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply the pending migrations all-or-nothing, after copying an existing store to
        `<db>.v<N>.bak` (N: the schema version it had). A failure rolls every one back."""
        with self.lock:
            has_table = self.con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations' "
                "AND schema_name = 'main'").fetchone()[0]
            done = {r[0] for r in self.con.execute("SELECT name FROM schema_migrations").fetchall()} \
                if has_table else set()
            known = all_migrations()
            unknown = sorted(done - {n for n, _ in known})
            if unknown:
                mine = known[-1][0] if known else "m000"
                raise StoreTooNew(
                    f"The store {self.path} has schema version {migration_number(max(done))} ({max(done)}), "
                    f"newer than this code's version {migration_number(mine)} ({mine}): it was made by a "
                    f"later version of this project (migrations this code lacks: {', '.join(unknown)})",
                    hint="update this checkout (git pull, then make run) to open it, or pass --db / CSAT_DB "
                         "to use another file; the store was not changed")
            pending = [(n, fn) for n, fn in known if n not in done]
            if not pending:
                return []
            version = migration_number(max(done)) if done else 0
            if done and self.path != ":memory:":
                self.backup = self._copy(f"{self.path}.v{version}.bak")
            name = ""
            self.con.execute("BEGIN")
            try:
                if not has_table:
                    self.con.execute(
                        "CREATE TABLE schema_migrations "
                        "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
                for name, fn in pending:
                    fn(self.con)
                    self.con.execute("INSERT INTO schema_migrations (name) VALUES (?)", [name])
                self.con.execute("COMMIT")
            except Exception as exc:
                self.con.execute("ROLLBACK")
                kept = f"; a copy of it as it was is {self.backup}" if self.backup else ""
                raise MigrationFailed(
                    f"Migration {name} failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    f"no migration was applied and the store {self.path} is as it was (schema version {version}){kept}",
                    hint="keep using the previous version of the code with this store, and report the message "
                         "above as a bug") from exc
            return [n for n, _ in pending]

    def _copy(self, target: str) -> Path:
        """A consistent copy of the file: checkpoint (the WAL into the file), then copy the bytes."""
        self.con.execute("CHECKPOINT")
        tmp = f"{target}.{os.getpid()}.tmp"
        shutil.copyfile(self.path, tmp)
        os.replace(tmp, target)
        return Path(target)

    def schema_version(self) -> int:
        return self.scalar("SELECT count(*) FROM schema_migrations")

    # -- access -----------------------------------------------------------------------------
    # Bumped by every write through this Store (the only writer: core/store_owner.py), so a page can
    # cache a query under (query, writes) and never show data older than the last write (pages/_ui.py:cached).
    writes: int = 0

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.lock:
            self.writes += 1
            self.con.execute(sql, params or [])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.lock:
                self.writes += 1
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
                self.writes += 1
                raise
            self.con.execute("COMMIT")
            self.writes += 1  # also for writes made on store.con directly inside the transaction

    def close(self) -> None:
        with self.lock:
            self.con.close()
        if self._token is not None:
            self._release()
