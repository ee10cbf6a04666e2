"""Real browser: headless Chromium drives the dashboard served on a free loopback port."""

import json
import re

import pytest

from tests.dashboard import browser_page, chromium_path, running_dashboard

pytestmark = pytest.mark.browser

KICE = [{
    "id": "e2e-1", "subject": "한국사",
    "paragraph": "왕이 말하기를, \"노비를 조사하여 본래 양인이었던 자를 풀어 주도록 하라.\"라고 하였다.",
    "problems": [
        {"question": "밑줄 친 '왕'의 정책으로 옳은 것은?", "choices": ["과거제를 시행하였다", "녹읍을 폐지하였다",
         "훈요 10조를 남겼다", "9주 5소경을 설치하였다", "전시과를 처음 만들었다"], "answer": 1, "score": 3},
        {"question": "위 정책의 목적으로 가장 적절한 것은?", "choices": ["호족 세력 약화", "불교 진흥", "영토 확장",
         "대외 무역", "문벌 강화"], "answer": 1, "score": 2},
    ],
}]


def test_import_on_data_page(tmp_path):
    chromium_path()  # skip or fail early with a clear reason
    source = tmp_path / "e2e_kice.json"
    source.write_text(json.dumps(KICE, ensure_ascii=False), encoding="utf-8")
    with running_dashboard(tmp_path / "e2e.duckdb") as url, browser_page() as page:
        page.goto(f"{url}/data")
        page.get_by_text("No datasets yet").wait_for()
        page.locator("input[type=file]").set_input_files(str(source))
        page.get_by_text("questions parsed as").wait_for()
        page.get_by_text("① 과거제를 시행하였다").wait_for()  # the preview streams in after the count
        body = page.locator("[data-testid=stMain]").inner_text()
        assert "2 questions parsed as kice" in body.replace("*", "")
        assert "① 과거제를 시행하였다" in body  # exam-style preview with circled choices
        assert "[3점]" in body
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Questions per subject").wait_for()
        body = page.locator("[data-testid=stMain]").inner_text()
        assert "Imported 2 questions into 'e2e_kice'" in body
        assert re.search(r"e2e_kice\s+train\s+2\s+5", body), body[:2000]  # 2 questions, 3+2 points
        assert re.search(r"한국사\s+2", body)
        page.screenshot(path=str(tmp_path / "data_page.png"), full_page=True)


def test_run_a_model_on_the_evaluate_page(tmp_path):
    """A background job in the real dashboard process: progress, then the report, all in the browser."""
    from core import models
    from core.migrations.m002_models_generations_jobs import GEMMA_LOCAL
    from core.steps.data import datasets
    from core.store import Store
    from tests.loopback import Loopback, Reply

    chromium_path()
    qs = {}

    def teacherish(n, body):
        text = json.dumps(body, ensure_ascii=False)
        gold = next((a for stem, a in qs.items() if stem in text), 1)
        return Reply(text=f"선지를 검토한다.\n{{\"Answer\":\"{gold}\"}}", delay=0.05)

    db = tmp_path / "eval.duckdb"
    with Loopback("openai", teacherish) as srv:
        s = Store(db)
        datasets.load_samples(s)
        qs.update({q["question"]: q["answer"] for q in datasets.questions(s, "sample-test")})
        models.delete_model(s, GEMMA_LOCAL)
        models.add_model(s, "oracle", "openai", "oracle-1", base_url=srv.base_url, params={"concurrency": 4})
        s.close()
        with running_dashboard(db, {"OPENAI_API_KEY": "loopback"}) as url, browser_page() as page:
            page.goto(f"{url}/evaluate")
            page.get_by_text("16 requests to send, 0 cached").wait_for()
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("CSAT points").wait_for(timeout=60_000)  # the report table after the job
            body = page.locator("[data-testid=stMain]").inner_text()
            assert re.search(r"oracle\s+16\s+\d+\s+\d+\.\d+%", body), body[:3000]
            page.screenshot(path=str(tmp_path / "evaluate.png"), full_page=True)
        assert srv.count == 16
