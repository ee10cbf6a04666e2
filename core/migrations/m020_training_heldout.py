"""Migration m020_training_heldout: each training run keeps its held-out check (base vs tuned
preference accuracy and margin on pairs it never trained on, and every scoring by step) as JSON."""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE training_runs ADD COLUMN heldout VARCHAR")
