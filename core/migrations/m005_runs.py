"""Migration m005_runs: one run record per step run (config JSON, its hash, the code version)."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE runs (
            id VARCHAR PRIMARY KEY,
            step VARCHAR NOT NULL,           -- solve | mine | evaluate | augment | train | map
            config JSON NOT NULL,            -- the step's config class, as run
            config_hash VARCHAR NOT NULL,    -- same step + same hash = the same run (resumes)
            code_version VARCHAR,
            state VARCHAR NOT NULL,          -- running | done | failed | cancelled | interrupted
            summary JSON,
            message VARCHAR,
            job_id VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp,
            finished_at TIMESTAMP
        )""")
    con.execute("ALTER TABLE mining_runs ADD COLUMN code_version VARCHAR")
