"""Model registry: validation before any call, no secrets stored or listed, migration on an old store."""

from __future__ import annotations

import json

import duckdb
import pytest

from core import models
from core.errors import CoreError, NotFound
from core.migrations.m001_initial import up as m001_initial
from core.migrations.m002_models_generations_jobs import GEMMA_LOCAL
from core.store import Store


def test_builtin_gemma_is_registered(store):
    names = [m["name"] for m in models.list_models(store)]
    assert GEMMA_LOCAL in names
    m = models.get_model(store, GEMMA_LOCAL)
    assert m.provider == "local" and "near chance" in m.description


def test_add_list_delete(store):
    models.add_model(store, "flash", "gemini", "gemini-2.5-flash", params={"temperature": "0.3", "rpm": "100"})
    m = models.get_model(store, "flash")
    assert m.params.temperature == 0.3 and m.params.rpm == 100 and m.key_env == "GEMINI_API_KEY"
    with pytest.raises(CoreError, match="already exists"):
        models.add_model(store, "flash", "gemini", "gemini-2.5-flash")
    models.delete_model(store, "flash")
    with pytest.raises(NotFound):
        models.get_model(store, "flash")


@pytest.mark.parametrize("provider, params, match", [
    ("gemini", {"temprature": 1}, "bad param temprature"),
    ("gemini", {"temperature": "hot"}, "bad param temperature"),
    ("gemini", {"api_key": "AIza-secret"}, "keys are never stored"),
    ("gemini", {"api_key_env": "AIza-secret-value"}, "variable NAME"),
    ("openai", {"thinking_budget": 100}, "does not support thinking_budget"),
    ("local", {"json_schema": {"type": "object"}}, "does not support json_schema"),
    ("nope", {}, "unknown provider"),
])
def test_add_rejects_bad_input_before_any_call(store, provider, params, match):
    with pytest.raises(CoreError, match=match):
        models.add_model(store, "m", provider, "some-model", params=params)


def test_adapter_only_for_local(store, tmp_path):
    with pytest.raises(CoreError, match="only applies to the local provider"):
        models.add_model(store, "m", "openai", "x", adapter=str(tmp_path))
    with pytest.raises(CoreError, match="does not exist"):
        models.add_model(store, "m", "local", "x", adapter=str(tmp_path / "missing"))


def test_keys_never_stored_or_listed(store, monkeypatch):
    secret = "fake-gemini-key-never-stored-123"
    monkeypatch.setenv("MY_GEMINI_KEY", secret)
    models.add_model(store, "flash", "gemini", "gemini-2.5-flash", params={"api_key_env": "MY_GEMINI_KEY"})
    listed = json.dumps(models.list_models(store))
    assert secret not in listed
    entry = next(m for m in models.list_models(store) if m["name"] == "flash")
    assert entry["key_env"] == "MY_GEMINI_KEY" and entry["key_set"] is True
    store.con.execute("CHECKPOINT")
    assert secret.encode() not in open(store.path, "rb").read()


def test_migration_on_an_older_store(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
    m001_initial(con)
    con.execute("INSERT INTO schema_migrations (name) VALUES ('m001_initial')")
    con.execute("INSERT INTO datasets (name, split) VALUES ('old', 'test')")
    con.close()
    s = Store(path)
    try:
        assert s.scalar("SELECT count(*) FROM datasets") == 1
        assert s.scalar("SELECT count(*) FROM schema_migrations WHERE name = 'm002_models_generations_jobs'") == 1
        assert s.scalar("SELECT count(*) FROM models WHERE name = ?", [GEMMA_LOCAL]) == 1
    finally:
        s.close()
