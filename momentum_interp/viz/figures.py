"""Plotly figures for training curves and model comparisons; each returns a `go.Figure`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from momentum_interp.analysis.statistics import Estimate
from momentum_interp.viz.security import plotly_text
from momentum_interp.viz.style import PALETTE, legend_below, line_styles, shades


def training_curves(
    histories: Mapping[str, dict],
    metric: str = "accuracy",
    arms: Mapping[str, str] | None = None,
) -> go.Figure:
    """Held-out `metric` against step for each run (from `metrics.json` histories), the legend
    below the plot. `arms` (run -> its arm, e.g. the config it is a seed of) colours the runs of
    one arm alike, in shades by seed, and groups them in the legend; without it every run is
    its own arm. Arms take the palette's colours in order, then its dashes (`style.line_styles`).
    """
    arms = {name: (arms or {}).get(name, name) for name in histories}
    groups: dict[str, list[str]] = {}
    for name, arm in arms.items():
        groups.setdefault(arm, []).append(name)
    fig = go.Figure()
    for (arm, runs), line in zip(groups.items(), line_styles(len(groups)), strict=True):
        for name, colour in zip(runs, shades(line["color"], len(runs)), strict=True):
            evals = histories[name].get("eval", [])
            fig.add_trace(
                go.Scatter(
                    x=[e["step"] for e in evals],
                    y=[e[metric] for e in evals],
                    mode="lines",
                    name=plotly_text(name),
                    legendgroup=plotly_text(arm),
                    line={**line, "color": colour},
                )
            )
    fig.update_layout(
        title=f"Held-out {metric} during training",
        xaxis_title="step",
        yaxis_title=metric,
        template="plotly_white",
        **legend_below(),
    )
    return fig


def estimate_bars(
    labels: Sequence[str],
    estimates: Sequence[Estimate],
    title: str,
    reference: float | None = None,
    y_title: str = "estimate (95% CI)",
) -> go.Figure:
    """Bar chart of estimates with their confidence intervals, optionally a reference line whose
    label sits in the right margin, clear of the bars."""
    fig = go.Figure(
        go.Bar(
            x=[plotly_text(label) for label in labels],
            y=[e.value for e in estimates],
            marker_color=PALETTE[0],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [e.high - e.value for e in estimates],
                "arrayminus": [e.value - e.low for e in estimates],
            },
        )
    )
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color="#444")
        fig.add_annotation(
            x=1.0,
            xref="paper",
            xanchor="left",
            y=reference,
            yref="y",
            text=f"paper: {reference:g}",
            showarrow=False,
        )
    fig.update_layout(
        title=title,
        template="plotly_white",
        yaxis_range=[0, 1.05],
        yaxis_title=y_title,
        margin={"r": 110},
    )
    return fig
