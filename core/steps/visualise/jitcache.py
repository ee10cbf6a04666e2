"""UMAP's compiled code kept between processes, so only the first map on a machine compiles it.

UMAP and pynndescent are numba code: a fresh process spends 40-120 s compiling it before its
first fit (a warm fit of 125 points takes under a second). numba can keep what it compiled on
disk (`cache=True`), but most of their functions do not ask for it. `enable` points numba's cache
at a writable folder of ours (NUMBA_CACHE_DIR, unless the user set one) and makes `cache=True`
the default of `numba.njit` before umap is imported, so every function they compile is kept.
`warm` runs one tiny fit per metric (what `make install` and `python -m core visualise warm` do once);
`is_warm` says whether this machine has done so (the map's progress says "compiling" otherwise).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

_ENABLED = False


def cache_dir() -> Path:
    """$NUMBA_CACHE_DIR, else ~/.cache/csat-distill/numba (read per call)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "csat-distill" / "numba"


def _cached(decorator: Any) -> Any:
    @functools.wraps(decorator)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cache", True)
        return decorator(*args, **kwargs)

    wrapper.__wrapped_by_csat__ = True  # type: ignore[attr-defined]
    return wrapper


def enable() -> Path:
    """Cache numba's compiled code on disk from here on (idempotent); returns the folder."""
    global _ENABLED
    folder = cache_dir()
    if _ENABLED:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))
    import numba

    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]  # numba read the variable at its import
    if not getattr(numba.njit, "__wrapped_by_csat__", False):
        numba.njit = _cached(numba.njit)
    _ENABLED = True
    return folder


def _marker() -> Path:
    from importlib.metadata import version

    tag = "-".join([version("umap-learn"), version("pynndescent"), version("numba"),
                    f"py{sys.version_info[0]}{sys.version_info[1]}"])
    return cache_dir() / f"warm-{tag}"


def is_warm() -> bool:
    """True once a fit of these umap/numba versions ran with the cache on (its code is on disk)."""
    try:
        return _marker().exists()
    except Exception:  # a package without metadata: assume cold, the message only says "compiling"
        return False


def mark_warm() -> None:
    try:
        marker = _marker()
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except Exception:
        pass


def warm(metrics: tuple[str, ...] = ("cosine", "euclidean")) -> dict[str, Any]:
    """Compile (or load) UMAP's code once for each metric with a tiny fit; returns what it took."""
    import warnings

    import numpy as np

    t0 = time.perf_counter()
    enable()
    import umap

    was_warm = is_warm()
    x = np.random.default_rng(0).normal(size=(64, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for metric in metrics:
            umap.UMAP(n_components=2, n_neighbors=15, metric=metric, random_state=42).fit_transform(x)
    mark_warm()
    return {"cache_dir": str(cache_dir()), "was_warm": was_warm, "seconds": round(time.perf_counter() - t0, 1)}
