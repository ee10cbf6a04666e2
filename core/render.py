"""Exam-style plain text of a question: passage, <보기>, stem [3점], ①–⑤. Used by prompts and pages."""

from __future__ import annotations

from typing import Any

CIRCLED = "①②③④⑤"


def choice_label(i: int) -> str:
    """1 -> ①; numbers past ⑤ fall back to (6)."""
    return CIRCLED[i - 1] if 1 <= i <= len(CIRCLED) else f"({i})"


def stem(q: dict[str, Any], number: str | None = None) -> str:
    mark = " [3점]" if q.get("points") == 3 else ""
    prefix = f"{number}. " if number else ""
    return f"{prefix}{q['question']}{mark}"


def question_text(q: dict[str, Any], number: str | None = None, with_passage: bool = True) -> str:
    """The question as a student reads it on paper (markers such as ㉠, ⓐ, (가) kept as they are)."""
    parts = []
    if with_passage and q.get("paragraph"):
        parts.append(q["paragraph"])
    parts.append(stem(q, number))
    if q.get("extra"):
        extra = q["extra"]
        parts.append(extra if extra.lstrip().startswith("<보기>") else f"<보기>\n{extra}")
    parts.append("\n".join(f"{choice_label(i)} {c}" for i, c in enumerate(q["choices"], 1)))
    return "\n\n".join(parts)
