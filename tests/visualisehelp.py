"""Browser helpers for the Visualise page's map (shared by test_pages_visualise and the whole-pipeline test)."""

from __future__ import annotations

from tests.dashboard import exceptions, main_text, wait_idle


def lasso_all(page) -> None:
    """Pick the mode bar's lasso, then lasso around the whole plotting area (selects every point)."""
    page.locator("[data-testid=stPlotlyChart]").first.hover()
    page.locator("[data-testid=stPlotlyChart] [data-val=lasso]").first.click()
    plot = page.locator("[data-testid=stPlotlyChart] .nsewdrag").first
    plot.wait_for()
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    x0, y0, x1, y1 = box["x"] + 3, box["y"] + 3, box["x"] + box["width"] - 3, box["y"] + box["height"] - 3
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def click_point(page, trace: int, index: int) -> None:
    """Click one point of the page's first Plotly chart, found through plotly.js's own axes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    plot = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    plot.wait_for()
    plot.scroll_into_view_if_needed()  # the mouse only reaches what the window shows
    # plotly.js picks the clicked point from its hover state. The chart may still be resizing when it
    # first appears (the point moves under the pointer): read its position again and hover again.
    for attempt in range(4):
        x, y = plot.evaluate("""(gd, [t, i]) => {
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, d = gd._fullData[t];
            const r = gd.getBoundingClientRect();
            return [r.left + xa._offset + xa.l2p(d.x[i]), r.top + ya._offset + ya.l2p(d.y[i])];
        }""", [trace, index])
        page.mouse.move(x - 8, y - 8)
        page.mouse.move(x, y, steps=5)
        try:
            page.locator(".hoverlayer .hovertext").first.wait_for(timeout=5_000)
            break
        except PlaywrightTimeout:
            if attempt == 3:
                raise
            page.mouse.move(1, 1)
    page.mouse.click(x, y)


def open_selected(page, option: str) -> None:
    """Pick one of the selected points in 'Open a selected question'."""
    box = page.get_by_role("combobox", name="Open a selected question").first
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):  # a click that lands while the page redraws may not open the list
        box.click()
        try:
            choice.wait_for(timeout=5_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            page.keyboard.press("Escape")
    choice.click()
    wait_idle(page)


def step_visualise(page, url: str, points: int) -> None:
    """Browser walk of the page on a store with no map yet: Map (the default sets, the real offline
    embedder) → the map appears → click a point (it opens) → lasso every point (all listed).
    The whole-pipeline browser test calls it after Evaluate."""
    page.goto(f"{url}/visualise")
    wait_idle(page)
    page.get_by_text("No map yet").wait_for()
    page.get_by_role("button", name="Map", exact=True).click()
    page.locator("[data-testid=stPlotlyChart]").first.wait_for(timeout=300_000)
    wait_idle(page)
    assert f"{points} questions · " in main_text(page)
    click_point(page, trace=0, index=0)
    page.get_by_text("Selected: 1 question(s)").wait_for(timeout=60_000)
    page.get_by_text("Nearest neighbours").wait_for(timeout=60_000)
    wait_idle(page)
    lasso_all(page)
    page.get_by_text(f"Selected: {points} question(s)").wait_for(timeout=60_000)
    wait_idle(page)
    assert not exceptions(page)
