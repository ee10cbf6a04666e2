"""The first map is fast: numba's compiled code cached on disk (core/steps/visualise/jitcache.py) and the map's
phases shown with an honest ETA (no "ETA 0 s" while UMAP compiles)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from core import jobs
from core.steps.visualise import jitcache, mapping

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import sys
from core.steps.visualise import jitcache
folder = jitcache.enable()
sys.path.insert(0, sys.argv[1])
import probe_mod
assert probe_mod.twice(21) == 42
print(folder)
"""


def test_enable_caches_every_njit_function_in_our_folder(tmp_path):
    (tmp_path / "probe_mod.py").write_text("import numba\n\n@numba.njit\ndef twice(x):\n    return 2 * x\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    folder = Path(out.stdout.strip())
    assert folder == tmp_path / "xdg" / "csat-distill" / "numba"
    assert list(folder.rglob("*.nbi")), "the function did not ask numba for a cache: it compiles again per process"


def test_warm_marker_follows_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "nb"))
    assert not jitcache.is_warm()
    jitcache.mark_warm()
    assert jitcache.is_warm() and any((tmp_path / "nb").glob("warm-*"))


def test_a_phase_can_clear_the_eta_so_compiling_never_reads_eta_0(store):
    seen: dict = {}
    go = threading.Event()

    def body(ctx):
        ctx.progress(done=0, total=4, force=True)
        ctx.progress(done=4, total=4, force=True)  # embedding done: the rate-based ETA is 0
        seen["after_embed"] = jobs.get_job(store, ctx.job_id)["eta_s"]
        ctx.progress(message=mapping.projection_message(4, warm=False), eta_s=None, force=True)
        seen["compiling"] = jobs.get_job(store, ctx.job_id)
        go.wait(10)

    job = jobs.start(store, "demo", "phases", body, total=4)
    try:
        for _ in range(200):
            if "compiling" in seen:
                break
            threading.Event().wait(0.05)
    finally:
        go.set()
    assert jobs.wait(job, 10)
    assert seen["after_embed"] == 0
    assert seen["compiling"]["eta_s"] is None and "compiling UMAP" in seen["compiling"]["message"]
    assert "compiling" not in mapping.projection_message(4, warm=True)
