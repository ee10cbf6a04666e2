"""Mining's run record is the one every step has (core/runs.py): the same MiningConfig is the same run
(resumed, nothing sent again, counted on the loopback servers), a changed config is another, and
m050 carries a store of the previous schema over with every mining run and item it had."""

from __future__ import annotations

import json

import pytest

import core.store
from core import jobs, runs
from core.errors import CoreError
from core.migrations import all_migrations
from core.steps.mine import mining
from core.store import Store
from tests.loopback import Loopback
from tests.minedata import STUDENT, TEACHER, Script, pool, register

MIGRATIONS = all_migrations()
BEFORE_M050 = [m for m in MIGRATIONS if m[0] < "m050"]


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def cfg(**over) -> mining.MiningConfig:
    return mining.MiningConfig(pool="kice", teacher="teacher", student="student", **over)


def test_mining_the_same_config_twice_is_the_same_run(store, tmp_path):
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        register(store, t, s)
        first = mining.run(store, cfg())
        assert (t.count, s.count, first["requests_sent"]) == (5, 5, 10)
        items = store.rows("SELECT * FROM mining_items WHERE run_id = ? ORDER BY qid", [first["run"]])
        again = mining.run(store, cfg())
        assert again["run"] == first["run"]
        assert (t.count, s.count) == (5, 5)  # nothing sent the second time
        assert (again["requests_sent"], again["cached"]) == (0, 10)
    assert store.rows("SELECT * FROM mining_items WHERE run_id = ? ORDER BY qid", [first["run"]]) == items
    record = runs.get_run(store, first["run"], "mine")  # the run record every step has
    assert (record["config_hash"], record["state"], record["config"]) == (cfg().digest(), "done", cfg().model_dump())
    assert record["summary"]["hard_negatives"] == 2 and record["finished_at"] is not None
    assert store.scalar("SELECT count(*) FROM runs WHERE step = 'mine'") == 1
    assert store.rows("SELECT * FROM mining_runs") == [
        {"id": first["run"], "pool": "kice", "teacher": "teacher", "student": "student"}]
    assert [r["run"] for r in mining.list_runs(store)] == [first["run"]]


def test_a_changed_config_is_another_run(store, tmp_path):
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        register(store, t, s)
        one = mining.run(store, cfg())
        two = mining.run(store, cfg(samples=2))
        assert two["run"] != one["run"]
        assert (t.count, s.count) == (10, 10)  # the second sample of each question is new work
        assert mining.run(store, cfg(samples=2))["run"] == two["run"] and (t.count, s.count) == (10, 10)
    assert [r["run"] for r in mining.list_runs(store)] == [two["run"], one["run"]]
    assert mining.get_run(store, one["run"])["config"]["samples"] == 1  # the first run is as it was
    assert store.scalar("SELECT count(*) FROM mining_items WHERE run_id = ?", [one["run"]]) == 6
    assert store.scalar("SELECT count(*) FROM runs WHERE step = 'mine'") == 2


def test_a_job_resumes_the_run_and_the_record_names_the_latest_job(store, tmp_path):
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        register(store, t, s)
        done = []
        for _ in range(2):
            job_id = mining.start_job(store, cfg())
            assert jobs.wait(job_id, 60)
            done.append((job_id, jobs.get_job(store, job_id)["result"]))
        assert (t.count, s.count) == (5, 5)
    (job1, r1), (job2, r2) = done
    assert r1["run"] == r2["run"] and r2["requests_sent"] == 0
    assert runs.get_run(store, r1["run"])["job_id"] == job2 != job1


def test_a_failed_run_says_why_and_the_same_config_resumes_it(store, tmp_path, monkeypatch):
    pool(store, tmp_path)
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        register(store, t, s)
        monkeypatch.delenv("GEMINI_API_KEY")
        with pytest.raises(CoreError, match="no API key"):
            mining.run(store, cfg())
        failed = mining.list_runs(store)[0]
        assert failed["state"] == "failed" and "no API key" in mining.get_run(store, failed["run"])["message"]
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        again = mining.run(store, cfg())
    assert again["run"] == failed["run"] and mining.get_run(store, again["run"])["message"] is None
    assert [r["state"] for r in mining.list_runs(store)] == ["done"]


# ---- m050: a store of the previous schema ---------------------------------------------------------------


def content(path) -> dict[str, list]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1").fetchall()]
        return {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    finally:
        con.close()


OLD_RUN = ("INSERT INTO mining_runs (id, pool, teacher, student, config, config_hash, state, summary, job_id, "
           "created_at, code_version) VALUES (?, 'kice', 'teacher', 'student', ?, ?, ?, ?, ?, ?, 'abc123')")


def old_store(db, tmp_path, t: Loopback, s: Loopback) -> dict[str, dict]:
    """A store as the schema before m050 left it: mining runs in mining_runs (config, state, summary
    there), two of them with the same config (mined twice, as the old code did), one from before config
    hashes, one left running by a dead job; the solves they came from are in the cache."""
    mp = pytest.MonkeyPatch()
    mp.setattr(core.store, "all_migrations", lambda: BEFORE_M050)
    try:
        st = Store(db)
        pool(st, tmp_path)
        register(st, t, s)
        from core.steps.solve import solve

        for who in ("teacher", "student"):
            solve.solve(st, "kice", who, samples=1, gold_only=True)
        c = cfg()
        summary = {"run": "?", "pool": "kice", "hard_negatives": 2, "questions": 6}
        runs_ = {
            "a1b2c3d4e5": (c.model_dump_json(), c.digest(), "done", "2026-01-01 10:00:00"),
            "f6a7b8c9d0": (c.model_dump_json(), c.digest(), "done", "2026-01-02 10:00:00"),  # the same config again
            "0123456789": (cfg(samples=3).model_dump_json(), None, "failed", "2025-12-01 10:00:00"),  # no hash yet
            "9876543210": (cfg(rule="hard").model_dump_json(), cfg(rule="hard").digest(), "running",
                           "2026-01-03 10:00:00"),
        }
        for run_id, (config, digest, state, at) in runs_.items():
            st.execute(OLD_RUN, [run_id, config, digest, state,
                                 json.dumps(summary | {"run": run_id}, ensure_ascii=False) if state == "done" else None,
                                 "job-dead" if state == "running" else None, at])
            n = 6 if state == "done" else 0
            st.executemany("INSERT INTO mining_items (run_id, qid, outcome, kept, gold) VALUES (?, ?, ?, ?, ?)",
                           [(run_id, str(q), "hard_negative" if q in (1, 4) else "both_correct", q in (1, 4), q)
                            for q in range(1, n + 1)])
        assert st.scalar("SELECT count(*) FROM runs") == 0 and st.schema_version() == len(BEFORE_M050)
        st.close()
    finally:
        mp.undo()
    return runs_


def test_m050_keeps_every_mining_run_and_item_of_a_previous_schema_store(tmp_path):
    db = tmp_path / "csat.duckdb"
    with Loopback("gemini", Script("교사", TEACHER)) as t, Loopback("openai", Script("학생", STUDENT)) as s:
        old = old_store(db, tmp_path, t, s)
        before = content(db)
        sent = (t.count, s.count)
        st = Store(db)
        backup = st.backup
        st.close()
        assert backup is not None and content(backup) == before
        after = content(db)
        for table, rows in before.items():  # no row lost anywhere; each mining run gained its run record
            want = len(rows) + {"runs": len(old), "schema_migrations": len(MIGRATIONS) - len(BEFORE_M050)}.get(table, 0)
            assert len(after[table]) == want, table
        assert sorted(after["mining_items"]) == sorted(before["mining_items"])  # items exactly as they were
        st = Store(db)
        try:
            listed = {r["run"]: r for r in mining.list_runs(st)}
            assert set(listed) == set(old)  # duplicates stay two runs: history is not merged
            assert listed["9876543210"]["state"] == "interrupted"  # its job died with its process
            for run_id, (config, digest, state, at) in old.items():
                run = mining.get_run(st, run_id)
                assert (run["pool"], run["teacher"], run["student"]) == ("kice", "teacher", "student")
                assert run["config"] == json.loads(config) and run["code_version"] == "abc123"
                assert str(run["created_at"]) == at
                assert run["config_hash"] == (digest or f"legacy-{run_id}")
                assert len(mining.items(st, run_id)) == (6 if state == "done" else 0)
                if state == "done":
                    assert run["summary"]["hard_negatives"] == 2
            # Mining the duplicated config again resumes the newest of them, from the cache.
            again = mining.run(st, cfg())
            assert again["run"] == "f6a7b8c9d0" and again["requests_sent"] == 0 and (t.count, s.count) == sent
            assert len(mining.items(st, "a1b2c3d4e5")) == 6  # the older duplicate is untouched
            assert mining.run(st, cfg(samples=3))["run"] != "0123456789"  # a run without a hash never resumes
        finally:
            st.close()
