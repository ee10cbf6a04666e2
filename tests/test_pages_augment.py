"""AppTest of the Augment page against a real DuckDB file: empty state, a run started from the form
(estimate first, then a background job against the loopback teacher), and the results: made-by line,
pass rate per gate (Plotly), every candidate with its gate badges and reasons, one opened.
"""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.store import Store
from tests.augmentdata import EXPECTED_FAILED, Teacher, mine, seed_data, writer
from tests.loopback import Loopback
from tests.pagetest import clear_cached_store, fresh_page_store, open_page  # noqa: F401


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def page() -> AppTest:
    return open_page("pages/augment.py")


@pytest.fixture
def mined(db_env, tmp_path):
    """A store file with a train pool, a test set and a finished mining run (6 hard negatives)."""
    store = Store(db_env)
    tests = seed_data(store, tmp_path)
    run = mine(store)
    store.close()
    clear_cached_store()
    return run, tests


def test_empty_state_names_what_is_needed(db_env):
    at = page()
    assert any("Needs first" in i.value for i in at.info)
    assert not at.button and not at.metric


def test_teacher_defaults_to_the_one_that_mined_the_run(mined, db_env):
    store = Store(db_env)
    mined_by = store.scalar("SELECT m.teacher FROM mining_runs m JOIN runs r ON r.id = m.id "
                            "ORDER BY r.created_at DESC LIMIT 1")
    first = store.scalar("SELECT name FROM models ORDER BY created_at, name LIMIT 1")
    store.close()
    clear_cached_store()
    assert first != mined_by  # the built-in Gemma is registered first: it must not be the default
    assert page().selectbox(key="augment-form-teacher").value == mined_by


def test_start_from_the_form_then_see_every_gate(mined, db_env):
    run, tests = mined
    with Loopback("gemini", Teacher(tests)) as srv:
        store = Store(db_env)
        writer(store, srv)
        store.close()
        clear_cached_store()
        at = page()
        assert at.selectbox(key="augment-form-mining_run").value == run
        shown = at.selectbox(key="augment-form-mining_run").options[0]
        assert shown.startswith(f"{run} · ") and "hard negatives" in shown  # not a bare id
        at.selectbox(key="augment-form-teacher").set_value("writer")
        at.number_input(key="augment-form-per_seed").set_value(2)
        next(b for b in at.button if b.label == "Estimate cost").click()
        at.run()
        assert not at.exception, at.exception
        est = next(i.value for i in at.info if "structure requests" in i.value)
        assert est.startswith("6 seeds × 2: 6 structure requests (0 cached)")
        next(b for b in at.button if b.label == "Start augment").click()
        at.run()
        job_id = at.session_state["augment-job"]
        assert jobs.wait(job_id, 60)
        at.run()
        assert not at.exception, at.exception
        assert srv.count == 19
    job = jobs.get_job(page_store(), job_id)
    assert job["state"] == "done" and job["result"]["failed"] == EXPECTED_FAILED

    # results: the made-by line, metrics, the gate chart, the candidate table and one candidate
    assert any("made by augment run" in c.value and "per\\_seed=2" in c.value for c in at.caption)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["candidates"] == "10" and metrics["passed every gate"] == "2" and metrics["seeds"] == "6"
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert list(fig["data"][0]["x"]) == ["schema", "choices", "chosen_answer", "rejected_answer", "language",
                                         "contamination", "duplicate", "resolve"]
    table = at.dataframe[0].value
    assert len(table) == 10 and list(table["first failure"]).count("—") == 2
    # a gate's name ("rejected_answer") was cut in the auto-sized "first failure" column: it has its width
    widths = {k: v.get("width") for k, v in json.loads(at.dataframe[0].proto.columns).items()}
    assert widths["first failure"] >= 130 and widths["reason"] == "large"
    assert set(table["schema"]) == {"pass", "FAIL"} and list(table["resolve"]).count("—") == 7
    gate_lines = [m.value for m in at.markdown if "**resolve**" in m.value or "**schema**" in m.value]
    assert gate_lines and ":material/check_circle:" in gate_lines[0]  # the first candidate is the valid one
    assert any("Nearest test question: exam/" in c.value for c in at.caption)

    # filter to one gate: only the candidate that failed first there
    gates_box = next(s for s in at.selectbox if s.label == "Gates")
    gates_box.set_value("contamination")
    at.run()
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == 1
    assert any("**contamination**" in m.value and "test question exam/t0" in m.value for m in at.markdown)


def page_store() -> Store:
    """The store the page process holds (one per process: the job wrote through it)."""
    from pages._ui import open_store

    return open_store()
