"""Issue 10 (a newcomer's first hour): what the pages show, checked in AppTest against a real store."""

from __future__ import annotations

import json
import re

import pytest
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from streamlit.testing.v1 import AppTest

from core.steps.data import datasets
from core.steps.evaluate import predictions
from core.store import Store
from tests.pagetest import ROOT, clear_cached_store, fresh_page_store, open_page, shown  # noqa: F401

C5 = ["가", "나", "다", "라", "마"]


def _q(n: int, answer: int, score: float) -> dict:
    return {"question": f"[q{n}] 윗글에 대한 설명으로 적절한 것은?", "choices": C5, "answer": answer, "score": score}


# 8 questions: 국어 q1–q5 (11 points), 한국사 q6–q8 (7 points).
KICE = [
    {"id": "p1", "subject": "국어", "paragraph": "첫째 지문이다.", "problems": [_q(1, 1, 2), _q(2, 3, 3), _q(3, 5, 2)]},
    {"id": "p2", "subject": "국어", "paragraph": "둘째 지문이다.", "problems": [_q(4, 2, 2), _q(5, 2, 2)]},
    {"id": "p3", "subject": "한국사", "paragraph": "셋째 지문이다.", "problems": [_q(6, 4, 3), _q(7, 1, 2)]},
    {"id": "p4", "subject": "한국사", "paragraph": "넷째 지문이다.", "problems": [_q(8, 3, 2)]},
]
PRED_A = {"1": 2, "2": None, "3": 4, "4": 1, "5": 2, "6": 4, "7": 2}  # right on q5, q6
PRED_B = {"1": 1, "2": 3, "3": 5, "4": 2, "5": 2, "6": 1, "7": 1, "8": 3}  # wrong on q6 only


def kice_set(s: Store, tmp_path) -> None:
    import json

    path = tmp_path / "kice.json"
    path.write_text(json.dumps(KICE, ensure_ascii=False), encoding="utf-8")
    datasets.import_file(s, path, "kice", "test")


def save(s: Store, label: str, answers: dict) -> None:
    predictions.save_predictions(s, "kice", label, answers, source="test")

SURVEY = {
    "id": "s1", "subject": "사회·문화",
    "paragraph": "다음은 갑국 조사 결과이다.\n\n(단위: %)\n| 구분 | 운동 | 여행 |\n| 20대 | 40 | **60** |\n"
                 "| 30대 | [x](http://e.x) | 50 |\n※ 무응답은 없음.",
    "problems": [{"question": "위 자료에 대한 분석으로 옳은 것은?", "choices": ["ㄱ", "ㄴ", "ㄷ", "ㄹ", "ㅁ"],
                  "answer": 2, "score": 2}],
}


def seeded(db_env, tmp_path, fn) -> None:
    s = Store(db_env)
    fn(s)
    s.close()
    clear_cached_store()


# ---- item 4: compare deltas follow the sign -----------------------------------------------------------

def _compare(db_env, tmp_path, baseline: str) -> AppTest:
    def seed(s):
        kice_set(s, tmp_path)
        save(s, "A", PRED_A)
        save(s, "B", PRED_B)
        save(s, "C", PRED_B)  # same answers as B
    seeded(db_env, tmp_path, seed)
    at = open_page("pages/evaluate.py")
    next(s for s in at.selectbox if s.label == "A (baseline)").set_value(baseline).run()
    return at


def _delta(at: AppTest, label_start: str):
    m = next(m for m in at.metric if m.label.startswith(label_start))
    return m.delta, m.proto.color, m.proto.direction


def test_compare_worse_candidate_is_red_and_down(db_env, tmp_path):
    at = _compare(db_env, tmp_path, "B")
    b = next(s for s in at.selectbox if s.label == "B (candidate)")
    b.set_value("A").run()
    assert not at.exception
    fixed = next(m for m in at.metric if m.label == "fixed / broken")
    assert fixed.value == "1 / 6"
    assert _delta(at, "fixed") == ("-5", MetricProto.MetricColor.RED, MetricProto.MetricDirection.DOWN)
    assert _delta(at, "A accuracy") == ("-62.5", MetricProto.MetricColor.RED, MetricProto.MetricDirection.DOWN)


def test_compare_better_candidate_is_green_and_up(db_env, tmp_path):
    at = _compare(db_env, tmp_path, "A")
    assert _delta(at, "fixed") == ("5", MetricProto.MetricColor.GREEN, MetricProto.MetricDirection.UP)


def test_compare_equal_models_is_grey_without_arrow(db_env, tmp_path):
    at = _compare(db_env, tmp_path, "C")  # C vs B: identical answers
    b = next(s for s in at.selectbox if s.label == "B (candidate)")
    b.set_value("B").run()
    assert _delta(at, "fixed") == ("0", MetricProto.MetricColor.GRAY, MetricProto.MetricDirection.NONE)
    assert _delta(at, "B accuracy")[1:] == (MetricProto.MetricColor.GRAY, MetricProto.MetricDirection.NONE)


# ---- item 5: CSAT points per subject on the page ------------------------------------------------------

def test_points_and_max_points_per_subject_table(db_env, tmp_path):
    def seed(s):
        kice_set(s, tmp_path)
        save(s, "A", PRED_A)
    seeded(db_env, tmp_path, seed)
    at = open_page("pages/evaluate.py")
    table = at.table[1].value
    assert list(table["subject"]) == ["국어", "한국사"]
    assert list(table["A points"]) == ["2 / 11", "3 / 7"]


# ---- item 6: survey tables in passages render as tables, safely ---------------------------------------

def test_survey_table_in_passage_renders_as_escaped_table(db_env, tmp_path):
    import json

    src = tmp_path / "survey.json"
    src.write_text(json.dumps([SURVEY], ensure_ascii=False), encoding="utf-8")
    seeded(db_env, tmp_path, lambda s: datasets.import_file(s, src, "survey", "test"))
    at = open_page("pages/data.py")
    shown = [t.value for t in at.table if "구분" in list(t.value.columns)]
    assert len(shown) == 1, [list(t.value.columns) for t in at.table]
    survey = shown[0]
    assert list(survey.columns) == ["구분", "운동", "여행"]
    assert list(survey["구분"]) == ["20대", "30대"]
    # Cells are data, not Markdown: bold markers and links stay literal (escaped for st.table).
    assert list(survey["여행"]) == ["\\*\\*60\\*\\*", "50"]
    assert survey["운동"][1].startswith("\\[x\\](http\u2060://")
    texts = " ".join(m.value for m in at.markdown)
    assert "| 구분 |" not in texts and "\\| 구분" not in texts  # no raw pipe rows left
    assert "무응답은 없음" in texts and "단위" in texts  # the text around the table stays


@pytest.mark.parametrize("raw, blocks", [
    ("a\n| x | y |\n| 1 | 2 |\nb", [("text", "a"), ("table", {"columns": ["x", "y"], "rows": [["1", "2"]]}),
                                   ("text", "b")]),
    ("| x | y |\n|---|:-:|\n| 1 |", [("table", {"columns": ["x", "y"], "rows": [["1", ""]]})]),
    ("| x | x | |\n| 1 | 2 | 3 |", [("table", {"columns": ["x", "x (2)", "(3)"], "rows": [["1", "2", "3"]]})]),
    ("one | pipe | line\n| lone row |", [("text", "one | pipe | line\n| lone row |")]),
    ("", []),
])
def test_passage_blocks(raw, blocks):
    from core.render import passage_blocks

    assert passage_blocks(raw) == blocks


# ---- item 7: no Python values on the Mine page ----------------------------------------------------------

def _gold_of(body: dict) -> int:
    """import_mini's question i carries "(i)" in its stem and gold answer (i - 1) % 5 + 1."""
    import re

    text = json.dumps(body, ensure_ascii=False)
    n = int(re.search(r"않는 것은\? \((\d+)\)", text).group(1))
    return (n - 1) % 5 + 1


@pytest.fixture
def mined_unparsed(db_env, tmp_path, monkeypatch):
    """A finished mining run where the teacher is always right and the student never names a choice."""
    from core import models
    from core.steps.mine import mining
    from tests.loopback import Loopback, Reply
    from tests.minidata import import_mini

    monkeypatch.setenv("OPENAI_API_KEY", "loopback")
    store = Store(db_env)
    import_mini(store, tmp_path, n=3, name="pool")
    fast = {"concurrency": 2, "max_retries": 2}
    with Loopback("openai", lambda n, b: Reply(text=f'풀이.\n{{"Answer":"{_gold_of(b)}"}}')) as t, \
            Loopback("openai", lambda n, b: Reply(text="잘 모르겠다.")) as s:
        models.add_model(store, "teacher", "openai", "t-1", base_url=t.base_url, params=fast)
        models.add_model(store, "student", "openai", "s-1", base_url=s.base_url, params=fast)
        summary = mining.run(store, mining.MiningConfig(pool="pool", teacher="teacher", student="student"))
    store.close()
    clear_cached_store()
    assert summary["hard_negatives"] == 3
    return summary


def test_mine_page_shows_no_python_values(mined_unparsed):
    at = open_page("pages/mine.py")
    table = at.dataframe[0].value
    assert list(table["gold"]) == ["①", "②", "③"]
    assert list(table["teacher"]) == ["①", "②", "③"]
    assert list(table["student"]) == ["no answer"] * 3
    captions = [c.value for c in at.caption]
    assert "answer: ① · samples: ①" in captions
    assert "answer: no answer · samples: no answer" in captions
    shown = " ".join([*captions, *(m.value for m in at.markdown), *(str(v) for col in table for v in table[col])])
    for leak in ("None", "[1]", "[None]", "nan"):
        assert leak not in shown, leak


# ---- items 8–11: flows that lose the user ------------------------------------------------------------

def _mini_with_model(db_env, tmp_path, monkeypatch, srv, params: dict | None = None, name: str = "m") -> None:
    from core import models
    from tests.minidata import import_mini

    monkeypatch.setenv("OPENAI_API_KEY", "loopback")
    s = Store(db_env)
    import_mini(s, tmp_path, n=6, name="mini")
    models.add_model(s, name, "openai", "m-1", base_url=srv.base_url, params={"concurrency": 2} | (params or {}))
    s.close()
    clear_cached_store()


def test_settings_solve_results_reach_evaluate(db_env, tmp_path, monkeypatch):
    """Item 8: replies from a Solve (Settings) are offered on Evaluate and scored from the cache."""
    from core import jobs
    from core.steps.solve import solve
    from tests.loopback import Loopback

    with Loopback("openai") as srv:  # always answers ①
        _mini_with_model(db_env, tmp_path, monkeypatch, srv)
        s = Store(db_env)
        solve.solve(s, "mini", "m")
        s.close()
        clear_cached_store()
        assert srv.count == 6
        at = open_page("pages/evaluate.py")
        offer = next(i.value for i in at.info if "Score these replies" in i.value or "stored replies" in i.value)
        assert "6 stored replies" in offer and "6 questions" in offer and "K = 1" in offer
        next(b for b in at.button if b.label == "Score these replies").click().run()
        assert not at.exception
        assert jobs.wait(at.session_state["eval-job"], timeout=60)
        at.run()
        assert not at.exception
        report = at.table[0].value
        assert list(report["model"]) == ["m"] and list(report["correct"]) == [2]  # gold ① on q1 and q6
        assert srv.count == 6  # scored from the stored replies: nothing sent twice
        assert not any("stored replies" in i.value for i in at.info)  # offered only while unscored
    settings = open_page("pages/settings.py")
    assert any("Where results go" in c.value and "Evaluate" in c.value for c in settings.caption)


def test_mine_refuses_a_model_without_its_key(db_env, tmp_path, monkeypatch):
    """Item 9: the page warns before starting, the run is refused, nothing starts, the error stays."""
    from core import jobs, models
    from core.errors import CoreError
    from core.steps.mine import mining
    from tests.minidata import import_mini

    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    s = Store(db_env)
    import_mini(s, tmp_path, n=3, name="pool")
    models.add_model(s, "flash", "gemini", "gemini-2.5-flash")
    models.add_model(s, "student", "openai", "qwen3-14b", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(CoreError, match="flash has no API key: GEMINI_API_KEY is not set"):
        mining.start_job(s, mining.MiningConfig(pool="pool", teacher="flash", student="student"))
    assert jobs.list_jobs(s) == []
    s.close()
    clear_cached_store()
    at = open_page("pages/mine.py")
    assert any("flash has no API key: GEMINI_API_KEY" in shown(w.value) and "cannot start" in w.value for w in at.warning)
    assert not any(c.value.startswith("flash:") for c in at.caption)  # no cost estimate for a run that cannot start
    at.button(key="FormSubmitter:mine-form-Start mining").click().run() if any(
        b.key == "FormSubmitter:mine-form-Start mining" for b in at.button) else \
        next(b for b in at.button if b.label == "Start mining").click().run()
    assert any("GEMINI_API_KEY" in shown(e.value) for e in at.error)
    s = Store(db_env)
    assert jobs.list_jobs(s) == []
    s.close()


def test_failed_job_error_stays_until_dismissed(db_env, tmp_path):
    """Item 9: a failed mining job keeps its message (and the form stays open) until 'Dismiss'."""
    from core import jobs
    from core.errors import CoreError
    from tests.minidata import import_mini

    s = Store(db_env)
    import_mini(s, tmp_path, n=2, name="pool")
    from core import models
    models.add_model(s, "student", "openai", "qwen3-14b", base_url="http://127.0.0.1:9/v1")

    def boom(ctx):
        raise CoreError("every one of the 2 requests to 'student' failed")

    job = jobs.start(s, "mine", "mine pool: gemma vs student ×1", boom)
    assert jobs.wait(job, timeout=30)
    s.close()
    clear_cached_store()
    at = AppTest.from_file(str(ROOT / "pages/mine.py"), default_timeout=60)
    at.session_state["mine-job"] = job
    at.run()
    for _ in range(2):  # the panel reruns the page once when it first sees the ended job
        assert not at.exception
        assert any("every one of the 2 requests" in e.value for e in at.error)
        assert next(e for e in at.expander if e.label == "New mining run").proto.expanded
        at.run()
    next(b for b in at.button if b.label == "Dismiss").click().run()
    assert not any("every one of the 2 requests" in e.value for e in at.error)


def test_solve_panel_final_numbers_and_truncation_explained(db_env, tmp_path, monkeypatch):
    """Item 10: the finished run's own numbers, truncation explained with the setting, first-N limit."""
    from core import jobs
    from core.steps.solve import solve
    from tests.loopback import Loopback, Reply

    with Loopback("openai", lambda n, b: Reply(text="선지를 차례로 검토하면", finish="length")) as srv:
        _mini_with_model(db_env, tmp_path, monkeypatch, srv, {"max_tokens": 8})
        s = Store(db_env)
        est = solve.estimate(s, "mini", "m", limit=2)
        assert (est["requests"], est["to_send"]) == (2, 2)
        job = solve.start_job(s, solve.SolveConfig(dataset="mini", model="m", limit=2))
        assert jobs.wait(job, timeout=60)
        assert jobs.get_job(s, job)["label"] == "m solves mini (first 2) ×1"
        s.close()
        clear_cached_store()
        assert srv.count == 2  # only the first 2 questions
    at = AppTest.from_file(str(ROOT / "pages/settings.py"), default_timeout=60)
    at.session_state["solve-job"] = job
    at.run()
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"accuracy": "0.0%", "answers extracted": "0/2", "unparsed": "2", "truncated": "2"}
    assert any("stopped at max_tokens = 8 of m" in c.value for c in at.caption)
    assert any(s.value.startswith("Done: 2 request(s) sent, 0 served from the cache") for s in at.success)
    assert any(n.label == "limit" or n.label.lower().startswith("limit") for n in at.text_input), \
        [w.label for w in at.text_input]


def test_job_panel_says_it_is_loading_before_the_first_reply(db_env, tmp_path, monkeypatch):
    """Item 10: 0/N with no tokens says what is happening (a local model loads, the first reply is awaited)."""
    import threading

    from core import jobs
    from core.steps.solve import solve
    from tests.loopback import Loopback, Reply

    release = threading.Event()

    def held(n, body):
        release.wait(30)
        return Reply()

    with Loopback("openai", held) as srv:
        _mini_with_model(db_env, tmp_path, monkeypatch, srv)
        at = open_page("pages/settings.py")
        from pages._ui import _open_store

        s = _open_store(str(db_env))  # the page's own store: the job runs in this process, as in the dashboard
        job = solve.start_job(s, solve.SolveConfig(dataset="mini", model="m"))
        try:
            at.session_state["solve-job"] = job
            at.run()
            assert any("loading model / waiting for the first reply…" in str(p.proto.text)
                       for p in at.get("progress")), [p.proto.text for p in at.get("progress")]
        finally:
            release.set()
            assert jobs.wait(job, timeout=60)


def test_test_connection_keeps_the_models_max_tokens(db_env, tmp_path, monkeypatch):
    """Item 11: the model's own max_tokens, a short reply and the latency."""
    from core import engine, models
    from tests.loopback import Loopback, Reply

    with Loopback("openai", lambda n, b: Reply(text="2. " + "아주 긴 설명이 이어진다. " * 40)) as srv:
        _mini_with_model(db_env, tmp_path, monkeypatch, srv, {"max_tokens": 8})
        s = Store(db_env)
        models.add_model(s, "free", "openai", "m-2", base_url=srv.base_url)
        assert engine.test_model(s, "m")["ok"]
        assert engine.test_model(s, "free")["ok"]
        s.close()
        clear_cached_store()
        assert [r["body"]["max_tokens"] for r in srv.requests] == [8, engine.TEST_MAX_TOKENS]
        at = open_page("pages/settings.py")
        next(b for b in at.selectbox if b.label == "Model").set_value("m").run()
        next(b for b in at.button if b.label == "Test connection").click().run()
        assert not at.exception
        done = next(x.value for x in at.success if x.value.startswith("m answered in"))
        assert re.match(r"m answered in \d+\.\d s \(stop\): 2\\\. 아주 긴", done), done
        assert done.endswith("…") and len(done) < 200
        assert srv.requests[-1]["body"]["max_tokens"] == 8


# ---- item 12: "needs first" counted from the store ---------------------------------------------------

def test_needs_are_counted_from_the_store_every_render(db_env, tmp_path):
    from core import models, pipeline
    from tests.minidata import import_mini

    s = Store(db_env)
    mine = next(r for r in pipeline.status(s) if r["step"] == "Mine")
    # A fresh store holds the built-in gemma: one model is there, one more is needed, and a pool.
    assert mine["needs"] == ("needs a train pool (Data) and 1 more registered model (Settings): "
                             "a teacher and a student")
    import_mini(s, tmp_path, n=2, name="pool")
    s.execute("UPDATE datasets SET split = 'train' WHERE name = 'pool'")
    models.add_model(s, "teacher", "openai", "t", base_url="http://127.0.0.1:9/v1")
    s.close()
    clear_cached_store()
    at = open_page("app.py")
    lines = [m.value for m in at.markdown if m.value.startswith("**Mine**")]
    assert lines == ["**Mine** — empty; ready: 1 train pool and 2 models registered: start a run"], lines
    evaluate = next(m.value for m in at.markdown if m.value.startswith("**Evaluate**"))
    assert evaluate == "**Evaluate** — empty; needs a test set (Data)"


# ---- item 13: the smaller things --------------------------------------------------------------------

def test_browse_hides_answers_and_counts_no_hits(db_env, tmp_path):
    from tests.minidata import import_mini

    seeded(db_env, tmp_path, lambda s: import_mini(s, tmp_path, n=3, name="mini"))
    at = open_page("pages/data.py")
    titles = [e.label for e in at.expander if e.label.startswith("q")]
    assert len(titles) == 3 and not any("정답" in t for t in titles), titles  # as a student browses
    assert "3 questions" in [c.value for c in at.caption]
    next(t for t in at.toggle if t.label == "Show answers").set_value(True).run()
    titles = [e.label for e in at.expander if e.label.startswith("q")]
    assert titles[0].endswith("· 정답 1"), titles
    next(t for t in at.text_input if t.label == "Search text or id").input("없는 말").run()
    assert not at.exception
    assert "0 questions match the search" in [c.value for c in at.caption]


def test_one_question_parsed_is_singular(db_env, tmp_path):
    src = tmp_path / "one.json"
    src.write_text(json.dumps([SURVEY], ensure_ascii=False), encoding="utf-8")
    at = open_page("pages/data.py")
    next(t for t in at.text_input if t.label.startswith("…or a path")).input(str(src)).run()
    assert not at.exception
    assert any(m.value.startswith("**1 question** parsed as **kice**") for m in at.markdown), \
        [m.value for m in at.markdown][:5]


def test_settings_template_defaults_to_solve_and_sidebar_store_name(db_env):
    at = open_page("pages/settings.py")
    assert next(s for s in at.selectbox if s.label == "Template").value == "solve"
    app = open_page("app.py")
    store_line = next(c for c in app.sidebar.caption if c.value.startswith("Store:"))
    assert store_line.value == "Store: app.duckdb"  # the name; the full path is in the tooltip
    assert str(db_env) in shown(store_line.proto.help)


def test_register_form_starts_empty_after_a_registration(db_env):
    at = open_page("pages/settings.py")
    fields = {t.label: t for t in at.text_input}
    fields["Name"].input("first")
    fields["Model id"].input("m-1")
    fields["Base URL (openai; optional for gemini)"].input("http://127.0.0.1:9/v1")
    next(s for s in at.selectbox if s.label == "Provider").select("openai")
    at.get("form_submit_button")[0].click().run()
    assert any("Registered 'first'" in s.value for s in at.success)
    next(e for e in at.expander if e.label == "Register a model")  # still there, for the next one
    fields = {t.label: t.value for t in at.text_input}
    assert (fields["Name"], fields["Model id"], fields["Base URL (openai; optional for gemini)"]) == ("", "", "")


def test_sidebar_counts_only_finished_runs_with_plurals_right(db_env, tmp_path, monkeypatch):
    """Item 12: a failed mining run is not 'the latest run'; one prediction set is singular."""
    from core import models
    from core.errors import CoreError
    from core.steps.mine import mining
    from tests.minidata import import_mini

    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    s = Store(db_env)
    import_mini(s, tmp_path, n=2, name="mini")
    predictions.save_predictions(s, "mini", "m", {"q1": 1, "q2": 3}, source="test")
    models.add_model(s, "flash", "gemini", "gemini-2.5-flash")
    with pytest.raises(CoreError):
        mining.run(s, mining.MiningConfig(pool="mini", teacher="flash", student="gemma3-270m-local"))
    assert [r["state"] for r in mining.list_runs(s)] == ["failed"]
    s.close()
    clear_cached_store()
    side = [c.value for c in open_page("app.py").sidebar.caption]
    assert any(c.endswith("Evaluate: 1 prediction set on 1 test set") for c in side), side
    assert any(c.endswith("Mine: —") for c in side), side
