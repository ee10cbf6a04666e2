"""Plotly figures of training curves (pages show them; nothing here imports Streamlit)."""

from __future__ import annotations

from typing import Any

# (title, [(metric column, trace name)]) per panel, in the order the page shows them.
PANELS: list[tuple[str, list[tuple[str, str]]]] = [
    ("loss (ORPO)", [("loss", "loss")]),
    ("NLL loss", [("nll_loss", "nll_loss")]),
    ("log-odds ratio", [("log_odds_ratio", "log_odds_ratio")]),
    ("rewards", [("rewards_chosen", "chosen"), ("rewards_rejected", "rejected")]),
    ("reward margin", [("rewards_margins", "margin")]),
    ("reward accuracy", [("rewards_accuracies", "accuracy")]),
    ("learning rate", [("learning_rate", "lr")]),
    ("grad norm", [("grad_norm", "grad_norm")]),
    ("tokens/s", [("tokens_per_s", "tokens/s")]),
]
METRICS = [m for _, traces in PANELS for m, _ in traces]


def curves(rows: list[dict[str, Any]], title: str | None = None) -> Any:
    """One run's curves against the optimizer step, one small panel per quantity."""
    from plotly.subplots import make_subplots

    cols = 3
    fig = make_subplots(rows=(len(PANELS) + cols - 1) // cols, cols=cols, subplot_titles=[p[0] for p in PANELS],
                        horizontal_spacing=0.07, vertical_spacing=0.12)
    steps = [r["step"] for r in rows]
    for i, (_, traces) in enumerate(PANELS):
        for metric, name in traces:
            fig.add_scatter(x=steps, y=[r.get(metric) for r in rows], name=name, mode="lines+markers",
                            marker_size=4, showlegend=metric in ("rewards_chosen", "rewards_rejected"),
                            row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="step", row=(len(PANELS) - 1) // cols + 1)
    fig.update_layout(height=720, title=title, margin={"t": 70, "l": 40, "r": 20, "b": 40},
                      legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"})
    return fig


def overlay(runs: dict[str, list[dict[str, Any]]], metric: str = "loss") -> Any:
    """Several runs' values of one metric on one chart (label -> metric rows)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, rows in runs.items():
        fig.add_scatter(x=[r["step"] for r in rows], y=[r.get(metric) for r in rows], name=label, mode="lines+markers",
                        marker_size=4)
    fig.update_layout(title=f"{metric} by step", xaxis_title="step", yaxis_title=metric, height=380,
                      legend_title="run")
    return fig
