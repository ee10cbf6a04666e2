"""AppTest of the Mine page against a real DuckDB file holding a finished mining run.

The run is seeded through core functions with the deterministic loopback teacher and student of
tests/test_mining.py (2 hard negatives, 1 both correct, 1 both wrong, 1 student only, 1 no answer),
plus a judge that prefers the teacher on the one both-correct pair.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import models
from core.steps.mine import mining
from core.store import Store
from tests.loopback import Loopback
from tests.minedata import STUDENT, TEACHER, VERDICTS, Script, pool, register
from tests.pagetest import clear_cached_store, fresh_page_store, open_page, shown  # noqa: F401


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def page() -> AppTest:
    return open_page("pages/mine.py")


@pytest.fixture
def mined(db_env, tmp_path) -> str:
    """A finished run on the 6-question pool, judged; the store is closed again afterwards."""
    store = Store(db_env)
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s, \
            Loopback("openai", Script("심판", verdicts={2: VERDICTS[1]})) as j:
        register(store, t, s, j)
        summary = mining.run(store, mining.MiningConfig(pool="kice", teacher="teacher", student="student",
                                                         judge="judge"))
    store.close()
    clear_cached_store()
    assert (summary["hard_negatives"], summary["judged_kept"]) == (2, 1)
    return summary["run"]


def values(arr) -> list:
    """A Plotly JSON array: a plain list, or {"dtype", "bdata"} (base64 of a typed array)."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).tolist()
    return list(arr)


def select(at: AppTest, label: str):
    return next(s for s in at.selectbox if s.label == label)


def test_empty_state_without_models(db_env, tmp_path):
    at = page()
    assert any("Needs first" in i.value for i in at.info)
    # A pool, but only the built-in local model: a teacher and a student are two models.
    store = Store(db_env)
    pool(store, tmp_path)
    assert [m["name"] for m in models.list_models(store)] == ["gemma3-270m-local"]
    store.close()
    clear_cached_store()
    at = page()
    assert any("Needs first" in i.value for i in at.info)
    assert not at.metric and not at.button and not at.selectbox


def test_no_finished_run_yet(db_env, tmp_path):
    store = Store(db_env)
    pool(store, tmp_path)
    models.add_model(store, "teacher", "gemini", "gemini-2.5-flash")
    models.add_model(store, "student", "openai", "qwen3-14b", base_url="http://127.0.0.1:9/v1")
    store.close()
    clear_cached_store()
    at = page()
    assert any(i.value == "No finished mining run yet." for i in at.info)
    assert [b.label for b in at.button] == ["Start mining"]
    assert select(at, "Teacher").value == "teacher"
    assert select(at, "Student").options == ["gemma3-270m-local", "teacher", "student"]
    assert any(w.value == "1 question(s) in 'kice' have no answer and cannot be mined: they will be skipped "
               "(listed, not sent to any model)."
               for w in at.warning)
    captions = [c.value for c in at.caption]
    assert any(c.startswith("teacher: 5 requests to send, 0 cached; ≈ ") for c in captions), captions
    assert select(at, "Student").value == "student"  # the Qwen3 model, as in the original project
    assert any(c.startswith("student: 5 requests to send, 0 cached; ≈ ") and c.endswith("output tokens, no API cost.")
               for c in captions), captions
    assert not at.metric


def test_results_metrics_chart_and_paths(mined):
    at = page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"teacher accuracy": "60.0%", "student accuracy": "40.0%", "hard negatives": "2",
                       "both ✓ (judge kept)": "1 (1)", "both ✗ / student only": "1 / 1"}
    assert ("K = 1, rule: majority of K; judge: judge; 1 question(s) without gold answers skipped. "
            "11 requests sent, 0 served from the cache.") in [c.value for c in at.caption]

    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 1
    bars = {t["name"]: dict(zip(t["x"], values(t["y"]))) for t in charts[0]["data"]}
    assert bars == {"teacher ✓ student ✗ (hard negative)": {"국어": 1, "한국사": 1}, "both ✓": {"국어": 1},
                    "both ✗": {"국어": 1}, "no gold answer": {"한국사": 1}, "teacher ✗ student ✓": {"한국사": 1}}
    assert charts[0]["layout"]["title"]["text"] == "Outcomes per subject (n = 6)"
    table = at.table[0].value
    assert list(table["subject"]) == ["국어", "한국사"]
    assert list(table["teacher ✓ student ✗ (hard negative)"]) == [1, 1]

    # The filters and the kept list (hard negatives + the judge-kept pair), first item opened.
    assert [s.label for s in at.selectbox][-6:] == ["Run", "Show", "Subject", "Student answered",
                                                    "Student wrong in (of K)", "Open one of 3"]
    assert select(at, "Show").value == "kept"
    assert select(at, "Subject").options == ["(all)", "국어", "한국사"]
    assert select(at, "Student answered").options == ["(any)", "③", "④"]  # choices as on the paper
    listed = at.dataframe[0].value
    assert list(listed["id"]) == ["1", "2", "4"] and list(listed["judge"]) == ["—", "teacher", "—"]
    assert [h.value for h in at.subheader] == ["Golden path · teacher", "Failed path · student"]
    md = " ".join(m.value for m in at.markdown)
    assert "교사 풀이 q1" in md and "학생 풀이 q1" in md
    assert any(c.value == "answer: ① · samples: ①" for c in at.caption)
    assert any(c.value == "answer: ④ · samples: ④" for c in at.caption)
    marked = [m.value for m in at.markdown if " · 정답" in m.value or "student's answer" in shown(m.value)]
    assert any(v.startswith(":green[") and v.endswith("· 정답") for v in marked), marked
    assert any(v.startswith(":orange[") and "student's answer" in shown(v) for v in marked), marked  # not green
    assert not any("(unknown)" in c.value for c in at.caption)

    # Open the judge-kept pair: the student's path and the verdict.
    select(at, "Open one of 3").select("2").run()
    assert not at.exception
    assert [h.value for h in at.subheader] == ["Golden path · teacher", "Student path · student"]
    assert any("Judge (judge): prefers **teacher**" in i.value for i in at.info)


def test_filters_narrow_the_list(mined):
    at = page()
    select(at, "Subject").select("한국사").run()
    assert list(at.dataframe[0].value["id"]) == ["4"]
    assert select(at, "Open one of 1").options == ["4"]
    select(at, "Subject").select("(all)").run()
    select(at, "Student answered").select("4").run()
    assert list(at.dataframe[0].value["id"]) == ["1"]
    select(at, "Student answered").select("(any)").run()
    select(at, "Show").select("both_wrong").run()
    assert not at.exception
    assert list(at.dataframe[0].value["id"]) == ["3"]
    assert [h.value for h in at.subheader] == ["Golden path · teacher", "Student path · student"]
    md = " ".join(m.value for m in at.markdown)
    assert "no correct teacher sample" in md and "학생 풀이 q3" in md  # both ✗: the student's mistake is shown
    assert any(c.value == "answer: ① · samples: ①" for c in at.caption)
    select(at, "Show").select("student_only").run()
    select(at, "Subject").select("국어").run()
    assert any(i.value == "Nothing here with these filters." for i in at.info)
    assert not at.subheader
    # The golden path of a question the teacher answered wrong is empty; the student's is shown.
    select(at, "Subject").select("(all)").run()
    assert list(at.dataframe[0].value["id"]) == ["5"]
    md = " ".join(m.value for m in at.markdown)
    assert "no correct teacher sample" in md and "no wrong student sample" in md
    assert any(c.value == "answer: no answer · samples: ④" for c in at.caption)


def test_estimate_follows_the_pool_and_student_chosen_before_starting(db_env, tmp_path):
    """The estimate under "Start mining" is of the run the form would start now: choosing another pool
    and student (nothing pressed yet) changes it; it once stayed on the defaults (5 questions of 'kice')."""
    from tests.minidata import import_mini

    store = Store(db_env)
    pool(store, tmp_path)
    import_mini(store, tmp_path, n=9, name="bigger")
    models.add_model(store, "teacher", "gemini", "gemini-2.5-flash")
    models.add_model(store, "student", "openai", "qwen3-14b", base_url="http://127.0.0.1:9/v1")
    models.add_model(store, "other", "openai", "qwen3-8b", base_url="http://127.0.0.1:9/v1")
    store.close()
    clear_cached_store()
    at = page()
    captions = [c.value for c in at.caption]
    assert any(c.startswith("student: 5 requests to send") for c in captions), captions
    select(at, "Question pool").set_value("bigger")
    select(at, "Student").set_value("other")
    at.run()
    captions = [c.value for c in at.caption]
    assert any(c.startswith("other: 9 requests to send, 0 cached") for c in captions), captions
    assert any(c.startswith("teacher: 9 requests to send, 0 cached") for c in captions), captions
    assert not any(c.startswith("student:") for c in captions), captions
    assert jobs_started(db_env) == []  # nothing was started to get there


def jobs_started(db) -> list:
    from core import jobs

    clear_cached_store()
    s = Store(db)
    try:
        return jobs.list_jobs(s)
    finally:
        s.close()
