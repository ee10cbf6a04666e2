"""AppTest of the Review page on a real DuckDB file holding the review fixture of tests/test_review.py
(candidates seeded with SQL following m006, a mining run with golden/failed paths, structures)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.steps.review import preference_sets as ps
from core.steps.review import review
from core.store import Store
from tests.loopback import Loopback
from tests.pagetest import ROOT, clear_cached_store, fresh_page_store, open_page, shown  # noqa: F401
from tests.test_review import RUN, register_teacher, seed_review, solver


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


@pytest.fixture
def teacher():
    with Loopback("gemini", solver) as srv:
        yield srv


@pytest.fixture
def seeded_db(db_env, tmp_path, teacher):
    store = Store(db_env)
    register_teacher(store, teacher)
    seed_review(store, tmp_path)
    store.close()
    clear_cached_store()
    return db_env


def reopen(path) -> Store:
    clear_cached_store()
    return Store(path)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_empty_store_explains_and_offers_import(db_env):
    at = open_page("pages/review.py")
    assert "Needs first" in at.info[0].value
    assert any(t.label == "Import" for t in at.tabs)


def test_pair_side_by_side_with_divergence_gates_and_provenance(seeded_db):
    at = open_page("pages/review.py")
    md = markdown(at)
    assert "1 / 5" in md and "`cand-a`" in md  # pending filter: every pair, in seed order
    assert "칸트는 관련 설명으로 옳은 것은?" in md  # the question as on the exam
    assert ":orange-background[" in md  # the lines where chosen and rejected diverge
    assert "최종 답: :red-background[**③**]" in md and "최종 답: :red-background[**④**]" in md
    assert [m.label for m in at.metric][:3] == ["accepted", "pending", "rejected"]
    assert at.metric[0].value == "0 / 200"
    # provenance expander: seed question, structure, golden and failed paths
    assert "교사 풀이 q1" in md and "학생 풀이 q1" in md
    assert any(json.loads(j.value).get("error_pattern") == "비슷한 시대의 다른 인물과 혼동" for j in at.json)
    # gate filter: the candidate that failed the resolve gate, with its reason
    at.selectbox(key="review-gate").select("failed resolve").run()
    assert not at.exception
    md = markdown(at)
    assert "1 / 1" in md and "`cand-c`" in md
    assert "resolve failed in the fixture" in " ".join(c.value for c in at.caption)


def test_one_click_decisions_and_history(seeded_db):
    at = open_page("pages/review.py")
    button(at, "Accept").click().run()
    assert not at.exception
    assert "Accepted cand-a." in [s.value for s in at.success]
    assert "`cand-b`" in markdown(at)  # the next pending pair moved up
    at.text_input(key="review-reason-cand-b").input("정답이 둘이다").run()
    button(at, "Reject").click().run()
    assert "Rejected cand-b." in [s.value for s in at.success]
    button(at, "Reject").click().run()  # no reason: refused, nothing changes
    assert any("needs a reason" in e.value for e in at.error)
    at.selectbox(key="review-status").select("any").run()
    assert at.metric[0].value == "1 / 200" and at.metric[2].value == "1"
    store = reopen(seeded_db)
    try:
        assert review.get_pair(store, "cand-b")["review_reason"] == "정답이 둘이다"
        assert [h["action"] for h in review.history(store, "cand-a")] == ["created", "accepted"]
    finally:
        store.close()


def test_accepting_a_pair_that_failed_a_gate_needs_a_confirmation(seeded_db):
    at = open_page("pages/review.py")
    at.selectbox(key="review-gate").select("failed").run()  # a filter change starts at its first pair
    assert "**1 / 2**" in markdown(at) and "`cand-c`" in markdown(at)
    button(at, "Accept").click().run()
    assert not at.exception
    assert any("failed the resolve gate" in shown(w.value) for w in at.warning)
    store = reopen(seeded_db)
    try:
        assert review.get_pair(store, "cand-c")["status"] == "pending"  # one click on Accept is not enough
    finally:
        store.close()
    button(at, "Yes, accept despite the failed gate").click().run()
    assert any("gate resolve overridden" in shown(s.value) for s in at.success)
    store = reopen(seeded_db)
    try:
        assert review.get_pair(store, "cand-c")["status"] == "accepted"
    finally:
        store.close()


def test_pairs_follow_seed_numbers_not_text_order(seeded_db):
    store = reopen(seeded_db)
    try:
        store.execute("UPDATE candidates SET seed_qid = '10' WHERE seed_qid = 'q2'")
        store.execute("UPDATE candidates SET seed_qid = '2' WHERE seed_qid = 'q1'")
        assert [p["seed_qid"] for p in review.list_pairs(store, run=RUN)] == ["2", "2", "10", "10", "10"]
    finally:
        store.close()


def test_edit_records_a_version_and_reruns_gates(seeded_db, teacher):
    at = open_page("pages/review.py")
    form_question = next(t for t in at.text_input if t.label == "Question")
    form_question.input("칸트의 입장으로 옳은 것은?")
    next(t for t in at.text_input if t.label == "Why (kept in the history)").input("발문 다듬기")
    next(b for b in at.button if b.label == "Save edit and re-run gates").click().run()
    assert not at.exception
    said = " ".join(s.value for s in at.success)
    assert "Saved version 2 (question)" in said
    store = reopen(seeded_db)
    try:
        hist = review.history(store, "cand-a")
        assert [h["action"] for h in hist] == ["created", "edited"] and hist[1]["reason"] == "발문 다듬기"
        assert review.get_pair(store, "cand-a")["question"] == "칸트의 입장으로 옳은 것은?"
    finally:
        store.close()


def test_bulk_accept_after_confirmation_then_freeze(seeded_db):
    at = open_page("pages/review.py")
    button(at, "Accept all 3 passing pending pairs…").click().run()
    assert "Accept 3 pending pairs that pass every gate?" in at.warning[0].value
    store = reopen(seeded_db)
    assert review.counts(store, RUN)["accepted"] == 0  # nothing before the confirmation
    store.close()
    clear_cached_store()
    button(at, "Yes, accept 3").click().run()
    assert not at.exception
    assert "Accepted 3 pairs." in [s.value for s in at.success]
    at.text_input(key="freeze-name").input("review-v1")
    next(b for b in at.button if b.label == "Freeze the accepted pairs").click().run()
    assert not at.exception
    assert any("Froze 3 pairs as 'review-v1'" in s.value for s in at.success)
    assert at.dataframe[-1].value.iloc[0]["name"] == "review-v1" or any(
        "review-v1" in str(d.value) for d in at.dataframe)
    store = reopen(seeded_db)
    try:
        assert [s["name"] for s in ps.list_sets(store)] == ["review-v1"]
        assert ps.get_set(store, "review-v1")["pairs"] == 3
    finally:
        store.close()


def test_decisions_in_a_real_browser(tmp_path, teacher):
    """The fragment path AppTest cannot take: one click per decision in headless Chromium, then the next pair."""
    from tests.dashboard import browser_page, exceptions, main_text, running_dashboard, wait_idle

    db = tmp_path / "browser.duckdb"
    store = Store(db)
    register_teacher(store, teacher)
    seed_review(store, tmp_path)
    store.close()
    with running_dashboard(db, {"CSAT_WORKSPACE": str(tmp_path / "ws"), "GEMINI_API_KEY": "test-key"}) as url, \
            browser_page() as page:
        page.goto(f"{url}/review")
        page.get_by_text("1 / 5").wait_for()
        page.get_by_role("button", name="Accept", exact=True).click()
        page.get_by_text("Accepted cand-a.").wait_for()
        assert "1 / 4" in main_text(page) and "cand-b" in main_text(page)
        page.get_by_placeholder("e.g. 정답이 둘").fill("보기와 무관한 선지")
        page.get_by_placeholder("e.g. 정답이 둘").press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Reject", exact=True).click()
        page.get_by_text("Rejected cand-b.").wait_for()
        assert "1 / 3" in main_text(page) and "cand-c" in main_text(page)
        assert not exceptions(page)
    store = Store(db)
    try:
        assert {p["id"]: p["status"] for p in review.list_pairs(store, run=RUN, status="accepted")} == {
            "cand-a": "accepted"}
        assert review.get_pair(store, "cand-b")["review_reason"] == "보기와 무관한 선지"
    finally:
        store.close()


def test_deep_links_to_a_pair_and_to_a_seed(seeded_db):
    at = AppTest.from_file(str(ROOT / "pages/review.py"), default_timeout=60)
    at.query_params["pair"] = "cand-e"
    at.run()
    assert not at.exception
    md = markdown(at)
    assert "3 / 3" in md and "`cand-e`" in md  # every pair of its seed (q2), any status, on cand-e
    at = AppTest.from_file(str(ROOT / "pages/review.py"), default_timeout=60)
    at.query_params["seed"] = "q1"
    at.run()
    assert "1 / 2" in markdown(at) and at.selectbox(key="review-seed").value == "q1"


def test_import_by_path_lists_the_set_and_exports_it(db_env, tmp_path):
    rows = [{"prompt": "옳은 것은?", "chosen": '①\n{"Answer":"1"}', "rejected": '②\n{"Answer":"2"}'},
            {"prompt": "틀린 것은?", "chosen": "같다", "rejected": "같다"}]
    path = tmp_path / "ext.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    at = open_page("pages/review.py")
    next(t for t in at.text_input if t.label.startswith("…or a path")).input(str(path))
    next(t for t in at.text_input if t.label == "Set name").input("ext")
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    assert "nothing was imported" in at.error[0].value
    assert "line 2" in str(at.dataframe[0].value) and "identical" in str(at.dataframe[0].value)
    path.write_text(json.dumps(rows[0], ensure_ascii=False) + "\n", encoding="utf-8")
    next(b for b in at.button if b.label == "Import").click().run()
    assert any("Imported 1 pair as 'ext'" in s.value for s in at.success)
    assert at.dataframe[0].value.iloc[0]["name"] == "ext" and at.dataframe[0].value.iloc[0]["source"] == "import:ext.jsonl"
    at.selectbox(key="export-format").select("csv").run()
    out = tmp_path / "ext.csv"
    at.text_input(key="export-out-ext-csv").input(str(out)).run()
    next(b for b in at.button if b.label == "Export").click().run()
    assert not at.exception
    assert any(f"Wrote 1 pair to {out}" in shown(s.value) for s in at.success) and out.is_file()
