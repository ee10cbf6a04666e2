"""Migration m006_augment: structures of hard negatives and the candidates blueprint prompting writes.

Contract between Augment (writes candidates), Review (decides, edits) and preference sets (freeze).
A candidate *is* a preference pair while it is being reviewed: `review list/accept/reject` act on it.
"""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE structures (
            run_id VARCHAR NOT NULL,         -- augment run (runs.id)
            mining_run VARCHAR NOT NULL,
            pool VARCHAR NOT NULL,           -- dataset of the seed question
            seed_qid VARCHAR NOT NULL,
            structure JSON,                  -- {"structure", "golden_steps", "error_pattern", ...}
            gen_key VARCHAR,                 -- generations.cache_key of the extraction reply
            error VARCHAR,                   -- extraction failed (unparseable, API error): seed skipped
            PRIMARY KEY (run_id, seed_qid)
        )""")
    con.execute("""
        CREATE TABLE candidates (
            id VARCHAR PRIMARY KEY,          -- stable: hash of (run, seed, index)
            run_id VARCHAR NOT NULL,         -- augment run (runs.id)
            mining_run VARCHAR NOT NULL,
            pool VARCHAR NOT NULL,
            seed_qid VARCHAR NOT NULL,
            idx INTEGER NOT NULL,            -- 0..per_seed-1
            target VARCHAR,                  -- transfer target (era, domain, subject)
            subject VARCHAR,
            passage VARCHAR,
            question VARCHAR,
            extra VARCHAR,                   -- <보기> when the generator gives one
            choices VARCHAR[],
            answer INTEGER,
            chosen VARCHAR,
            rejected VARCHAR,
            raw JSON,                        -- the generator's object as returned (optional keys kept)
            gen_key VARCHAR,                 -- generations.cache_key of the blueprint reply
            gates JSON,                      -- {gate: {"ok": bool, "reason": str, ...}} in gate order
            failed_gate VARCHAR,             -- first gate failed; NULL = passed every gate
            nearest_test JSON,               -- {"dataset", "qid", "similarity", "method"}
            student_solved BOOLEAN,          -- optional student re-solve: right (teaches less)
            status VARCHAR NOT NULL DEFAULT 'pending',  -- pending | accepted | rejected
            review_reason VARCHAR,
            reviewed_at TIMESTAMP,
            version INTEGER NOT NULL DEFAULT 1,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE candidate_versions (    -- every edit and decision, nothing overwritten without a trace
            candidate_id VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            action VARCHAR NOT NULL,         -- created | edited | accepted | rejected | reset
            fields JSON,                     -- the candidate's editable fields after the action
            reason VARCHAR,
            changed_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (candidate_id, version, action)
        )""")
