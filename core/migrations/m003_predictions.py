"""Migration m003_predictions (shipped: never edit; add a new migration instead)."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE predictions (
            dataset VARCHAR NOT NULL,
            model VARCHAR NOT NULL,          -- label: a registered model's name or any import label
            qid VARCHAR NOT NULL,
            answer INTEGER,                  -- NULL = no answer (blank, unparsed, error)
            votes INTEGER[],                 -- per-sample answers when K > 1 (NULL entries = unparsed)
            truncated BOOLEAN DEFAULT false,
            PRIMARY KEY (dataset, model, qid)
        )""")
    con.execute("""
        CREATE TABLE eval_runs (
            dataset VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            source VARCHAR NOT NULL,         -- engine | import
            detail VARCHAR,                  -- file name, or engine settings as JSON
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (dataset, model)
        )""")
    con.execute("ALTER TABLE questions ADD COLUMN answer_source VARCHAR")
    con.execute("UPDATE questions SET answer_source = 'file' WHERE answer IS NOT NULL")
    con.execute("""
        CREATE TABLE gold_votes (
            dataset VARCHAR NOT NULL,
            qid VARCHAR NOT NULL,
            label INTEGER,                   -- majority label; NULL on a tie or no votes
            votes JSON,                      -- {label: count}
            voters VARCHAR[],                -- which prediction labels voted
            agreement DOUBLE,
            tie BOOLEAN,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (dataset, qid)
        )""")
