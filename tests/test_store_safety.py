"""A store that cannot be opened is explained, and migrations never lose or half-change a store
(issue 21): damaged, held by another process (which one, for how long), newer than the code;
a copy `<db>.v<N>.bak` before a migration; a failing migration leaves the store as it was.
Real DuckDB files, real subprocesses, the real CLI and AppTest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from loopback import Loopback, Reply
from minidata import import_mini

import core.store
from core import models, store_owner
from core.cli import main
from core.errors import MigrationFailed, StoreTooNew
from core.migrations import all_migrations
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = all_migrations()


def content(path: Path) -> dict[str, list]:
    """Every table's rows (sorted), read from a closed store file: 'the same store' in content."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1").fetchall()]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


def cli(db: Path, *args: str, capsys) -> tuple[int, list[str]]:
    code = main(["--db", str(db), *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def filled_store(path: Path, tmp_path: Path, rows: int = 60_000) -> None:
    s = Store(path)
    import_mini(s, tmp_path, n=5, name="pool")
    # Enough data that metadata lands past the middle of the file (a cut store loses it).
    s.execute(f"CREATE TABLE filler AS SELECT range AS i, repeat('가나다', 20) || range::VARCHAR AS t "
              f"FROM range({rows})")
    s.execute("CHECKPOINT")
    s.close()


def _damage(data: bytes, how: str) -> bytes:
    if how == "cut in half":
        return data[: len(data) // 2]
    if how == "header flipped":
        return data[:8] + bytes(255 - b for b in data[8:4096]) + data[4096:]
    blocks = bytearray(data)  # every other 256 KiB block overwritten, past the headers
    for off in range(3 * 4096, len(data), 2 * 262144):
        blocks[off:off + 262144] = b"\xab" * len(blocks[off:off + 262144])
    return bytes(blocks)


@pytest.mark.parametrize("how", ["cut in half", "header flipped", "blocks overwritten"])
def test_a_damaged_store_is_one_error_with_what_to_do_and_is_left_alone(tmp_path, capsys, how):
    db = tmp_path / "csat.duckdb"
    filled_store(db, tmp_path)
    db.write_bytes(_damage(db.read_bytes(), how))
    before = db.read_bytes()
    code, err = cli(db, "data", "list", capsys=capsys)
    assert code == 1 and len(err) == 2, err  # old: "Error: unexpected IOException: IO Error: …"
    assert err[0].startswith(f"Error: The store {db} is damaged and cannot be opened (")
    assert err[1].startswith("Hint: restore the file from a backup") and "--db / CSAT_DB" in err[1]
    assert db.read_bytes() == before
    # With a copy kept before a migration beside it, the hint names that copy.
    (tmp_path / "csat.duckdb.v9.bak").write_bytes(b"older")
    (tmp_path / "csat.duckdb.v10.bak").write_bytes(b"old")
    code, err = cli(db, "data", "list", capsys=capsys)
    assert f"--db {tmp_path / 'csat.duckdb.v10.bak'} data list" in err[1]


def test_a_store_from_newer_code_names_both_versions_and_is_not_changed(tmp_path, capsys):
    db = tmp_path / "new.duckdb"
    s = Store(db)
    s.execute("INSERT INTO schema_migrations (name) VALUES ('m099_from_the_future')")
    s.close()
    before = content(db)
    with pytest.raises(StoreTooNew):
        Store(db)
    code, err = cli(db, "data", "list", capsys=capsys)
    latest = MIGRATIONS[-1][0]
    assert code == 1 and err[0] == (
        f"Error: The store {db} has schema version 99 (m099_from_the_future), newer than this code's version "
        f"{int(latest[1:4])} ({latest}): it was made by a later version of this project (migrations this code "
        "lacks: m099_from_the_future)")
    assert err[1].startswith("Hint: update this checkout")
    assert content(db) == before and not list(tmp_path.glob("*.bak"))


def _holder(db: Path) -> subprocess.Popen:
    code = f"from core.store import Store; s = Store({str(db)!r}); print('ready', flush=True); input()"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_store_held_by_a_cli_run_names_it_its_pid_and_how_long(tmp_path, capsys):
    db = tmp_path / "held.duckdb"
    s = Store(db)
    import_mini(s, tmp_path, n=3, name="pool")
    arrived, release = threading.Event(), threading.Event()

    def script(n, body):
        arrived.set()
        release.wait(60)
        return Reply()

    with Loopback("openai", script) as srv:
        models.add_model(s, "student", "openai", "qwen3-14b", base_url=srv.base_url, params={"concurrency": 1})
        s.close()
        assert not store_owner.sidecar(db).exists()  # a closed store removes its sidecar
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "CSAT_DB": str(db)}
        run = subprocess.Popen([sys.executable, "-m", "core", "solve", "--dataset", "pool", "--model", "student"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert arrived.wait(60)
            code, err = cli(db, "data", "list", capsys=capsys)
            # old: "… is in use by process N (probably the dashboard)"
            assert code == 1 and err[0].startswith(f"Error: The store {db} is in use by a CLI run, PID {run.pid}, "
                                                   "open for ")
            assert err[0].endswith("python -m core solve --dataset pool --model student")
            assert err[1].startswith(f"Hint: wait for it to finish, or stop it (Ctrl-C, or kill {run.pid}")
        finally:
            run.send_signal(signal.SIGKILL)
            release.set()
            run.wait(30)
    # The killed run left its sidecar; its pid is gone, so the next owner ignores and replaces it.
    assert json.loads(store_owner.sidecar(db).read_text())["pid"] == run.pid
    assert store_owner.valid_owner(db) is None
    Store(db).close()


def test_a_stale_or_reused_sidecar_is_not_believed(tmp_path, capsys):
    db = tmp_path / "held.duckdb"
    proc = _holder(db)
    try:
        info = json.loads(store_owner.sidecar(db).read_text())
        assert info["pid"] == proc.pid and info["argv"][1] == "-c"
        # The same pid running another program (pid reuse): the sidecar is ignored, DuckDB's PID used.
        store_owner.sidecar(db).write_text(json.dumps(info | {"argv": ["streamlit", "run", "app.py"]}))
        code, err = cli(db, "data", "list", capsys=capsys)
        assert f"in use by another program, PID {proc.pid}: python -c from core.store" in err[0]
        assert "open for" not in err[0] and "streamlit" not in err[0]
    finally:
        proc.kill()
        proc.wait(10)


def test_holder_kinds():
    assert store_owner.kind(["/venv/bin/python", "/venv/bin/streamlit", "run", "app.py"]) == "the dashboard (streamlit)"
    assert store_owner.kind(["/venv/bin/streamlit", "run", "app.py"]) == "the dashboard (streamlit)"
    assert store_owner.kind(["python", "-m", "streamlit", "run", "app.py"]) == "the dashboard (streamlit)"
    assert store_owner.kind(["python", "-m", "core", "mine"]) == "a CLI run"
    assert store_owner.kind(["python", "-c", "x"]) == "another program"


def test_every_dashboard_page_explains_a_store_it_cannot_open(tmp_path, db_env):
    from pagetest import clear_cached_store
    from streamlit.testing.v1 import AppTest

    filled_store(db_env, tmp_path)
    db_env.write_bytes(_damage(db_env.read_bytes(), "cut in half"))
    for script in ("app.py", "pages/data.py", "pages/mine.py"):
        clear_cached_store()
        at = AppTest.from_file(str(ROOT / script), default_timeout=60)
        at.run()
        assert not at.exception, at.exception  # old: a raw IOException box with a traceback
        assert len(at.error) == 1 and "is damaged and cannot be opened" in at.error[0].value
        assert "Hint:" in at.error[0].value and "start a new store" in at.error[0].value
    db_env.unlink()
    proc = _holder(db_env)
    try:
        clear_cached_store()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.run()
        assert not at.exception and "is in use by another program" in at.error[0].value
        assert f"PID {proc.pid}" in at.error[0].value
    finally:
        proc.kill()
        proc.wait(10)
        clear_cached_store()


# ---- migrations ----------------------------------------------------------------------------------

def _previous_release(path: Path, tmp_path: Path) -> dict[str, list]:
    """A store as the previous release made it: every migration but the last, with rows in it."""
    from core import engine

    older = MIGRATIONS[:-1]
    mp = pytest.MonkeyPatch()
    mp.setattr(core.store, "all_migrations", lambda: older)
    try:
        s = Store(path)
        import_mini(s, tmp_path, n=6, name="pool")
        with Loopback("openai") as srv:
            m = models.add_model(s, "student", "openai", "qwen3-14b", base_url=srv.base_url)
            engine.run(s, m, [engine.Request([{"role": "user", "content": f"문제 {i}"}], "t", dataset="pool",
                                              qid=f"q{i + 1}", n_choices=5) for i in range(6)])
        assert s.schema_version() == len(older)
        s.close()
    finally:
        mp.undo()
    return content(path)


def test_migrating_a_previous_release_store_keeps_every_row_and_a_copy(tmp_path):
    db = tmp_path / "csat.duckdb"
    before = _previous_release(db, tmp_path)
    assert [len(before[t]) for t in ("questions", "generations")] == [6, 6] and before["models"]
    s = Store(db)
    version = int(MIGRATIONS[-2][0][1:4])
    assert s.backup == tmp_path / f"csat.duckdb.v{version}.bak"
    s.close()
    after = content(db)
    for table, rows in before.items():
        if table != "schema_migrations":
            assert len(after[table]) == len(rows), table  # no row lost (a new column changes the repr)
    assert len(after["schema_migrations"]) == len(MIGRATIONS)
    assert content(tmp_path / f"csat.duckdb.v{version}.bak") == before  # the copy is the store as it was
    again = Store(db)  # nothing pending: no new copy
    assert again.backup is None
    again.close()


def test_a_fresh_store_needs_no_copy(tmp_path):
    s = Store(tmp_path / "new.duckdb")
    assert s.backup is None and not list(tmp_path.glob("*.bak"))
    s.close()


def test_a_migration_that_fails_half_way_leaves_the_store_as_it_was(tmp_path, monkeypatch, capsys):
    db = tmp_path / "csat.duckdb"
    before = _previous_release(db, tmp_path)

    def m998_half(con):
        con.execute("CREATE TABLE half_made (x INTEGER)")
        con.execute("ALTER TABLE questions ADD COLUMN half VARCHAR")
        con.execute("DELETE FROM generations")
        raise RuntimeError("disk full half-way")

    monkeypatch.setattr(core.store, "all_migrations", lambda: [*MIGRATIONS, ("m998_half", m998_half)])
    with pytest.raises(MigrationFailed) as err:
        Store(db)
    version = int(MIGRATIONS[-2][0][1:4])
    assert err.value.message.startswith("Migration m998_half failed (RuntimeError: disk full half-way); no "
                                        f"migration was applied and the store {db} is as it was "
                                        f"(schema version {version})")
    assert str(tmp_path / f"csat.duckdb.v{version}.bak") in err.value.message
    # The last good migration ran before the failing one in the same attempt: rolled back too.
    assert content(db) == before
    assert store_owner.valid_owner(db) is None  # the failed open closed the file
    code, lines = cli(db, "data", "list", capsys=capsys)
    assert code == 1 and lines[0].startswith("Error: Migration m998_half failed") and lines[1].startswith("Hint: ")
    monkeypatch.setattr(core.store, "all_migrations", lambda: MIGRATIONS)
    s = Store(db)  # the fixed code migrates it
    assert s.scalar("SELECT count(*) FROM generations") == 6
    s.close()
