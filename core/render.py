"""Exam-style plain text of a question: passage, <보기>, stem [3점], ①–⑤. Used by prompts and pages."""

from __future__ import annotations

import re
from typing import Any

from core.answers import CIRCLED as CIRCLED_DIGITS

CIRCLED = CIRCLED_DIGITS[:5]  # an exam question's five choices (the one circled-digit constant: core/answers.py)


def choice_label(i: int) -> str:
    """1 -> ①; numbers past ⑤ fall back to (6)."""
    return CIRCLED[i - 1] if 1 <= i <= len(CIRCLED) else f"({i})"


def boxed_extra(extra: str) -> str:
    """A question's extra material (<보기>, table, dialogue) headed <보기> unless it already is."""
    return extra if extra.lstrip().startswith("<보기>") else f"<보기>\n{extra}"


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
        parts.append(boxed_extra(q["extra"]))
    parts.append("\n".join(f"{choice_label(i)} {c}" for i, c in enumerate(q["choices"], 1)))
    return "\n\n".join(parts)


_PIPE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_SEPARATOR_CELL = re.compile(r"^:?-+:?$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip()[1:-1].split("|")]


def _unique(names: list[str]) -> list[str]:
    """Column names a table can hold: blanks numbered, repeats suffixed."""
    out: list[str] = []
    for i, name in enumerate(names, 1):
        name = name or f"({i})"
        base, n = name, 2
        while name in out:
            name, n = f"{base} ({n})", n + 1
        out.append(name)
    return out


def passage_blocks(text: str) -> list[tuple[str, Any]]:
    """Split exam text into ("text", str) and ("table", {"columns": [...], "rows": [[...]]}) blocks.

    Survey tables in 사회·문화 passages come as Markdown pipe rows ("| 구분 | 운동 | … |"), with or
    without a |---| separator. Two or more consecutive pipe rows are a table (first row: header);
    everything else stays text. The cells are plain strings: a page shows them as a table, never as
    HTML, and escapes them like any other dataset text.
    """
    blocks: list[tuple[str, Any]] = []
    lines = (text or "").split("\n")
    i, plain = 0, []
    while i < len(lines):
        j = i
        while j < len(lines) and _PIPE_ROW.match(lines[j]):
            j += 1
        rows = [_cells(ln) for ln in lines[i:j]]
        rows = [r for r in rows if not all(_SEPARATOR_CELL.match(c) for c in r)]
        if j - i >= 2 and len(rows) >= 2:
            if plain:
                blocks.append(("text", "\n".join(plain).strip("\n")))
                plain = []
            width = max(len(r) for r in rows)
            rows = [r + [""] * (width - len(r)) for r in rows]
            blocks.append(("table", {"columns": _unique(rows[0]), "rows": rows[1:]}))
            i = j
        else:
            plain.append(lines[i])
            i += 1
    if plain and "\n".join(plain).strip():
        blocks.append(("text", "\n".join(plain).strip("\n")))
    return [b for b in blocks if b[0] == "table" or b[1].strip()]


def answer_label(answer: int | None) -> str:
    """A choice as a reader sees it: ③, or "no answer" (never Python's None)."""
    return "no answer" if answer is None else choice_label(int(answer))


def answers_label(answers: list[int | None] | None) -> str:
    """K samples' answers as a plain list: "③, ③, no answer" (never "[3, 3, None]")."""
    return ", ".join(answer_label(a) for a in answers or []) or "—"


# ---- untrusted text on screen ------------------------------------------------------------------
# Dataset text, model replies and names are data, never markup (DESIGN.md §5). Two escapers, one per
# renderer: Streamlit Markdown (pages/_ui.py `text`, `label_text`, `table`) and Plotly's pseudo-HTML
# (`plotly_text`, applied to whole figures by core/figures.py:escape_figure).

# A backslash before each mark that starts Markdown or a Streamlit extension (CommonMark lets any
# ASCII punctuation be escaped). Anywhere in a line: links and images [ ], HTML and autolinks < >,
# entities &, emphasis * _, strikethrough ~, code and fences `, KaTeX $, tables |, and a colon
# before a word, which starts a directive (:red[…], :blue-badge[…]), an icon (:material/home:) or
# an emoji (:smile:); the colon also gets a word joiner (U+2060, invisible), since icons and emoji
# are found in the parsed text, after escapes are gone. At the start of a line only: ATX headings #,
# setext underlines and rules = -, lists - + and "1." "1)", quotes >. Marks that mean nothing
# elsewhere (a "." in 25.00%, the "( )" of "(단위: %)") stay as they are, so text reads unchanged.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~$&|]|:(?=[A-Za-z0-9_+\-]))")
_MD_LINE_START = re.compile(r"(?m)^([ \t]*)(?:(#(?=#{0,5}(?:[ \t]|$))|[+\-](?=[ \t]|$)|[=\-](?=[=\-]*[ \t]*$))"
                            r"|(\d{1,9})([.)])(?=[ \t]|$))")
# GFM autolinks (http://…, www.…, a@b.c) are found in the parsed text too: a word joiner after the
# word breaks them and changes nothing a reader sees.
_AUTOLINK = re.compile(r"(?i)(?<![a-z])(https?|ftp|mailto|www|xmpp)(?=[:.])|(@)")
# Bidi embeddings/overrides/isolates reorder every character after them up to the end of the
# paragraph (a Right-to-Left Override makes "abc" read "cba", and the rest of the line with it):
# shown as their code point so the text reads in the order it is stored.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def visible_controls(value: str) -> str:
    """Bidi control characters as ⟨U+202E⟩; every other character (Hangul, zero-width marks) kept."""
    return _BIDI.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", value)


def markdown_text(value: Any) -> str:
    """Untrusted text as Streamlit Markdown that renders as the literal characters it holds.

    Backslash-escapes every Markdown-significant mark, defuses autolinks and shortcodes, shows bidi
    controls, and keeps leading spaces from making an indented code block (they become no-break
    spaces). Line breaks are left to the caller (pages/_ui.py:text keeps them, label_text joins).
    """
    # CR and CRLF end lines in Markdown too: as "\n", the line-start rules below see every line
    value = visible_controls(re.sub(r"\r\n?", "\n", "" if value is None else str(value)))
    value = _AUTOLINK.sub(lambda m: m.group() + "\u2060", value)
    value = _MD_SPECIAL.sub(lambda m: "\\:\u2060" if m.group() == ":" else "\\" + m.group(), value)
    value = _MD_LINE_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"),
                               value)
    # four leading spaces (or a tab) start a code block, where backslashes show: no-break spaces instead
    return re.sub(r"(?m)^[ \t]+", lambda m: "\u00a0" * len(m.group().expandtabs(4)), value)


_PLOTLY_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def plotly_text(value: Any) -> Any:
    """Untrusted text in a Plotly label (tick, legend, hover, title): its pseudo-HTML (<a href>, <b>,
    <br>, <img>…) shown as characters. Plotly decodes these entities back to <, >, & when drawing.
    Non-strings (numbers on an axis) pass through unchanged."""
    if not isinstance(value, str):
        return value
    return visible_controls(re.sub(r"[&<>]", lambda m: _PLOTLY_SPECIAL[m.group()], value))


def plotly_unescape(value: Any) -> Any:
    """The inverse of plotly_text for values a chart hands back (a selected point's customdata)."""
    if not isinstance(value, str):
        return value
    value = re.sub("⟨U\\+(202[A-E]|206[6-9])⟩", lambda m: chr(int(m.group(1), 16)), value)
    return re.sub(r"&(amp|lt|gt);", lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], value)
