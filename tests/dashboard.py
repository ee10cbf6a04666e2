"""A real dashboard process on a free loopback port, and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: scripts/ensure-chromium.sh should have installed it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


@contextmanager
def running_dashboard(db: Path, env_extra: dict[str, str] | None = None, timeout: float = 90):
    """Start `streamlit run app.py` on 127.0.0.1; always stopped, even when a test fails."""
    port = free_port()
    env = {**os.environ, "CSAT_DB": str(db), "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    log = open(db.parent / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dashboard did not start:\n" + (db.parent / "streamlit.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def wait_idle(page, timeout: float = 60_000, started: float = 1_500) -> None:
    """Wait until the script run behind the page has finished (Streamlit marks stApp with its state).

    A run starts a moment after a click or a page load: first wait (briefly; a quick run may already
    be over) for it to start, then for it to end with something drawn in the main area.
    """
    try:
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=running]", timeout=started)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: the run was quicker than the poll
        pass
    # Both at once: a page's first run may rerun itself (pages/_ui.py:use_navigation) after drawing nothing.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'"
        " && document.querySelectorAll('[data-testid=stMain] [data-testid=stElementContainer]').length > 0",
        timeout=timeout)


def exceptions(page) -> list[str]:
    """Text of every exception element Streamlit shows (tracebacks from st.exception or a crashed script)."""
    return [e.inner_text() for e in page.locator("[data-testid=stException]").all()]


def main_text(page) -> str:
    return page.locator("[data-testid=stMain]").inner_text()


def sidebar_text(page) -> str:
    return page.locator("[data-testid=stSidebar]").inner_text()
