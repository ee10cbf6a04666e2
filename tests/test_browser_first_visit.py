"""Issue 10, item 1: the very first request to a freshly started dashboard is Home, and it works.

An import cycle once broke exactly this order (app.py → pages/_ui → core.pipeline → … → core.pipeline)
while every test that imported modules in another order passed; only a fresh process whose first
request is Home shows it, so this test starts its own dashboard and makes that the first request.
"""

import pytest

from tests.dashboard import (
    browser_page,
    chromium_path,
    exceptions,
    main_text,
    running_dashboard,
    sidebar_text,
    wait_idle,
)

pytestmark = pytest.mark.browser

PAGE_TITLES = ["Home", "Data", "Mine", "Augment", "Review", "Train", "Evaluate", "Visualise", "Settings"]


def test_first_request_is_home_and_shows_no_exception(tmp_path):
    chromium_path()
    with running_dashboard(tmp_path / "fresh.duckdb") as url, browser_page() as page:
        page.goto(url)  # the first request this process serves
        wait_idle(page)
        assert exceptions(page) == []
        page.get_by_text("CSAT reasoning distillation").first.wait_for()
        page.get_by_role("button", name="Load sample data").wait_for()  # the last element the page draws
        body, side = main_text(page), sidebar_text(page)
        assert "Traceback" not in body and "Error" not in body, body[:2000]
        assert "Data — empty; needs" in body  # the pipeline overview, counted from the fresh store
        assert "Load sample data" in body
        # Navigation by title, never the raw file names a crashed st.navigation falls back to.
        for title in PAGE_TITLES:
            assert title in side, side
        nav = page.locator("[data-testid=stSidebarNav]").inner_text().split()
        assert "app" not in nav and "ui" not in nav and "_ui" not in nav, nav
        page.screenshot(path=str(tmp_path / "first_visit_home.png"), full_page=True)


def test_home_opens_at_root_and_at_slash_home(tmp_path):
    """Home is the default page, served at "/"; "/home" (the address a reader types or bookmarks) opened
    Streamlit's "Page not found" dialog. Both addresses open Home."""
    chromium_path()
    with running_dashboard(tmp_path / "fresh.duckdb") as url, browser_page() as page:
        for address in (f"{url}/home", url, f"{url}/home"):
            page.goto(address)
            wait_idle(page)
            page.get_by_role("button", name="Load sample data").wait_for()  # Home's last element
            assert exceptions(page) == []
            assert page.get_by_text("Page not found").count() == 0, address
            assert "CSAT reasoning distillation" in main_text(page)
            assert page.url.rstrip("/") == url  # /home lands on the root, with Home marked in the navigation
