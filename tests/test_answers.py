"""Tests for core.answers: a table of real-looking model outputs (Korean and English)."""

from __future__ import annotations

import pytest

from core.answers import Extraction, extract_answer, is_truncated

# Long reasoning that mentions every choice before the final answer; none of these mentions is an answer.
ANALYSIS = """발문을 보면 "윗글의 내용과 일치하지 않는 것은?"이므로 옳지 않은 선지를 골라야 한다.

선지 분석:
①은 1문단에서 '법률행위는 의사표시를 요소로 한다'고 했으므로 옳다.
②는 2문단의 내용과 일치한다. 따라서 ②는 적절하다.
③은 3문단에서 ㉠이 ⓑ에 영향을 준다고 했으므로 틀리다.
④는 (가)와 (나)를 비교한 4문단과 일치하므로 옳다.
⑤ 역시 5문단에 근거가 있으므로 적절하다."""

ANALYSIS_SHORT = "①은 옳다. ②는 틀리다. ③은 옳다. ④는 옳다. ⑤는 옳다.\n2번 선지만 지문과 어긋난다."

CASES = [
    # --- JSON ------------------------------------------------------------------------------------
    ("json last line", ANALYSIS + '\n\n{"Answer":"3"}', 5, 3, "json"),
    ("json int value", ANALYSIS + '\n{"Answer": 3}', 5, 3, "json"),
    ("json spaces lowercase circled", ANALYSIS + '\n{ "answer" : "③" }', 5, 3, "json"),
    ("json fenced", ANALYSIS + '\n\n```json\n{\n  "Answer": "4"\n}\n```', 5, 4, "json"),
    ("json fenced no lang", ANALYSIS_SHORT + '\n```\n{"Answer":"2"}\n```', 5, 2, "json"),
    ("two json last wins", '처음에는 {"Answer":"2"}라고 생각했으나 다시 검토하면 ③이 틀렸다.\n{"Answer":"3"}', 5, 3, "json"),
    ("json mid-text then explanation", '{"Answer": "5"}\n\n해설: ①은 옳다. ②는 옳다. ③은 옳다. ④는 옳다.', 5, 5, "json"),
    ("json with extra keys", ANALYSIS + '\n{"reasoning": "③은 3문단과 어긋남", "Answer": "3"}', 5, 3, "json"),
    ("json value with 번", ANALYSIS + '\n{"Answer":"3번"}', 5, 3, "json"),
    ("json wins over later pattern", '{"Answer":"1"}\n(참고: 정답은 1번)', 5, 1, "json"),
    ("json after pattern text", "따라서 정답은 ④이다.\n\n" + '{"Answer":"4"}', 5, 4, "json"),
    ("json on 4-choice question", "①은 옳다. ④는 틀리다.\n" + '{"Answer":"4"}', 4, 4, "json"),
    ("json bold line", ANALYSIS + '\n**{"Answer":"3"}**', 5, 3, "json"),
    # --- Korean patterns -------------------------------------------------------------------------
    ("정답은 N번", ANALYSIS + "\n\n따라서 정답은 3번입니다.", 5, 3, "pattern"),
    ("정답: circled", ANALYSIS + "\n\n정답: ③", 5, 3, "pattern"),
    ("답: N", ANALYSIS_SHORT + "\n답: 2", 5, 2, "pattern"),
    ("답은 circled 입니다", ANALYSIS_SHORT + "\n답은 ②입니다.", 5, 2, "pattern"),
    ("따라서 정답은 circled 이다", ANALYSIS_SHORT + "\n따라서 정답은 ②이다.", 5, 2, "pattern"),
    ("최종 답", ANALYSIS + "\n\n최종 답: 3", 5, 3, "pattern"),
    ("최종 정답 bold", ANALYSIS + "\n\n**최종 정답: ③**", 5, 3, "pattern"),
    ("정답 bold circled", ANALYSIS + "\n\n정답은 **③**입니다.", 5, 3, "pattern"),
    ("reverse 가 정답이다", ANALYSIS_SHORT + "\n이상을 종합하면 ②가 정답이다.", 5, 2, "pattern"),
    ("reverse 번이 정답입니다", ANALYSIS + "\n\n그러므로 3번이 정답입니다.", 5, 3, "pattern"),
    ("정답 선지", ANALYSIS + "\n\n정답 선지: ③", 5, 3, "pattern"),
    ("pattern followed by a short note", ANALYSIS + "\n\n정답: ③\n\n③은 3문단의 인과 관계를 뒤집었다.", 5, 3, "pattern"),
    ("lone circled last line", ANALYSIS + "\n\n③", 5, 3, "pattern"),
    ("lone 번 last line", ANALYSIS_SHORT + "\n\n2번", 5, 2, "pattern"),
    ("lone bold circled", ANALYSIS + "\n\n**③**", 5, 3, "pattern"),
    ("boxed", "각 선지를 검토하면 ④만 옳다.\n\\boxed{4}", 5, 4, "pattern"),
    # --- English ---------------------------------------------------------------------------------
    ("english Answer:", "Choice ① is consistent with paragraph 1. Choice ② contradicts it.\nAnswer: 2", 5, 2, "pattern"),
    ("english the answer is", "① is true, ③ is false, ⑤ is true.\nTherefore, the answer is (3).", 5, 3, "pattern"),
    ("english final answer bold", "Checking each option...\n**Final Answer:** ④", 5, 4, "pattern"),
    # --- think blocks ----------------------------------------------------------------------------
    ("think then json", '<think>\n정답은 ②인 것 같다. 아니, ③을 다시 보자.\n</think>\n\n{"Answer":"3"}', 5, 3, "json"),
    ("think json ignored", '<think>{"Answer":"2"}</think>\n최종 답: 5', 5, 5, "pattern"),
    ("think closing only (template opened it)", "①은 옳다... 정답은 1번?\n</think>\n\n정답은 ④입니다.", 5, 4, "pattern"),
    # --- None: nothing clear ---------------------------------------------------------------------
    ("choice mentions only", ANALYSIS, 5, None, "none"),
    ("negated 정답", ANALYSIS_SHORT + "\n②가 정답이 아니다.", 5, None, "none"),
    ("정답처럼 보이지만", "①이 정답처럼 보이지만 다시 검토가 필요하다.", 5, None, "none"),
    ("empty", "", 5, None, "none"),
    ("whitespace", "  \n\t ", 5, None, "none"),
    ("none input", None, 5, None, "none"),
    ("percent is not an answer", "위 표에서 정답률은 30%이고 오답률은 70%이다.", 5, None, "none"),
    ("unclosed think", "<think>\n①은 옳다. ②는 틀리다. 그러면 정답은 ②인 것 같은데 ③도 확인해 보면", 5, None, "none"),
    ("unclosed think with json", '<think>\n일단 {"Answer":"2"}로 적어 두고 다시', 5, None, "none"),
    ("closed think, nothing after", "<think>정답은 3번</think>\n", 5, None, "none"),
    # --- None: conflicting or out of range -------------------------------------------------------
    ("conflicting final lines", ANALYSIS + "\n\n따라서 정답은 ③번이다.\n최종 답: ④", 5, None, "none"),
    ("answer is 3 or 4", ANALYSIS + "\n\n정답은 3번 또는 4번이다.", 5, None, "none"),
    ("english conflict", "The answer is 2.\nActually, the answer is 4.", 5, None, "none"),
    ("json out of range 6", ANALYSIS + '\n{"Answer":"6"}', 5, None, "none"),
    ("json 5 on 4-choice", "①은 옳다.\n" + '{"Answer":"5"}', 4, None, "none"),
    ("pattern out of range", ANALYSIS + "\n\n정답: 7번", 5, None, "none"),
    ("circled ⑤ on 4-choice", "정답은 ⑤이다.", 4, None, "none"),
    ("json not a number", ANALYSIS + '\n{"Answer":"ㄱ, ㄴ"}', 5, None, "none"),
    ("json zero", '{"Answer": 0}', 5, None, "none"),
]


@pytest.mark.parametrize(("text", "n", "answer", "method"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_table(text, n, answer, method):
    got = extract_answer(text, n)
    assert isinstance(got, Extraction)
    assert got.answer == answer, got
    assert got.method == method, got
    assert got.reason


def test_table_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    ("text", "n", "reason"),
    [
        ('{"Answer":"7"}', 5, "answer 7 out of range 1–5"),
        ('{"Answer":"5"}', 4, "answer 5 out of range 1–4"),
        ("<think>정답은 ③", 5, "output ended inside <think> (truncated?)"),
        (ANALYSIS, 5, "no answer found"),
        ("<think>정답은 3번</think>", 5, "no answer found after </think>"),
    ],
)
def test_reasons(text, n, reason):
    assert extract_answer(text, n).reason == reason


def test_conflict_reason_names_answers():
    got = extract_answer("정답은 ③번이다.\n최종 답: ④")
    assert got.reason.startswith("several different answers in the final lines")
    assert "3" in got.reason and "4" in got.reason


def test_nfd_input():
    import unicodedata

    assert extract_answer(unicodedata.normalize("NFD", "따라서 정답은 ②이다.")).answer == 2


def test_frozen():
    with pytest.raises(AttributeError):
        extract_answer("정답: 1").answer = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("reason", "truncated"),
    [("MAX_TOKENS", True), ("length", True), ("FinishReason.MAX_TOKENS", True), ("STOP", False),
     ("stop", False), (None, False), ("", False), ("SAFETY", False)],
)
def test_is_truncated(reason, truncated):
    assert is_truncated(reason) is truncated


def test_many_long_outputs():
    """Long replies in both shapes; how fast this runs is measured in bench/bench_analysis.py."""
    texts = [ANALYSIS * 6 + f'\n{{"Answer":"{i % 5 + 1}"}}' for i in range(100)]
    texts += [ANALYSIS * 6 + f"\n따라서 정답은 {i % 5 + 1}번이다." for i in range(100)]
    answers = [extract_answer(t).answer for t in texts]
    assert answers == [i % 5 + 1 for i in range(100)] * 2
