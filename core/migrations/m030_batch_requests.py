"""Migration m030_batch_requests: the requests a batch file holds, by cache key, so that a reply
read back from an outside batch engine (OpenAI Batch API, `vllm run-batch`) is stored as the live
call would have stored it (question, sample, template, choices: none of which the reply carries)."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE batch_requests (
            cache_key VARCHAR PRIMARY KEY,   -- the engine's cache key: the batch line's custom_id
            model VARCHAR NOT NULL,          -- registered model name
            params VARCHAR NOT NULL,         -- the run's resolved GenParams (generations.params)
            task VARCHAR NOT NULL,
            dataset VARCHAR,
            qid VARCHAR,
            sample INTEGER NOT NULL,
            prompt_hash VARCHAR NOT NULL,
            messages VARCHAR NOT NULL,       -- JSON list of chat messages
            n_choices INTEGER,               -- set: extract a choice number from the reply
            file VARCHAR,                    -- the batch file it was last written to
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
