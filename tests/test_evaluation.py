"""Evaluation: predictions (CSV import, engine runs, gold votes), reports, paired comparisons, figures, `eval` CLI.

Every expected number below is computed by hand from the small sets defined here, and cross-checked
against sklearn / scipy / statsmodels where a reference implementation exists.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score
from statsmodels.stats.multitest import multipletests

from core import figures, models, stats
from core.cli import main
from core.errors import CoreError, ImportFailed, NotFound
from core.steps.data import datasets
from core.steps.evaluate import evaluation, gold_labels, predictions
from core.store import Store
from tests.evaldata import (
    C4,
    C5,
    GOLD,
    PASSAGE,
    PRED_A,
    PRED_B,
    UNLABELLED,
    boostcamp_file,
    kice_set,
    pred_csv,
    write_csv,
)
from tests.loopback import Loopback, Reply

BOOST = [("b1", "지문 A", C5, 2, "국어"), ("b2", "지문 A", C5, 5, "국어"), ("b3", "지문 B", C4, 4, "사회·문화"),
         ("b4", "지문 C", C4, 1, "사회·문화"), ("b5", "지문 C", C4, None, "사회·문화")]


@pytest.fixture
def scored(store, tmp_path):
    """The KICE set with predictions A and B imported from CSV."""
    kice_set(store, tmp_path)
    ra = predictions.import_predictions(store, "kice", pred_csv(tmp_path, "a", PRED_A), "A")
    rb = predictions.import_predictions(store, "kice", pred_csv(tmp_path, "b", PRED_B), "B")
    assert (ra.stored, ra.missing, ra.unknown_ids) == (7, 1, [])
    assert (rb.stored, rb.missing, rb.unknown_ids) == (8, 0, [])
    return store


def rounded(obj, nd: int = 9):
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, dict):
        return {k: rounded(v, nd) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v, nd) for v in obj]
    return obj


def sk_f1(gold: list[int], pred: list[int | None]) -> float:
    return f1_score(gold, [0 if p is None else p for p in pred], average="macro", zero_division=0)


REPORT_A = {"model": "A", "questions": 8, "correct": 2, "accuracy": 0.25, "macro_f1": 8 / 45,
            "points": 5.0, "max_points": 18.0, "unanswered": 2, "errors": 0,
            "by_subject": {"국어": {"questions": 5, "correct": 1, "accuracy": 0.2, "macro_f1": 1 / 12,
                                  "points": 2.0, "max_points": 11.0},
                           "한국사": {"questions": 3, "correct": 1, "accuracy": 1 / 3, "macro_f1": 0.2,
                                   "points": 3.0, "max_points": 7.0}}, "slice": None}
REPORT_B = {"model": "B", "questions": 8, "correct": 7, "accuracy": 0.875, "macro_f1": 0.76,
            "points": 15.0, "max_points": 18.0, "unanswered": 0, "errors": 0,
            "by_subject": {"국어": {"questions": 5, "correct": 5, "accuracy": 1.0, "macro_f1": 1.0,
                                  "points": 11.0, "max_points": 11.0},
                           "한국사": {"questions": 3, "correct": 2, "accuracy": 2 / 3, "macro_f1": 5 / 9,
                                   "points": 4.0, "max_points": 7.0}}, "slice": None}


# ---- reports ---------------------------------------------------------------------------------------


def test_report_exact_values(scored):
    rep = evaluation.report(scored, "kice")
    assert rep["dataset"] == "kice" and rep["questions"] == 8
    assert [m["model"] for m in rep["models"]] == ["A", "B"]
    for got, want in zip(rep["models"], (REPORT_A, REPORT_B)):
        assert rounded({k: got[k] for k in want}) == rounded(want)
        assert got["truncated"] == 0
    # macro-F1 is sklearn's macro average with "no answer" as its own label 0.
    order = sorted(GOLD, key=int)
    gold = [GOLD[q] for q in order]
    for m, pred in (("A", PRED_A), ("B", PRED_B)):
        row = next(r for r in rep["models"] if r["model"] == m)
        assert row["macro_f1"] == pytest.approx(sk_f1(gold, [pred.get(q) for q in order]))
        for subject, qids in (("국어", order[:5]), ("한국사", order[5:])):
            assert row["by_subject"][subject]["macro_f1"] == pytest.approx(
                sk_f1([GOLD[q] for q in qids], [pred.get(q) for q in qids]))


def test_missing_prediction_and_blank_both_count_unanswered(scored):
    rows = {r["qid"]: r for r in scored.rows("SELECT * FROM predictions WHERE model = 'A'")}
    assert set(rows) == set(PRED_A)  # q8 was not in the file: no row, still scored as unanswered
    assert rows["2"]["answer"] is None and rows["2"]["votes"] is None
    assert predictions.list_runs(scored, "kice")[0] | {"created_at": None} == {
        "dataset": "kice", "model": "A", "source": "import", "detail": "a.csv", "created_at": None}


def test_all_wrong(store, tmp_path):
    kice_set(store, tmp_path)
    wrong = {q: (a % 4) + 1 for q, a in GOLD.items()}  # every answer shifted by one
    predictions.import_predictions(store, "kice", pred_csv(tmp_path, "w", wrong), "W")
    (m,) = evaluation.report(store, "kice")["models"]
    assert (m["correct"], m["accuracy"], m["macro_f1"], m["points"], m["max_points"], m["unanswered"]) == (
        0, 0.0, 0.0, 0.0, 18.0, 0)
    assert all(v["correct"] == 0 and v["accuracy"] == 0.0 for v in m["by_subject"].values())


def test_set_without_points_reports_null_points(store, tmp_path):
    datasets.import_file(store, boostcamp_file(tmp_path, BOOST, "boost.csv"), "boost", "test")
    predictions.import_predictions(store, "boost", pred_csv(tmp_path, "m", {"b1": 2, "b2": 5, "b3": 3, "b4": None,
                                                                            "b5": 1}), "M")
    predictions.import_predictions(store, "boost", pred_csv(tmp_path, "n", {"b1": 1, "b2": 5, "b3": 4, "b4": 1,
                                                                            "b5": 2}), "N")
    rep = evaluation.report(store, "boost")
    assert rep["questions"] == 4  # b5 has no gold answer
    m, n = rep["models"]
    assert rounded({k: m[k] for k in REPORT_A}) == rounded({
        "model": "M", "questions": 4, "correct": 2, "accuracy": 0.5, "macro_f1": 1 / 3, "points": None,
        "max_points": None, "unanswered": 1, "errors": 0,
        "by_subject": {"국어": {"questions": 2, "correct": 2, "accuracy": 1.0, "macro_f1": 1.0,
                              "points": None, "max_points": None},
                       "사회·문화": {"questions": 2, "correct": 0, "accuracy": 0.0, "macro_f1": 0.0,
                                 "points": None, "max_points": None}}, "slice": None})
    assert (n["correct"], n["points"], n["unanswered"]) == (3, None, 0)
    c = evaluation.compare(store, "boost", "M", "N", n_resamples=500)
    # Boostcamp rows sharing paragraph text share a passage: 3 clusters for 4 scored questions.
    assert (c["bootstrap"]["n"], c["bootstrap"]["n_clusters"]) == (4, 3)
    assert [i["qid"] for i in c["fixed"]] == ["b3", "b4"] and [i["qid"] for i in c["broken"]] == ["b1"]


def test_positions_and_confusion(scored):
    rows = evaluation.positions(scored, "kice")
    by = {(r["who"], r["choice"]): r["count"] for r in rows}
    assert [by[("gold", c)] for c in range(1, 6)] == [2, 2, 2, 1, 1]
    assert [by[("A", c)] for c in (1, 2, 3, 4, 5, "none")] == [1, 3, 0, 2, 0, 2]
    assert [by[("B", c)] for c in (1, 2, 3, 4, 5, "none")] == [3, 2, 2, 0, 1, 0]
    assert ("gold", "none") not in by and {r["n"] for r in rows} == {8}
    conf = evaluation.confusion(scored, "kice", "A")
    assert conf["matrix"] == [[0, 2, 0, 0, 0, 0],
                              [1, 1, 0, 0, 0, 0],
                              [0, 0, 0, 0, 0, 2],
                              [0, 0, 0, 1, 0, 0],
                              [0, 0, 0, 1, 0, 0]]
    assert (conf["n"], conf["gold"], conf["predicted"]) == (8, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, "none"])
    with pytest.raises(NotFound):
        evaluation.confusion(scored, "kice", "nobody")


def test_report_rows(scored):
    rows = evaluation.report_rows(evaluation.report(scored, "kice"))
    assert [(r["model"], r["subject"], r["questions"], r["correct"]) for r in rows] == [
        ("A", "(all)", 8, 2), ("A", "국어", 5, 1), ("A", "한국사", 3, 1),
        ("B", "(all)", 8, 7), ("B", "국어", 5, 5), ("B", "한국사", 3, 2)]
    assert rows[0] == {"model": "A", "subject": "(all)", "questions": 8, "correct": 2, "accuracy": 0.25,
                       "macro_f1": pytest.approx(8 / 45), "points": 5.0, "max_points": 18.0, "unanswered": 2}


# ---- compare ---------------------------------------------------------------------------------------


def test_compare_paired_statistics(scored):
    c = evaluation.compare(scored, "kice", "A", "B", n_resamples=2000, seed=11)
    assert (c["questions"], c["accuracy_a"], c["accuracy_b"]) == (8, 0.25, 0.875)
    assert c["mcnemar"] == {"n": 8, "both_correct": 1, "a_only": 1, "b_only": 6, "both_wrong": 0,
                            "p_value": pytest.approx(0.125)}
    assert c["mcnemar"]["p_value"] == pytest.approx(binomtest(1, 7, 0.5).pvalue)
    # Clusters are the passages: 4 of them, and the CI is the clustered bootstrap, reproducible by seed.
    order = sorted(GOLD, key=int)
    ok_a = [PRED_A.get(q) == GOLD[q] for q in order]
    ok_b = [PRED_B.get(q) == GOLD[q] for q in order]
    expected = stats.paired_bootstrap_ci(ok_a, ok_b, [PASSAGE[q] for q in order], n_resamples=2000, seed=11)
    assert c["bootstrap"] == expected
    assert (c["bootstrap"]["n_clusters"], c["bootstrap"]["diff"]) == (4, 0.625)
    assert c["bootstrap"]["low"] <= 0.625 <= c["bootstrap"]["high"]
    assert evaluation.compare(scored, "kice", "A", "B", n_resamples=2000, seed=11)["bootstrap"] == c["bootstrap"]
    # Per subject: 국어 4 fixed / 0 broken, 한국사 2 fixed / 1 broken; Holm as statsmodels computes it.
    subj = c["by_subject"]
    assert [(r["subject"], r["questions"], r["fixed"], r["broken"]) for r in subj] == [
        ("국어", 5, 4, 0), ("한국사", 3, 2, 1)]
    assert [r["diff"] for r in subj] == pytest.approx([0.8, 1 / 3])
    assert [r["p_value"] for r in subj] == pytest.approx([binomtest(0, 4).pvalue, binomtest(1, 3).pvalue])
    assert [r["p_value"] for r in subj] == pytest.approx([0.125, 1.0])
    holm = multipletests([r["p_value"] for r in subj], method="holm")[1]
    assert [r["p_holm"] for r in subj] == pytest.approx(list(holm))
    assert [r["p_holm"] for r in subj] == pytest.approx([0.25, 1.0])
    assert c["fixed"] == [
        {"qid": "1", "subject": "국어", "answer": 1, "a": 2, "b": 1},
        {"qid": "2", "subject": "국어", "answer": 3, "a": None, "b": 3},
        {"qid": "3", "subject": "국어", "answer": 5, "a": 4, "b": 5},
        {"qid": "4", "subject": "국어", "answer": 2, "a": 1, "b": 2},
        {"qid": "7", "subject": "한국사", "answer": 1, "a": 2, "b": 1},
        {"qid": "8", "subject": "한국사", "answer": 3, "a": None, "b": 3},
    ]
    assert c["broken"] == [{"qid": "6", "subject": "한국사", "answer": 4, "a": 4, "b": 1}]
    # The other direction swaps fixed and broken.
    r = evaluation.compare(scored, "kice", "B", "A", n_resamples=200)
    assert [i["qid"] for i in r["broken"]] == ["1", "2", "3", "4", "7", "8"] and [i["qid"] for i in r["fixed"]] == ["6"]
    with pytest.raises(NotFound, match="no predictions 'C'"):
        evaluation.compare(scored, "kice", "A", "C")


# ---- predictions CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    ("qid,pred\n1,2\n", "needs columns id,answer"),
    ("", "bad.csv is empty"),
    ("id,answer\n", "has no predictions"),
    ("id,answer\n1,2\n2,7\n", "1 bad row(s)"),
    ("id,answer\n1,2\n1,3\n", "1 bad row(s)"),
    ("id,answer\n1,x\n,2\n", "2 bad row(s)"),
    ("id,answer\n99,1\nzz,2\n", "none of the 2 ids in bad.csv are in dataset 'kice'"),
])
def test_bad_predictions_csv_stores_nothing(scored, tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFailed, match=re.escape(message)):
        predictions.import_predictions(scored, "kice", bad, "A")
    # The failed import under an existing label leaves that label's predictions as they were.
    assert scored.scalar("SELECT count(*) FROM predictions WHERE model = 'A'") == 7
    assert scored.scalar("SELECT count(*) FROM predictions") == 15
    assert [r["detail"] for r in predictions.list_runs(scored, "kice")] == ["a.csv", "b.csv"]


def test_bad_rows_are_listed(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [["1", "2"], ["2", "7"], ["1", "3"], ["", "1"], ["4", "0"]])
    with pytest.raises(ImportFailed) as exc:
        predictions.read_predictions_csv(bad)
    assert [(i.where, i.message) for i in exc.value.issues] == [
        ("row 2", "answer 7 is not 1–5"), ("row 3", "duplicate id '1'"), ("row 4", "id is empty"),
        ("row 5", "answer 0 is not 1–5")]


def test_csv_reading_is_forgiving_where_it_is_safe(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("\ufeffID, Answer\n1,③\n2,  \n3,4.0\n", encoding="utf-8")
    assert predictions.read_predictions_csv(path) == {"1": 3, "2": None, "3": 4}


def test_unknown_ids_reported_rest_stored(store, tmp_path):
    kice_set(store, tmp_path)
    r = predictions.import_predictions(store, "kice", pred_csv(tmp_path, "c", {"1": 1, "99": 2, "2": 3, "zz": 1}), "C")
    assert (r.stored, r.unknown_ids, r.missing) == (2, ["99", "zz"], 6)
    assert store.rows("SELECT qid, answer FROM predictions ORDER BY qid") == [
        {"qid": "1", "answer": 1}, {"qid": "2", "answer": 3}]
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        predictions.import_predictions(store, "nope", pred_csv(tmp_path, "c", {"1": 1}), "C")


def test_reimport_replaces_and_delete(scored, tmp_path):
    predictions.import_predictions(scored, "kice", pred_csv(tmp_path, "a2", {"1": 1}), "A")
    assert scored.rows("SELECT qid, answer FROM predictions WHERE model = 'A'") == [{"qid": "1", "answer": 1}]
    predictions.delete_predictions(scored, "kice", "A")
    assert [m["model"] for m in evaluation.report(scored, "kice")["models"]] == ["B"]
    with pytest.raises(NotFound):
        predictions.delete_predictions(scored, "kice", "A")


# ---- gold labels by vote ---------------------------------------------------------------------------

@pytest.fixture
def voted(store, tmp_path):
    """An unlabelled set with three voters: m1 from the engine (3 samples on u1), m2 and m3 imported."""
    datasets.import_file(store, boostcamp_file(tmp_path, UNLABELLED, "unl.csv"), "unl", "test")
    predictions.save_predictions(store, "unl", "m1", {"u1": 1, "u2": 2, "u3": 1, "u4": None, "u5": 4},
                                 source="engine", votes={"u1": [1, 1, 2]})
    predictions.import_predictions(store, "unl", pred_csv(tmp_path, "m2", {"u1": 1, "u2": 2, "u3": 2, "u4": None,
                                                                           "u5": 4}), "m2")
    predictions.import_predictions(store, "unl", pred_csv(tmp_path, "m3", {"u1": 1, "u2": 3, "u3": None, "u5": 4}),
                                   "m3")
    return store


def test_vote_gold_labels_ties_and_agreement(voted):
    v = gold_labels.vote_gold_labels(voted, "unl", ["m1", "m2", "m3"])
    assert {k: v[k] for k in ("dataset", "voters", "questions", "labelled", "ties", "no_votes", "unanimous")} == {
        "dataset": "unl", "voters": ["m1", "m2", "m3"], "questions": 5, "labelled": 3, "ties": 1, "no_votes": 1,
        "unanimous": 1}
    assert v["mean_agreement"] == pytest.approx((4 / 5 + 2 / 3 + 1) / 3)
    assert rounded(v["disagreements"], 6) == rounded([
        {"qid": "u1", "label": 1, "agreement": 0.8, "votes": {1: 4, 2: 1}, "tie": False, "n": 5},
        {"qid": "u2", "label": 2, "agreement": 2 / 3, "votes": {2: 2, 3: 1}, "tie": False, "n": 3},
        {"qid": "u3", "label": None, "agreement": 0.5, "votes": {1: 1, 2: 1}, "tie": True, "n": 2},
        {"qid": "u4", "label": None, "agreement": 0.0, "votes": {}, "tie": False, "n": 0},
    ], 6)
    stored = {r["qid"]: r for r in voted.rows("SELECT * FROM gold_votes WHERE dataset = 'unl'")}
    assert (stored["u3"]["label"], stored["u3"]["tie"], json.loads(stored["u3"]["votes"])) == (None, True,
                                                                                               {"1": 1, "2": 1})
    assert (stored["u5"]["label"], stored["u5"]["agreement"], stored["u5"]["voters"]) == (4, 1.0, ["m1", "m2", "m3"])
    # Voting again with fewer voters replaces the stored votes.
    v2 = gold_labels.vote_gold_labels(voted, "unl", ["m3"])
    assert (v2["labelled"], v2["no_votes"], v2["unanimous"]) == (3, 2, 3)
    assert voted.scalar("SELECT count(*) FROM gold_votes WHERE dataset = 'unl'") == 5
    with pytest.raises(ImportFailed):
        gold_labels.vote_gold_labels(voted, "unl", [])


def test_apply_gold_labels_keeps_sources(voted):
    gold_labels.vote_gold_labels(voted, "unl", ["m1", "m2", "m3"])
    assert gold_labels.apply_gold_labels(voted, "unl", {"u3": 2}) == 4
    got = {r["qid"]: (r["answer"], r["answer_source"]) for r in voted.rows(
        "SELECT qid, answer, answer_source FROM questions WHERE dataset = 'unl'")}
    assert got == {"u1": (1, "vote"), "u2": (2, "vote"), "u3": (2, "person"), "u4": (None, None), "u5": (4, "vote")}
    rep = evaluation.report(voted, "unl")
    assert rep["questions"] == 4
    assert {m["model"]: m["correct"] for m in rep["models"]} == {"m1": 3, "m2": 4, "m3": 2}


def test_votes_never_overwrite_file_or_person_answers(voted):
    voted.execute("UPDATE questions SET answer = 3, answer_source = 'file' WHERE dataset = 'unl' AND qid = 'u1'")
    gold_labels.vote_gold_labels(voted, "unl", ["m1", "m2", "m3"])
    gold_labels.apply_gold_labels(voted, "unl", {"u3": 2})
    gold_labels.apply_gold_labels(voted, "unl")  # a second vote pass must keep the person's label too
    got = {r["qid"]: (r["answer"], r["answer_source"]) for r in voted.rows(
        "SELECT qid, answer, answer_source FROM questions WHERE dataset = 'unl'")}
    assert got["u1"] == (3, "file") and got["u3"] == (2, "person") and got["u2"] == (2, "vote")
    with pytest.raises(NotFound):
        gold_labels.vote_gold_labels(voted, "unl", ["m1", "nobody"])


def test_apply_gold_labels_min_agreement(voted):
    gold_labels.vote_gold_labels(voted, "unl", ["m1", "m2", "m3"])
    assert gold_labels.apply_gold_labels(voted, "unl", min_agreement=0.75) == 2
    got = {r["qid"]: r["answer"] for r in voted.rows("SELECT qid, answer FROM questions WHERE dataset = 'unl'")}
    assert got == {"u1": 1, "u2": None, "u3": None, "u4": None, "u5": 4}


# ---- figures ---------------------------------------------------------------------------------------


def test_subject_bars(scored):
    rep = evaluation.report(scored, "kice")
    fig = figures.subject_bars(rep)
    assert [t.name for t in fig.data] == ["A", "B"]
    assert list(fig.data[0].x) == ["국어 (n=5)", "한국사 (n=3)", "전체 (n=8)"]
    assert list(fig.data[0].y) == pytest.approx([20.0, 100 / 3, 25.0])
    assert list(fig.data[1].y) == pytest.approx([100.0, 200 / 3, 87.5])
    assert list(fig.data[0].text) == ["20.0", "33.3", "25.0"]
    f1 = figures.subject_bars(rep, "macro_f1")
    assert list(f1.data[0].y) == pytest.approx([100 / 12, 20.0, 800 / 45])
    assert "macro_f1" in f1.layout.title.text and "n = 8" in f1.layout.title.text


def test_position_bars_and_heatmap(scored):
    fig = figures.position_bars(evaluation.positions(scored, "kice"))
    assert [t.name for t in fig.data] == ["gold", "A", "B"]
    assert list(fig.data[0].x) == ["1", "2", "3", "4", "5"]
    assert list(fig.data[0].y) == pytest.approx([25, 25, 25, 12.5, 12.5])
    assert list(fig.data[1].x) == ["1", "2", "3", "4", "5", "none"]
    assert list(fig.data[1].y) == pytest.approx([12.5, 37.5, 0, 25, 0, 25])
    assert list(fig.data[2].y) == pytest.approx([37.5, 25, 25, 0, 12.5, 0])
    conf = evaluation.confusion(scored, "kice", "B")
    heat = figures.confusion_heatmap(conf)
    assert [list(r) for r in heat.data[0].z] == conf["matrix"]
    assert conf["matrix"][3] == [1, 0, 0, 0, 0, 0]  # gold 4 (q6) answered 1
    assert list(heat.data[0].x) == ["1", "2", "3", "4", "5", "none"] and list(heat.data[0].y) == ["1", "2", "3", "4", "5"]
    assert "B" in heat.layout.title.text


# ---- CLI ---------------------------------------------------------------------------------------------


def cli(capsys, db: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "cli.duckdb"
    s = Store(path)
    kice_set(s, tmp_path)
    s.close()
    return path


def test_cli_import_report_compare(capsys, db, tmp_path):
    rc, out, err = cli(capsys, db, "eval", "import", str(pred_csv(tmp_path, "a", PRED_A)), "--dataset", "kice",
                       "--model", "A")
    assert (rc, err) == (0, "")
    assert out == "Stored 7 predictions as 'A' on 'kice'; 1 questions have no prediction (count as unanswered).\n"
    rc, out, err = cli(capsys, db, "eval", "import", str(pred_csv(tmp_path, "b", PRED_B | {"99": 1, "x1": 2})),
                       "--dataset", "kice", "--model", "B")
    assert rc == 0 and out == "Stored 8 predictions as 'B' on 'kice'.\n"
    assert err == "2 id(s) in the file are not in 'kice' and were not stored: 99, x1\n"

    rc, out, err = cli(capsys, db, "eval", "report", "--dataset", "kice", "--json")
    assert (rc, err) == (0, "")
    rep = json.loads(out)
    assert list(rep) == ["dataset", "models"]
    assert [list(m) for m in rep["models"]] == [list(REPORT_A)] * 2
    assert rounded(rep) == rounded({"dataset": "kice", "models": [REPORT_A, REPORT_B]})

    rc, out, _ = cli(capsys, db, "eval", "report", "--dataset", "kice")
    assert rc == 0
    assert out.splitlines()[:3] == ["kice: 8 questions with gold answers",
                                    "  A: 2/8 = 25.00%, macro-F1 0.178, points 5/18, unanswered 2",
                                    "    국어 (n=5): 20.00%, F1 0.083"]

    rc, out, err = cli(capsys, db, "eval", "compare", "--dataset", "kice", "--a", "A", "--b", "B", "--json",
                       "--resamples", "1000", "--seed", "5")
    assert (rc, err) == (0, "")
    c = json.loads(out)
    s = Store(db)
    try:
        assert c == json.loads(json.dumps(evaluation.compare(s, "kice", "A", "B", n_resamples=1000, seed=5)))
    finally:
        s.close()
    assert (c["mcnemar"]["a_only"], c["mcnemar"]["b_only"], c["bootstrap"]["n_clusters"]) == (1, 6, 4)
    assert (c["bootstrap"]["n_resamples"], c["bootstrap"]["seed"]) == (1000, 5)

    rc, out, _ = cli(capsys, db, "eval", "compare", "--dataset", "kice", "--a", "A", "--b", "B", "--resamples", "1000")
    assert rc == 0 and out.startswith("B vs A on kice (n=8): 87.50% vs 25.00%; fixed 6, broken 1, "
                                      "McNemar exact p = 0.1250\n")
    assert "(bootstrap over 4 passages, 1000 resamples, seed 0)" in out

    rc, out, err = cli(capsys, db, "eval", "compare", "--dataset", "kice", "--a", "A", "--b", "Z")
    assert rc == 1 and err.splitlines()[0] == "Error: no predictions 'Z' on 'kice'"


def test_cli_import_errors(capsys, db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,answer\n1,7\n", encoding="utf-8")
    rc, out, err = cli(capsys, db, "eval", "import", str(bad), "--dataset", "kice", "--model", "A")
    assert rc == 1 and out == ""
    assert err.splitlines()[:2] == ["Error: 1 bad row(s) in bad.csv; nothing was stored", "  row 1: answer 7 is not 1–5"]
    none = pred_csv(tmp_path, "none", {"x": 1})
    rc, _, err = cli(capsys, db, "eval", "import", str(none), "--dataset", "kice", "--model", "A")
    assert rc == 1 and err.splitlines() == ["Error: none of the 1 ids in none.csv are in dataset 'kice'",
                                            "Hint: is this the right dataset?"]
    rc, out, _ = cli(capsys, db, "eval", "report", "--dataset", "kice", "--json")
    assert json.loads(out) == {"dataset": "kice", "models": []}


def test_cli_labels(capsys, tmp_path):
    db = tmp_path / "votes.duckdb"
    s = Store(db)
    datasets.import_file(s, boostcamp_file(tmp_path, UNLABELLED, "unl.csv"), "unl", "test")
    s.close()
    for name, answers in (("m2", {"u1": 1, "u2": 2, "u3": 2, "u5": 4}), ("m3", {"u1": 1, "u2": 3, "u3": 1, "u5": 4})):
        assert cli(capsys, db, "eval", "import", str(pred_csv(tmp_path, name, answers)), "--dataset", "unl",
                   "--model", name)[0] == 0
    rc, out, err = cli(capsys, db, "eval", "labels", "--dataset", "unl", "--from", "m2", "--from", "m3")
    assert (rc, err) == (0, "")
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_kappa

    kappa = sm_kappa([[0, 2, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 2, 0]])
    assert out.splitlines() == [f"2/5 labelled by vote (2 unanimous, 2 ties, 1 without votes), "
                                f"Fleiss' kappa {kappa:.3f} over 4",
                                "  u2: votes {2: 1, 3: 1} → tie: settle by hand",
                                "  u3: votes {1: 1, 2: 1} → tie: settle by hand",
                                "  u4: votes {} → tie: settle by hand"]
    rc, out, err = cli(capsys, db, "eval", "labels", "--dataset", "unl", "--from", "m2", "--from", "m3", "--json",
                       "--apply")
    assert rc == 0
    v = json.loads(out)
    assert (v["labelled"], v["ties"], v["applied"]) == (2, 2, 2)
    s = Store(db)
    try:
        assert s.rows("SELECT qid, answer, answer_source FROM questions WHERE answer IS NOT NULL ORDER BY qid") == [
            {"qid": "u1", "answer": 1, "answer_source": "vote"}, {"qid": "u5", "answer": 4, "answer_source": "vote"}]
    finally:
        s.close()


def test_cli_export_csv(capsys, db, tmp_path):
    for name, answers in (("A", PRED_A), ("B", PRED_B)):
        assert cli(capsys, db, "eval", "import", str(pred_csv(tmp_path, name, answers)), "--dataset", "kice",
                   "--model", name)[0] == 0
    out_file = tmp_path / "out" / "report.csv"
    rc, out, err = cli(capsys, db, "eval", "export", "--dataset", "kice", "--out", str(out_file))
    assert (rc, err) == (0, "") and out == f"Wrote 6 rows to {out_file}.\n"
    with out_file.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["model", "subject", "questions", "correct", "accuracy", "macro_f1", "points",
                             "max_points", "unanswered"]
    assert [(r["model"], r["subject"], r["correct"], r["accuracy"]) for r in rows] == [
        ("A", "(all)", "2", "0.25"), ("A", "국어", "1", "0.2"), ("A", "한국사", "1", str(1 / 3)),
        ("B", "(all)", "7", "0.875"), ("B", "국어", "5", "1.0"), ("B", "한국사", "2", str(2 / 3))]
    assert (rows[0]["points"], rows[0]["max_points"], rows[0]["unanswered"]) == ("5.0", "18.0", "2")
    # Per-subject rows carry CSAT points and max points too (issue 10 item 5; they were blank).
    assert (rows[1]["subject"], rows[1]["points"], rows[1]["max_points"]) == ("국어", "2.0", "11.0")
    assert (rows[5]["subject"], rows[5]["points"], rows[5]["max_points"]) == ("한국사", "4.0", "7.0")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_cli_export_png(capsys, db, tmp_path):
    if not _chromium():
        if os.environ.get("CI"):
            pytest.fail("PNG export needs Chromium (kaleido drives it) and CI is set: apt-get install chromium")
        pytest.skip("no Chromium installed: kaleido cannot render PNGs (apt-get install chromium)")
    for name, answers in (("A", PRED_A), ("B", PRED_B)):
        assert cli(capsys, db, "eval", "import", str(pred_csv(tmp_path, name, answers)), "--dataset", "kice",
                   "--model", name)[0] == 0
    png_dir = tmp_path / "png"
    rc, out, err = cli(capsys, db, "eval", "export", "--dataset", "kice", "--out", str(tmp_path / "r.csv"),
                       "--png-dir", str(png_dir))
    assert (rc, err) == (0, ""), err
    assert out.splitlines()[-1] == f"Wrote charts to {png_dir}."
    assert sorted(p.name for p in png_dir.iterdir()) == ["kice_by_subject.png", "kice_positions.png"]
    for p in png_dir.iterdir():
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000


# ---- engine runs (loopback OpenAI-compatible server) ------------------------------------------------


def answer(n: int) -> Reply:
    return Reply(text=f'선지를 차례로 검토한다.\n{{"Answer":"{n}"}}')


# Per question, replies in arrival order (cycled): q1 answers 1 then 2 (K=2 is a tie), q7 runs out of
# tokens with no answer, q8 gives no answer at all.
SCRIPT = {"1": [answer(1), answer(2)], "2": [answer(3)], "3": [answer(5)], "4": [answer(1)], "5": [answer(2)],
          "6": [answer(4)], "7": [Reply(text="선지를 차례로 검토하면", finish="length")],
          "8": [Reply(text="잘 모르겠다.")]}


class Scripted:
    def __init__(self) -> None:
        self.seen: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, n: int, body: dict) -> Reply:
        text = " ".join(m["content"] for m in body["messages"])
        qid = re.search(r"\[q(\d+)\]", text).group(1)
        with self.lock:
            k = self.seen[qid]
            self.seen[qid] += 1
        return SCRIPT[qid][k % len(SCRIPT[qid])]


def add_fake(store: Store, srv: Loopback) -> None:
    models.add_model(store, "fake", "openai", "fake-model", base_url=srv.base_url,
                     params={"concurrency": 4, "max_retries": 3, "retry_base_s": 0})


def test_run_model_greedy_then_k2_vote(store, tmp_path):
    kice_set(store, tmp_path)
    with Loopback("openai", Scripted()) as srv:
        add_fake(store, srv)
        s1 = predictions.run_model(store, "kice", "fake")
        assert (s1["stored"], s1["requests_sent"], s1["cached"], s1["errors"], s1["truncated"]) == (True, 8, 0, 0, 1)
        s2 = predictions.run_model(store, "kice", "fake", samples=2, label="fake-k2")
        # Sample 0 of every question is cached from the greedy run: only sample 1 is sent.
        assert (s2["requests_sent"], s2["cached"], srv.count) == (8, 8, 16)
    preds = {(r["model"], r["qid"]): r for r in store.rows("SELECT * FROM predictions")}
    assert {q: preds[("fake", q)]["answer"] for q in GOLD} == {
        "1": 1, "2": 3, "3": 5, "4": 1, "5": 2, "6": 4, "7": None, "8": None}
    assert {q: preds[("fake-k2", q)]["answer"] for q in GOLD} == {
        "1": None, "2": 3, "3": 5, "4": 1, "5": 2, "6": 4, "7": None, "8": None}
    assert preds[("fake-k2", "1")]["votes"] == [1, 2]  # a tie is no answer, never a guess
    assert preds[("fake-k2", "7")]["truncated"] and not preds[("fake-k2", "6")]["truncated"]
    rep = {m["model"]: m for m in evaluation.report(store, "kice")["models"]}
    assert [(m["correct"], m["unanswered"], m["truncated"], m["points"]) for m in rep.values()] == [
        (5, 2, 1, 12.0), (4, 3, 1, 10.0)]
    assert rep["fake"]["accuracy"] == 0.625 and rep["fake-k2"]["accuracy"] == 0.5
    runs = {r["model"]: r for r in predictions.list_runs(store, "kice")}
    assert runs["fake-k2"]["source"] == "engine"
    assert json.loads(runs["fake-k2"]["detail"]) == {"model": "fake", "samples": 2, "temperature": None}
    gens = predictions.reasoning_for(store, "kice", "fake-k2", "1")
    assert [(g["sample"], g["answer"]) for g in gens] == [(0, 1), (1, 2)]
    assert "선지를 차례로 검토한다." in gens[0]["response"]
    assert [g["sample"] for g in predictions.reasoning_for(store, "kice", "fake", "1")] == [0]
    c = evaluation.compare(store, "kice", "fake", "fake-k2", n_resamples=200)
    assert [i["qid"] for i in c["broken"]] == ["1"] and c["fixed"] == []


def test_cli_eval_run(capsys, db):
    with Loopback("openai", Scripted()) as srv:
        s = Store(db)
        add_fake(s, srv)
        s.close()
        rc, out, err = cli(capsys, db, "eval", "run", "--dataset", "kice", "--model", "fake", "--samples", "2")
        assert (rc, err) == (0, ""), err
        assert out == ("fake on kice: 9/16 sample answers correct (16 requests sent, 0 cached, 0 errors). "
                       "See: python -m core evaluate report --dataset kice\n")
        assert srv.count == 16
    rc, out, _ = cli(capsys, db, "eval", "report", "--dataset", "kice", "--json")
    (m,) = json.loads(out)["models"]
    assert (m["model"], m["correct"], m["unanswered"], m["points"], m["max_points"]) == ("fake", 4, 3, 10.0, 18.0)
    s = Store(db)
    try:
        assert predictions.reasoning_for(s, "kice", "fake", "8")[0]["answer"] is None
        imported = predictions.import_predictions(s, "kice", pred_csv(db.parent, "a", PRED_A), "A")
        assert imported.stored == 7 and predictions.reasoning_for(s, "kice", "A", "1") == []
    finally:
        s.close()


def test_run_model_unknown_model(store, tmp_path):
    kice_set(store, tmp_path)
    with pytest.raises(NotFound, match="no model named 'ghost'"):
        predictions.run_model(store, "kice", "ghost")
    assert store.scalar("SELECT count(*) FROM eval_runs") == 0


def test_vote_reports_fleiss_kappa_over_items_with_equal_votes(voted):
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_kappa

    v = gold_labels.vote_gold_labels(voted, "unl", ["m2", "m3"])
    # m2 and m3 both voted on u1, u2, u5 (u3: m3 blank = a "no answer" vote; u4: m3 has no row).
    ballots = {"u1": [1, 1], "u2": [2, 3], "u3": [2, None], "u5": [4, 4]}
    table = [[b.count(c) for c in (None, 1, 2, 3, 4, 5)] for b in ballots.values()]
    assert v["kappa_items"] == 4
    assert v["fleiss_kappa"] == pytest.approx(sm_kappa(table), abs=1e-4)


def test_cli_eval_run_scores_a_slice(capsys, db):
    """`eval run --limit N --subject S` scores a slice: only its questions are sent and stored, the report
    says it is a slice and scores it on its n, and a different slice is a different run."""
    from core import runs

    with Loopback("openai", Scripted()) as srv:
        s = Store(db)
        add_fake(s, srv)
        s.close()
        rc, out, err = cli(capsys, db, "eval", "run", "--dataset", "kice", "--model", "fake", "--limit", "2",
                           "--subject", "한국사")
        assert (rc, err) == (0, ""), err
        assert out.startswith("fake [first 2 · 한국사] on kice (a slice: first 2 · 한국사, 2 questions): 1/2 sample "
                              "answers correct (2 requests sent, 0 cached, 0 errors)."), out
        assert srv.count == 2  # q6 and q7: the first two 한국사 questions
        rc, out, err = cli(capsys, db, "eval", "run", "--dataset", "kice", "--model", "fake", "--limit", "2",
                           "--subject", "한국사")
        assert rc == 0 and "(0 requests sent, 2 cached, 0 errors)" in out  # the same slice: the same run
        rc, out, err = cli(capsys, db, "eval", "run", "--dataset", "kice", "--model", "fake")
        assert rc == 0 and out.startswith("fake on kice: 5/8 sample answers correct (6 requests sent, 2 cached")
        rc, out, err = cli(capsys, db, "eval", "run", "--dataset", "kice", "--model", "fake", "--subject", "수학")
        assert rc != 0 and "'kice' has no questions of subject '수학'" in err and "subjects: 국어, 한국사" in err, err
    rc, out, _ = cli(capsys, db, "eval", "report", "--dataset", "kice", "--json")
    got = {m["model"]: (m["questions"], m["correct"], m["unanswered"], m["slice"], sorted(m["by_subject"]))
           for m in json.loads(out)["models"]}
    assert got == {"fake [first 2 · 한국사]": (2, 1, 1, "first 2 · 한국사", ["한국사"]),
                   "fake": (8, 5, 2, None, ["국어", "한국사"])}
    rc, out, _ = cli(capsys, db, "eval", "report", "--dataset", "kice")
    assert "  fake [first 2 · 한국사] (slice: first 2 · 한국사): 1/2 = 50.00%" in out, out
    s = Store(db)
    try:
        made = runs.list_runs(s, "evaluate")
        assert len(made) == 2 and len({r["config_hash"] for r in made}) == 2  # two slices, two runs
        cmp = evaluation.compare(s, "kice", "fake", "fake [first 2 · 한국사]", n_resamples=50)
        assert cmp["questions"] == 2  # compared on the questions both answered
    finally:
        s.close()


def test_png_export_retries_kaleidos_tab_race_and_reports_other_failures(monkeypatch):
    """kaleido 1.x on a loaded machine can evaluate before its script loaded: tried again; any other
    failure is one CoreError line at once."""
    import plotly.graph_objects as go

    from core import figures

    calls = []

    def flaky(self, **kw):
        calls.append(kw)
        if len(calls) == 1:
            raise RuntimeError("{'description': 'ReferenceError: kaleido_scopes is not defined'}")
        return b"\x89PNG fake"

    monkeypatch.setattr(go.Figure, "to_image", flaky)
    assert figures.to_png(go.Figure()) == b"\x89PNG fake" and len(calls) == 2

    def broken(self, **kw):
        calls.append(kw)
        raise RuntimeError("no browser\nsecond line")

    calls.clear()
    monkeypatch.setattr(go.Figure, "to_image", broken)
    with pytest.raises(CoreError, match="PNG export failed: no browser") as err:
        figures.to_png(go.Figure())
    assert len(calls) == 1 and "second line" not in str(err.value)
