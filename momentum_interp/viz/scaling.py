"""Figures of the γ*(N) experiment: accuracy against γ per depth, and γ* against N (log-log)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from momentum_interp.sweeps.scaling import PAPER_A, PAPER_B, ScalingFit, paper_gamma_star

SMEARED_LABEL = "smeared key"


def _gamma_label(gamma: float) -> str:
    return f"{gamma:g}"


def accuracy_vs_gamma(result: ScalingFit, df: pd.DataFrame | None = None) -> go.Figure:
    """Mean accuracy (± std over seeds) against γ, one line per depth.

    γ runs along a categorical axis (γ = 0 cannot sit on a log axis): the γ = 0 baseline is a
    square, γ* a star, and the smeared-key control a cross in its own column at the right.
    `df` (the results table) adds each seed's accuracy as faint dots.
    """
    fig = go.Figure()
    colors = qualitative.Plotly
    categories = sorted({g for d in result.depths for g in d.grid})
    labels = [_gamma_label(g) for g in categories]
    for i, depth in enumerate(result.depths):
        color = colors[i % len(colors)]
        x = [_gamma_label(g) for g in depth.grid]
        symbols = [
            "square" if g == 0 else "star" if g == depth.gamma_star else "circle"
            for g in depth.grid
        ]
        sizes = [14 if g == depth.gamma_star else 8 for g in depth.grid]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=depth.mean_accuracy,
                error_y={"type": "data", "array": depth.std_accuracy, "thickness": 1},
                mode="lines+markers",
                marker={"symbol": symbols, "size": sizes, "color": color},
                line={"color": color},
                name=f"N = {depth.n_layers} (γ* = {depth.gamma_star:g})",
                legendgroup=str(depth.n_layers),
            )
        )
        if depth.smeared_key_accuracy is not None:
            fig.add_trace(
                go.Scatter(
                    x=[SMEARED_LABEL],
                    y=[depth.smeared_key_accuracy],
                    mode="markers",
                    marker={"symbol": "x", "size": 12, "color": color},
                    name=f"N = {depth.n_layers} smeared key",
                    legendgroup=str(depth.n_layers),
                    showlegend=False,
                )
            )
        if df is not None:
            seeds = df[(df["model.n_layers"] == depth.n_layers)]
            smeared = seeds.get("model.smeared_key", pd.Series(False, index=seeds.index))
            seeds = seeds.assign(
                _x=np.where(
                    smeared.astype(bool),
                    SMEARED_LABEL,
                    seeds["model.gamma"].map(_gamma_label),
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=seeds["_x"],
                    y=seeds[result.metric],
                    mode="markers",
                    marker={"size": 4, "color": color, "opacity": 0.35},
                    name=f"N = {depth.n_layers} seeds",
                    legendgroup=str(depth.n_layers),
                    showlegend=False,
                    hoverinfo="y",
                )
            )
    fig.update_layout(
        title="Associative recall: accuracy against γ per depth N "
        "(■ γ = 0 baseline, ★ γ*, × smeared-key control; bars: std over seeds)",
        xaxis={
            "title": "γ",
            "type": "category",
            "categoryorder": "array",
            "categoryarray": [*labels, SMEARED_LABEL],
        },
        yaxis={"title": result.metric.replace("_", " "), "range": [0, 1.05]},
        template="plotly_white",
    )
    return fig


def _bars_around_gamma_star(depths: list, ranges: list, floor: float) -> dict:
    """plotly `error_y` from each depth's γ* to the ends of its (low, high) range; a low end at or
    below `floor` (γ = 0 has no place on a log axis) is drawn to the floor."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [high - d.gamma_star for d, (_, high) in zip(depths, ranges, strict=True)],
        "arrayminus": [
            d.gamma_star - max(low, floor) for d, (low, _) in zip(depths, ranges, strict=True)
        ],
    }


def gamma_star_vs_depth(result: ScalingFit) -> go.Figure:
    """γ*(N) with bootstrap intervals on log-log axes, our fit and its band, the paper's line."""
    fig = go.Figure()
    shown = [d for d in result.depths if d.gamma_star > 0]
    n_all = np.array([d.n_layers for d in result.depths], dtype=float)
    grid_min = min((g for d in result.depths for g in d.grid if g > 0), default=0.1)
    floor = grid_min / 2  # where an interval reaching γ = 0 is drawn to on the log axis
    fig.add_trace(
        go.Scatter(
            x=[d.n_layers for d in shown],
            y=[d.gamma_star for d in shown],
            error_y=_bars_around_gamma_star(shown, [d.interval for d in shown], floor),
            mode="markers",
            marker={"size": 10, "color": "black"},
            name=f"γ*(N), {100 * result.level:g} % seed bootstrap",
        )
    )
    windows = [d for d in shown if d.window is not None and d.window[1] > d.window[0]]
    if windows:  # every γ within the tie tolerance of the best accuracy, drawn beside γ*
        fig.add_trace(
            go.Scatter(
                x=[d.n_layers * 1.04 for d in windows],
                y=[d.gamma_star for d in windows],
                error_y=_bars_around_gamma_star(windows, [d.window for d in windows], floor)
                | {"color": "gray", "thickness": 4, "width": 0},
                mode="markers",
                marker={"size": 4, "color": "gray"},
                name=f"γ within {100 * result.tie_tol:g} points of the best accuracy",
            )
        )
    zero = [d for d in result.depths if d.gamma_star <= 0]
    if zero:
        fig.add_trace(
            go.Scatter(
                x=[d.n_layers for d in zero],
                y=[floor] * len(zero),
                mode="markers",
                marker={"symbol": "triangle-down", "size": 10, "color": "gray"},
                name="γ* = 0 (excluded from fit)",
            )
        )
    n_line = np.geomspace(max(n_all.min() * 0.8, 0.5), n_all.max() * 1.25, 100)
    if result.fit is not None:
        fit = result.fit
        lo, hi = fit.band(n_line)
        if np.all(np.isfinite(hi)):
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([n_line, n_line[::-1]]),
                    y=np.concatenate([hi, lo[::-1]]),
                    fill="toself",
                    fillcolor="rgba(31, 119, 180, 0.18)",
                    line={"width": 0},
                    name=f"{100 * fit.level:g} % band (fit covariance)",
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=n_line,
                y=fit.predict(n_line),
                mode="lines",
                line={"color": "rgb(31, 119, 180)"},
                name=f"ours: γ* = {fit.a:.3g} N^{fit.b:.3g}",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=n_line,
            y=paper_gamma_star(n_line),
            mode="lines",
            line={"color": "firebrick", "dash": "dash"},
            name=f"paper: γ* = {PAPER_A} N^{PAPER_B}",
        )
    )
    fig.update_layout(
        title="Best shear strength γ* against depth N",
        xaxis={"title": "depth N (layers)", "type": "log"},
        yaxis={"title": "γ*", "type": "log"},
        template="plotly_white",
    )
    return fig
