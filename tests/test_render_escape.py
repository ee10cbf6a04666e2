"""Data is shown as text: every hostile pattern goes through the one Markdown escaper (pages/_ui.py
`text` / `label_text`, core/render.py:markdown_text) and the one Plotly escaper (core/render.py:
plotly_text, applied to whole figures by core/figures.py:escape_figure) and comes out inert.

The Markdown side is checked with a real CommonMark parser (markdown-it-py, GFM tables and
strikethrough on): the escaped text must parse to plain text only (no link, image, HTML, heading,
list, emphasis, code, table token) that reads exactly as written. What CommonMark does not know
(GFM autolinks, KaTeX, Streamlit directives, icons, emoji) is checked on the string; tests/
test_browser_hostile.py checks all of it in Chromium on the real pages.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from markdown_it import MarkdownIt

from core import figures
from core.render import markdown_text, plotly_text, plotly_unescape, visible_controls
from core.steps.visualise import mapping
from pages._ui import label_text, text

EVIL = "http://127.0.0.1:9/x"
HOSTILE = [
    f"[click]({EVIL})", f"![x]({EVIL}/a.png)", f"<img src={EVIL}/b.png>", f'<a href="{EVIL}">link</a>',
    f"<{EVIL}>", f"see {EVIL} or www.evil.example or me@evil.example", "<script>alert(1)</script>",
    "x\n===", "y\n---", "z\r\n===", "w\r---", "# heading", "###### h6", "- item\n* item\n+ item", "1. one\n2) two", "> quote",
    "**bold** __bold__ *it* _it_ ~~strike~~", "`code` ``x``", "```\nfence\n```", "~~~\nfence\n~~~",
    "    indented code", "\tindented", "| a | b |\n|---|---|\n| 1 | 2 |", "$x^2$ and $$\\int$$",
    ":red[red] :blue-badge[badge] :material/home: :smile: :100:", "[ref]: http://evil.example",
    "&lt;b&gt; &amp; &#60;", "a\\*b\\", "<!-- c -->", "text[^1]\n\n[^1]: note", "- [ ] task",
    "정답은 ③ [3점] (단위: %) ㉠ <보기>", "abc\u202edcba\u202c and \u2067x\u2069", "zero\u200bwidth\u200d\ufeffmarks",
    "line  \nbreak\\\nend", "***\n___", "<div>\n*x*\n</div>", "{: .class}", "a|b", "http:/ /x [a] (b)",
]


def _plain(tokens) -> str:
    out = []
    for tok in tokens:
        if tok.type == "inline":
            for child in tok.children:
                assert child.type in ("text", "softbreak", "hardbreak"), (child.type, child.content)
                out.append(child.content if child.type == "text" else "\n")
        elif tok.type == "paragraph_close":
            out.append("\n\n")
        else:
            assert tok.type == "paragraph_open", tok.type
    return "".join(out).strip("\n")


PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _as_written(raw: str, one_line: bool) -> str:
    """What a reader should see: the raw text (label_text joins it into one line; Markdown itself
    joins blank-line runs into one paragraph break, drops spaces at line ends, reads CR as a line end)."""
    if one_line:
        return visible_controls(" ".join(raw.split()))
    lines = visible_controls(re.sub(r"\r\n?", "\n", raw)).replace("\t", "    ")
    return re.sub(r"[ \t]*\n", "\n", re.sub(r"\n\n+", "\n\n", lines)).strip()


@pytest.mark.parametrize("raw", HOSTILE)
def test_markdown_escape_leaves_only_plain_text(raw):
    for shown, one_line in ((text(raw), False), (label_text(raw), True)):
        plain = _plain(PARSER.parse(shown))  # fails on a link, image, html, heading, list, code … token
        got = re.sub(r" *\n", "\n", plain.replace("\u2060", "").replace("\u00a0", " ")).strip()
        assert got == _as_written(raw, one_line), shown  # reads as written
        # What CommonMark does not know: KaTeX, GFM autolinks, directives / icons / emoji shortcodes.
        assert not re.search(r"(?<!\\)\$", shown)
        assert not re.search(r"(?i)(https?|ftp|mailto):|www\.|@[a-z]", shown.replace("\\", ""))
        assert not re.search(r":[A-Za-z0-9_+-]", shown.replace("\\", ""))
        assert not re.search("[\u202a-\u202e\u2066-\u2069]", shown)  # bidi controls shown, not obeyed


def test_markdown_escape_keeps_korean_and_plain_text_readable():
    assert text("정답은 ③이다.\n다음 줄") == "정답은 ③이다.  \n다음 줄"
    assert markdown_text("1: 옳은 것은? (단위: %)") == "1: 옳은 것은? (단위: %)"
    assert visible_controls("a\u202eb") == "a⟨U+202E⟩b"
    assert text(None) == "" and label_text("  a \n b  ", 2) == "a …"


def _strings(value, path=""):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


TAG = re.compile(r"<(?!br>|extra>|/extra>)")


def _no_markup(fig) -> list[str]:
    """Every '<' in the figure Plotly will draw that is not our own <br> / <extra>; '&' not an entity."""
    spec = json.loads(fig.to_json())
    spec["layout"].pop("template", None)
    return [f"{p}: {s}" for p, s in _strings(spec) if TAG.search(s) or re.search(r"&(?!amp;|lt;|gt;)", s)]


HOST = '<a href="http://127.0.0.1:9/">x</a><b>b</b><img src=x>&nbsp;'


def test_escape_figure_covers_px_bars_with_hostile_groups_and_categories():
    import plotly.express as px

    rows = [{"subject": f"국어{HOST}", "questions": 2, "dataset": f"set{HOST}"},
            {"subject": "윤리", "questions": 1, "dataset": "plain"}]
    fig = px.bar(rows, x="subject", y="questions", color="dataset", text="questions", title=f"t{HOST}")
    assert _no_markup(fig)  # the raw figure carries the markup (legend, ticks, px's hover template)
    safe = figures.escape_figure(fig)
    assert _no_markup(safe) == []
    assert safe.data[0].name == plotly_text(f"set{HOST}") and "<br>" in safe.data[0].hovertemplate
    assert plotly_unescape(safe.data[0].x[0]) == f"국어{HOST}"


def test_escape_figure_covers_report_figures_and_the_map():
    rep = {"questions": 2, "models": [{"model": f"m{HOST}", "accuracy": 0.5, "macro_f1": 0.5,
                                       "by_subject": {f"s{HOST}": {"accuracy": 0.5, "questions": 2}}}]}
    conf = {"matrix": [[1]], "predicted": ["1"], "gold": ["1"], "model": f"m{HOST}", "n": 1}
    points = [{"x": 0.0, "y": 1.0, "set": f"set{HOST}", "id": "q<1>&", "subject": f"s{HOST}",
               "start": f"start{HOST}\u202e"}]
    for fig in (figures.subject_bars(rep), figures.confusion_heatmap(conf),
                figures.position_bars([{"who": f"m{HOST}", "choice": "1", "count": 1, "n": 1}]),
                mapping.map_figure(points, [f"class{HOST}"])):
        assert _no_markup(fig)
        assert _no_markup(figures.escape_figure(fig)) == []
    safe = figures.escape_figure(mapping.map_figure(points, ["c"]))
    data = np.asarray(safe.data[0].customdata)[0]
    # a selection hands customdata back escaped: the page reads the stored id again
    assert [plotly_unescape(v) for v in data] == [points[0][k] for k in ("set", "id", "subject", "start")]
    assert safe.data[0].hovertemplate == mapping.map_figure(points, ["c"]).data[0].hovertemplate


def test_plotly_text_escapes_only_markup():
    assert plotly_text("<b>a</b> & b") == "&lt;b&gt;a&lt;/b&gt; &amp; b"
    assert plotly_text(3) == 3 and plotly_text("국어 (n=3)") == "국어 (n=3)"
    assert plotly_unescape(plotly_text("a&lt;<\u202e")) == "a&lt;<\u202e"
