"""Migration m001_initial (shipped: never edit; add a new migration instead)."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE datasets (
            name VARCHAR PRIMARY KEY,
            split VARCHAR NOT NULL,          -- train | seed | test
            format VARCHAR,
            source VARCHAR,                  -- file name it came from
            sha256 VARCHAR,                  -- of the source bytes: same file twice = no-op
            n_questions INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE passages (
            dataset VARCHAR NOT NULL,
            passage_id VARCHAR NOT NULL,
            text VARCHAR,
            PRIMARY KEY (dataset, passage_id)
        )""")
    con.execute("""
        CREATE TABLE questions (
            dataset VARCHAR NOT NULL,
            qid VARCHAR NOT NULL,
            position INTEGER NOT NULL,       -- order in the source file
            passage_id VARCHAR,
            question VARCHAR NOT NULL,
            extra VARCHAR,                   -- <보기>, table, dialogue (question_plus)
            choices VARCHAR[] NOT NULL,
            answer INTEGER,                  -- 1-based; NULL when the source has none
            points DOUBLE,                   -- CSAT points; NULL when the source has none
            subject VARCHAR,
            subject_source VARCHAR,          -- column | import | classifier | unknown
            PRIMARY KEY (dataset, qid)
        )""")
