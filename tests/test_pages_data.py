"""AppTest of the Home and Data pages against a real DuckDB file."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.steps.data import datasets
from core.store import Store
from tests.pagetest import clear_cached_store, fresh_page_store, open_page  # noqa: F401

KICE = [{
    "id": "p1", "subject": "생활과 윤리", "paragraph": "갑: 도덕 법칙은 <b>정언 명령</b>의 형식을 가진다.",
    "problems": [{"question": "갑의 입장으로 옳은 것은?", "question_plus": "ㄱ. 의무\nㄴ. 결과",
                  "choices": ["ㄱ", "ㄴ", "ㄱ, ㄴ", "없음", "모두"], "answer": 1, "score": 3}],
}]


def app(db_env, page: str | None = None) -> AppTest:
    """app.py for Home; a page file on its own otherwise (AppTest treats pages/ as legacy routing)."""
    return open_page(page or "app.py")


def seed(db_env, tmp_path) -> Path:
    src = tmp_path / "ethics.json"
    src.write_text(json.dumps(KICE, ensure_ascii=False), encoding="utf-8")
    s = Store(db_env)
    datasets.import_file(s, src, "ethics", "train")
    s.close()
    clear_cached_store()
    return src




def test_app_routes_with_sidebar_status(db_env):
    at = app(db_env)
    assert [t.value for t in at.title] == ["CSAT reasoning distillation"]
    assert any("Pipeline" in c.value for c in at.sidebar.caption)


def test_home_shows_pipeline_and_loads_samples(db_env):
    at = app(db_env, "pages/home.py")
    text = " ".join(m.value for m in at.markdown)
    for step in ("Data", "Mine", "Augment", "Review", "Train", "Evaluate", "Visualise"):
        assert f"**{step}** — empty" in text
    at.button[0].click().run()  # "Load sample data"
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "**Data** — " in text and "questions in 2 datasets" in text
    s = _store_after(at)
    names = {d["name"] for d in datasets.list_datasets(s)}
    assert names == {"sample-train", "sample-test"}


def _store_after(at):
    from core.config import db_path
    from pages._ui import _open_store
    return _open_store(str(db_path()))


def test_data_page_empty_state(db_env):
    at = app(db_env, "pages/data.py")
    assert not at.exception
    assert any("No datasets yet" in i.value for i in at.info)


def test_data_page_preview_and_import_from_path(db_env, tmp_path):
    src = tmp_path / "ethics.json"
    src.write_text(json.dumps(KICE, ensure_ascii=False), encoding="utf-8")
    at = app(db_env, "pages/data.py")
    at.text_input[0].input(str(src)).run()
    assert not at.exception
    md = " ".join(m.value for m in at.markdown)
    assert "**1 question** parsed as **kice**"  # singular (issue 10 item 13) in md
    assert "① ㄱ" in md and "\\[3점\\]" in md
    # Dataset text is rendered literally: the <b> tag is escaped, never HTML.
    assert "\\<b\\>정언 명령\\</b\\>" in md
    import_button = next(b for b in at.button if b.label == "Import")
    import_button.click().run()
    assert not at.exception
    assert any("Imported 1 questions into 'ethics'" in s.value for s in at.success)
    s = _store_after(at)
    assert s.scalar("SELECT count(*) FROM questions WHERE dataset = 'ethics'") == 1


def test_data_page_bad_file_shows_rows_and_stores_nothing(db_env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,paragraph,problems,question_plus\n"
                   "q1,지문,\"{'question': '옳은 것은?', 'choices': ['가', '나'], 'answer': 9}\",\n", encoding="utf-8")
    at = app(db_env, "pages/data.py")
    at.text_input[0].input(str(bad)).run()
    assert not at.exception
    assert any("Bad rows" in w.value for w in at.warning)
    next(b for b in at.button if b.label == "Import").click().run()
    assert any("nothing was imported" in e.value for e in at.error)
    assert _store_after(at).scalar("SELECT count(*) FROM questions") == 0


def test_data_page_browse_search_and_delete(db_env, tmp_path):
    seed(db_env, tmp_path)
    at = app(db_env, "pages/data.py")
    assert not at.exception
    tables = [t.value for t in at.table]
    assert any("ethics" in str(t.to_dict()) for t in tables)
    assert len(at.get("plotly_chart")) == 1
    search = next(t for t in at.text_input if t.label == "Search text or id")
    search.input("정언").run()
    assert any("갑의 입장으로 옳은 것은?" in e.label for e in at.expander)
    search.input("없는말").run()
    assert not any("갑의 입장" in e.label for e in at.expander)
    delete = next(b for b in at.button if b.label == "Delete dataset")
    assert delete.disabled
    next(c for c in at.checkbox if c.label.startswith("Yes, delete")).check().run()
    next(b for b in at.button if b.label == "Delete dataset").click().run()
    assert not at.exception
    assert any("Deleted 'ethics'" in s.value for s in at.success)
    assert _store_after(at).scalar("SELECT count(*) FROM datasets") == 0


def test_home_lists_recent_jobs_and_cli_agrees(db_env, capsys):
    from core import jobs
    from core.cli import main

    s = Store(db_env)
    job = jobs.start(s, "solve", "tiny solves mini ×1", lambda ctx: ctx.progress(done=3, total=3) or {"ok": 1},
                     total=3)
    assert jobs.wait(job, 10)
    s.close()
    clear_cached_store()
    at = app(db_env, "pages/home.py")
    assert "Recent jobs" in [h.value for h in at.subheader]
    assert "tiny solves mini ×1" in str(at.table[0].value) and "done" in str(at.table[0].value)
    clear_cached_store()
    assert main(["--db", str(db_env), "jobs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(j["id"], j["state"], j["done"], j["total"]) for j in listed] == [(job, "done", 3, 3)]


def test_a_set_without_points_beside_one_with_points_logs_no_conversion_error(db_env, tmp_path):
    seed(db_env, tmp_path)  # KICE: 3 points
    src = tmp_path / "plain.jsonl"
    src.write_text(json.dumps({"id": "1", "question": "옳은 것은?", "choices": ["가", "나", "다", "라", "마"],
                               "answer": 2}, ensure_ascii=False) + "\n", encoding="utf-8")
    s = Store(db_env)
    datasets.import_file(s, src, "plain", "test")  # no points: shown as "—"
    s.close()
    clear_cached_store()
    from streamlit import dataframe_util

    seen = []
    real = dataframe_util.fix_arrow_incompatible_column_types  # Streamlit's fallback after a failed conversion
    dataframe_util.fix_arrow_incompatible_column_types = lambda df, *a, **k: seen.append(list(df.columns)) or real(
        df, *a, **k)
    try:
        at = app(db_env, "pages/data.py")
    finally:
        dataframe_util.fix_arrow_incompatible_column_types = real
    assert not at.exception
    assert seen == [], f"tables pyarrow could not convert (logged with a traceback on every render): {seen}"
    shown = str(at.table[0].value.to_dict())
    assert "—" in shown and "3" in shown
