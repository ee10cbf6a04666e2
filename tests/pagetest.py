"""AppTest helpers shared by the page tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def clear_cached_store() -> None:
    """Pages keep one Store per process (st.cache_resource); tests that seed a file must drop it."""
    from pages._ui import _open_store

    _open_store.clear()


@pytest.fixture(autouse=True)
def fresh_page_store():
    clear_cached_store()
    yield
    clear_cached_store()


def shown(value: str) -> str:
    """Markdown a page wrote, as a reader sees it: escapes (pages/_ui.py:text) and word joiners gone."""
    import re

    return re.sub(r"\\(.)", r"\1", value).replace("\u2060", "")


def open_page(path: str) -> AppTest:
    """Run a script (app.py or a page file on its own) and fail on any exception it shows."""
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at
