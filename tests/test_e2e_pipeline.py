"""The whole pipeline in a real browser (issue 11 "Browser end to end", issue 10 "done when").

Playwright drives Debian's headless Chromium (with a Korean font, scripts/ensure-chromium.sh) against
the real dashboard (`streamlit run app.py` on a free 127.0.0.1 port) with a fresh store: first visit
Home, import on Data, register models (a loopback OpenAI-wire teacher from tests/loopback.py and the
tiny random Qwen3 student from tests/tiny_models.py, run in-process by the local provider), solve,
mine, evaluate. Every step asserts on what its page shows (counts, table rows, chart traces), that no
page shows an exception, and saves a screenshot under tmp_path.

Extending it: each step is one function `step_<name>(walk)` called in order by
test_whole_pipeline_in_a_browser; the Augment, Review, Train and Visualise steps go where the
comments in that test say. A step leaves the dashboard on its own page; `walk.visit(path)` opens a
page and checks it, `walk.shot(name)` saves a screenshot, the widget helpers below find Streamlit
widgets by their label.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

PAGES = ["home", "data", "mine", "augment", "review", "train", "evaluate", "visualise", "settings"]


def _problem(stem: str, answer: int, score: int = 2) -> dict[str, Any]:
    return {"question": stem, "choices": ["ㄱ", "ㄴ", "ㄱ, ㄴ", "ㄴ, ㄷ", "ㄱ, ㄴ, ㄷ"], "answer": answer, "score": score}


# A train pool of 4 questions over 2 subjects (one passage holds a survey table) and a test set of 3.
POOL = [
    {"id": "p1", "subject": "사회·문화",
     "paragraph": "다음은 갑국 조사 결과이다.\n(단위: %)\n| 구분 | 운동 | 여행 |\n| 20대 | 40 | 60 |\n| 30대 | 50 | 50 |",
     "problems": [_problem("[풀1] 위 자료에 대한 분석으로 옳은 것은?", 1),
                  _problem("[풀2] 위 자료에 대한 설명으로 옳지 않은 것은?", 3, 3)]},
    {"id": "p2", "subject": "생활과 윤리", "paragraph": "갑: 도덕 법칙은 정언 명령의 형식을 가진다.",
     "problems": [_problem("[풀3] 갑의 입장으로 옳은 것은?", 2), _problem("[풀4] 갑이 부정할 주장은?", 5)]},
]
TEST = [
    {"id": "t1", "subject": "생활과 윤리", "paragraph": "을: 행위의 옳음은 결과로 판단된다.",
     "problems": [_problem("[시1] 을의 입장으로 옳은 것은?", 4), _problem("[시2] 을이 긍정할 주장은?", 2, 3)]},
    {"id": "t2", "subject": "사회·문화", "paragraph": "사회 집단은 구성원의 소속감에 따라 나뉜다.",
     "problems": [_problem("[시3] 윗글에 대한 설명으로 옳은 것은?", 1)]},
]
GOLD = {p["question"].split("]")[0] + "]": p["answer"] for s in POOL + TEST for p in s["problems"]}


def make_oracle():
    """The teacher: augment requests (structures, blueprints, re-solves of candidates) are answered by
    tests/augmentdata.py's AugmentOracle; any other request is a solve: it reasons briefly and names the
    gold answer of the question it was sent."""
    from tests.augmentdata import AugmentOracle
    from tests.loopback import Reply

    augment = AugmentOracle()

    def oracle(n: int, body: dict[str, Any]):
        reply = augment.reply(body)
        if reply is not None:
            return reply
        text = json.dumps(body, ensure_ascii=False)
        tag = next(t for t in GOLD if t in text)
        return Reply(text=f"선지를 하나씩 검토한다. 자료와 일치하는 것을 고른다.\n{{\"Answer\":\"{GOLD[tag]}\"}}")

    return oracle


# ---- widgets by label --------------------------------------------------------------------------


def form(page, submit: str):
    """The form whose submit button says `submit` (to tell apart widgets with the same label): an st.form,
    or a live one (pages/_ui.py:config_form(live=True): a container with the CSS class st-key-KEY-live)."""
    return page.locator("[data-testid=stForm], [class*='-form-live']").filter(
        has=page.get_by_role("button", name=submit, exact=True)).first


def select(page, label: str, option: str, within=None, rerun: bool = True) -> None:
    """Pick `option` in the selectbox labelled `label` (the first one with that label, in `within` if given).

    rerun=False inside an st.form: a widget there changes nothing until the form is submitted."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = (within or page).get_by_role("combobox", name=re.compile(f"^{re.escape(label)}$", re.I)).first
    choice = page.get_by_role("option", name=option, exact=True)
    # A rerun (e.g. set off by the text field just left) may redraw the page while the list is open: the
    # click does not land or the list goes away. Open the list again until the box shows the option.
    for _ in range(4):
        try:
            box.click(timeout=10_000)
            choice.wait_for(timeout=5_000)
            choice.click(timeout=5_000)
            if box.input_value() == option:
                break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        raise AssertionError(f"could not pick {option!r} in {label!r}: it shows {box.input_value()!r}")
    if rerun:
        wait_idle(page)


def fill(page, label: str, value: str, *, enter: bool = True, within=None, rerun: bool = True) -> None:
    box = (within or page).get_by_label(re.compile(f"^{re.escape(label)}$", re.I)).first
    box.fill(value)
    if enter:
        box.press("Enter" if box.evaluate("e => e.tagName") == "INPUT" else "Control+Enter")
    if rerun:
        wait_idle(page)


def click(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).first.click()
    wait_idle(page)


# Waits on events (a text, a metric), never on time; their limits allow a machine 3x slower than CI's
# (2 cores shared with other work: a tiny model loading, UMAP compiling). A limit hit names what it awaited.
SLOW = 3


def wait_text(page, pattern: str, timeout: float = 90_000) -> None:
    """Wait until the main area's text matches the regex `pattern` (across elements, e.g. table cells)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([p]) => new RegExp(p).test(document.querySelector('[data-testid=stMain]')?.innerText || '')",
            arg=[pattern], timeout=timeout * SLOW)
    except PlaywrightTimeout:
        raise AssertionError(f"waited {timeout * SLOW / 1000:.0f} s for the page to show /{pattern}/; it shows:\n"
                             + main_text(page)[-1500:]) from None
    wait_idle(page)


def wait_metric(page, label: str, timeout: float = 120_000) -> None:
    """Wait until a metric labelled `label` is drawn (e.g. a job's result), naming it if it never comes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_test_id("stMetric").filter(has_text=label).first.wait_for(timeout=timeout * SLOW)
    except PlaywrightTimeout:
        raise AssertionError(f"waited {timeout * SLOW / 1000:.0f} s for the metric {label!r}; the page shows:\n"
                             + main_text(page)[-1500:]) from None


def table_rows(page, index: int) -> list[list[str]]:
    """Cell texts of the index-th st.table in the main area (header row first)."""
    table = page.locator("[data-testid=stMain] [data-testid=stTable] table").nth(index)
    return [[c.inner_text().strip() for c in row.locator("th, td").all()] for row in table.locator("tr").all()]


def chart_traces(page) -> list[list[str]]:
    """Trace names of every Plotly chart drawn in the page (read from plotly.js's own state)."""
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")
    return page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].map(p => (p.data || []).map(t => t.name || ''))")


def metrics(page) -> dict[str, str]:
    """Every st.metric in the main area: label → value."""
    return {m.locator("[data-testid=stMetricLabel]").inner_text().strip():
            m.locator("[data-testid=stMetricValue]").inner_text().strip()
            for m in page.locator("[data-testid=stMain] [data-testid=stMetric]").all()}


def clipped_metrics(page) -> list[str]:
    """Labels of the metrics whose value does not fit its box (cut off with an ellipsis)."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stMetric]')]
        .filter(m => [m.querySelector('[data-testid=stMetricValue]'),
                      ...m.querySelectorAll('[data-testid=stMetricValue] *')]
                     .some(e => e && e.scrollWidth > e.clientWidth + 1))
        .map(m => m.querySelector('[data-testid=stMetricLabel]')?.innerText.trim())""")


def clipped_text_areas(page) -> list[str]:
    """Labels of the text areas with a short text (≤ 6 lines: a list, a mapping) that does not fit without
    scrolling. Long texts (a prompt template, a reasoning being edited) scroll by design."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stTextArea]')]
        .filter(b => { const t = b.querySelector('textarea');
                       return t && t.value && t.value.split('\\n').length <= 6 && t.value.length < 200
                              && t.scrollHeight > t.clientHeight + 1; })
        .map(b => b.querySelector('label')?.innerText.trim() + ' ' + b.querySelector('textarea').scrollHeight + '>' + b.querySelector('textarea').clientHeight)""")


def open_expander(page, title: str):
    """The expander whose summary says `title`, opened."""
    expander = page.get_by_test_id("stExpander").filter(has=page.locator("summary", has_text=title)).first
    if expander.get_attribute("open") is None and not expander.locator("details[open]").count():
        expander.locator("summary").first.click()
    return expander


# ---- the walk ----------------------------------------------------------------------------------


@dataclass
class Walk:
    page: Any
    url: str
    tmp: Path
    shots: list[Path] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def visit(self, path: str) -> str:
        """Open a page, wait for its script run to end, assert it shows no exception; its main text."""
        # Home is the default page: it lives at "/" ("/home" switches there, app.py).
        self.page.goto(f"{self.url}/{'' if path == 'home' else path}")
        wait_idle(self.page)
        self.drawn()
        self.check(path)
        return main_text(self.page)

    def drawn(self) -> None:
        """Wait until every element is drawn: a widget whose code the browser has not loaded yet (the
        first selectbox of a session, a first chart) shows a grey placeholder (stSkeleton) meanwhile."""
        self.page.wait_for_function(
            "() => !document.querySelector('[data-testid=stMain] [data-testid=stSkeleton]')", timeout=30_000)

    def check(self, where: str) -> None:
        found = exceptions(self.page)
        assert found == [], f"{where}: {found}"
        assert "Traceback" not in main_text(self.page), where
        assert not self.page.get_by_text("Page not found").count(), where
        assert clipped_metrics(self.page) == [], f"{where}: metric values cut off"
        assert clipped_text_areas(self.page) == [], f"{where}: text areas hiding lines"

    def shot(self, name: str) -> Path:
        """Screenshot of the whole page. Streamlit scrolls its main area inside a fixed-height window,
        so a full-page shot alone shows one screen: grow the window to the content's height first."""
        path = self.tmp / "screens" / f"{len(self.shots):02d}_{name}.png"
        path.parent.mkdir(exist_ok=True)
        self.drawn()
        size = self.page.viewport_size
        tall = self.page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stMainBlockContainer],"
            " [data-testid=stAppViewContainer]')].map(e => e.scrollHeight))")
        try:
            self.page.set_viewport_size({"width": size["width"], "height": min(max(tall, size["height"]), 12_000)})
            self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            self.page.screenshot(path=str(path), full_page=True)
        finally:
            self.page.set_viewport_size(size)
        self.shots.append(path)
        return path


def step_home_first_visit(w: Walk) -> None:
    w.page.goto(w.url)  # the very first request this dashboard process serves
    wait_idle(w.page)
    w.check("home (first visit)")
    w.page.get_by_role("button", name="Load sample data").wait_for()  # the last element Home draws
    body = main_text(w.page)
    assert "CSAT reasoning distillation" in body and "Data — empty; needs" in body
    assert "Mine — empty; needs" in body
    w.shot("home_first_visit")


def _upload(w: Walk, data: list, name: str, role: str | None) -> str:
    src = w.tmp / f"{name}.json"
    src.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    w.page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(str(src))
    wait_text(w.page, "questions parsed as")
    if role:
        select(w.page, "Role", role)
    click(w.page, "Import")
    wait_text(w.page, f"Imported \\d+ questions into '{name}'")
    return main_text(w.page)


def step_data_import(w: Walk) -> None:
    body = w.visit("data")
    assert "No datasets yet" in body
    body = _upload(w, POOL, "pool", None)  # role: train pool (the default)
    assert "Imported 4 questions into 'pool'" in body
    # The preview draws the passage's survey table as a table, not as raw "| 구분 | … |" pipes.
    survey = w.page.locator("[data-testid=stMain] [data-testid=stTable]").filter(has_text="구분").first
    assert [c.strip() for c in survey.locator("th").all_inner_texts()][-3:] == ["구분", "운동", "여행"]
    assert "| 구분 |" not in body
    body = _upload(w, TEST, "exam", "test")
    assert "Imported 3 questions into 'exam'" in body
    rows = table_rows(w.page, 0)
    assert rows[0][:4] == ["", "name", "split", "questions"] or rows[0][:3] == ["name", "split", "questions"], rows
    cells = {r[-6] if len(r) > 6 else r[0]: r for r in rows[1:]}
    assert any(r[1:4] == ["pool", "train", "4"] or r[:3] == ["pool", "train", "4"] for r in rows[1:]), rows
    assert any(r[1:4] == ["exam", "test", "3"] or r[:3] == ["exam", "test", "3"] for r in rows[1:]), (rows, cells)
    traces = chart_traces(w.page)
    assert sorted(traces[0]) == ["exam", "pool"]  # questions per subject, one trace per dataset
    w.check("data")
    w.shot("data_imported")


def _register(w: Walk, name: str, provider: str, model_id: str, base_url: str = "", params: str = "") -> None:
    expander = w.page.get_by_test_id("stExpander").filter(has_text="Register a model").first
    if not expander.get_by_label("Name", exact=True).is_visible():
        expander.locator("summary").click()
    fill(w.page, "Name", name, enter=False, rerun=False)
    select(w.page, "Provider", provider, rerun=False)
    fill(w.page, "Model id", model_id, enter=False, rerun=False)
    fill(w.page, "Base URL (openai; optional for gemini)", base_url, enter=False, rerun=False)
    fill(w.page, "Params, KEY=VALUE per line", params, enter=False, rerun=False)
    click(w.page, "Register")
    wait_text(w.page, f"Registered '{name}'")


def step_settings_register(w: Walk) -> None:
    w.visit("settings")
    _register(w, "teacher", "openai", "oracle-1", w.facts["teacher_url"], "concurrency=4")
    _register(w, "student", "local", str(w.facts["student_dir"]), params="max_tokens=8\nbatch_size=4")
    rows = table_rows(w.page, 1)  # the models table (the first one lists API keys)
    names = [r[1] if r[0] == "" or r[0].isdigit() else r[0] for r in rows[1:]]
    assert {"teacher", "student"} <= set(names), rows
    w.check("settings")
    w.shot("settings_models")


def step_solve(w: Walk) -> None:
    """Settings' Solve panel: the tiny student over the test set, as a background job."""
    w.visit("settings")
    solve_form = form(w.page, "Start solving")
    select(w.page, "model", "student", within=solve_form)  # a live form: each change reruns the page
    select(w.page, "dataset", "exam", within=solve_form)
    click(w.page, "Start solving")
    wait_text(w.page, r"— done", timeout=120_000)
    body = main_text(w.page)
    assert re.search(r"3/3", body), body[-2000:]
    w.check("settings (solve)")
    w.shot("settings_solved")


def step_mine(w: Walk) -> None:
    body = w.visit("mine")
    assert "Needs first" not in body
    mine_form = form(w.page, "Start mining")
    select(w.page, "question pool", "pool", within=mine_form)  # a live form: each change reruns the page
    select(w.page, "teacher", "teacher", within=mine_form)
    select(w.page, "student", "student", within=mine_form)
    click(w.page, "Start mining")
    page = w.page
    wait_metric(page, "hard negatives", timeout=120_000)
    wait_idle(page)
    metrics = {m.locator("[data-testid=stMetricLabel]").inner_text().strip():
               m.locator("[data-testid=stMetricValue]").inner_text().strip()
               for m in page.locator("[data-testid=stMetric]").all()}
    assert metrics["teacher accuracy"] == "100.0%", metrics
    hard = int(metrics["hard negatives"])
    both = int(metrics["both ✓ (judge kept)"].split()[0])
    assert hard + both == 4 and hard >= 1, metrics  # the teacher is always right; a random student is not
    w.facts["hard_negatives"] = hard
    assert len(chart_traces(page)) >= 1  # outcomes per subject
    w.check("mine")
    w.shot("mine_results")


def run_on_test_set(page, model: str) -> None:
    """Evaluate's 'Add predictions' form: run `model` on the test set, stored under its own name.

    The expander opens by default only while the set has no predictions, and a rerun that changes that
    (a scoring job just finished) may fold it again under the pointer: open it and fill the form again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        wait_idle(page)
        run_form = form(page, "Run")
        if not run_form.is_visible():
            page.get_by_test_id("stExpander").filter(has_text="Add predictions").first.locator("summary").click()
        try:
            run_form.wait_for(state="visible", timeout=5_000)
            page.set_default_timeout(5_000)
            select(page, "model", model, within=run_form)  # a live form: each change reruns the page
            fill(page, "Store as", model, within=run_form)
            run_form.get_by_role("button", name="Run", exact=True).click()
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
        finally:
            page.set_default_timeout(30_000)
    wait_idle(page)


def step_evaluate(w: Walk) -> None:
    body = w.visit("evaluate")
    assert "No predictions on this set yet" in body
    assert w.page.get_by_role("combobox", name="Test set").input_value() == "exam (test)"
    # The student's replies from the Solve on Settings are offered as a prediction set (issue 10 item 8).
    assert re.search(r"student has 3 stored replies on exam \(3 questions, K = 1\)", body), body[:1500]
    click(w.page, "Score these replies")
    wait_text(w.page, r"\nstudent\s+3\s+\d+\s+\d+\.\d+%", timeout=120_000)
    for model in ("teacher",):
        run_on_test_set(w.page, model)
        wait_text(w.page, rf"\n{model}\s+3\s+\d+\s+\d+\.\d+%", timeout=120_000)
    report = table_rows(w.page, 0)
    by_model = {r[1] if r[0].isdigit() or r[0] == "" else r[0]: r for r in report[1:]}
    assert "teacher" in by_model and "student" in by_model, report
    assert "100.00%" in by_model["teacher"] and "7 / 7" in by_model["teacher"]  # 3 questions, 2+3+2 points
    traces = chart_traces(w.page)
    assert len(traces) == 1 and sorted(traces[0]) == ["student", "teacher"]  # one chart at a time: by subject
    w.page.get_by_test_id("stRadio").get_by_text("answer positions", exact=True).click()
    w.page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')]"
                             ".some(p => (p.data || []).some(t => t.name === 'gold'))", timeout=60_000 * SLOW)
    wait_idle(w.page)
    assert [sorted(t) for t in chart_traces(w.page)] == [["gold", "student", "teacher"]]  # answer positions
    body = main_text(w.page)
    assert "Compare" in body
    # student vs teacher: the widest CI value there is ("[+100.0, +100.0] %p") is shown whole
    w.page.get_by_test_id("stMetric").filter(has_text="95% CI of the difference").first.wait_for()
    assert metrics(w.page)["95% CI of the difference"] == "[+100.0, +100.0] %p"
    assert clipped_metrics(w.page) == [], clipped_metrics(w.page)
    w.check("evaluate")
    w.shot("evaluate_report")


def step_augment(w: Walk) -> None:
    """Augment's form → estimate → job → one candidate per hard negative, every gate passed."""
    body = w.visit("augment")
    assert "Needs first" not in body and "No augment run has finished yet" in body
    aug_form = form(w.page, "Estimate cost")
    select(w.page, "teacher", "teacher", within=aug_form, rerun=False)
    click(w.page, "Estimate cost")
    hard = w.facts["hard_negatives"]
    wait_text(w.page, rf"{hard} seeds × 1: {hard} structure requests")
    click(w.page, "Start augment")
    wait_text(w.page, r"— done", timeout=120_000)  # the run's counts show while it runs: wait for its end
    wait_metric(w.page, "passed every gate", timeout=120_000)
    wait_idle(w.page)
    m = metrics(w.page)
    assert m["seeds"] == str(hard) and m["candidates"] == str(hard) and m["passed every gate"] == str(hard), m
    # the candidates table: one row per candidate, a pass badge under every gate
    grid = w.page.locator("[data-testid=stMain] [data-testid=stDataFrame]").first
    grid.wait_for()
    assert f"Open one of {hard}" in main_text(w.page)
    assert len(chart_traces(w.page)[0]) == 1  # pass rate per gate
    rates = w.page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')][0].data[0].y")
    assert rates and all(abs(float(r) - 1.0) < 1e-9 for r in (rates if isinstance(rates, list) else [])), rates
    body = main_text(w.page)
    assert "Chosen" in body and "Rejected" in body and "따라서 2번이 답이다" in body
    w.check("augment")
    w.shot("augment_candidates")


def _review_counts(w: Walk) -> dict[str, str]:
    w.page.get_by_test_id("stMetric").filter(has_text="to target").first.wait_for()
    return metrics(w.page)


def step_review(w: Walk) -> None:
    """Accept one pair, reject one, edit one, bulk-accept the rest after confirming, freeze the set."""
    page, hard = w.page, w.facts["hard_negatives"]
    w.visit("review")
    m = _review_counts(w)
    assert m["pending"] == str(hard) and m["pass every gate"] == f"{hard} / {hard}", m
    first = re.search(r"`([^`]+)`", page.locator("[data-testid=stMain]").inner_text())
    click(page, "Accept")
    wait_text(page, r"Accepted \S+\.")
    assert _review_counts(w)["accepted"].startswith("1 /")
    page.get_by_placeholder("e.g. 정답이 둘, 지문과 무관한 선지").first.fill("선지가 지문과 무관함")
    click(page, "Reject")
    wait_text(page, r"Rejected \S+\.")
    assert _review_counts(w)["rejected"] == "1"
    # edit the chosen reasoning of the pair now shown; the gates run again on the new version
    edit = open_expander(page, "Edit (question, choices, answer, either reasoning)")
    box = edit.get_by_label("Chosen reasoning", exact=True)
    box.fill("지문을 다시 읽고 근거 문장을 찾는다. 선지 ②만 지문과 일치한다.\n따라서 2번이 답이다.\n{\"Answer\": \"2\"}")
    fill(page, "Why (kept in the history)", "근거를 분명히", enter=False, within=edit, rerun=False)
    click(page, "Save edit and re-run gates")
    wait_text(page, r"Saved version 2 \(chosen\); passes every gate")
    rest = hard - 2
    click(page, f"Accept all {rest} passing pending pairs…")
    click(page, f"Yes, accept {rest}")
    wait_text(page, rf"Accepted {rest} pairs?\.")
    m = _review_counts(w)
    assert m["accepted"].startswith(f"{hard - 1} /") and m["pending"] == "0" and m["rejected"] == "1", m
    assert "Every pair has been decided" in main_text(page)
    # the run picker shows no stale count (a keyed selectbox kept its first label: streamlit#13788)
    assert not re.search(r"\b0 accepted", page.get_by_role("combobox", name="Augment run").input_value())
    w.check("review (decided)")
    w.shot("review_decided")
    # freeze: the name field (key freeze-name), then the form's submit button
    page.locator(".st-key-freeze-name input").fill("e2e-set")
    click(page, "Freeze the accepted pairs")
    wait_text(page, rf"Froze {hard - 1} pairs? as 'e2e-set' \(hash [0-9a-f]{{12}}\)")
    grid = page.locator("[data-testid=stMain] [data-testid=stDataFrame]").filter(has_text="e2e-set")
    assert grid.count() >= 1 or "e2e-set" in main_text(page)
    w.facts["set"], w.facts["set_pairs"] = "e2e-set", hard - 1
    w.facts["first_pair"] = first.group(1) if first else None
    w.check("review (frozen)")
    w.shot("review_frozen")


def step_train(w: Walk) -> None:
    """Train: the tiny CPU preset, 2 ORPO steps of the tiny Qwen3 student on the frozen set, the adapter registered."""
    page = w.page
    body = w.visit("train")
    assert "Needs first" not in body and "No training run yet" in body
    select(page, "Preset", "tiny CPU trial")
    train_form = form(page, "Check (pre-flight)")
    assert train_form.get_by_label("Max steps", exact=True).input_value() == "2"
    select(page, "Set name", w.facts["set"], within=train_form, rerun=False)
    select(page, "Base model", "student", within=train_form, rerun=False)
    select(page, "Long prompts", "truncate", within=train_form, rerun=False)
    click(page, "Check (pre-flight)")
    wait_metric(page, "pairs kept", timeout=120_000)
    m = metrics(page)
    n = w.facts["set_pairs"]
    assert m["pairs kept"] == f"{n} / {n}", m
    assert m["backend"].startswith("cpu"), m
    w.shot("train_preflight")
    click(page, "Start training")
    wait_text(page, r"Started training run \S+\.")
    wait_text(page, r"Done\. Tuned model \S+ is registered", timeout=240_000)
    body = main_text(page)
    w.facts["tuned"] = re.search(r"Done\. Tuned model (\S+) is registered", body).group(1)
    assert re.search(r"done · step 2/2", body), body[:2000]
    if n >= 5:  # the held-out check: base and tuned side by side on the pairs held out of training
        assert "Held-out check" in body and "base (adapter off)" in body, body[:3000]
    assert "running" not in page.get_by_role("combobox", name="Run").input_value()  # no stale state label
    traces = chart_traces(page)
    assert traces and any(traces), traces  # the loss curves of the two logged steps
    w.check("train")
    w.shot("train_done")


def step_evaluate_tuned(w: Walk) -> None:
    """The tuned adapter model answers the test set; Compare sets it against the base student."""
    page, tuned = w.page, w.facts["tuned"]
    w.visit("evaluate")
    run_on_test_set(page, tuned)
    wait_text(page, rf"\n{re.escape(tuned)}\s+3\s+\d+\s+\d+\.\d+%", timeout=180_000)
    select(page, "A (baseline)", "student")
    select(page, "B (candidate)", tuned)
    page.get_by_test_id("stMetric").filter(has_text=f"{tuned} accuracy").first.wait_for()
    m = metrics(page)
    assert re.fullmatch(r"\d+ / \d+", m["fixed / broken"]), m
    assert re.fullmatch(r"\d\.\d{4}", m["McNemar exact p"]), m
    report = table_rows(page, 0)
    names = {r[1] if r[0].isdigit() or r[0] == "" else r[0] for r in report[1:]}
    assert {"student", "teacher", tuned} <= names, report
    assert sorted(chart_traces(page)[0]) == sorted(["student", "teacher", tuned])
    w.check("evaluate (tuned)")
    w.shot("evaluate_compare")


def step_visualise_map(w: Walk) -> None:
    """Visualise: map the default sets (the pool, the test set, the frozen set, the mining run's hard
    negatives) with the real offline embedder, click a point, lasso every point."""
    from tests.visualisehelp import step_visualise

    points = 4 + 3 + w.facts["set_pairs"] + w.facts["hard_negatives"]
    step_visualise(w.page, w.url, points)
    traces = chart_traces(w.page)[0]
    assert len(traces) == 4, traces
    w.check("visualise")
    w.shot("visualise_selected")


@pytest.mark.timeout(300 * SLOW * 2)  # ~160 s quiet; every wait inside names its step when it runs out
def test_whole_pipeline_in_a_browser(tmp_path, monkeypatch):
    from tests.loopback import Loopback
    from tests.tiny_models import build_tiny_qwen
    from tests.trainhelp import kill_leftover_workers

    chromium_path()
    student_dir = build_tiny_qwen(tmp_path / "tiny-qwen")
    with Loopback("openai", make_oracle(), lifetime_s=600) as teacher, \
            running_dashboard(tmp_path / "e2e.duckdb", {"OPENAI_API_KEY": "loopback",
                                                        "CSAT_WORKSPACE": str(tmp_path / "workspace")}) as url, \
            browser_page() as page:
        w = Walk(page, url, tmp_path, facts={"teacher_url": teacher.base_url, "student_dir": student_dir})
        try:
            step_home_first_visit(w)
            step_data_import(w)
            step_settings_register(w)
            step_solve(w)
            step_mine(w)
            step_augment(w)
            step_review(w)
            step_train(w)
            step_evaluate(w)
            step_evaluate_tuned(w)
            step_visualise_map(w)
            for path in PAGES:  # every page, after the pipeline ran: no exception anywhere
                w.visit(path)
                w.shot(f"after_{path}")
        except Exception:
            w.shot("failure")  # what the page showed when a step failed (under tmp_path/screens)
            raise
        finally:
            kill_leftover_workers(tmp_path)  # a failed walk must not leave a training worker behind
        side = sidebar_text(page)
        hard, kept = w.facts["hard_negatives"], w.facts["set_pairs"]
        assert re.search(r"Data: 7 questions in 2 datasets", side), side
        assert re.search(rf"Mine: {hard} hard negatives? in the latest finished run", side), side
        assert re.search(rf"Augment: {hard} candidates?, {hard} passing every gate", side), side
        assert re.search(rf"Review: {kept} accepted pairs?, 1 frozen set", side), side
        assert "Train: 1 finished run of 1" in side, side
        assert "Evaluate: 3 prediction sets on 1 test set" in side, side
        assert re.search(rf"Visualise: 1 map of {4 + 3 + kept + hard} points", side), side
    assert teacher.count >= 4 + 3  # the pool and the test set, each question once (K = 1)
    assert all(p.stat().st_size > 10_000 for p in w.shots)


def test_every_page_on_a_fresh_store(tmp_path):
    """Issue 10 'done when': every page on a fresh store, a Korean font installed, no exception."""
    chromium_path()
    with running_dashboard(tmp_path / "fresh.duckdb", {"CSAT_WORKSPACE": str(tmp_path / "workspace")}) as url, \
            browser_page() as page:
        w = Walk(page, url, tmp_path)
        for path in PAGES:
            body = w.visit(path)
            assert body.strip(), path
            w.shot(f"fresh_{path}")
        assert len(w.shots) == len(PAGES)


# ---- a long training run watched in the browser ----------------------------------------------------
# Never shown failed while its worker lives, the held-out table shown from the first scoring, steps
# moving; then cancelled from the page, with its resume offered. (The walk above trains to the end.)
WATCH_S = 70  # longer than a minute: the old liveness check called live runs dead after ~30 s


@pytest.mark.timeout(900)
def test_a_long_run_is_never_shown_failed_and_shows_its_heldout_check(tmp_path, tiny_qwen):
    import time

    from core.store import Store
    from tests.trainhelp import add_tiny, kill_leftover_workers

    db = tmp_path / "csat.duckdb"
    store = Store(db)
    add_tiny(store, tiny_qwen)  # the tiny Qwen3 as "tiny" and a 6-pair frozen set "s"
    store.close()
    try:
        with running_dashboard(db) as url, browser_page() as page:
            page.goto(f"{url}/train")
            wait_idle(page)
            select(page, "Preset", "tiny CPU trial")
            train_form = form(page, "Check (pre-flight)")
            select(page, "Base model", "tiny", within=train_form, rerun=False)
            fill(page, "Max steps", "100000", within=train_form, enter=False, rerun=False)
            fill(page, "Save steps", "100000", within=train_form, enter=False, rerun=False)
            click(page, "Check (pre-flight)")
            wait_metric(page, "train / held out", timeout=120_000)
            assert metrics(page)["train / held out"] == "5 / 1"
            click(page, "Start training")
            wait_text(page, r"Started training run \S+\.")
            run_id = re.search(r"Started training run (\S+)\.", main_text(page)).group(1)
            assert page.get_by_role("combobox", name="Run").input_value().startswith(run_id)  # follows the new run
            wait_text(page, r"Held-out check", timeout=180_000)
            seen, steps, table_seen = [], [], False
            end = time.monotonic() + WATCH_S
            while time.monotonic() < end:
                body = main_text(page)
                assert not re.search(r"(^|\n)failed(?: \([^)]*\))? · step", body), f"shown failed while the worker lives:\n{body[:2000]}"
                assert "the worker process ended" not in body and "Resume from the last checkpoint" not in body
                state = re.search(r"(?:^|\n)(running|failed|cancelled|done)(?: \([^)]*\))? · step (\d+)/", body)
                if state:  # (absent for a moment while the live panel redraws)
                    seen.append(state.group(1))
                    steps.append(int(state.group(2)))
                if "pairs this run never trained on" in body:
                    # st.dataframe draws its cells on a canvas: the heading and the grid are what the DOM shows
                    table_seen = page.locator("[data-testid=stMain] [data-testid=stDataFrame]").count() >= 2
                time.sleep(3)
            assert len(seen) >= 10 and set(seen) == {"running"} and steps[-1] > steps[0], (seen, steps)
            assert table_seen, "the held-out table never appeared"
            page.screenshot(path=str(tmp_path / "train_long.png"), full_page=True)
            click(page, "Cancel")
            wait_text(page, r"cancelled · step \d+/", timeout=60_000)
            assert page.get_by_role("button", name="Resume from the last checkpoint").count() == 1
    finally:
        kill_leftover_workers(tmp_path)
