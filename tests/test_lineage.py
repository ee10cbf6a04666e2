"""Lineage (core/lineage.py, the `lineage` CLI) on a store built through the pipeline once per module:
a pool and a test set → mining (loopback teacher always right, student always wrong) → augment (the
well-behaved oracle, one pair per seed) → review accepts the passing pairs → freeze set v1 → a real
ORPO run of the tiny Qwen3 (one step, CPU worker) registers the tuned model → predictions for the
base and the tuned label on the test set (t0 fixed, t1 unchanged).

Checked: the walk model → training run → set → pairs → candidates → seeds → mining run → pool
question (and back from a pair and forward from a pool question), `map flips` without --pairs equal
to it with --pairs, the CoreError when the tuned label has no training lineage, the CLI (in-process
and one subprocess: Korean intact), the flips job's own figures, the Visualise preselection and its
pair links opening the pair in Review, and the Train page's lineage line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs, lineage, models
from core.cli import main
from core.errors import CoreError, NotFound
from core.steps.augment import augment
from core.steps.augment.augment import AugmentConfig
from core.steps.evaluate import predictions
from core.steps.review import preference_sets as ps
from core.steps.review import review
from core.steps.visualise import mapping
from core.steps.visualise.mapping import FlipsConfig
from core.store import Store
from tests.augmentdata import AugmentOracle, mine, seed_data, writer
from tests.loopback import Loopback
from tests.pagetest import clear_cached_store, fresh_page_store, shown  # noqa: F401
from tests.trainhelp import TINY, kill_leftover_workers

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_qwen):
    """The pipeline's store, built once; each test gets its own copy (`db`)."""
    from core.steps.train import TrainConfig, ingest, launcher

    tmp = tmp_path_factory.mktemp("lineage")
    db = tmp / "built.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMINI_API_KEY", "test-key")
        mp.setenv("OPENAI_API_KEY", "test-key")
        store = Store(db)
        try:
            seed_data(store, tmp)
            mining_run = mine(store)
            oracle = AugmentOracle()
            with Loopback("gemini", lambda n, body: oracle.reply(body)) as srv:
                writer(store, srv)
                aug = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=1))
            assert aug["passed"] == 6
            review.accept_passing(store, aug["run"])
            frozen = ps.freeze(store, "v1", aug["run"])
            models.add_model(store, "tiny", "local", tiny_qwen,
                             params={"thinking": False, "temperature": 0, "max_tokens": 4})
            cfg = TrainConfig(set_name="v1", base_model="tiny", **TINY | {"max_steps": 1, "long_prompts": "truncate",
                                                                           "heldout_gen_tokens": 0})
            run_id, _ = launcher.start(store, cfg)
            run = ingest.wait(store, run_id)
            assert run["state"] == "done", run.get("message")
            tuned = run["adapter_model"]
            # the tuned model as a recipe serves it: an OpenAI-compatible model whose model id is the adapter's name
            models.add_model(store, f"{tuned}-served", "openai", tuned, base_url="http://127.0.0.1:9/v1")
            gold = {q["qid"]: q["answer"] for q in predictions_gold(store)}
            wrong = {q: g % 5 + 1 for q, g in gold.items()}
            predictions.save_predictions(store, "exam", "base", {"t0": wrong["t0"], "t1": gold["t1"]}, source="import")
            predictions.save_predictions(store, "exam", tuned, dict(gold), source="import")
        finally:
            store.close()
            kill_leftover_workers(tmp)
    return {"db": db, "mining_run": mining_run, "augment_run": aug["run"], "set": frozen, "train_run": run_id,
            "tuned": tuned}


def predictions_gold(store: Store) -> list[dict]:
    return store.rows("SELECT qid, answer FROM questions WHERE dataset = 'exam' ORDER BY qid")


@pytest.fixture
def db(built, tmp_path):
    path = tmp_path / "lineage.duckdb"
    shutil.copy(built["db"], path)
    return path


@pytest.fixture
def store(db):
    s = Store(db)
    yield s
    s.close()


def cli(capsys, db: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return rc, out, err


# -- the walk -----------------------------------------------------------------------------------

def test_model_walks_back_to_its_pool_questions(store, built):
    w = lineage.of_model(store, built["tuned"])
    run = w["training_run"]
    assert (run["run"], run["set"], run["base"], run["state"], run["model"]) == (
        built["train_run"], "v1", "tiny", "done", built["tuned"])
    assert run["set_hash"] == built["set"]["hash"] == w["set"]["hash"]
    assert (w["set"]["pairs"], w["set"]["augment_run"], w["set"]["mining_run"]) == (
        6, built["augment_run"], built["mining_run"])
    assert (w["traced"], w["untraced"]) == (6, 0)
    frozen = ps.get_pairs(store, "v1")
    assert [p["pair_id"] for p in w["pairs"]] == [p["pair_id"] for p in frozen]
    for p in w["pairs"]:
        c = p["candidate"]
        cand = review.get_pair(store, p["pair_id"])
        assert (c["augment_run"], c["status"], c["mining_run"]) == (built["augment_run"], "accepted", built["mining_run"])
        assert (c["seed"]["pool"], c["seed"]["qid"]) == (cand["pool"], cand["seed_qid"])
        assert c["mining_item"]["outcome"] == "hard_negative" and c["mining_item"]["kept"]
        pool_q = lineage.seed_question(store, c["seed"]["pool"], c["seed"]["qid"])
        assert c["seed"]["start"] == lineage.start(pool_q["question"]) and pool_q["paragraph"].startswith("[q")
        assert p["start"].startswith("[증")  # the generated question, Korean intact
    assert sorted(s["qid"] for s in w["seeds"]) == [f"p{k}" for k in range(1, 7)]
    assert {s["pool"] for s in w["seeds"]} == {"pool"}
    [m] = w["mining_runs"]
    assert (m["run"], m["pool"], m["teacher"], m["student"], m["state"]) == (
        built["mining_run"], "pool", "m-teacher", "m-student", "done")
    assert [r["run"] for r in w["training_runs"]] == [built["train_run"]]
    # the served copy has the same lineage; a model trained nowhere is a clear error
    served = lineage.of_model(store, f"{built['tuned']}-served")
    assert served["training_run"]["run"] == built["train_run"] and served["training_run"]["served_as"]
    with pytest.raises(NotFound, match="'tiny' was not trained here"):
        lineage.of_model(store, "tiny")


def test_a_pair_walks_back_and_forward(store, built):
    first = ps.get_pairs(store, "v1")[0]
    w = lineage.of_pair(store, first["pair_id"])
    cand = review.get_pair(store, first["pair_id"])
    assert w["seed"]["qid"] == cand["seed_qid"] and w["seed"]["question"]["qid"] == cand["seed_qid"]
    assert w["mining_item"]["outcome"] == "hard_negative" and w["mining_item"]["teacher_correct"] == 1
    assert w["mining_run"]["run"] == built["mining_run"]
    assert w["sets"] == [{"set": "v1", "idx": 0}]
    assert [(r["run"], r["model"]) for r in w["models"]] == [(built["train_run"], built["tuned"])]
    assert lineage.of_pair(store, "v1#0")["candidate"] == w["candidate"]
    with pytest.raises(NotFound, match="no pair 'nope'"):
        lineage.of_pair(store, "nope")
    # forward from the pool question the pair grew from
    q = lineage.of_question(store, "pool", cand["seed_qid"])
    assert q["mined"] == [{"run": built["mining_run"], "outcome": "hard_negative", "kept": True}]
    assert [c["pair_id"] for c in q["candidates"]] == [first["pair_id"]]
    assert q["sets"] == ["v1"] and [r["model"] for r in q["models"]] == [built["tuned"]]
    # Review reads its provenance through the same reader
    prov = review.provenance(store, first["pair_id"])
    assert prov["seed"]["qid"] == cand["seed_qid"] and prov["mining_run"]["id"] == built["mining_run"]
    assert prov["mining_item"]["outcome"] == "hard_negative" and prov["sets"] == [{"set": "v1", "idx": 0}]


def test_an_imported_copy_of_the_set_keeps_its_lineage(store, built, tmp_path):
    """A recipe's accumulated set is imported (no candidate ids): the same pairs frozen from review are found."""
    path = tmp_path / "acc.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ps.trl_records(store, "v1")),
                    encoding="utf-8")
    ps.import_pairs(store, path, "acc")
    w = lineage.of_set(store, "acc")
    assert w["traced"] == 6 and {p["found"] for p in w["pairs"]} == {"same pair"}
    assert w["mining_runs"][0]["run"] == built["mining_run"]


# -- map flips from the tuned model's lineage ----------------------------------------------------

def test_flips_without_pairs_is_the_run_with_pairs(store, built):
    without = mapping.run(store, FlipsConfig(dataset="exam", a="base", b=built["tuned"], k=2))
    given = mapping.run(store, FlipsConfig(dataset="exam", a="base", b=built["tuned"], pairs="v1", k=2))
    # the same config once resolved: the same run, the same summary (the second embeds nothing)
    assert without.pop("embed_computed") > 0 and given.pop("embed_computed") == 0
    assert without == given
    assert without["pairs"] == "v1" and without["training_run"] == built["train_run"]
    assert without["counts"] == {"fixed": 1, "broken": 0, "both correct": 1, "both wrong": 0}
    [t0] = without["fixed"]
    assert t0["qid"] == "t0" and len(t0["neighbours"]) == 2
    cands = lineage.candidates(store, [n["pair_id"] for n in t0["neighbours"]])
    for n in t0["neighbours"]:
        assert n["seed"]["mining_run"] == built["mining_run"] and n["seed"]["pool"] == "pool"
        assert n["seed"]["qid"] == cands[n["pair_id"]]["seed"]["qid"]
        assert mapping.review_link(n) == f"review?pair={n['pair_id']}"


def test_flips_needs_pairs_when_the_label_has_no_training_lineage(store, db, capsys):
    with pytest.raises(CoreError, match="'base' has no training lineage") as exc:
        mapping.start_job(store, FlipsConfig(dataset="exam", a="base", b="base"))
    assert "--pairs" in exc.value.hint
    store.close()
    rc, out, err = cli(capsys, db, "map", "flips", "--dataset", "exam", "--a", "base", "--b", "base")
    assert rc == 1 and "Error: 'base' has no training lineage" in err and "Hint: pass --pairs SET" in err
    assert "Traceback" not in err


def test_the_flips_job_reports_what_it_compared(store, built):
    job = mapping.start_job(store, FlipsConfig(dataset="exam", a="base", b=built["tuned"]))
    assert jobs.wait(job, 300)
    row = jobs.get_job(store, job)
    assert row["state"] == "done", row["message"]
    assert (row["done"], row["total"]) == (2, 2)  # both test questions compared (not 0/0 when cached)
    assert row["message"] == "2 questions of exam against 6 pairs of v1: 1 fixed, 0 broken"
    again = mapping.start_job(store, FlipsConfig(dataset="exam", a="base", b=built["tuned"]))
    assert jobs.wait(again, 300)
    row = jobs.get_job(store, again)
    assert (row["done"], row["total"]) == (2, 2) and row["result"]["embed_computed"] == 0  # every vector cached


# -- the lineage CLI ----------------------------------------------------------------------------

def test_cli_model_pair_and_question(db, built, capsys):
    tuned = built["tuned"]
    rc, out, err = cli(capsys, db, "lineage", "model", tuned, "--json")
    assert rc == 0, err
    w = json.loads(out)
    assert w["training_run"]["run"] == built["train_run"] and w["set"]["name"] == "v1" and w["traced"] == 6
    rc, out, _ = cli(capsys, db, "lineage", "model", tuned)
    assert rc == 0
    assert f"model {tuned} ← training run {built['train_run']} (done, base tiny)" in out
    assert f"← mining run {built['mining_run']} (pool pool, teacher m-teacher vs student m-student, done)" in out
    assert "[증" in out and "hard_negative, kept" in out
    pid = w["pairs"][0]["pair_id"]
    rc, out, _ = cli(capsys, db, "lineage", "pair", pid, "--json")
    assert rc == 0 and json.loads(out)["sets"] == [{"set": "v1", "idx": 0}]
    rc, out, _ = cli(capsys, db, "lineage", "pair", "v1#0")
    assert rc == 0 and f"pair {pid} (accepted" in out and "→ in set v1 #0" in out and f"→ model {tuned}" in out
    # a flipped test question → its nearest training pairs → their seeds → their mining run
    rc, out, err = cli(capsys, db, "lineage", "question", "exam", "t0", "--model", tuned, "--base", "base",
                       "--k", "2", "--json")
    assert rc == 0, err
    n = json.loads(out)["nearest"]
    assert (n["class"], n["pairs"], n["training_run"]) == ("fixed", "v1", built["train_run"])
    assert n["outcome"] == {"base": "wrong", tuned: "correct"}
    assert len(n["neighbours"]) == 2 and all(x["seed"]["mining_run"] == built["mining_run"] for x in n["neighbours"])
    rc, out, _ = cli(capsys, db, "lineage", "question", "exam", "t0", "--model", tuned, "--base", "base", "--k", "2")
    assert rc == 0 and "base: wrong → " in out and "(fixed)" in out and "nearest pairs in v1" in out
    assert f"mining run {built['mining_run']}" in out
    rc, out, err = cli(capsys, db, "lineage", "question", "exam", "t0", "--model", "base")
    assert rc == 1 and "no training lineage" in err and "--pairs" in err


def test_cli_subprocess_prints_korean_intact(db, built):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    res = subprocess.run([sys.executable, "-m", "core", "--db", str(db), "lineage", "question", "pool", "p1"],
                         cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("pool/p1 (한국사): 다음 설명으로 옳은 것은?")
    assert f"mined in run {built['mining_run']}: hard_negative, kept" in res.stdout
    assert "in v1#" in res.stdout and f"→ model {built['tuned']}" in res.stdout


# -- pages -------------------------------------------------------------------------------------

def test_visualise_preselects_the_trained_set_and_links_pairs_to_review(db, built, monkeypatch):
    monkeypatch.setenv("CSAT_DB", str(db))
    monkeypatch.setenv("CSAT_WORKSPACE", str(db.parent / "workspace"))
    clear_cached_store()
    s = Store(db)
    ps.import_pairs(s, write_other_set(db.parent), "other")  # a later set: the old default (the last) is wrong
    s.close()
    at = AppTest.from_file(str(ROOT / "pages/visualise.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert at.selectbox(key="vis-flips-b").value == built["tuned"]
    assert at.selectbox(key="vis-flips-pairs").value == "v1"  # read from the tuned model's lineage
    assert any(f"was trained on v1 (training run {built['train_run']})" in shown(c.value) for c in at.caption)
    at.button(key="FormSubmitter:vis-flips-Explain flips").click().run()
    assert not at.exception
    job = at.session_state["vis-flips-job"]
    assert jobs.wait(job, 300)
    at.run()
    assert not at.exception
    panel = [str(p.proto.text) for p in at.get("progress")]
    assert any("done · 2/2 · 0 errors" in t for t in panel) and not any("tokens" in t for t in panel), panel
    assert any("2 questions of exam against 6 pairs of v1" in shown(m.value) for m in at.success)
    fixed = next(d for d in at.dataframe if "mining run" in d.value.columns)
    links = fixed.value["pair"].tolist()
    assert links and all(link.startswith("review?pair=") for link in links)
    column = json.loads(fixed.proto.columns)["pair"]["type_config"]  # a link column showing the pair's id
    assert column == {"type": "link", "display_text": mapping.REVIEW_LINK_TEXT}
    # the link opens that pair in Review
    pid = links[0].removeprefix("review?pair=")
    clear_cached_store()
    rv = AppTest.from_file(str(ROOT / "pages/review.py"), default_timeout=60)
    rv.query_params["pair"] = pid
    rv.run()
    assert not rv.exception
    assert any(f"`{pid}`" in m.value for m in rv.markdown)
    assert any("frozen in v1 #" in shown(c.value) for c in rv.caption)  # its provenance names the set it is in


def write_other_set(folder: Path) -> Path:
    path = folder / "other.jsonl"
    path.write_text(json.dumps({"prompt": "다른 문항: 옳은 것은?", "chosen": '①\n{"Answer":"1"}',
                                "rejected": '②\n{"Answer":"2"}'}, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def test_train_page_shows_the_runs_lineage(db, built, monkeypatch):
    monkeypatch.setenv("CSAT_DB", str(db))
    monkeypatch.setenv("CSAT_WORKSPACE", str(db.parent / "workspace"))
    clear_cached_store()
    at = AppTest.from_file(str(ROOT / "pages/train.py"), default_timeout=120)
    at.run()
    assert not at.exception
    line = next(shown(c.value) for c in at.caption if shown(c.value).startswith("Lineage:"))
    assert line.startswith(f"Lineage: set v1 (6 pairs, 6 traced to their seed) ← augment run {built['augment_run']} "
                           f"← mining run {built['mining_run']} (pool pool, m-teacher vs m-student)")
