"""Tests for core.prompts: templates, hashes, overrides and rendered messages."""

from __future__ import annotations

import json
import unicodedata

import pytest

from core import prompts
from core.answers import extract_answer
from core.prompts import (
    PromptError,
    Template,
    classify_messages,
    judge_messages,
    list_templates,
    load,
    override_path,
    reset_override,
    save_override,
    solve_messages,
)

Q = {
    "paragraph": "(가) 법률행위는 의사표시를 요소로 한다. ㉠계약은 청약과 승낙으로 ⓐ성립한다.\n(나) [A] 다른 견해도 있다.",
    "question": "윗글의 ㉠에 대한 이해로 적절하지 않은 것은?",
    "extra": "<보기>\nㄱ. 갑은 을에게 청약하였다.\nㄴ. 을은 승낙하지 않았다.",
    "choices": ["ㄱ", "ㄴ", "ㄱ, ㄴ", "ㄴ, ㄷ", "ㄱ, ㄴ, ㄷ"],
    "points": 3,
}


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    """Every test gets its own override directory (never the real data/workspace)."""
    monkeypatch.setattr(prompts, "OVERRIDE_DIR", tmp_path / "prompts")
    return tmp_path / "prompts"


def user_text(messages):
    return next(m["content"] for m in messages if m["role"] == "user")


# --- templates and hashes --------------------------------------------------------------------


def test_packaged_templates_exist_and_parse():
    names = {t.name for t in list_templates()}
    assert {"solve", "judge", "classify_subject"} <= names
    for t in list_templates():
        system, user = t.parts()
        assert system and user
        assert not t.overridden


def test_hash_is_12_hex_of_sha256_and_changes_with_text():
    a = Template("x", "시스템\n---user---\n{{q}}")
    b = Template("x", "시스템!\n---user---\n{{q}}")
    assert len(a.hash) == 12 and int(a.hash, 16) >= 0
    assert a.hash == Template("y", a.text).hash
    assert a.hash != b.hash


def test_hash_returned_with_messages_matches_template():
    _, h = solve_messages(Q)
    assert h == load("solve").hash


# --- overrides -------------------------------------------------------------------------------


def test_override_takes_precedence_and_reset_restores(workspace):
    original = load("solve")
    assert override_path("solve") == workspace / "solve.md"
    edited = original.text.replace("다음 수능 문제를 풀어 주세요.", "이 문제를 아주 꼼꼼히 풀어 주세요.")
    saved = save_override("solve", edited)
    assert (workspace / "solve.md").read_text(encoding="utf-8") == edited
    now = load("solve")
    assert now.overridden and now.text == edited and now.hash == saved.hash != original.hash
    messages, h = solve_messages(Q)
    assert "아주 꼼꼼히" in user_text(messages) and h == now.hash
    assert any(t.name == "solve" and t.overridden for t in list_templates())

    assert reset_override("solve") is True
    assert reset_override("solve") is False
    assert load("solve") == original
    assert solve_messages(Q)[1] == original.hash


def test_override_dir_follows_csat_workspace(monkeypatch, tmp_path):
    monkeypatch.setattr(prompts, "OVERRIDE_DIR", None)
    monkeypatch.setenv("CSAT_WORKSPACE", str(tmp_path / "ws"))
    assert override_path("judge") == tmp_path / "ws" / "prompts" / "judge.md"
    (tmp_path / "ws" / "prompts").mkdir(parents=True)
    text = load("judge").text.replace("공정한 채점자", "엄격한 채점자")
    (tmp_path / "ws" / "prompts" / "judge.md").write_text(text, encoding="utf-8")
    assert "엄격한" in load("judge").text


def test_save_override_rejects_bad_templates(workspace):
    text = load("solve").text
    with pytest.raises(PromptError, match="missing: question_block"):
        save_override("solve", text.replace("{{question_block}}", ""))
    with pytest.raises(PromptError, match="unknown: subject"):
        save_override("solve", text + "\n{{subject}}")
    with pytest.raises(PromptError, match="---user---"):
        save_override("solve", text.replace("---user---", ""))
    assert not (workspace / "solve.md").exists()


def test_bad_names():
    for name in ["../etc/passwd", "Solve", "", "nope"]:
        with pytest.raises(PromptError):
            load(name)


def test_hand_edited_override_with_unknown_placeholder_fails_clearly(workspace):
    workspace.mkdir(parents=True)
    text = load("solve").text.replace("{{question_block}}", "{{question}}")
    (workspace / "solve.md").write_text(text, encoding="utf-8")
    with pytest.raises(PromptError, match=r"unknown placeholder\(s\) \{\{question\}\}"):
        solve_messages(Q)


def test_render_placeholders_strict_and_json_braces_safe():
    t = Template("t", 'S\n---user---\n{{a}} 그리고 {"Answer":"N"} {{ b }}')
    messages = t.render(a="값{{b}}", b="{x}")
    # one pass: a value containing {{b}} is not substituted again; JSON braces are left alone
    assert messages == [{"role": "system", "content": "S"},
                        {"role": "user", "content": '값{{b}} 그리고 {"Answer":"N"} {x}'}]
    with pytest.raises(PromptError, match="unknown placeholder"):
        t.render(a="1")
    with pytest.raises(PromptError, match="missing placeholder"):
        t.render(a="1", b="2", c="3")


def test_no_system_part_gives_user_message_only():
    assert Template("t", "---user---\n안녕").render() == [{"role": "user", "content": "안녕"}]


# --- solve -----------------------------------------------------------------------------------


def test_solve_prompt_contents():
    messages, _ = solve_messages(Q)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "수능" in messages[0]["content"]
    user = user_text(messages)
    assert "법률행위는 의사표시를 요소로 한다" in user
    assert "<보기>\nㄱ. 갑은 을에게 청약하였다." in user
    assert "윗글의 ㉠에 대한 이해로 적절하지 않은 것은? [3점]" in user
    for label, choice in zip("①②③④⑤", Q["choices"], strict=True):
        assert f"{label} {choice}" in user
    assert '{"Answer":"N"}' in user
    assert user.rstrip().endswith('{"Answer":"N"}')
    assert "않은 것은" in user  # the negative-stem warning
    assert "{{" not in user and "}}" not in user


def test_solve_prompt_without_extra_or_3_points_and_with_4_choices():
    q = {"paragraph": None, "question": "다음 중 옳은 것은?", "extra": None, "choices": list("가나다라"), "points": 2}
    user = user_text(solve_messages(q)[0])
    assert "[3점]" not in user and "<보기>\n" not in user.split("다음 중 옳은 것은?")[1].split("다음 순서로")[0]
    assert "④ 라" in user and "⑤" not in user.split("다음 순서로")[0]
    assert "1부터 4 사이" in user


def test_solve_rendering_is_nfc_and_keeps_markers():
    nfd = {k: unicodedata.normalize("NFD", v) if isinstance(v, str) else v for k, v in Q.items()}
    assert nfd["paragraph"] != Q["paragraph"]
    messages, _ = solve_messages(nfd)
    for m in messages:
        assert unicodedata.is_normalized("NFC", m["content"])
    user = user_text(messages)
    for marker in ["㉠", "ⓐ", "(가)", "(나)", "[A]", "ㄱ, ㄴ"]:
        assert marker in user
    assert Q["paragraph"] in user


def test_solve_output_format_is_what_the_extractor_reads():
    assert extract_answer("풀이...\n" + '{"Answer":"4"}').answer == 4


# --- judge and classify ----------------------------------------------------------------------


def test_judge_messages():
    messages, h = judge_messages(Q, "교사 풀이: ①은 …", "학생 풀이: ②는 …")
    assert h == load("judge").hash
    user = user_text(messages)
    assert "[풀이: teacher]\n교사 풀이" in user and "[풀이: student]\n학생 풀이" in user
    assert user.index("teacher]") < user.index("student]")
    assert '"preferred"' in user and '"reason"' in user and '"tie"' in user
    assert "윗글의 ㉠에 대한 이해로 적절하지 않은 것은? [3점]" in user
    swapped = user_text(judge_messages(Q, "교사 풀이", "학생 풀이", swap=True)[0])
    assert swapped.index("student]") < swapped.index("teacher]")
    # the example answer line is valid JSON
    json.loads(user.strip().splitlines()[-1])


def test_classify_messages():
    subjects = ["국어", "생활과 윤리", "사회·문화"]
    messages, h = classify_messages(Q, subjects)
    assert h == load("classify_subject").hash
    user = user_text(messages)
    for s in subjects:
        assert f"- {s}" in user
    assert '{"subject": ' in user and "법률행위" in user
    assert json.loads(user.strip().splitlines()[-1]) == {"subject": "과목 이름"}
    with pytest.raises(PromptError):
        classify_messages(Q, [])


def test_template_files_are_utf8_nfc():
    for path in prompts.PACKAGE_DIR.glob("*.md"):
        text = path.read_bytes().decode("utf-8")
        assert unicodedata.is_normalized("NFC", text)
        assert text.count("---user---") == 1
