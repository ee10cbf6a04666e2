"""AppTest of the Evaluate page against a real DuckDB file seeded through core functions."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.steps.data import datasets
from core.steps.evaluate import evaluation, predictions
from core.store import Store
from tests.evaldata import PRED_A, PRED_B, UNLABELLED, boostcamp_file, kice_set, pred_csv
from tests.pagetest import clear_cached_store, fresh_page_store, open_page, shown  # noqa: F401


def page() -> AppTest:
    return open_page("pages/evaluate.py")


def seed_scored(db_env, tmp_path) -> dict:
    """The KICE set of test_evaluation with predictions A and B; returns the A-vs-B comparison."""
    s = Store(db_env)
    kice_set(s, tmp_path)
    predictions.import_predictions(s, "kice", pred_csv(tmp_path, "a", PRED_A), "A")
    predictions.import_predictions(s, "kice", pred_csv(tmp_path, "b", PRED_B), "B")
    cmp = evaluation.compare(s, "kice", "A", "B")  # the page's defaults: 10,000 resamples, seed 0
    s.close()
    clear_cached_store()
    return cmp


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_empty_state_without_datasets(db_env):
    at = page()
    assert [i.value for i in at.info] == [
        "Accuracy, macro-F1 and CSAT points per subject against the base model, with paired significance.\n\n"
        "**Needs first:** a test set (Data page)."]
    assert not at.table and not at.get("plotly_chart")


def test_dataset_without_predictions(db_env, tmp_path):
    s = Store(db_env)
    kice_set(s, tmp_path)
    s.close()
    clear_cached_store()
    at = page()
    assert any("No predictions on this set yet" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_report_table_and_charts(db_env, tmp_path):
    seed_scored(db_env, tmp_path)
    at = page()
    assert at.header[0].value == "Report"
    report = at.table[0].value
    assert list(report["model"]) == ["A", "B"]
    assert list(report["correct"]) == [2, 7]
    assert list(report["accuracy"]) == ["25.00%", "87.50%"]
    assert list(report["macro-F1"]) == ["0.178", "0.760"]
    assert list(report["CSAT points"]) == ["5 / 18", "15 / 18"]
    assert list(report["unanswered"]) == [2, 0]
    subjects = at.table[1].value
    assert list(subjects["subject"]) == ["국어", "한국사"] and list(subjects["A"]) == ["20.00%", "33.33%"]
    # One chart at a time (three made the page slow to draw): by subject first, the others on request.
    [bars] = charts(at)
    assert [t["name"] for t in bars["data"]] == ["A", "B"]
    assert bars["data"][0]["x"] == ["국어 (n=5)", "한국사 (n=3)", "전체 (n=8)"]
    assert bars["data"][1]["y"] == pytest.approx([100.0, 200 / 3, 87.5])
    # The metric switch redraws the subject chart with macro-F1.
    next(r for r in at.radio if r.label == "Metric").set_value("macro_f1").run()
    assert not at.exception
    assert charts(at)[0]["data"][0]["y"] == pytest.approx([100 / 12, 20.0, 800 / 45])
    chart_switch = next(r for r in at.radio if r.label == "Chart")
    chart_switch.set_value("answer positions").run()
    [positions] = charts(at)
    assert [t["name"] for t in positions["data"]] == ["gold", "A", "B"]
    # the position chart's count labels collided in half the page: it has the full width, in no column
    assert not [c for col in at.columns for c in col.get("plotly_chart")]
    next(r for r in at.radio if r.label == "Chart").set_value("confusion matrix").run()
    [heat] = charts(at)
    assert heat in [json.loads(c.proto.spec) for col in at.columns for c in col.get("plotly_chart")]
    assert heat["data"][0]["z"] == evaluation_matrix_a()
    # the confusion matrix follows the model chosen
    next(s for s in at.selectbox if s.label == "Confusion matrix for").set_value("B").run()
    assert charts(at)[0]["data"][0]["z"][3] == [1, 0, 0, 0, 0, 0]
    assert [b.label for b in at.get("download_button")] == ["Report CSV"]


def evaluation_matrix_a() -> list[list[int]]:
    return [[0, 2, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 2], [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0]]


def test_compare_section(db_env, tmp_path):
    cmp = seed_scored(db_env, tmp_path)
    at = page()
    assert [h.value for h in at.header] == ["Report", "Compare", "Gold labels by majority vote"]
    bt = cmp["bootstrap"]
    assert [(m.label, m.value, m.delta) for m in at.metric] == [
        ("B accuracy", "87.50%", "62.5"),  # numeric deltas: arrow and colour follow the sign
        ("fixed / broken", "6 / 1", "5"),
        ("McNemar exact p", "0.1250", ""),
        ("95% CI of the difference", f"[{bt['low'] * 100:+.1f}, {bt['high'] * 100:+.1f}] %p", ""),
    ]
    assert any(c.value.startswith("n = 8; bootstrap over 4 passages") for c in at.caption)
    per_subject = at.table[2].value
    assert list(per_subject["fixed"]) == [4, 2] and list(per_subject["broken"]) == [0, 1]
    assert list(per_subject["p (Holm)"]) == ["0.250", "1.000"]
    question = next(s for s in at.selectbox if s.label == "Question")
    assert question.options == ["1 · 국어 · 정답 1, A: 2, B: 1", "2 · 국어 · 정답 3, A: no answer, B: 3",
                                "3 · 국어 · 정답 5, A: 4, B: 5", "4 · 국어 · 정답 2, A: 1, B: 2",
                                "7 · 한국사 · 정답 1, A: 2, B: 1", "8 · 한국사 · 정답 3, A: no answer, B: 3"]
    assert question.value == "1"
    assert any("\\[q1\\] 윗글에 대한 설명" in m.value for m in at.markdown)  # the question, escaped
    next(r for r in at.radio if r.label == "Questions").set_value("broken").run()
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Question").options == ["6 · 한국사 · 정답 4, A: 4, B: 1"]
    assert [c.value for c in at.caption].count("Imported predictions carry no reasoning.") == 2
    # Swapping A and B swaps the verdict.
    next(s for s in at.selectbox if s.label == "B (candidate)").set_value("A").run()
    next(s for s in at.selectbox if s.label == "A (baseline)").set_value("B").run()
    assert not at.exception
    assert [(m.label, m.value) for m in at.metric][:2] == [("A accuracy", "25.00%"), ("fixed / broken", "1 / 6")]


def test_vote_and_write_labels(db_env, tmp_path):
    s = Store(db_env)
    datasets.import_file(s, boostcamp_file(tmp_path, UNLABELLED, "unl.csv"), "unl", "test")
    predictions.save_predictions(s, "unl", "m1", {"u1": 1, "u2": 2, "u3": 1, "u4": None, "u5": 4},
                                 source="engine", votes={"u1": [1, 1, 2]})
    predictions.import_predictions(s, "unl", pred_csv(tmp_path, "m2", {"u1": 1, "u2": 2, "u3": 2, "u5": 4}), "m2")
    predictions.import_predictions(s, "unl", pred_csv(tmp_path, "m3", {"u1": 1, "u2": 3, "u5": 4}), "m3")
    s.close()
    clear_cached_store()
    at = page()
    # No gold answers yet: the page says so and goes on to the vote (no comparison to draw).
    assert any("no gold answers yet" in w.value for w in at.warning)
    assert "Compare" not in [h.value for h in at.header]
    assert next(b for b in at.button if b.label == "Vote").disabled
    at.multiselect[0].set_value(["m1", "m2", "m3"]).run()
    next(b for b in at.button if b.label == "Vote").click().run()
    assert not at.exception
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_kappa

    kappa = sm_kappa([[0, 0, 2, 1, 0, 0], [0, 0, 0, 0, 3, 0]])  # u2 and u5: the items with 3 votes each
    expected = f"3/5 labelled, 1 unanimous, 1 ties, mean agreement 82.22%; Fleiss' κ {kappa:.3f} over 2 questions."
    assert any(m.value == expected for m in at.markdown), [m.value for m in at.markdown]
    settle = {n.key: n for n in at.number_input if (n.key or "").startswith("settle-")}
    assert sorted(settle) == ["settle-u1", "settle-u2", "settle-u3", "settle-u4"]
    assert [settle[k].value for k in sorted(settle)] == [1, 2, 0, 0]
    assert settle["settle-u3"].label == "u3: votes {1: 1, 2: 1}"
    settle["settle-u3"].set_value(2).run()
    next(b for b in at.button if b.label == "Write labels as gold answers").click().run()
    assert not at.exception
    assert [x.value for x in at.success] == ["Wrote 4 gold answers (1 settled by hand)."]
    from core.config import db_path
    from pages._ui import _open_store
    got = {r["qid"]: (r["answer"], r["answer_source"]) for r in _open_store(str(db_path())).rows(
        "SELECT qid, answer, answer_source FROM questions WHERE dataset = 'unl'")}
    assert got == {"u1": (1, "vote"), "u2": (2, "vote"), "u3": (2, "person"), "u4": (None, None), "u5": (4, "vote")}
    # The set now has gold answers: the report scores the voters on them and the comparison appears.
    assert list(at.table[0].value["correct"]) == [3, 4, 2]
    assert "Compare" in [h.value for h in at.header]


def test_score_a_slice_from_the_form_and_see_it_in_the_report(db_env, tmp_path, monkeypatch):
    """The run form has the slice (first N, subject): the estimate follows it before Run is pressed, and a
    sliced prediction set shows in the report as a slice, scored on its own n."""
    from core import models
    from core.jobs import JobContext
    from core.steps.evaluate import eval_run
    from tests.loopback import Loopback, Reply

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    s = Store(db_env)
    kice_set(s, tmp_path)
    predictions.import_predictions(s, "kice", pred_csv(tmp_path, "b", PRED_B), "B")
    with Loopback("openai", lambda n, body: Reply(text='검토한다.\n{"Answer":"4"}')) as srv:
        models.add_model(s, "fake", "openai", "fake-model", base_url=srv.base_url, params={"max_retries": 0})
        summary = eval_run.run(s, eval_run.EvalConfig(dataset="kice", model="fake", subject="한국사", limit=2),
                                    JobContext.local())
    assert (summary["label"], summary["slice"], summary["questions"]) == ("fake [first 2 · 한국사]", "first 2 · 한국사", 2)
    s.close()
    clear_cached_store()
    at = page()
    report = at.table[0].value
    assert [shown(v) for v in report["model"]] == ["B", "fake [first 2 · 한국사]"]
    assert [shown(v) for v in report["slice"]] == ["whole set", "first 2 · 한국사"]
    assert list(report["n"]) == [8, 2] and list(report["correct"]) == [7, 1]  # q6 (정답 4) right, q7 wrong
    assert any(c.value.startswith("A slice (Run with") for c in at.caption)
    # The set has predictions: "Add predictions" is folded, and its form is not even built until opened.
    assert not [x for x in at.selectbox if x.label == "Model"]
    at.session_state["eval-add"] = True  # what a click on the expander sets (on_change="rerun")
    at.run()
    # The form: the estimate follows the model and slice on screen, nothing pressed.
    next(x for x in at.selectbox if x.label == "Model").set_value("fake")
    at.run()
    assert any(c.value.startswith("6 requests to send, 2 cached") for c in at.caption), [c.value for c in at.caption]
    next(x for x in at.selectbox if x.label == "Subject").set_value("국어")
    next(x for x in at.text_input if x.label == "First N questions").input("3")
    at.run()
    assert any(c.value.startswith("3 requests to send, 0 cached") for c in at.caption), [c.value for c in at.caption]
    assert next(x for x in at.selectbox if x.label == "Subject").options == ["(all subjects)", "국어", "한국사"]
