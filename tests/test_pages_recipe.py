"""AppTest of the Home page's Recipe section: a shipped recipe's plan, and Run as a background job; a missing
teacher key is one line, refused before any job starts."""

from __future__ import annotations

from tests.pagetest import clear_cached_store, fresh_page_store, open_page, shown  # noqa: F401


def test_home_shows_a_shipped_recipe_plan_and_runs_it_as_a_job(db_env, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    at = open_page("pages/home.py")
    assert "Recipe" in [h.value for h in at.subheader]
    at.selectbox(key="recipe-file").select("cpu-trial.toml").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "**cpu-trial** · 2 round(s) · stop when: breaks_more" in shown(text)
    plan = at.dataframe[0].value
    assert list(plan["round"]) == [1, 2] and "round 1's tuned" in plan["mine"][1]
    at.button(key="recipe-run").click().run()
    assert not at.exception
    assert "recipe-job" not in at.session_state  # refused before any job starts
    errors = " ".join(e.value for e in at.error)
    assert "GEMINI_API_KEY" in shown(errors), errors
    assert "No round of this recipe has run yet." in [c.value for c in at.caption]
