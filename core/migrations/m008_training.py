"""Migration m008_training: ORPO training runs (one background worker each) and their logged metrics.

The worker never opens the store: it writes RUN_DIR/status.json and metrics.jsonl, and whichever
process owns the store ingests them here (core/training/ingest.py). `pid` + `pid_create_time`
identify the worker process across a dashboard restart (a recycled pid has another start time).
"""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE training_runs (
            id VARCHAR PRIMARY KEY,          -- also runs.id (step 'train')
            set_name VARCHAR NOT NULL,       -- preference_sets.name
            set_hash VARCHAR,                -- preference_sets.hash at start (sets are frozen)
            base_model VARCHAR NOT NULL,     -- registered model name or transformers folder
            state VARCHAR NOT NULL,          -- running | done | failed | cancelled
            backend VARCHAR,                 -- unsloth | trl | cpu (what actually ran)
            run_dir VARCHAR NOT NULL,        -- config.json, pairs.jsonl, metrics.jsonl, status.json, train.log
            pid INTEGER,
            pid_create_time DOUBLE,          -- psutil create_time of the worker
            config JSON NOT NULL,            -- TrainConfig as run
            config_hash VARCHAR NOT NULL,
            code_version VARCHAR,
            template JSON,                   -- {"kind": chat|plain, "thinking", "prefill", "hash"}
            preflight JSON,                  -- token lengths, dropped/truncated pairs, GPU, estimates
            progress JSON,                   -- the worker's last status.json
            metrics_lines INTEGER NOT NULL DEFAULT 0,  -- lines of metrics.jsonl already ingested
            created_at TIMESTAMP DEFAULT current_timestamp,
            updated_at TIMESTAMP,
            finished_at TIMESTAMP,
            summary JSON,
            adapter_model VARCHAR,           -- models.name of the registered tuned model
            message VARCHAR
        )""")
    con.execute("""
        CREATE TABLE training_metrics (
            run_id VARCHAR NOT NULL,
            step INTEGER NOT NULL,
            epoch DOUBLE,
            elapsed_s DOUBLE,                -- seconds of training when logged (all segments)
            loss DOUBLE,
            nll_loss DOUBLE,
            log_odds_ratio DOUBLE,
            log_odds_chosen DOUBLE,
            rewards_chosen DOUBLE,
            rewards_rejected DOUBLE,
            rewards_margins DOUBLE,
            rewards_accuracies DOUBLE,
            learning_rate DOUBLE,
            grad_norm DOUBLE,
            steps_per_s DOUBLE,
            tokens_per_s DOUBLE,
            gpu_mem_gb DOUBLE,
            extra JSON,                      -- every other logged value
            PRIMARY KEY (run_id, step)
        )""")
