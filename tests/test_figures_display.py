"""Issue 10, items 3, 5 and 13: answer choices are categories in a fixed order; points per subject."""

import json

import pytest

from core import figures
from core.steps.evaluate import evaluation, predictions
from tests.minidata import import_mini

ORDER = ["1", "2", "3", "4", "5", "none"]
TICKS = ["①", "②", "③", "④", "⑤", "no answer"]


@pytest.fixture
def predicted(store, tmp_path):
    """Six questions (gold 1,2,3,4,5,1); model M answers 5 and 'no answer' among others."""
    qids = import_mini(store, tmp_path, n=6, name="mini")
    predictions.save_predictions(store, "mini", "M", dict(zip(qids, [5, 5, None, 4, 5, None])), source="test")
    return store


def _axis_categories(axis) -> list[str]:
    assert axis.type == "category", f"axis type {axis.type!r}: numbers would drop 'none' and thin the ticks"
    assert axis.categoryorder == "array"
    return list(axis.categoryarray)


def test_position_chart_is_categorical_in_fixed_order(predicted):
    fig = figures.position_bars(evaluation.positions(predicted, "mini"))
    assert _axis_categories(fig.layout.xaxis) == ORDER
    assert list(fig.layout.xaxis.ticktext) == TICKS and list(fig.layout.xaxis.tickvals) == ORDER
    model = next(t for t in fig.data if t.name == "M")
    shares = dict(zip(model.x, model.y))
    assert shares["none"] == pytest.approx(2 / 6 * 100)  # unanswered replies are a bar, not hidden
    assert shares["5"] == pytest.approx(3 / 6 * 100)
    # Rendered by plotly.js the way the browser does: all six ticks in order, not "2" and "4" only.
    full = json.loads(fig.to_json())
    assert full["layout"]["xaxis"]["categoryarray"] == ORDER


def test_confusion_matrix_keeps_five_and_none_columns(predicted):
    conf = evaluation.confusion(predicted, "mini", "M")
    heat = figures.confusion_heatmap(conf)
    assert _axis_categories(heat.layout.xaxis) == ORDER
    assert _axis_categories(heat.layout.yaxis) == ORDER[:5]
    assert list(heat.layout.xaxis.ticktext) == TICKS
    assert list(heat.layout.yaxis.ticktext) == TICKS[:5]
    assert heat.layout.yaxis.autorange == "reversed"  # ① on top, as a table reads
    z = [list(r) for r in heat.data[0].z]
    assert [row[4] for row in z] == [1, 1, 0, 0, 1]  # the "5" column: gold 1, 2 and 5 answered 5
    assert [row[5] for row in z] == [1, 0, 1, 0, 0]  # the "none" column


def test_subject_bar_labels_are_not_clipped(predicted):
    rep = evaluation.report(predicted, "mini")
    fig = figures.subject_bars(rep)
    assert all(t.cliponaxis is False for t in fig.data)
    assert fig.layout.yaxis.range[1] > 105


def test_points_and_max_points_per_subject(predicted):
    rep = evaluation.report(predicted, "mini")
    sub = rep["models"][0]["by_subject"]["국어"]
    assert (sub["correct"], sub["points"], sub["max_points"]) == (2, 4.0, 12.0)  # 2 points each
    rows = evaluation.report_rows(rep)
    per_subject = next(r for r in rows if r["subject"] == "국어")
    assert (per_subject["points"], per_subject["max_points"]) == (4.0, 12.0)
