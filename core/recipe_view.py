"""The rounds of a recipe run as a timeline: one row per round (what it mined, made, trained and
scored) and a Plotly figure of test accuracy per round against the base student, with the
bootstrap CI of each round's gain over the base. Read by the Home page; no Streamlit here."""

from __future__ import annotations

from typing import Any


def rows(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for r in (summary or {}).get("rounds", []):
        e = r.get("eval") or {}
        vp = e.get("vs_previous") or {}
        ov = r.get("overlap") or {}
        out.append({
            "round": r["round"], "mined with": r.get("student"), "hard negatives": r.get("hard_negatives"),
            "passed gates": r.get("passed"), "pairs": r.get("pairs"), "trained on": r.get("set"),
            "tuned model": r.get("tuned_model") or "—",
            "AUC vs test (pool / pairs)": " / ".join(_auc((ov.get(k) or {}).get("auc")) for k in ("pool", "pairs"))
                                          if ov else "—",
            "accuracy": _pct(e.get("tuned_accuracy")), "base": _pct(e.get("base_accuracy")),
            "vs base (McNemar p)": f"{e['fixed']} fixed / {e['broken']} broken (p {e['mcnemar_p']:.3g})" if e else "—",
            "vs previous": (f"{100 * vp['diff']:+.1f} %p, CI [{_pct(vp['ci'][0])}, {_pct(vp['ci'][1])}]"
                            if vp and vp.get("ci", [None])[0] is not None else "—"),
        })
    return out


def _auc(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def figure(summary: dict[str, Any] | None):
    """Accuracy per round (tuned) with the base as round 0; error bars: the gain's 95 % CI over the base."""
    import plotly.graph_objects as go

    scored = [r for r in (summary or {}).get("rounds", []) if r.get("eval")]
    if not scored:
        return None
    base = scored[0]["eval"]["base_accuracy"]
    xs = [0] + [r["round"] for r in scored]
    ys = [100 * base] + [100 * r["eval"]["tuned_accuracy"] for r in scored]
    hi = [0] + [100 * (r["eval"]["ci"][1] - r["eval"]["tuned_accuracy"] + base) for r in scored]
    lo = [0] + [100 * (r["eval"]["tuned_accuracy"] - base - r["eval"]["ci"][0]) for r in scored]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name="test accuracy",
                               error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
                               hovertemplate="round %{x}: %{y:.1f} %<extra></extra>"))
    fig.add_hline(y=100 * base, line_dash="dot", annotation_text="base student")
    fig.update_layout(title="Test accuracy per round (error bars: 95 % CI of the gain over the base)",
                      xaxis={"title": "round (0 = base)", "tickmode": "array", "tickvals": xs},
                      yaxis={"title": "accuracy (%)"}, height=320, margin={"t": 50, "b": 40})
    return fig
