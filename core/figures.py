"""Plotly figures for reports (no Streamlit here: pages show them, the CLI writes PNGs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.errors import CoreError
from core.render import CIRCLED, plotly_text

# Answer choices are categories, never numbers: a numeric axis drops "none" and thins the ticks.
CHOICES = ["1", "2", "3", "4", "5", "none"]
CHOICE_TICKS = [*CIRCLED, "no answer"]


def _choice_axis(keys: list[str] | None = None) -> dict[str, Any]:
    """A categorical axis in the fixed order ①–⑤, no answer (values are the strings "1"…"5", "none")."""
    keys = keys or CHOICES
    return {"type": "category", "categoryorder": "array", "categoryarray": keys,
            "tickmode": "array", "tickvals": keys, "ticktext": [CHOICE_TICKS[CHOICES.index(k)] for k in keys]}


def subject_bars(rep: dict[str, Any], metric: str = "accuracy") -> go.Figure:
    """The original project's chart: subjects × models, support in the labels."""
    subjects = sorted({s for m in rep["models"] for s in m["by_subject"]})
    fig = go.Figure()
    for m in rep["models"]:
        values = [m["by_subject"].get(s, {}).get(metric) for s in subjects]
        fig.add_bar(name=m["model"], x=[_support_label(rep, s) for s in subjects] + [f"전체 (n={rep['questions']})"],
                    y=[v * 100 if v is not None else None for v in values] + [m[metric] * 100],
                    text=[f"{v * 100:.1f}" if v is not None else "" for v in values] + [f"{m[metric] * 100:.1f}"],
                    textposition="outside", cliponaxis=False)  # a "100.0" label above a full bar stays whole
    fig.update_layout(barmode="group", title=f"{metric} by subject (%), n = {rep['questions']}",
                      yaxis_title=f"{metric} (%)", yaxis_range=[0, 112], legend_title="model")
    return fig


def _support_label(rep: dict[str, Any], subject: str) -> str:
    n = max((m["by_subject"].get(subject, {}).get("questions", 0) for m in rep["models"]), default=0)
    return f"{subject} (n={n})"


def position_bars(rows: list[dict[str, Any]]) -> go.Figure:
    """Share of answers per choice number: gold vs each model (position bias shows up here)."""
    fig = go.Figure()
    for who in dict.fromkeys(r["who"] for r in rows):
        mine = [r for r in rows if r["who"] == who]
        fig.add_bar(name=who, x=[str(r["choice"]) for r in mine],
                    y=[r["count"] / r["n"] * 100 if r["n"] else 0 for r in mine],
                    text=[r["count"] for r in mine], textposition="outside")
    n = rows[0]["n"] if rows else 0
    fig.update_layout(barmode="group", title=f"Answer position distribution (%), n = {n}",
                      xaxis_title="choice", yaxis_title="share of questions (%)", xaxis=_choice_axis())
    return fig


def confusion_heatmap(conf: dict[str, Any]) -> go.Figure:
    fig = go.Figure(go.Heatmap(
        z=conf["matrix"], x=[str(p) for p in conf["predicted"]], y=[str(g) for g in conf["gold"]],
        text=conf["matrix"], texttemplate="%{text}", colorscale="Blues", showscale=False))
    fig.update_layout(title=f"Gold vs predicted choice: {conf['model']} (n = {conf['n']})",
                      xaxis_title="predicted", yaxis_title="gold", yaxis_autorange="reversed",
                      xaxis=_choice_axis([str(p) for p in conf["predicted"]]),
                      yaxis=_choice_axis([str(g) for g in conf["gold"]]))
    return fig


# The markup our own templates use; everything else in a figure's strings is data.
_TEMPLATE_TAGS = re.compile(r"(<br>|<extra>|</extra>)")


def _escape(value: Any, template: bool = False) -> Any:
    if isinstance(value, str):
        if template:  # keep the line breaks and <extra> of a hover template; its data parts (px writes
            # the colour group's value into it) are escaped like the rest
            return "".join(p if _TEMPLATE_TAGS.fullmatch(p) else plotly_text(p) for p in _TEMPLATE_TAGS.split(value))
        return plotly_text(value)
    if isinstance(value, dict):
        return {k: v if k == "template" else _escape(v, k in ("hovertemplate", "texttemplate"))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape(v, template) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "OU":  # customdata, category labels
        return np.vectorize(plotly_text, otypes=[object])(value) if value.size else value
    return value


def escape_figure(fig: go.Figure) -> go.Figure:
    """A copy of `fig` in which every string Plotly would read as pseudo-HTML shows as text.

    Plotly draws <a href> as a clickable link and <b>, <i>, <span style> as formatting in ticks,
    legends, hover labels and titles, so a subject, model name or question start must never reach
    it raw. One walk over the whole figure, not a call per label, so a new figure cannot forget a
    field: axis ticks, category orders (escaped alike, so they still match), legend names, hover
    text, customdata (pages/visualise.py reads a selection back with render.plotly_unescape),
    titles and annotations. Strings without <, > or & (colours, modes, enum values) are unchanged.
    Pages show figures through pages/_ui.py:chart and to_png exports them, both through here.
    """
    return go.Figure(_escape(fig.to_dict()), skip_invalid=True)


EXPORT_TEMPLATE = "plotly_white"
PNG_TRIES = 3


def to_png(fig: go.Figure) -> bytes:
    """PNG bytes via kaleido, which drives an installed Chrome/Chromium."""
    # A process that imported Streamlit has "streamlit" as Plotly's default template, whose colours live
    # in the browser's theme: exported as-is every bar comes out black. Exports use a plain template.
    fig = escape_figure(fig).update_layout(template=EXPORT_TEMPLATE)
    for attempt in range(PNG_TRIES):
        try:
            return fig.to_image(format="png", width=1100, height=550, scale=2)
        except Exception as exc:  # kaleido raises several types when no browser is found
            # On a loaded machine kaleido 1.x can evaluate in its tab before kaleido_scopes.js has loaded
            # ("kaleido_scopes is not defined"): a race in its tab set-up, gone on the next try.
            if "kaleido_scopes is not defined" in str(exc) and attempt + 1 < PNG_TRIES:
                continue
            raise CoreError(f"PNG export failed: {exc}".splitlines()[0],
                            hint="install Chrome or Chromium (e.g. apt-get install chromium), or use the chart's "
                                 "camera button") from None
    raise AssertionError("unreachable")


def save_png(fig: go.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_png(fig))
    return path
