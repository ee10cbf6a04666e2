"""What a page reads when it is drawn again with nothing written in between: nothing from the store.

Pages read through pages/_ui.py:cached, keyed on store.writes. Listing jobs (every step page's job
panel, Home's recent jobs) used to write on every call — an UPDATE of no row, marking dead run
records — which bumped store.writes and so made every cached read of every page run again on every
click. And a chart's escaped copy (core/figures.py:escape_figure, a rebuild of the whole figure) is
made once per figure a page keeps, not on every render.
"""

from __future__ import annotations

from datetime import datetime

from streamlit.testing.v1 import AppTest

from core import jobs
from core.store import Store
from tests.pagetest import ROOT, fresh_page_store  # noqa: F401 - the autouse fixture: one Store per test


def test_listing_jobs_writes_nothing_when_no_run_is_left_running(store):
    from pages._ui import cached

    calls = []

    def count(s):
        calls.append(1)
        return len(calls)

    assert cached(count, store) == 1
    before = store.writes
    jobs.list_jobs(store)
    jobs.list_jobs(store, "mine", limit=5)
    assert store.writes == before  # nothing to mark: no write, so the page's cache stays valid
    assert cached(count, store) == 1 and calls == [1]

    # a run record whose job died with its process still reads as interrupted (and that is a write)
    store.execute("INSERT INTO runs (id, step, config, config_hash, code_version, state, job_id) "
                  "VALUES ('r-dead', 'mine', '{}', 'h', 'v', 'running', 'job-gone')")
    store.execute("INSERT INTO jobs (id, kind, label, state, started_at, updated_at) "
                  "VALUES ('job-gone', 'mine', 'old', 'running', ?, ?)", [datetime.now(), datetime.now()])
    written = store.writes
    jobs.list_jobs(store)
    assert store.scalar("SELECT state FROM runs WHERE id = 'r-dead'") == "interrupted"
    assert store.writes > written


def _counting(monkeypatch) -> list[str]:
    """Every query a page sends through the Store, and every chart it escapes, from now on."""
    import core.figures

    seen: list[str] = []
    for name in ("rows", "scalar", "df"):
        original = getattr(Store, name)

        def counted(self, sql, params=None, _original=original):
            seen.append(" ".join(sql.split())[:80])
            return _original(self, sql, params)

        monkeypatch.setattr(Store, name, counted)
    escape = core.figures.escape_figure
    monkeypatch.setattr(core.figures, "escape_figure", lambda fig: seen.append("escape_figure") or escape(fig))
    return seen


def test_the_data_page_drawn_again_reads_nothing(db_env, monkeypatch):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    next(b for b in at.button if b.label == "Load sample data").click()
    at.run()  # Home's button: the bundled samples, through the page process's own Store
    assert not at.exception, at.exception
    at.switch_page("pages/data.py")
    at.run()  # the first render reads and draws the subject chart
    assert not at.exception, at.exception
    at.switch_page("pages/home.py")
    at.run()  # Home lists jobs (which wrote on every call)
    at.switch_page("pages/data.py")
    seen = _counting(monkeypatch)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data" and at.get("plotly_chart")
    assert seen == []  # sidebar status, tables, the chart, browse and delete plan all from the cache


def test_a_chart_kept_by_the_page_is_escaped_once():
    import plotly.graph_objects as go

    from pages._ui import escaped_figure

    fig = go.Figure(go.Bar(x=["<b>국어</b>"], y=[1]))
    first = escaped_figure(fig)
    assert escaped_figure(fig) is first  # the same figure object: the copy made before
    assert first.data[0].x[0] != "<b>국어</b>"  # escaped, not the raw label
    other = go.Figure(go.Bar(x=["<b>국어</b>"], y=[2]))
    assert escaped_figure(other) is not first and escaped_figure(other).data[0].y[0] == 2
