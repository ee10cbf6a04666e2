"""Issue 10, item 14: tests never write the converted gemma model into the user's home cache."""

from pathlib import Path

from core.providers import local


def test_tests_use_a_temporary_model_cache():
    cache = local.gguf_cache()
    assert not cache.resolve().is_relative_to(Path.home().resolve() / ".cache"), cache


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CSAT_MODEL_CACHE", str(tmp_path / "models"))
    assert local.gguf_cache() == tmp_path / "models"
    monkeypatch.delenv("CSAT_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert local.gguf_cache() == tmp_path / "xdg" / "csat-distill" / "gguf"
