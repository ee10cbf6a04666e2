"""Migration m050_mining_runs_in_runs: a mining run's record lives in `runs` like every other step's.

Each existing mining run gets a `runs` row (step 'mine') under its own id, so its items, the
structures and pairs made from it keep pointing at it; its config, hash, state, summary, job and code
version move there. `mining_runs` keeps only what is special to mining (pool, teacher, student),
keyed by the run id. Runs with the same config stay as they were (history is not merged); a run from
before config hashes gets a hash of its own ('legacy-' + id) that no config matches, so it is never
resumed. Only runs started after this dedupe (the same config resumes its run).
"""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        INSERT INTO runs (id, step, config, config_hash, code_version, state, summary, job_id, created_at)
        SELECT id, 'mine', config, coalesce(config_hash, 'legacy-' || id), code_version, state, summary, job_id,
               created_at
        FROM mining_runs WHERE id NOT IN (SELECT id FROM runs)""")
    con.execute("""
        CREATE TABLE mining_runs_keyed (
            id VARCHAR PRIMARY KEY,          -- runs.id (step 'mine'): config, state, summary live there
            pool VARCHAR NOT NULL,
            teacher VARCHAR NOT NULL,
            student VARCHAR NOT NULL
        )""")
    con.execute("INSERT INTO mining_runs_keyed SELECT id, pool, teacher, student FROM mining_runs")
    con.execute("DROP TABLE mining_runs")
    con.execute("ALTER TABLE mining_runs_keyed RENAME TO mining_runs")
