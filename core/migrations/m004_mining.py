"""Migration m004_mining (shipped: never edit; add a new migration instead)."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE mining_runs (
            id VARCHAR PRIMARY KEY,
            pool VARCHAR NOT NULL,
            teacher VARCHAR NOT NULL,
            student VARCHAR NOT NULL,
            config JSON NOT NULL,            -- MiningConfig, as run
            config_hash VARCHAR,
            state VARCHAR NOT NULL,          -- running | done | cancelled | failed
            summary JSON,
            job_id VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE mining_items (
            run_id VARCHAR NOT NULL,
            qid VARCHAR NOT NULL,
            outcome VARCHAR NOT NULL,
            kept BOOLEAN NOT NULL,           -- a hard negative that goes on to augmentation
            gold INTEGER,
            teacher_answers INTEGER[],
            student_answers INTEGER[],
            teacher_correct INTEGER,         -- samples right, of K
            student_wrong INTEGER,           -- samples wrong (incl. unparsed), of K
            golden_key VARCHAR,              -- generations.cache_key of a correct teacher sample
            failed_key VARCHAR,              -- generations.cache_key of a wrong student sample
            judge_preferred VARCHAR,         -- teacher | student | tie | NULL (not judged / unparseable)
            judge_reason VARCHAR,
            judge_key VARCHAR,
            PRIMARY KEY (run_id, qid)
        )""")
