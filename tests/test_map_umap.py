"""Visualise: the UMAP projection, its cache by inputs, the PCA fallback and the map figure's traces.

Kept apart from test_map.py because UMAP's first call compiles numba code (tens of seconds on 2 CPUs).
"""

from __future__ import annotations

import numpy as np

from core.steps.visualise import mapping
from core.steps.visualise.mapping import MapConfig
from tests.test_map import clusters, exam, inject


def test_projection_cached_and_points(store, tmp_path):
    exam(store, tmp_path, 24, "big")
    exam(store, tmp_path, 3, "small")
    inject(store, "hand-made", "big", {f"q{i + 1}": clusters(i, 1, i % 3)[0] for i in range(24)})
    inject(store, "hand-made", "small", {f"q{i + 1}": clusters(50 + i, 1, 5)[0] for i in range(3)})
    config = MapConfig(sets=["big", "small"], embedder="hand-made", n_neighbors=5, seed=1)
    first = mapping.run(store, config)
    assert first["points"] == 27 and first["method"] == "umap" and first["projection_cached"] is False
    assert first["embed_computed"] == 0 and first["embed_cached"] == 27
    again = mapping.run(store, config)
    assert again["projection_cached"] is True and again["projection"] == first["projection"]
    pts = mapping.map_points(store, config)
    assert len(pts) == 27 and {p["set"] for p in pts} == {"big", "small"}
    assert all(np.isfinite([p["x"], p["y"]]).all() for p in pts)
    fig = mapping.map_figure(pts, mapping.colour_classes(store, pts, "set"))
    assert [t.name for t in fig.data] == ["big (24)", "small (3)"] and fig.data[0].type == "scatter"
    assert list(fig.data[1].customdata[0][:2]) == ["small", "q1"]
    assert mapping.colour_classes(store, pts, "subject")[:2] == ["국어", "한국사"]
    # a tiny set is projected with PCA (UMAP needs a neighbour graph)
    tiny = mapping.run(store, MapConfig(sets=["small"], embedder="hand-made"))
    assert tiny["method"] == "pca" and tiny["points"] == 3
    # WebGL from 1,000 points
    many = [{"set": "s", "id": str(i), "subject": "국어", "start": "", "x": float(i), "y": 0.0} for i in range(1000)]
    assert mapping.map_figure(many, ["s"] * 1000).data[0].type == "scattergl"


