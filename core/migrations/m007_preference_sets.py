"""Migration m007_preference_sets: frozen, named, content-hashed preference sets (what training reads).

`prompt` is JSON: a list of chat messages (system + user, exactly as the solve step builds them) or,
for imported sets, a plain string (training wraps it as the user message). `chosen` and `rejected`
are the raw assistant responses; the chat template is applied by training, never baked in.
"""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE preference_sets (
            name VARCHAR PRIMARY KEY,
            source VARCHAR NOT NULL,         -- review:<augment run> | import:<file or hub id>
            hash VARCHAR NOT NULL,           -- sha256 of the pairs' canonical JSON
            n_pairs INTEGER NOT NULL,
            detail JSON,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE preference_pairs (
            set_name VARCHAR NOT NULL,
            idx INTEGER NOT NULL,
            pair_id VARCHAR,                 -- candidates.id when it came from review
            prompt JSON NOT NULL,
            chosen VARCHAR NOT NULL,
            rejected VARCHAR NOT NULL,
            subject VARCHAR,
            question JSON,                   -- the question as {passage, question, extra, choices, answer}
            PRIMARY KEY (set_name, idx)
        )""")
