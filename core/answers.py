"""Answer extraction from model outputs: the last {"Answer": "N"}, then clear patterns in the final lines.

Never a guess: when nothing is clear, or the final lines name different answers, the answer is None and
`reason` says why in plain English. Circled digits ①–⑤ map to 1–5.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"
TAIL_LINES = 6  # patterns are looked for in the last few non-empty lines only


@dataclass(frozen=True)
class Extraction:
    answer: int | None
    method: str  # "json" | "pattern" | "none" (always "none" when answer is None)
    reason: str


# A choice number: 3, (3), ③ — not part of a longer number, a decimal or a count ("3개", "3%").
_NUM = r"(?<![0-9])(?:\(\s*)?([1-9][0-9]?|[①-⑩])(?:\s*\))?(?![0-9]|\.[0-9]|\s*(?:%|개|가지|점|명|년|배))"
_KEY = r"(?:최종\s*(?:정답|답)|정답|(?<![가-힣])답|(?<![A-Za-z])(?:final\s+|correct\s+)?answer)"
_SEP = r"(?:[\s*_'\"`:：=]|->|→|은|는|이|가|is|선지|choice|option|번호|바로){0,10}"
_OR = r"\s*(?:과|와|또는|혹은|이나|or|and|,|/|~)\s*"
_STRONG = re.compile(
    # "정답은 ③", "답: 3번", "Answer: 2", "정답은 3번 또는 4번" (second number kept: a conflict)
    rf"{_KEY}{_SEP}{_NUM}(?:\s*번)?(?!\s*(?:이|가)\s*아니)(?:{_OR}{_NUM})?"
    # "④가 정답이다", "3번이 정답입니다" (not "②가 정답이 아니다", "①이 정답처럼 보이지만")
    rf"|{_NUM}(?:\s*번)?\s*(?:이|가)\s*(?:최종\s*)?정답(?=\s*(?:이다|입니다|이에요|예요|임|이야|이므로|이\s*된다|일\s*것|[.!*,)]|$))"
    r"|\\boxed\{\s*" + _NUM + r"\s*\}",
    re.IGNORECASE | re.MULTILINE,
)
# The last line alone: "③", "**④**", "3번", "(2)번."
_LONE = re.compile(r"[\s*#>\-]*(?:\(\s*)?([①-⑩]|[1-9][0-9]?(?=\s*번))(?:\s*\))?\s*번?[\s*.!。]*")
_JSON = re.compile(r"\{[^{}]*\}")  # a flat JSON object inside prose or fences (json_objects, _from_json)
_JSON_VALUE = re.compile(r"\s*\(?\s*([0-9]{1,2}|[①-⑩])\s*\)?\s*번?\s*\.?\s*")
_FINISH_TRUNCATED = {"MAX_TOKENS", "LENGTH"}


def _number(token: str) -> int:
    return CIRCLED.index(token) + 1 if token in CIRCLED else int(token)


def _checked(n: int, n_choices: int, method: str, reason: str) -> Extraction:
    if 1 <= n <= n_choices:
        return Extraction(n, method, reason)
    return Extraction(None, "none", f"answer {n} out of range 1–{n_choices}")


def _clip(text: str, limit: int = 120) -> str:
    """Quoted model text inside a reason stays short (a reply may hold a 5,000-character 'answer')."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _from_json(text: str, n_choices: int) -> Extraction | None:
    """The last well-formed JSON object with an Answer/answer key, or None when there is none."""
    if "nswer" not in text and "NSWER" not in text:
        return None
    for match in reversed(list(_JSON.finditer(text))):
        raw = match.group()
        if "answer" not in raw.lower():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        key = next((k for k in obj if k.lower() == "answer"), None)
        if key is None:
            continue
        value = obj[key]
        if isinstance(value, int) and not isinstance(value, bool):
            return _checked(value, n_choices, "json", f"JSON {_clip(raw)}")
        parsed = _JSON_VALUE.fullmatch(value) if isinstance(value, str) else None
        if parsed is None:
            return Extraction(None, "none", f"JSON answer {_clip(repr(value))} is not a choice number")
        return _checked(_number(parsed.group(1)), n_choices, "json", f"JSON {_clip(raw)}")
    return None


def _from_patterns(text: str, n_choices: int) -> Extraction | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    tail = "\n".join(lines[-TAIL_LINES:])
    found: list[tuple[int, str]] = []
    for match in _STRONG.finditer(tail):
        found += [(_number(g), match.group().strip()) for g in match.groups() if g]
    if not found:
        lone = _LONE.fullmatch(lines[-1])
        if lone:
            return _checked(_number(lone.group(1)), n_choices, "pattern", f"last line {lines[-1]!r}")
        return None
    values = sorted({n for n, _ in found})
    if len(values) > 1:
        return Extraction(None, "none", "several different answers in the final lines: "
                          + ", ".join(str(v) for v in values))
    return _checked(values[0], n_choices, "pattern", f"pattern {found[-1][1]!r}")


def extract_answer(text: str | None, n_choices: int = 5) -> Extraction:
    """The answer a model gave, as a choice number 1..n_choices, with how and why; None when not clear."""
    if text is None or not text.strip():
        return Extraction(None, "none", "empty output")
    text = unicodedata.normalize("NFC", text)
    after_think = ""
    reply, thinking = split_think(text)
    if thinking is not None:
        text, after_think = reply, " after </think>"
    elif "<think>" in text:
        return Extraction(None, "none", "output ended inside <think> (truncated?)")
    found = _from_json(text, n_choices) or _from_patterns(text, n_choices)
    return found or Extraction(None, "none", "no answer found" + after_think)


def split_think(text: str) -> tuple[str, str | None]:
    """Qwen3-style <think>…</think>: (the reply after it, the thinking) — (text, None) without one."""
    close = text.rfind("</think>")
    if close < 0:
        return text, None
    return text[close + len("</think>"):], text[:close].replace("<think>", "", 1).strip()


def json_objects(text: str | None) -> list[dict]:
    """Every parseable flat JSON object in a reply, in order (models wrap JSON in prose or fences)."""
    out = []
    for raw in _JSON.findall(text or ""):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def is_truncated(finish_reason: str | None) -> bool:
    """True when generation stopped at the token limit (Gemini MAX_TOKENS, OpenAI 'length')."""
    if not finish_reason:
        return False
    return str(finish_reason).rsplit(".", 1)[-1].strip().upper() in _FINISH_TRUNCATED
