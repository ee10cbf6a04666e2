"""pages/_ui.py helpers every page uses: run_action reports success or the one-line error (and says
which it was), saved_upload saves an upload once per file and cleans up, config_form builds a
step's form from its config class."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def actions_script():
    import streamlit as st

    from core.errors import CoreError
    from pages._ui import run_action

    def refused():
        raise CoreError("model 'x' is used by mining run r1", hint="delete those first")

    failed = run_action(refused, "Deleted 'x'")
    worked = run_action(lambda: None, "Deleted 'y'")
    value = run_action(lambda: 0)
    st.session_state["results"] = (failed, worked, value)


def test_run_action_says_what_happened():
    at = AppTest.from_function(actions_script, default_timeout=30)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["model 'x' is used by mining run r1 — delete those first"]
    assert [s.value for s in at.success] == ["Deleted 'y'"]  # a failure never says it worked
    assert at.session_state["results"] == (None, True, 0)


def upload_script():
    from dataclasses import dataclass

    import streamlit as st

    from pages._ui import saved_upload

    @dataclass
    class Upload:  # what st.file_uploader hands back: a name, an id per upload, the bytes
        name: str
        file_id: str
        data: bytes

        @property
        def size(self) -> int:
            return len(self.data)

        def getvalue(self) -> bytes:
            st.session_state["reads"] = st.session_state.get("reads", 0) + 1
            return self.data

    which = st.session_state.get("which")
    upload = {"a": Upload("a.csv", "id-a", b"id,answer\n1,2\n"), "b": Upload("b.csv", "id-b", b"x")}.get(which)
    path = saved_upload(upload, "test")
    st.session_state.setdefault("paths", []).append(str(path) if path else None)


def test_an_upload_is_saved_once_and_cleaned_up():
    from pathlib import Path

    at = AppTest.from_function(upload_script, default_timeout=30)
    at.session_state["which"] = "a"
    at.run()
    at.run()
    at.run()  # reruns of the same upload: one file, written once
    first = at.session_state["paths"]
    assert len(set(first)) == 1 and at.session_state["reads"] == 1
    assert Path(first[0]).read_bytes() == b"id,answer\n1,2\n"
    at.session_state["which"] = "b"
    at.run()  # a new file replaces the old one, whose folder goes
    second = at.session_state["paths"][-1]
    assert second != first[0] and Path(second).read_bytes() == b"x" and not Path(first[0]).parent.exists()
    at.session_state["which"] = None
    at.run()  # the upload removed: nothing kept
    assert at.session_state["paths"][-1] is None and not Path(second).parent.exists()


def form_script():
    import streamlit as st

    from core.steps.evaluate.eval_run import EvalConfig
    from pages._ui import config_form

    cfg = config_form(EvalConfig, "f", submit="Run", fixed={"dataset": "kice"}, choices={"model": ["m1", "m2"]})
    if cfg:
        st.session_state["cfg"] = cfg.model_dump()


def test_config_form_is_built_from_the_config_class():
    at = AppTest.from_function(form_script, default_timeout=30)
    at.run()
    assert not at.exception
    assert [s.label for s in at.selectbox] == ["Model"]
    assert [n.label for n in at.number_input] == ["Samples (K)"]
    assert at.number_input[0].max == 100 and at.number_input[0].min == 1  # bounds from the Field
    # laid out in three columns, read column by column: "Store as" wraps under "Model"
    assert [t.label for t in at.text_input] == ["Store as", "First N questions", "Temperature", "Subject"]
    store_as = at.text_input[0]
    at.selectbox[0].select("m2")
    at.number_input[0].set_value(3)
    store_as.input("base")
    at.button[0].click().run()
    assert at.session_state["cfg"] == {"dataset": "kice", "model": "m2", "samples": 3, "temperature": None,
                                       "label": "base", "limit": None, "subject": None}
    next(t for t in at.text_input if t.label == "Temperature").input("9")  # out of bounds: one line, no config
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["bad evaluate setting temperature: Input should be less than or equal "
                                           "to 2 — see --help for each setting's range"]


def runner_script():
    import streamlit as st

    from core.steps.evaluate.eval_run import EvalConfig
    from pages._ui import open_store, step_runner

    def start(store, cfg):
        st.session_state["started"] = cfg.model_dump()
        return "job-1"

    step_runner(open_store(), EvalConfig, start, key="r", kind="eval", live=True, submit="Run",
                fixed={"dataset": "kice"}, choices={"model": ["m1", "m2"]},
                preview=lambda v: st.caption(f"would run {v['model']} ×{v['samples']} on {v['dataset']}"),
                check=lambda c: "not m1" if c.model == "m1" else None)


def test_step_runner_previews_the_values_on_screen_checks_and_keeps_the_job_id(db_env):
    """pages/_ui.py:step_runner, the form → job → panel block of every step page: with a live form the
    preview follows each change before anything is pressed; a check stops a start with its reason; a
    started job's id is kept where the job panel reads it."""
    at = AppTest.from_function(runner_script, default_timeout=30)
    at.run()
    assert [c.value for c in at.caption] == ["would run m1 ×1 on kice"]
    at.selectbox[0].select("m2")
    at.number_input[0].set_value(4)
    at.run()
    assert [c.value for c in at.caption] == ["would run m2 ×4 on kice"]  # nothing pressed yet
    at.selectbox[0].select("m1")
    at.button(key="r-form-submit").click().run()
    assert [e.value for e in at.error] == ["not m1"] and "started" not in at.session_state
    at.selectbox[0].select("m2")
    at.button(key="r-form-submit").click().run()
    assert at.session_state["started"]["model"] == "m2" and at.session_state["r-job"] == "job-1"


def panel_script():
    import streamlit as st

    from core import jobs
    from pages._ui import job_panel, open_store

    store = open_store()
    if "demo-job" not in st.session_state:
        def boom(ctx):
            raise RuntimeError("the disk is full")

        job_id = jobs.start(store, "demo", "a job that fails", boom)
        jobs.wait(job_id, 10)
        st.session_state["demo-job"] = job_id
    job_panel(store, "demo-job")


def test_a_failed_job_shows_its_traceback_under_details(db_env):
    from tests.pagetest import clear_cached_store

    clear_cached_store()
    try:
        at = AppTest.from_function(panel_script, default_timeout=30)
        at.run()
        assert not at.exception
        assert [e.value for e in at.error] == ["RuntimeError: the disk is full"]
        assert [x.label for x in at.expander] == ["details"]
        assert "Traceback (most recent call last)" in at.code[0].value and "in boom" in at.code[0].value
    finally:
        clear_cached_store()


def phase_script():
    import threading

    import streamlit as st

    from core import jobs
    from core.steps.visualise import mapping
    from pages._ui import job_panel, open_store

    store = open_store()
    if "demo-job" not in st.session_state:
        held = threading.Event()
        st.session_state["hold"] = held

        def compiling(ctx):
            ctx.progress(done=125, total=125, force=True)  # embedding finished: a rate-based ETA reads 0
            ctx.progress(message=mapping.projection_message(125, warm=False), eta_s=None, force=True)
            held.wait(20)

        st.session_state["demo-job"] = jobs.start(store, "demo", "map", compiling, total=125)
        for _ in range(100):
            if (jobs.get_job(store, st.session_state["demo-job"]) or {}).get("message"):
                break
            threading.Event().wait(0.05)
    job_panel(store, "demo-job")


def test_a_running_job_shows_its_phase_and_no_eta_while_compiling(db_env):
    from tests.pagetest import clear_cached_store

    clear_cached_store()
    try:
        at = AppTest.from_function(phase_script, default_timeout=30)
        at.run()
        assert not at.exception
        text = " ".join(str(p.proto.text) for p in at.get("progress"))
        assert "125/125" in text and "compiling UMAP's code" in text and "ETA" not in text, text
        at.session_state["hold"].set()
    finally:
        clear_cached_store()


def test_cached_reads_once_per_write_and_never_serves_older_data(tmp_path):
    """pages/_ui.py:cached: a page's query runs once per write to the store (every rerender, every tab
    reads the result), and any write through the Store, or a reopened Store, reads afresh."""
    from core.store import Store
    from pages._ui import cached
    from tests.minidata import import_mini

    calls = []

    def count(store, split):
        calls.append(split)
        return store.scalar("SELECT count(*) FROM datasets WHERE split = ?", [split])

    s = Store(tmp_path / "c.duckdb")
    try:
        assert [cached(count, s, "test") for _ in range(3)] == [0, 0, 0] and calls == ["test"]
        assert cached(count, s, "train") == 0 and calls == ["test", "train"]  # its arguments are its key
        import_mini(s, tmp_path, n=2, name="one")  # a write (a bulk insert inside a transaction)
        assert cached(count, s, "test") == 1 and len(calls) == 3
        s.execute("DELETE FROM questions WHERE dataset = 'one'")
        s.execute("DELETE FROM datasets WHERE name = 'one'")
        assert cached(count, s, "test") == 0 and len(calls) == 4
    finally:
        s.close()
    s = Store(tmp_path / "c.duckdb")  # another Store object on the same file: nothing carried over
    try:
        assert cached(count, s, "test") == 0 and len(calls) == 5
    finally:
        s.close()
