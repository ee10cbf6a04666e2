"""Delete cascades (core/cascade.py): a dataset or a model takes everything derived from it, the counts
are shown first and match what goes, frozen artefacts block, and no table is left undeclared."""

from __future__ import annotations

import json

import pytest

from core import cascade, models
from core.cli import main
from core.errors import CoreError
from core.jobs import JobContext
from core.steps.data import datasets
from core.steps.evaluate import gold_labels, predictions
from core.steps.evaluate.eval_run import EvalConfig
from core.steps.evaluate.eval_run import run as run_step
from core.steps.mine import mining
from core.steps.solve import solve
from core.store import Store
from tests.loopback import Loopback, Reply
from tests.minidata import import_mini


def always(answer: int):
    return lambda n, body: Reply(text=f"선지를 검토했다.\n{{\"Answer\":\"{answer}\"}}")


def register(store: Store, name: str, srv: Loopback) -> None:
    models.add_model(store, name, "openai", "qwen3-14b", base_url=srv.base_url,
                     params={"retry_base_s": 0.01, "timeout_s": 5, "concurrency": 4})


def orphans(store: Store) -> dict[str, int]:
    """Rows whose parent is gone, for every reference the schema has (0 everywhere = no orphan)."""
    checks = {
        "questions": "SELECT count(*) FROM questions WHERE dataset NOT IN (SELECT name FROM datasets)",
        "passages": "SELECT count(*) FROM passages WHERE dataset NOT IN (SELECT name FROM datasets)",
        "generation_refs": "SELECT count(*) FROM generation_refs WHERE dataset NOT IN (SELECT name FROM datasets)",
        "generations": "SELECT count(*) FROM generations WHERE dataset IS NOT NULL AND dataset NOT IN "
                       "(SELECT name FROM datasets) AND cache_key NOT IN (SELECT cache_key FROM generation_refs)",
        "predictions": "SELECT count(*) FROM predictions WHERE dataset NOT IN (SELECT name FROM datasets)",
        "eval_runs": "SELECT count(*) FROM eval_runs WHERE dataset NOT IN (SELECT name FROM datasets)",
        "gold_votes": "SELECT count(*) FROM gold_votes WHERE dataset NOT IN (SELECT name FROM datasets)",
        "mining_runs": "SELECT count(*) FROM mining_runs WHERE pool NOT IN (SELECT name FROM datasets)",
        "mining_items": "SELECT count(*) FROM mining_items WHERE run_id NOT IN (SELECT id FROM mining_runs)",
        "mining run records": "SELECT count(*) FROM mining_runs WHERE id NOT IN (SELECT id FROM runs)",
        "structures": "SELECT count(*) FROM structures WHERE pool NOT IN (SELECT name FROM datasets)",
        "candidates": "SELECT count(*) FROM candidates WHERE pool NOT IN (SELECT name FROM datasets)",
        "candidate_versions": "SELECT count(*) FROM candidate_versions WHERE candidate_id NOT IN "
                              "(SELECT id FROM candidates)",
        "runs": "SELECT count(*) FROM runs WHERE coalesce(json_extract_string(config, '$.dataset'), "
                "json_extract_string(config, '$.pool')) NOT IN (SELECT name FROM datasets)",
    }
    return {k: store.scalar(sql) for k, sql in checks.items()}


@pytest.fixture
def mined(store, tmp_path):
    """A mined pool with everything a pool can hold, and a second set sharing one question with it."""
    import_mini(store, tmp_path, n=6, name="pool")
    import_mini(store, tmp_path, n=2, name="other")  # q1, q2: the same questions as the pool's first two
    with Loopback("openai", always(1)) as t, Loopback("openai", always(2)) as s:
        register(store, "teacher", t)
        register(store, "student", s)
        summary = mining.run(store, mining.MiningConfig(pool="pool", teacher="teacher", student="student"))
        assert summary["hard_negatives"] == 2  # q1 and q6 (gold 1), the student says 2
        solve.run(store, solve.SolveConfig(dataset="other", model="student"), JobContext.local())
        run_step(store, EvalConfig(dataset="pool", model="student", label="base"), JobContext.local())
        run_step(store, EvalConfig(dataset="other", model="student"), JobContext.local())
    predictions.save_predictions(store, "pool", "imported", {"q1": 1, "q2": 3}, source="import")
    gold_labels.vote_gold_labels(store, "pool", ["base", "imported"])
    store.execute("INSERT INTO candidates (id, run_id, mining_run, pool, seed_qid, idx) VALUES "
                  "('c1', 'augment-1', ?, 'pool', 'q1', 0)", [summary["run"]])
    store.execute("INSERT INTO candidate_versions (candidate_id, version, action) VALUES ('c1', 1, 'created')")
    store.execute("INSERT INTO structures (run_id, mining_run, pool, seed_qid) VALUES ('augment-1', ?, 'pool', 'q1')",
                  [summary["run"]])
    # Run records of later steps that name the pool another way: augment (its mining run), map (a set).
    store.execute("INSERT INTO runs (id, step, config, config_hash, state) VALUES "
                  "('augment-1', 'augment', ?, 'h1', 'done'), ('map-1', 'map', ?, 'h2', 'done'), "
                  "('map-2', 'map', ?, 'h3', 'done')",
                  [json.dumps({"mining_run": summary["run"], "teacher": "teacher"}),
                   json.dumps({"sets": ["other", "pool"]}), json.dumps({"sets": ["other"]})])
    return summary["run"]


def test_deleting_a_mined_pool_leaves_no_orphan_row(store, mined):
    shared = store.scalar("SELECT count(*) FROM generation_refs WHERE dataset = 'other'")
    plan = datasets.delete_plan(store, "pool")
    assert plan.blockers == []
    want = {"candidate_versions": 1, "candidates": 1, "structures": 1, "mining_items": 6, "mining_runs": 1,
            "predictions": 8, "eval_runs": 2, "gold_votes": 6, "questions": 6, "passages": 6, "datasets": 1,
            "generation_refs": 12}
    assert {k: plan.counts[k] for k in want} == want
    # The mining run's record, the evaluate run on the pool, the augment run of its mining run, the map
    # over it (not the map of the other set alone).
    assert plan.counts["runs"] == 4
    assert store.scalar("SELECT step FROM runs WHERE id = ?", [mined]) == "mine"
    # Replies only the pool used go; the two the other set also used stay (they are its replies too).
    assert plan.counts["generations"] == 12 - 2
    before = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in plan.counts}

    assert datasets.delete_dataset(store, "pool") == 6
    after = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in plan.counts}
    assert {t: before[t] - after[t] for t in plan.counts} == plan.counts  # the counts shown are what went
    assert orphans(store) == dict.fromkeys(orphans(store), 0)
    assert mining.list_runs(store) == []
    with pytest.raises(CoreError, match="no mining run"):
        mining.get_run(store, mined)
    # The other set is whole: its questions, replies and predictions.
    assert store.scalar("SELECT count(*) FROM generation_refs WHERE dataset = 'other'") == shared
    assert len(predictions.reasoning_for(store, "other", "student", "q1")) == 1
    assert [d["name"] for d in datasets.list_datasets(store)] == ["other"]


def test_a_frozen_preference_set_blocks_deleting_its_pool(store, mined):
    store.execute("INSERT INTO preference_sets (name, source, hash, n_pairs) VALUES ('v1', 'review:augment-1', 'h', 1)")
    store.execute("INSERT INTO preference_pairs (set_name, idx, pair_id, prompt, chosen, rejected) "
                  "VALUES ('v1', 0, 'c1', '\"p\"', 'a', 'b')")
    assert datasets.delete_plan(store, "pool").blockers == ["preference set v1"]
    with pytest.raises(CoreError, match="dataset 'pool' is used by preference set v1"):
        datasets.delete_dataset(store, "pool")
    assert store.scalar("SELECT count(*) FROM questions WHERE dataset = 'pool'") == 6  # nothing lost


def test_model_delete_refuses_while_a_mining_run_used_it_then_takes_its_own_rows(store, mined):
    with pytest.raises(CoreError, match=f"model 'student' is used by mining run {mined}"):
        models.delete_model(store, "student")
    assert store.scalar("SELECT count(*) FROM models WHERE name = 'student'") == 1
    datasets.delete_dataset(store, "pool")
    plan = models.delete_plan(store, "student")
    assert plan.blockers == []
    assert {k: v for k, v in plan.counts.items() if v} == {
        "predictions": 2, "eval_runs": 1, "runs": 2, "generation_refs": 2, "generations": 2, "models": 1}
    models.delete_model(store, "student")
    assert store.scalar("SELECT count(*) FROM generations WHERE model = 'student'") == 0
    assert store.scalar("SELECT count(*) FROM eval_runs") == 0
    assert [m["name"] for m in models.list_models(store)] == ["gemma3-270m-local", "teacher"]


def test_every_table_is_declared():
    """A step that adds a table declares what it references here (or that it is independent)."""
    declared = {t for _, t, _ in cascade.DATASET + cascade.MODEL} | set(cascade.INDEPENDENT) | {
        t for _, t, _, _ in cascade.DATASET_BLOCKERS + cascade.MODEL_BLOCKERS}
    store = Store()
    try:
        tables = {r["table_name"] for r in store.rows("SELECT table_name FROM information_schema.tables")}
    finally:
        store.close()
    assert tables - declared == set()


def test_cli_shows_the_counts_and_asks(tmp_path, capsys, mined, store):
    store.close()
    db = str(tmp_path / "test.duckdb")
    code = main(["--db", db, "data", "delete", "pool", "--yes"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "Deleted 'pool' (6 questions).\n"
    assert err.startswith("Deleting 'pool' removes: 1 candidate_versions, 1 candidates, 1 structures, 4 runs, "
                          "6 mining_items, 1 mining_runs, 8 predictions, 2 eval_runs, 6 gold_votes")
    code = main(["--db", db, "models", "delete", "student", "--yes"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "Deleted model 'student'.\n" and "2 generations" in err
    s = Store(db)
    try:
        assert orphans(s) == dict.fromkeys(orphans(s), 0)
        assert s.scalar("SELECT count(*) FROM models WHERE name = 'student'") == 0
    finally:
        s.close()


def test_replacing_a_mined_pool_takes_what_was_made_from_its_old_content(store, mined, tmp_path):
    (tmp_path / "new").mkdir()
    import_mini(store, tmp_path / "new", n=3, name="pool-v2")  # writes new/pool-v2.jsonl
    datasets.import_file(store, tmp_path / "new" / "pool-v2.jsonl", "pool", "train", fmt="generic", replace=True)
    assert store.scalar("SELECT count(*) FROM questions WHERE dataset = 'pool'") == 3
    assert mining.list_runs(store) == [] and store.scalar("SELECT count(*) FROM predictions WHERE dataset = 'pool'") == 0
    assert orphans(store) == dict.fromkeys(orphans(store), 0)
