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
# What says whether ORPO is learning, shown first: the page draws the other panels on request (each
# subplot costs the browser drawing time; nine of them made Train the slowest page to open).
KEY_PANELS = ("loss (ORPO)", "rewards", "reward margin", "reward accuracy")


def curves(rows: list[dict[str, Any]], title: str | None = None, key_only: bool = False) -> Any:
    """One run's curves against the optimizer step, one small panel per quantity (key_only: the four of
    KEY_PANELS in one row)."""
    from plotly.subplots import make_subplots

    panels = [p for p in PANELS if p[0] in KEY_PANELS] if key_only else PANELS
    cols = 4 if key_only else 3
    n_rows = (len(panels) + cols - 1) // cols
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=[p[0] for p in panels],
                        horizontal_spacing=0.06 if key_only else 0.07, vertical_spacing=0.12)
    steps = [r["step"] for r in rows]
    for i, (_, traces) in enumerate(panels):
        for metric, name in traces:
            fig.add_scatter(x=steps, y=[r.get(metric) for r in rows], name=name, mode="lines+markers",
                            marker_size=4, showlegend=metric in ("rewards_chosen", "rewards_rejected"),
                            row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="step", row=n_rows)
    _integer_steps(fig, steps)
    acc = next(i for i, (_, traces) in enumerate(panels) if traces[0][0] == "rewards_accuracies")
    fig.update_yaxes(range=[-0.05, 1.05], row=acc // cols + 1, col=acc % cols + 1)  # a share: 0–1, never 0–2
    fig.update_layout(height=330 if key_only else 720, title=title, margin={"t": 70, "l": 40, "r": 20, "b": 40},
                      legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"})
    return fig


def _integer_steps(fig: Any, steps: list[int]) -> None:
    """Steps are whole numbers: no tick at 1.5 when only a few steps are logged."""
    fig.update_xaxes(tickformat="d", dtick=1 if steps and max(steps) - min(steps) <= 10 else None, rangemode="tozero")


def heldout(h: dict[str, Any]) -> Any:
    """Held-out margin and preference accuracy of the tuned model by step, the base as a dashed line."""
    from plotly.subplots import make_subplots

    hist = [r for r in h.get("history") or [] if r.get("margin") is not None]
    base = h.get("base") or {}
    fig = make_subplots(rows=1, cols=2, subplot_titles=["held-out margin (chosen − rejected log-prob)",
                                                        "held-out preference accuracy"], horizontal_spacing=0.1)
    steps = [r["step"] for r in hist]
    for col, key in ((1, "margin"), (2, "accuracy")):
        fig.add_scatter(x=steps, y=[r[key] for r in hist], name="tuned", mode="lines+markers", showlegend=col == 1,
                        line_color="#1f77b4", row=1, col=col)
        if base.get(key) is not None:
            fig.add_hline(y=base[key], line_dash="dash", line_color="#7f7f7f", row=1, col=col,
                          annotation_text="base", annotation_position="top left")
    fig.update_yaxes(range=[-0.05, 1.05], row=1, col=2)
    fig.update_xaxes(title_text="step")
    _integer_steps(fig, steps)
    fig.update_layout(height=320, margin={"t": 50, "l": 40, "r": 20, "b": 40},
                      title=f"Held-out check: {h.get('pairs')} pairs never trained on")
    return fig


def sweep(results: list[dict[str, Any]]) -> Any:
    """Held-out margin and accuracy per setting of a sweep, base beside tuned."""
    from plotly.subplots import make_subplots

    labels = [r["label"] for r in results]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["held-out margin", "held-out preference accuracy"],
                        horizontal_spacing=0.1)
    for col, key in ((1, "margin"), (2, "accuracy")):
        for which, color in (("base", "#7f7f7f"), ("tuned", "#1f77b4")):
            fig.add_bar(x=labels, y=[r.get(f"{which}_{key}") for r in results], name=which, marker_color=color,
                        showlegend=col == 1, row=1, col=col)
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.update_xaxes(type="category")
    fig.update_layout(height=340, barmode="group", margin={"t": 50, "l": 40, "r": 20, "b": 60}, title="Sweep")
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
    _integer_steps(fig, [r["step"] for rows in runs.values() for r in rows])
    if metric == "rewards_accuracies":
        fig.update_yaxes(range=[-0.05, 1.05])
    return fig
