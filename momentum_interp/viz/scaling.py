"""Pictures of the γ*(N) experiment: the per-depth table, the figures (criterion against γ per
depth, γ* against N on log-log axes) and the report section. Its sentences are in
`narrative.scaling`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from momentum_interp.analysis.scaling import PAPER_A, PAPER_B, ScalingFit, paper_gamma_star
from momentum_interp.viz.report import Report, ReportSection
from momentum_interp.viz.style import PALETTE, legend_below, line_styles, log_axis, palette

SMEARED_LABEL = "smeared key"
CRITERION_LABELS = {"final_accuracy": "acc", "auc_accuracy": "AUC"}  # short column labels


def _gamma_label(gamma: float) -> str:
    return f"{gamma:g}"


def gamma_set(values: list[float]) -> str:
    """`γ ∈ {-0.5, 0.5, 1}`: a set of grid values, listed (it need not be contiguous)."""
    return "γ ∈ {" + ", ".join(f"{g:g}" for g in values) + "}"


def accuracy_vs_gamma(result: ScalingFit, df: pd.DataFrame | None = None) -> go.Figure:
    """Mean accuracy (± std over seeds) against γ, one line per depth.

    γ runs along a categorical axis (γ = 0 cannot sit on a log axis): the γ = 0 baseline is a
    square, γ* a star, and the smeared-key control a cross in its own column at the right.
    `df` (the results table) adds each seed's accuracy as faint dots.
    """
    fig = go.Figure()
    lines = line_styles(len(result.depths))
    categories = sorted({g for d in result.depths for g in d.grid})
    labels = [_gamma_label(g) for g in categories]
    control_sizes = np.linspace(18, 8, len(result.depths)).tolist() if len(lines) > 1 else [12]
    for i, (depth, line) in enumerate(zip(result.depths, lines, strict=True)):
        color = line["color"]
        x = [_gamma_label(g) for g in depth.grid]
        symbols = [
            "square" if g == 0 else "star" if g == depth.gamma_star else "circle"
            for g in depth.grid
        ]
        sizes = [14 if g == depth.gamma_star else 8 for g in depth.grid]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=depth.criterion_mean,
                error_y={"type": "data", "array": depth.criterion_std, "thickness": 1},
                mode="lines+markers",
                marker={"symbol": symbols, "size": sizes, "color": color},
                line=line,
                name=f"N = {depth.n_layers} (γ* = {depth.gamma_star:g})",
                legendgroup=str(depth.n_layers),
            )
        )
        if depth.smeared_key_criterion is not None:
            fig.add_trace(
                go.Scatter(
                    x=[SMEARED_LABEL],
                    y=[depth.smeared_key_criterion],
                    mode="markers",
                    # open crosses, the deepest smallest: equal controls nest, none hides
                    marker={"symbol": "x-open", "size": control_sizes[i], "color": color},
                    name=f"N = {depth.n_layers} smeared key",
                    legendgroup=str(depth.n_layers),
                    showlegend=False,
                )
            )
        if df is not None:
            seeds = df[(df["model.n_layers"] == depth.n_layers)]
            smeared = seeds.get("model.smeared_key", pd.Series(False, index=seeds.index))
            shear = seeds.get("model.shear", pd.Series(result.shear, index=seeds.index))
            keep = smeared.astype(bool) | shear.isin([result.shear, "none"])  # this fit's rows
            seeds, smeared = seeds[keep], smeared[keep]
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


def _band(x: list[float], intervals: list, **style) -> go.Scatter | None:
    """A shaded band between the (low, high) `intervals` over `x`; None where any end is NaN
    (one seed has no interval)."""
    lows, highs = zip(*intervals, strict=True) if intervals else ((), ())
    if not intervals or not np.all(np.isfinite([*lows, *highs])):
        return None
    return go.Scatter(
        x=[*x, *x[::-1]],
        y=[*highs, *lows[::-1]],
        fill="toself",
        mode="none",
        hoverinfo="skip",
        showlegend=False,
        **style,
    )


def _rgba(color: str, alpha: float) -> str:
    """`#rrggbb` as an rgba() string with opacity `alpha`."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def criterion_by_depth(results: Mapping[str, ScalingFit], columns: int = 3) -> go.Figure:
    """One panel per depth: the criterion's mean over seeds against γ for each shear mode in
    `results` (label -> its fit), shaded by its t interval of the mean, γ* starred, and the
    smeared-key control as a dashed line (its interval shaded) to read every γ against."""
    if not results:
        raise ValueError("criterion_by_depth needs at least one fit.")
    depths = sorted({d.n_layers for r in results.values() for d in r.depths})
    n_rows = math.ceil(len(depths) / columns)
    n_cols = min(columns, len(depths))
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        shared_yaxes=True,
        subplot_titles=[f"N = {n}" for n in depths],
        horizontal_spacing=0.04,
        vertical_spacing=0.2,
    )
    colors = dict(zip(results, palette(len(results) + 1), strict=False))
    control_color = palette(len(results) + 1)[-1]
    shown: set[str] = set()
    level = next(iter(results.values())).level
    for k, n in enumerate(depths):
        cell = {"row": k // n_cols + 1, "col": k % n_cols + 1}
        control = None
        for label, result in results.items():
            depth = next((d for d in result.depths if d.n_layers == n), None)
            if depth is None:
                continue
            color = colors[label]
            band = _band(depth.grid, depth.mean_interval, fillcolor=_rgba(color, 0.18))
            if band is not None:
                fig.add_trace(band, **cell)
            fig.add_trace(
                go.Scatter(
                    x=depth.grid,
                    y=depth.criterion_mean,
                    mode="lines+markers",
                    line={"color": color},
                    marker={
                        "color": color,
                        "symbol": [
                            "star" if g == depth.gamma_star else "circle" for g in depth.grid
                        ],
                        "size": [13 if g == depth.gamma_star else 6 for g in depth.grid],
                    },
                    name=label,
                    legendgroup=label,
                    showlegend=label not in shown,
                ),
                **cell,
            )
            shown.add(label)
            if depth.smeared_key_criterion is not None:
                control = depth
        if control is not None:
            ends = [min(control.grid), max(control.grid)]
            interval = control.smeared_key_interval
            if interval is not None:
                band = _band(ends, [interval] * 2, fillcolor=_rgba(control_color, 0.15))
                if band is not None:
                    fig.add_trace(band, **cell)
            fig.add_trace(
                go.Scatter(
                    x=ends,
                    y=[control.smeared_key_criterion] * 2,
                    mode="lines",
                    line={"color": control_color, "dash": "dash"},
                    name=SMEARED_LABEL + " (control)",
                    legendgroup=SMEARED_LABEL,
                    showlegend=SMEARED_LABEL not in shown,
                ),
                **cell,
            )
            shown.add(SMEARED_LABEL)
    metric = next(iter(results.values())).metric.replace("_", " ")
    fig.update_xaxes(title_text="γ", zeroline=True, zerolinecolor="#999")
    fig.update_yaxes(title_text=metric, col=1)
    fig.update_layout(
        title=f"{metric} against γ per depth (★ γ*; shaded: {100 * level:g} % t interval "
        "of the mean over seeds)",
        template="plotly_white",
        height=320 * n_rows + 120,
        **legend_below(),
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
    shown = [d for d in result.depths if d.gamma_star > 0 and d.beats_no_shear is not False]
    no_effect = [d for d in result.depths if d.gamma_star > 0 and d.beats_no_shear is False]
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
    if windows:  # every γ within the tie tolerance of the best accuracy: a bar beside γ*
        fig.add_trace(
            go.Scatter(
                x=[x for d in windows for x in (d.n_layers * 1.04, d.n_layers * 1.04, None)],
                y=[y for d in windows for y in (max(d.window[0], floor), d.window[1], None)],
                mode="lines",
                line={"color": "gray", "width": 4},
                name=f"γ within {100 * result.tie_tol:g} points of the best accuracy",
            )
        )
    if no_effect:
        fig.add_trace(
            go.Scatter(
                x=[d.n_layers for d in no_effect],
                y=[d.gamma_star for d in no_effect],
                mode="markers",
                marker={"symbol": "circle-open", "size": 10, "color": "gray"},
                name="γ* > 0, no better than γ = 0 (not fitted)",
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
                name="γ* ≤ 0 (excluded from fit)",
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
                    fillcolor=_rgba(PALETTE[0], 0.18),
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
                line={"color": PALETTE[0]},
                name=f"ours: γ* = {fit.a:.3g} N^{fit.b:.3g}",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=n_line,
            y=paper_gamma_star(n_line),
            mode="lines",
            line={"color": PALETTE[1], "dash": "dash"},
            name=f"paper: γ* = {PAPER_A} N^{PAPER_B}",
        )
    )
    drawn = [y for trace in fig.data for y in np.ravel(trace.y) if y is not None and y > 0]
    fig.update_layout(
        title="Best shear strength γ* against depth N",
        # every depth a tick, labelled in full: the log axis's 1-2-5 steps would skip 3, 4, 6
        xaxis={
            "title": "depth N (layers)",
            **log_axis(n_line.min(), n_line.max()),
            "tickvals": n_all.tolist(),
            "ticktext": [f"{n:g}" for n in n_all],
        },
        yaxis={"title": "γ*", **log_axis(min(drawn), max(drawn))},
        template="plotly_white",
    )
    return fig


def depth_table(result: ScalingFit) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-depth table: γ*, its interval, the paper's γ*, the controls."""
    criterion = CRITERION_LABELS.get(result.metric, result.metric)
    header = [
        "N",
        "γ*",
        f"{100 * result.level:g} % seed-bootstrap interval",
        "paper γ*",
        f"{criterion} at γ*",
        f"{criterion} at γ = 0",
        f"smeared key {criterion}",
        "not distinguishable from γ*",
    ] + (["γ tied at the top (window)"] if result.tie_tol else [])
    rows = []
    for d in result.depths:
        control = "–" if d.smeared_key_criterion is None else f"{d.smeared_key_criterion:.3f}"
        baseline = "–" if d.criterion_at_gamma0 is None else f"{d.criterion_at_gamma0:.3f}"
        rows.append(
            [
                str(d.n_layers),
                f"{d.gamma_star:g}",
                f"[{d.interval[0]:g}, {d.interval[1]:g}]" if d.has_interval else "— (one seed)",
                f"{d.paper_gamma_star:.2f}",
                f"{d.criterion_at_gamma_star:.3f}",
                baseline,
                control,
                gamma_set(d.plausible) if d.plausible else "— (one seed)",
            ]
            + ([f"{d.n_tied}: [{d.window[0]:g}, {d.window[1]:g}]"] if result.tie_tol else [])
        )
    return header, rows


@dataclass
class ScalingSection(ReportSection):
    """A `ScalingFit` as a report section: the verdict, the per-depth table, both figures."""

    result: ScalingFit
    notes: Sequence[str] = ()  # sentences written above the table (`narrative.scaling`)
    title = "γ*(N): the best momentum against depth (associative recall)"

    def to_dict(self) -> dict[str, Any]:
        return self.result.to_dict()

    def add_to(self, report: Report, heading: bool = True) -> Report:
        result = self.result
        if heading:
            report.heading(self.title)
        for note in self.notes:
            report.paragraph(note, note=True)
        report.table(*depth_table(result))
        report.paragraph(
            f"γ*(N) is the grid γ with the highest mean {result.metric.replace('_', ' ')} over "
            "seeds"
            + (
                f" (γ values within {100 * result.tie_tol:g} points of it count as tied; the "
                "lowest mean loss breaks ties)"
                if result.tie_tol
                else ""
            )
            + ". Controls at every depth: γ = 0 (the plain model) and the smeared-key model."
        )
        report.figure(gamma_star_vs_depth(result))
        report.figure(accuracy_vs_gamma(result, result.table))
        return report
