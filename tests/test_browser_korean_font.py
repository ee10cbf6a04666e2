"""Issue 10, item 2: Korean renders as glyphs, not boxes (tofu), in kaleido PNG exports and in Chromium.

Without a CJK font every Hangul syllable falls back to the same empty box, so two different
syllables render to identical pixels. With a Korean font installed (scripts/ensure-chromium.sh
installs Debian's fonts-nanum with chromium) they differ from each other and from a codepoint that
no font has (a private-use character, always a box).
"""

import io

import pytest

from tests.dashboard import browser_page, chromium_path

pytestmark = pytest.mark.browser

TOFU = "\ue000"  # private use: no font draws it


def _pixels(png: bytes) -> bytes:
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("L").tobytes()


def _label_png(label: str) -> bytes:
    import plotly.graph_objects as go

    from core import figures

    fig = go.Figure()
    fig.add_annotation(text=label, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 120})
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, margin={"l": 0, "r": 0, "t": 0, "b": 0})
    return figures.to_png(fig)


def test_exported_png_draws_korean_glyphs():
    chromium_path()  # kaleido drives the same Chromium
    ga, na, box = (_pixels(_label_png(t)) for t in ("가", "나", TOFU))
    assert ga != na, "가 and 나 render identically: no Korean font (install fonts-nanum or fonts-noto-cjk)"
    assert ga != box and na != box, "Korean renders as the missing-glyph box"


def test_exported_subject_chart_labels_are_not_boxes():
    """The real export: a subject chart whose only difference is its Korean subject name."""
    from core import figures

    def rep(subject: str) -> dict:
        return {"questions": 4, "models": [{"model": "m", "accuracy": 0.5, "macro_f1": 0.5,
                                            "by_subject": {subject: {"questions": 4, "accuracy": 0.5}}}]}

    a, b = (_pixels(figures.to_png(figures.subject_bars(rep(s)))) for s in ("윤리와 사상", "정치와 법률"))
    assert a != b, "two different Korean subject names export to the same pixels (tofu boxes)"


def test_chromium_draws_korean_glyphs():
    chromium_path()
    with browser_page() as page:
        shots = []
        for t in ("가", "나", TOFU):
            page.set_content(f'<span id="t" style="font-size:96px">{t}</span>')
            shots.append(_pixels(page.locator("#t").screenshot()))
    ga, na, box = shots
    assert ga != na, "Chromium draws 가 and 나 identically: no Korean font"
    assert ga != box


def test_exported_bars_keep_their_colours_after_streamlit_is_imported():
    """Issue 10, item 2: in the dashboard process (Streamlit imported: Plotly's default template is
    "streamlit", whose colours live in the browser) the PNG export drew every bar black."""
    import plotly.io as pio
    import streamlit.elements.plotly_chart  # noqa: F401 - sets Plotly's default template, as the dashboard does
    from PIL import Image

    from core import figures

    chromium_path()
    assert pio.templates.default == "streamlit"
    rep = {"questions": 4, "models": [{"model": "m", "accuracy": 1.0, "macro_f1": 1.0,
                                       "by_subject": {"윤리와 사상": {"questions": 4, "accuracy": 1.0}}}]}
    img = Image.open(io.BytesIO(figures.to_png(figures.subject_bars(rep)))).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20)
    black = sum(n for n, rgb in colours if max(rgb) < 40)
    blue = sum(n for n, (r, g, b) in colours if b > 200 and r < 140 and g < 150)  # plotly's first colour #636efa
    assert blue > 0.05 * img.width * img.height, "the bars are not drawn in the template's colour"
    assert black < 0.02 * img.width * img.height, "the bars came out black"
