"""Shared fixtures. Tests run offline: no hub downloads, no keys, a fresh store per test."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
for _key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
    os.environ.pop(_key, None)
# The built-in gemma's one-time GGUF conversion goes to a temporary folder (kept between runs so the
# suite stays warm), never into the user's ~/.cache (core/providers/local.py:gguf_cache).
os.environ["CSAT_MODEL_CACHE"] = os.path.join(__import__("tempfile").gettempdir(), "csat-distill-test-models")

import pytest  # noqa: E402

from core.store import Store  # noqa: E402


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "test.duckdb")
    yield s
    s.close()


@pytest.fixture
def db_env(tmp_path, monkeypatch):
    """A fresh DuckDB path for code that opens the store itself (CLI, AppTest)."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("CSAT_DB", str(path))
    monkeypatch.setenv("CSAT_WORKSPACE", str(tmp_path / "workspace"))
    return path


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory):
    """A tiny random Qwen3 folder (tests/tiny_models.py), built once per session."""
    from tests.tiny_models import build_tiny_qwen

    return str(build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen3")))


@pytest.fixture
def tiny(store, tiny_qwen):
    """A store with the tiny Qwen3 registered as local model 'tiny' (the training tests' student)."""
    from tests.trainhelp import add_tiny

    return add_tiny(store, tiny_qwen)
