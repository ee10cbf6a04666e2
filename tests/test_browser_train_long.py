"""A training run watched for well over a minute in a real browser: never shown failed while its worker
lives, the held-out table shown from the first scoring, steps moving; then cancelled from the page,
with its resume offered. (The whole-pipeline walk trains to the end; this one watches a long run.)"""

from __future__ import annotations

import re
import time

import pytest

from tests.dashboard import browser_page, main_text, running_dashboard, wait_idle
from tests.test_e2e_pipeline import click, fill, form, metrics, select, wait_text

pytestmark = pytest.mark.browser
WATCH_S = 70  # longer than a minute: the old liveness check called live runs dead after ~30 s


def test_a_long_run_is_never_shown_failed_and_shows_its_heldout_check(tmp_path, tiny_qwen):
    from core.store import Store
    from tests.trainhelp import add_tiny, kill_leftover_workers

    db = tmp_path / "csat.duckdb"
    store = Store(db)
    add_tiny(store, tiny_qwen)  # the tiny Qwen3 as "tiny" and a 6-pair frozen set "s"
    store.close()
    try:
        with running_dashboard(db) as url, browser_page() as page:
            page.goto(f"{url}/train")
            wait_idle(page)
            select(page, "Preset", "tiny CPU trial")
            train_form = form(page, "Check (pre-flight)")
            select(page, "Base model", "tiny", within=train_form, rerun=False)
            fill(page, "Max steps", "100000", within=train_form, enter=False, rerun=False)
            fill(page, "Save steps", "100000", within=train_form, enter=False, rerun=False)
            click(page, "Check (pre-flight)")
            page.get_by_test_id("stMetric").filter(has_text="train / held out").first.wait_for(timeout=120_000)
            assert metrics(page)["train / held out"] == "5 / 1"
            click(page, "Start training")
            wait_text(page, r"Started training run \S+\.")
            run_id = re.search(r"Started training run (\S+)\.", main_text(page)).group(1)
            assert page.get_by_role("combobox", name="Run").input_value().startswith(run_id)  # follows the new run
            wait_text(page, r"Held-out check", timeout=180_000)
            seen, steps, table_seen = [], [], False
            end = time.monotonic() + WATCH_S
            while time.monotonic() < end:
                body = main_text(page)
                assert not re.search(r"(^|\n)failed(?: \([^)]*\))? · step", body), f"shown failed while the worker lives:\n{body[:2000]}"
                assert "the worker process ended" not in body and "Resume from the last checkpoint" not in body
                state = re.search(r"(?:^|\n)(running|failed|cancelled|done)(?: \([^)]*\))? · step (\d+)/", body)
                if state:  # (absent for a moment while the live panel redraws)
                    seen.append(state.group(1))
                    steps.append(int(state.group(2)))
                if "pairs this run never trained on" in body:
                    # st.dataframe draws its cells on a canvas: the heading and the grid are what the DOM shows
                    table_seen = page.locator("[data-testid=stMain] [data-testid=stDataFrame]").count() >= 2
                time.sleep(3)
            assert len(seen) >= 10 and set(seen) == {"running"} and steps[-1] > steps[0], (seen, steps)
            assert table_seen, "the held-out table never appeared"
            page.screenshot(path=str(tmp_path / "train_long.png"), full_page=True)
            click(page, "Cancel")
            wait_text(page, r"cancelled · step \d+/", timeout=60_000)
            assert page.get_by_role("button", name="Resume from the last checkpoint").count() == 1
    finally:
        kill_leftover_workers(tmp_path)
