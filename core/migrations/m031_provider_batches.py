"""Migration m031_provider_batches: batches submitted to a provider's Batch API (Gemini), so that a
run stopped or killed after submitting re-attaches to its batch instead of paying for a new one."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE provider_batches (
            name VARCHAR PRIMARY KEY,        -- the provider's batch name (batches/…)
            model VARCHAR NOT NULL,          -- registered model name
            digest VARCHAR NOT NULL,         -- sha256 of the batch's sorted cache keys
            keys VARCHAR[] NOT NULL,         -- cache keys in submission order
            state VARCHAR NOT NULL,          -- pending, running, succeeded, failed, cancelled, expired, stored
            job_id VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp,
            updated_at TIMESTAMP DEFAULT current_timestamp
        )""")
