"""Keys are never stored or printed: a server that echoes the API key in its error body (HTTP 401
`Incorrect API key provided: <key>`, as proxies and some servers do) leaves the key in none of the
DuckDB file's text columns, the reply journal, the log file or the terminal; the masked form is there.
Real CLI subprocesses, a real DuckDB file, loopback servers speaking the OpenAI and Gemini wires."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopback import Loopback, Reply
from minidata import import_mini

from core import journal, secrets
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-proj-Zq81vT0pLx3mW9eR4uYb7cN2hJ6kA5dF"
MASKED = secrets.masked(KEY)  # "sk-…5dF"-style: a short prefix and the last 4

# The CLI with a log file (DEBUG: the SDKs' and httpx's request logs too) and the key in the environment.
RUNNER = ("import logging, sys; logging.basicConfig(filename=sys.argv[1], level=logging.DEBUG, force=True); "
          "from core.cli import main; sys.exit(main(sys.argv[2:]))")


def echo_key(wire: str):
    if wire == "openai":
        body = {"error": {"message": f"Incorrect API key provided: {KEY}. You can find your API key at "
                                     "https://platform.openai.com/account/api-keys.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}
    else:
        body = {"error": {"code": 401, "message": f"API key not valid: {KEY}", "status": "UNAUTHENTICATED"}}
    return lambda n, b: Reply(status=401, raw=json.dumps(body).encode())


def text_cells(db: Path) -> list[str]:
    """Every value of every text column of every table (JSON columns as their text)."""
    s = Store(db)
    try:
        cells = []
        for t in s.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"):
            cols = [r["column_name"] for r in s.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [t["table_name"]])]
            for c in cols:  # every column as text: lists and JSON included
                cells += [v for (v,) in s.con.execute(f'SELECT CAST("{c}" AS VARCHAR) FROM "{t["table_name"]}"')
                          .fetchall() if v is not None]
        return cells
    finally:
        s.close()


@pytest.mark.parametrize("wire", ["openai", "gemini"])
def test_an_echoed_key_is_stored_and_printed_nowhere(tmp_path, wire):
    db, log = tmp_path / "ws.duckdb", tmp_path / "csat.log"
    s = Store(db)
    import_mini(s, tmp_path, n=3)
    s.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MY_PROXY_KEY": KEY}
    env.pop("CSAT_DEBUG", None)
    with Loopback(wire, echo_key(wire)) as srv:
        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-c", RUNNER, str(log), "--db", str(db), *args], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=120)

        add = cli("models", "add", "proxy", "--provider", wire, "--model", "m1", "--base-url", srv.base_url,
                  "--param", "api_key_env=MY_PROXY_KEY", "--param", "max_retries=0")
        assert add.returncode == 0, add.stderr
        solve = cli("solve", "--dataset", "mini", "--model", "proxy")
        jobs = cli("jobs", "list")
        shown = [cli("jobs", "show", line.split()[0]) for line in jobs.stdout.splitlines()[:3] if line.strip()]
        assert srv.count >= 1  # the server was reached and echoed the key
    terminal = "".join(p.stdout + p.stderr for p in [add, solve, jobs, *shown])
    assert solve.returncode == 1 and "HTTP 401" in solve.stderr, solve.stderr
    assert KEY not in terminal and MASKED in solve.stderr
    cells = text_cells(db)
    assert not [c for c in cells if KEY in c]
    stored_errors = [c for c in cells if "HTTP 401" in c]
    assert stored_errors and all(MASKED in c for c in stored_errors)  # generations.error, jobs, runs
    logged = log.read_text(encoding="utf-8")
    assert KEY not in logged and MASKED in logged  # the failed job's log line and traceback, masked
    leftovers = list((tmp_path / "ws.duckdb.journal").glob("**/*")) if (tmp_path / "ws.duckdb.journal").exists() else []
    assert not [p for p in leftovers if p.is_file() and KEY in p.read_text(encoding="utf-8", errors="replace")]


def test_the_journal_lines_hold_the_masked_error(store, tmp_path, monkeypatch):
    """The journal's lines are written and folded within one run: capture each line as it is written."""
    from core import models
    from core.steps.solve import solve

    written: list[str] = []
    real = journal.Journal.append

    def spy(self, row):
        written.append(json.dumps(row, default=str, ensure_ascii=False))
        return real(self, row)

    monkeypatch.setattr(journal.Journal, "append", spy)
    monkeypatch.setenv("MY_PROXY_KEY", KEY)
    import_mini(store, tmp_path, n=2)
    with Loopback("openai", echo_key("openai")) as srv:
        models.add_model(store, "proxy", "openai", "m1", base_url=srv.base_url,
                         params={"api_key_env": "MY_PROXY_KEY", "max_retries": 0, "timeout_s": 5})
        with pytest.raises(Exception, match="HTTP 401"):
            solve.solve(store, "mini", "proxy")
    assert written and all(KEY not in line for line in written) and any(MASKED in line for line in written)


def test_redact_masks_registered_and_secret_named_environment_values(monkeypatch, caplog):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-1234567890-abcdef")
    monkeypatch.setattr(secrets, "_env_seen", False)
    assert secrets.redact("bearer tok-1234567890-abcdef!") == "bearer tok…cdef!"
    secrets.register("short")  # too short to be a key: never replaced inside ordinary words
    assert secrets.redact("a short note") == "a short note"
    assert secrets.redact(None) is None and secrets.redact("") == ""
    secrets.register(KEY)
    with caplog.at_level(logging.INFO):
        logging.getLogger("core.anything").info("sent with %s", KEY)
        try:
            raise RuntimeError(f"401: {KEY}")
        except RuntimeError:
            logging.getLogger("httpx").exception("failed")
    assert KEY not in caplog.text and MASKED in caplog.text
    assert all(KEY not in (r.exc_text or "") for r in caplog.records)


def test_each_choke_point_masks_on_its_own(store, capsys, monkeypatch):
    """Errors that never went through a provider (an SDK surprise, a bug quoting the key): the job's
    message and traceback, the run's message and the CLI's error lines are masked where they are written."""
    from core import jobs, runs
    from core.cli import main
    from core.errors import CoreError
    from core.steps.review.preference_sets import FreezeConfig

    secrets.register(KEY)

    def boom(ctx):
        raise RuntimeError(f"SDK surprise quoting {KEY}")

    job_id = jobs.start(store, "test", "boom", boom)
    assert jobs.wait(job_id, timeout=30)
    row = store.rows("SELECT message, traceback FROM jobs WHERE id = ?", [job_id])[0]
    assert KEY not in row["message"] + row["traceback"] and MASKED in row["message"] and MASKED in row["traceback"]
    run_id, _ = runs.open_run(store, FreezeConfig(name="x", run="y"))
    runs.finish_run(store, run_id, "failed", message=f"failed with {KEY}")
    assert store.scalar("SELECT message FROM runs WHERE id = ?", [run_id]) == f"failed with {MASKED}"

    from core import cli as cli_mod

    cli_mod._register()  # the nouns register on the real app before it is swapped for one that raises
    for exc in (CoreError(f"bad key {KEY}", hint=f"not {KEY}"), ValueError(f"bad key {KEY}")):
        monkeypatch.setattr(cli_mod, "app", lambda *a, exc=exc, **k: (_ for _ in ()).throw(exc))
        assert main(["data", "list"]) == 1  # with a noun (the root listing without one never calls app)
        err = capsys.readouterr().err
        assert KEY not in err and MASKED in err
