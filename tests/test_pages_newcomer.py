"""Issue 10 (a newcomer's first hour): what the pages show, checked in AppTest against a real store."""

from __future__ import annotations

import json

import pytest
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from streamlit.testing.v1 import AppTest

from core import datasets, predictions
from core.store import Store
from tests.pagetest import clear_cached_store, fresh_page_store, open_page  # noqa: F401

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
    assert survey["운동"][1].startswith("\\[x\\]\\(")
    texts = " ".join(m.value for m in at.markdown)
    assert "| 구분 |" not in texts and "\\| 구분" not in texts  # no raw pipe rows left
    assert "무응답은 없음" in texts and "단위: %" in texts  # the text around the table stays


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
    from core import mining, models
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
        summary = mining.mine(store, mining.MiningConfig(pool="pool", teacher="teacher", student="student"))
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
