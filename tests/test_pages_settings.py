"""AppTest of the Settings page: keys masked, register a model, test a connection, edit a prompt."""

from core import models, prompts
from core.store import Store
from tests.loopback import Loopback, Reply
from tests.pagetest import clear_cached_store, fresh_page_store, open_page, shown  # noqa: F401


def register(at, name, provider, model_id, base_url="", params=""):
    fields = {t.label: t for t in at.text_input}
    fields["Name"].input(name)
    fields["Model id"].input(model_id)
    fields["Base URL (openai; optional for gemini)"].input(base_url)
    next(s for s in at.selectbox if s.label == "Provider").select(provider)
    next(t for t in at.text_area if t.label.startswith("Params")).input(params)
    at.get("form_submit_button")[0].click().run()
    return at


def test_keys_are_masked_never_shown(db_env, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-fake-SECRET-xy")
    at = open_page("pages/settings.py")
    shown = str(at.table[0].value)
    assert "AIza…xy" in shown and "SECRET" not in shown
    assert "(not set)" in shown  # OPENAI_API_KEY


def test_register_test_and_delete_a_model(db_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "loopback")
    with Loopback("openai", lambda n, b: Reply(text="2")) as srv:
        at = register(open_page("pages/settings.py"), "student", "openai", "qwen3-14b", srv.base_url,
                      "temperature=0\nconcurrency=8")
        assert not at.exception
        assert any("Registered 'student'" in s.value for s in at.success)
        s = Store(db_env)
        m = models.get_model(s, "student")
        s.close()
        clear_cached_store()
        assert (m.base_url, m.params.concurrency, m.params.temperature) == (srv.base_url, 8, 0.0)
        at = open_page("pages/settings.py")
        keys = {r["name"]: r["key"] for r in at.table[-1].value.to_dict("records")} if "key" in at.table[-1].value \
            else {}
        assert shown(keys.get("student", "")).startswith("OPENAI_API_KEY (default): set"), keys  # not "—"
        next(x for x in at.selectbox if x.label == "Model").select("student")
        next(b for b in at.button if b.label == "Test connection").click().run()
        assert any("student answered" in s.value and ": 2" in s.value for s in at.success), [e.value for e in at.error]
        assert srv.count == 1
    next(b for b in at.button if b.label == "Delete model").click().run()
    # The counts first (its test reply goes with it), then the confirmation.
    assert any("Deleting 'student' removes: 1 generations, 1 models." in w.value for w in at.warning)
    assert not any("Deleted" in s.value for s in at.success)
    next(b for b in at.button if b.label == "Yes, delete student").click().run()
    assert any("Deleted 'student'" in s.value for s in at.success)


def test_bad_params_and_missing_key_are_plain_messages(db_env):
    at = register(open_page("pages/settings.py"), "t", "gemini", "gemini-2.5-flash", params="temprature=0")
    assert any("bad param temprature" in e.value for e in at.error)
    at = register(at, "t", "gemini", "gemini-2.5-flash", params="api_key=AIzaXYZ")
    assert any("keys are never stored" in e.value for e in at.error)
    at = register(at, "t", "gemini", "gemini-2.5-flash", params="temperature=0")
    next(x for x in at.selectbox if x.label == "Model").select("t")
    next(b for b in at.button if b.label == "Test connection").click().run()
    assert not at.exception
    assert any("GEMINI_API_KEY" in shown(e.value) for e in at.error), [e.value for e in at.error]


def test_prompt_override_save_and_reset(db_env, tmp_path, monkeypatch):
    monkeypatch.setattr(prompts, "OVERRIDE_DIR", tmp_path / "prompts")
    at = open_page("pages/settings.py")
    next(x for x in at.selectbox if x.label == "Template").select("solve").run()
    box = next(t for t in at.text_area if t.label == "Text")
    original = prompts.load("solve")
    box.input(box.value.replace("차근차근", "단계적으로", 1)).run()
    next(b for b in at.button if b.label == "Save template").click().run()
    assert not at.exception, at.exception
    assert any("Saved solve" in s.value for s in at.success), [e.value for e in at.error]
    assert prompts.load("solve").overridden and prompts.load("solve").hash != original.hash
    next(b for b in at.button if b.label == "Reset to default").click().run()
    assert prompts.load("solve").hash == original.hash


def test_params_one_per_line_keep_inner_spaces(db_env):
    at = register(open_page("pages/settings.py"), "base", "local", "some/base-model",
                  params="max_tokens=8\n\nprefill=정답 번호:")
    assert not at.exception and any("Registered 'base'" in s.value for s in at.success), [e.value for e in at.error]
    clear_cached_store()
    s = Store(db_env)
    m = models.get_model(s, "base")
    s.close()
    assert (m.params.max_tokens, m.params.prefill) == (8, "정답 번호:")
