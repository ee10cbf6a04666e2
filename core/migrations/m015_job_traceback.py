"""Migration m015_job_traceback: a failed job keeps its full traceback (shown under "details",
in `jobs show ID` and in the log), not only `TypeName: text`."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE jobs ADD COLUMN traceback VARCHAR")
