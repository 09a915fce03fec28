"""Rendering of the γ*(N) experiment: the per-depth table, Markdown summary, figures (criterion
against γ per depth, γ* against N on log-log axes) and the report section / HTML page."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from momentum_interp.analysis.scaling import (
    GAMMA,
    PAPER_A,
    PAPER_B,
    TIE_TOL,
    ScalingFit,
    at_depths,
    caveats,
    consistency_statement,
    finite_interval,
    fit_scaling,
    format_interval,
    load_table,
    paper_gamma_star,
    provenance,
)
from momentum_interp.io import atomic_write_json, atomic_write_text
from momentum_interp.prose import bullets, pct, span, wrap
from momentum_interp.tables import markdown_table
from momentum_interp.viz.report import Report, ReportSection
from momentum_interp.viz.style import legend_below, log_axis, palette

SMEARED_LABEL = "smeared key"
CRITERION_LABELS = {"final_accuracy": "acc", "auc_accuracy": "AUC"}  # short column labels


def _gamma_label(gamma: float) -> str:
    return f"{gamma:g}"


def _gamma_set(values: list[float]) -> str:
    """`γ ∈ {-0.5, 0.5, 1}`: a set of grid values, listed (it need not be contiguous)."""
    return "γ ∈ {" + ", ".join(f"{g:g}" for g in values) + "}"


def accuracy_vs_gamma(result: ScalingFit, df: pd.DataFrame | None = None) -> go.Figure:
    """Mean accuracy (± std over seeds) against γ, one line per depth.

    γ runs along a categorical axis (γ = 0 cannot sit on a log axis): the γ = 0 baseline is a
    square, γ* a star, and the smeared-key control a cross in its own column at the right.
    `df` (the results table) adds each seed's accuracy as faint dots.
    """
    fig = go.Figure()
    colors = palette(len(result.depths))
    categories = sorted({g for d in result.depths for g in d.grid})
    labels = [_gamma_label(g) for g in categories]
    for i, depth in enumerate(result.depths):
        color = colors[i]
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
                    y=depth.mean_accuracy,
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
            if depth.smeared_key_accuracy is not None:
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
                    y=[control.smeared_key_accuracy] * 2,
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
    drawn = [y for trace in fig.data for y in np.ravel(trace.y) if y is not None and y > 0]
    fig.update_layout(
        title="Best shear strength γ* against depth N",
        xaxis={"title": "depth N (layers)", **log_axis(n_line.min(), n_line.max())},
        yaxis={"title": "γ*", **log_axis(min(drawn), max(drawn))},
        template="plotly_white",
    )
    return fig


def write_scaling_report(
    results: str | Path,
    out_dir: str | Path | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    figures: bool = False,
    metric: str = "final_accuracy",
    shear: str = "qk",
) -> dict[str, Any]:
    """Fit the table at `results` on `metric` for one shear mode; write `fit.json`, `summary.md`
    (and, with `figures`, the self-contained page `scaling.html`)."""
    results = Path(results)
    out_dir = Path(out_dir) if out_dir is not None else results.parent
    table = load_table(results)
    result = fit_scaling(table, metric=metric, n_boot=n_boot, level=level, shear=shear)
    report = {
        **result.to_dict(),
        "source": str(results),
        "provenance": provenance(table, results.parent),
    }
    atomic_write_json(out_dir / "fit.json", report)
    atomic_write_text(out_dir / "summary.md", summary_markdown(result))
    paths: dict[str, Any] = {
        "statement": report["consistency"],
        "fit": out_dir / "fit.json",
        "summary": out_dir / "summary.md",
    }
    if figures:
        paths["page"] = out_dir / "scaling.html"
        atomic_write_text(paths["page"], ScalingSection(result).to_html())
    return paths


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
        control = "–" if d.smeared_key_accuracy is None else f"{d.smeared_key_accuracy:.3f}"
        baseline = "–" if d.accuracy_at_gamma0 is None else f"{d.accuracy_at_gamma0:.3f}"
        rows.append(
            [
                str(d.n_layers),
                f"{d.gamma_star:g}",
                f"[{d.interval[0]:g}, {d.interval[1]:g}]" if d.has_interval else "— (one seed)",
                f"{d.paper_gamma_star:.2f}",
                f"{d.accuracy_at_gamma_star:.3f}",
                baseline,
                control,
                _gamma_set(d.plausible) if d.plausible else "— (one seed)",
            ]
            + ([f"{d.n_tied}: [{d.window[0]:g}, {d.window[1]:g}]"] if result.tie_tol else [])
        )
    return header, rows


def fit_line(result: ScalingFit) -> str | None:
    """One sentence with the fitted a and b and both kinds of interval (None without a fit)."""
    if result.fit is None:
        return None
    fit, boot = result.fit, result.bootstrap
    return (
        f"Fit (curve_fit in log space, {fit.n_points} depths): a = {fit.a:.3g} "
        f"{format_interval(fit.a_interval)}, b = {fit.b:.3g} {format_interval(fit.b_interval)} "
        f"({100 * result.level:g} %, covariance)"
        + (
            f"; seed bootstrap ({boot['n_valid']} replicates): a {format_interval(boot['a_interval'])}, "
            f"b {format_interval(boot['b_interval'])}."
            if "a_interval" in boot
            else "."
        )
    )


def summary_markdown(result: ScalingFit) -> str:
    """Per-depth γ*, intervals and controls as a Markdown table, then the fit and the statement."""
    lines = [markdown_table(*depth_table(result)), ""]
    if (line := fit_line(result)) is not None:
        lines += [line, ""]
    lines.append(consistency_statement(result))
    return "\n".join(lines) + "\n"


@dataclass
class ScalingSection(ReportSection):
    """A `ScalingFit` as a report section: the verdict, the per-depth table, both figures."""

    result: ScalingFit
    title = ScalingFit.title

    def to_dict(self) -> dict[str, Any]:
        return self.result.to_dict()

    def add_to(self, report: Report, heading: bool = True) -> Report:
        result = self.result
        if heading:
            report.heading(self.title)
        report.paragraph(consistency_statement(result), note=True)
        report.table(*depth_table(result))
        if (line := fit_line(result)) is not None:
            report.paragraph(line)
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


def _by_depth(values: dict[int, float]) -> str:
    """`4 at N = 1, 2 at N = 2, 1 from N = 3 on`: runs of equal values over the depths."""
    depths, groups = sorted(values), []
    for n in depths:
        if groups and values[groups[-1][-1]] == values[n]:
            groups[-1].append(n)
        else:
            groups.append([n])
    parts = []
    for group in groups:
        v = f"{values[group[0]]:g}"
        if len(group) == 1:
            parts.append(f"{v} at N = {group[0]}")
        elif group[-1] == depths[-1]:
            parts.append(f"{v} from N = {group[0]} on")
        else:
            parts.append(f"{v} at N = {group[0]}–{group[-1]}")
    return ", ".join(parts)


def readme_block(result: ScalingFit, provenance: dict[str, Any], table: pd.DataFrame) -> str:
    """The README's γ*(N) section: the sweep, the per-depth table and its bullets, from the
    committed `fit.json` (`result`, its `provenance`) and the sweep's `results.csv` (`table`)."""
    depths = result.depths
    grid = depths[0].grid
    ratios = {round(b / a, 6) for a, b in zip(grid[1:], grid[2:], strict=False)}
    step = f"a factor-{ratios.pop():g} grid" if len(ratios) == 1 else "an uneven grid"
    level = f"{100 * result.level:g} %"
    (seeds,) = {d.n_seeds for d in depths}
    (session,) = provenance["sessions"]
    smeared = all(d.smeared_key_accuracy is not None for d in depths)
    sweep = (
        f"We swept multi-query associative recall (`configs/sweeps/gamma_star.toml`): depths "
        f"N ∈ {{{', '.join(str(d.n_layers) for d in depths)}}}, γ ∈ "
        f"{{{', '.join(f'{g:g}' for g in grid)}}}, {seeds} seeds"
        + (", and the smeared-key control at every depth" if smeared else "")
        + f". That is {provenance['n_runs']} runs, {provenance['sweep_wall_time_s'] / 60:.0f} min "
        f"wall on {session['cpu_count']} CPU cores ({session['started'][:10]}). The table and "
        "fit are in `results/scaling/` (`summary.md`, `fit.json`; "
        "`notebooks/04_scaling_law.ipynb` draws the figures); "
        f"criterion: {result.metric.replace('_', ' ')}, γ values within "
        f"{100 * result.tie_tol:g} points of the best count as tied (the last column); "
        f"the column “not distinguishable from γ*” lists the γ whose {level} t intervals "
        "overlap γ*'s, or tied."
    )
    fit, boot, paper = result.fit, result.bootstrap, result.paper
    inside = lambda v, i: "inside" if i[0] <= v <= i[1] else "outside"  # noqa: E731
    a_in, b_in = inside(paper["a"], fit.a_interval), inside(paper["b"], fit.b_interval)
    lows, highs = zip(*(d.window for d in depths), strict=True)
    largest = {d.n_layers: d.window[1] for d in depths}
    falls = all(x >= y for x, y in zip(highs, highs[1:], strict=False)) and highs[0] > highs[-1]
    items = [
        f"**Measured law: γ* = {fit.a:.3g} N^{fit.b:.3g}**, with {level} intervals a ∈ "
        f"{format_interval(fit.a_interval)} and b ∈ {format_interval(fit.b_interval)} (fit "
        f"covariance plus the γ grid's resolution). The seed bootstrap gives a ∈ "
        f"{format_interval(boot['a_interval'])} and b ∈ {format_interval(boot['b_interval'])}.",
        f"**Against the paper's law:** a = {paper['a']} lies {a_in} the fit's interval. b = "
        f"{paper['b']} lies {b_in} the covariance interval and "
        f"{inside(paper['b'], boot['b_interval'])} the seed-bootstrap one. "
        + _law_verdict_sentence(result)
        + f" Every γ in [{max(lows):g}, {min(highs):g}] is tied at the top at every depth, so "
        f"γ* stays at {span([d.gamma_star for d in depths], 'g')}.",
        f"**What {'does fall' if falls else 'does not fall'} with depth** is the largest γ still "
        f"tied at the top: {_by_depth(largest)} (a tie window, not a best γ).",
        " ".join(caveats(result, level)),
        f"The caveats (d_model {_one(table, 'model.d_model')}, {_one(table, 'train.steps')} "
        f"steps, {step}) are in `results/scaling/README.md`. `notebooks/04_scaling_law.ipynb` "
        "recomputes all of this from the table.",
    ]
    return f"{wrap(sweep)}\n\n{markdown_table(*depth_table(result))}\n\n{bullets(items)}"


def _law_verdict_sentence(result: ScalingFit) -> str:
    """The README's bold verdict on the paper's law, from `ScalingFit.law_verdict`."""
    verdict = result.law_verdict
    if verdict == "consistent":
        return "**The law is consistent with our measurement.**"
    if verdict == "inconsistent":
        return "**We do not reproduce the law.**"
    tied = [d.n_layers for d in result.depths if d.paper_verdict != "outside"]
    return (
        f"**No verdict:** depth by depth, the paper's γ*(N) is not measurably worse than our γ* "
        f"at {at_depths(tied)} (a flat top: the criterion saturates), so the fit through the "
        "argmaxes decides nothing, and this sweep neither confirms nor excludes the law."
    )


def _one(table: pd.DataFrame, column: str) -> Any:
    """The one value `column` takes in every row of a sweep's table."""
    (value,) = set(table[column])
    return value


def pilot_block(pilot: pd.DataFrame, floor: pd.DataFrame, spec: dict, sweep_done: int) -> str:
    """The README's paragraph and bullets on the harder recall study: the sweep's design (`spec`,
    its `sweep_spec.json`) and progress, the one-layer pilot (`pilot`, the 8-pair rows of
    `pilot_stage2/results.csv`) and the floor run (`floor`, `pilot/results.csv`)."""
    if pilot.empty or floor.empty:
        raise ValueError("the pilot records hold no rows for the README's bullets")
    by_auc = pilot.sort_values("auc_accuracy", ascending=False)
    aucs = ", ".join(
        f"{auc:.2f} at γ = {g:g}"
        for g, auc in zip(by_auc[GAMMA], by_auc["auc_accuracy"], strict=True)
    )
    chance = 2 / _one(floor, "task.d_vocab")  # values come from half of the vocabulary
    smoothing_first = by_auc[GAMMA].iloc[0] < 0
    items = [
        f"**The pilot**, {pilot['train.seed'].nunique()} seed at "
        f"{_one(pilot, 'model.n_layers')} layer ({_one(pilot, 'task.n_pairs')} pairs, "
        f"{_one(pilot, 'train.steps')} steps). "
        + (
            "No γ saturated"
            if pilot["final_accuracy"].max() < 1 - TIE_TOL
            else "A γ reached the ceiling"
        )
        + f" (best {pct(pilot['final_accuracy'].max(), 0)} final accuracy), and the AUC "
        f"separated the γ values: {aucs}. At {_one(floor, 'task.n_pairs')} pairs and "
        f"{_one(floor, 'train.steps')} steps no γ learned at N = "
        f"{' or '.join(str(n) for n in sorted(set(floor['model.n_layers'])))} (best final "
        f"accuracy {pct(floor['final_accuracy'].max())}, chance {pct(chance)}: a floor).",
        f"The {spec['n_runs']}-run sweep "
        + (
            f"is complete: all {spec['n_runs']} runs are committed (below)."
            if sweep_done >= spec["n_runs"]
            else "is started and resumable with the command in `results/scaling_mqar/README.md`; "
            f"its committed record holds {sweep_done} of the {spec['n_runs']} runs (below)."
        ),
        "The pilot rules the law neither in nor out."
        + (
            " The one-layer pilot hinted that a *smoothing* q/k shear learns this task faster "
            "than a sharpening one, on one seed; the sweep tests it with three."
            if smoothing_first
            else ""
        ),
    ]
    return f"{wrap(_study(spec))}\n\n{bullets(items)}"


def _study(spec: dict) -> str:
    """One sentence on a γ*(N) sweep's design from its `sweep_spec.json`."""
    task, grid = spec["base"]["task"], spec["grid"]
    gammas, depths = grid["model.gamma"], sorted(grid["model.n_layers"])
    keys = sorted(v["model.n_layers"] for v in spec["variants"] if v.get("model.shear") == "k")
    smeared = [v for v in spec["variants"] if v.get("model.smeared_key")]
    return (
        f"The sweep (`{spec['source']}`): `{task['name']}` with {task['seq_len']} tokens, a "
        f"{task['d_vocab']}-token vocabulary and {task['n_pairs']} pairs; γ from {min(gammas):g} "
        f"to {max(gammas):g} ({len(gammas)} values, smoothing and sharpening) at depths N ∈ "
        f"{{{', '.join(map(str, depths))}}}"
        + (f", keys-only shear at N = {' and '.join(map(str, keys))}" if keys else "")
        + (" and the smeared key at every depth" if smeared else "")
        + f"; {len(grid['train.seed'])} seeds, {spec['base']['train']['steps']} steps, "
        f"{spec['n_runs']} runs."
    )


def _auc(value: float | None, interval: Any = None) -> str:
    """`0.473 [0.41, 0.53]`, the interval left out when missing (one seed)."""
    if value is None:
        return "—"
    if not finite_interval(interval):
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def sweep_depth_rows(result: ScalingFit, shear_label: str) -> list[list[str]]:
    """Rows of the two-sided sweep's table for one shear: γ*, the runner-up, the controls."""
    rows = []
    for d in result.depths:
        best = d.best
        runner = None if d.runner_up is None else d.grid.index(d.runner_up)
        zero = d.grid.index(0.0) if 0.0 in d.grid else None
        rows.append(
            [
                shear_label,
                str(d.n_layers),
                str(d.n_seeds),
                f"{d.gamma_star:g}",
                _auc(d.mean_accuracy[best], d.mean_interval[best]),
                "—" if runner is None else f"{d.runner_up:g}",
                "—" if runner is None else _auc(d.mean_accuracy[runner], d.mean_interval[runner]),
                {True: "yes", False: "no", None: "—"}[d.separated],
                "—" if zero is None else _auc(d.mean_accuracy[zero], d.mean_interval[zero]),
                _auc(d.smeared_key_accuracy, d.smeared_key_interval),
            ]
        )
    return rows


def _paper_per_depth(result: ScalingFit, level: str, table: pd.DataFrame) -> str:
    """Depth by depth: does the paper's γ*(N) score measurably below our γ* (`paper_verdict`)?"""
    by_verdict: dict[str, list] = {}
    for d in result.depths:
        by_verdict.setdefault(d.paper_verdict, []).append(d)

    def depths(verdict: str) -> str:
        return at_depths([d.n_layers for d in by_verdict.get(verdict, [])])

    parts = []
    if "outside" in by_verdict:
        parts.append(
            "scores measurably below γ* at "
            + ", ".join(
                f"N = {d.n_layers} (paper {d.paper_gamma_star:.2f}; not distinguishable from γ*: "
                f"{_gamma_set(d.plausible)})"
                for d in by_verdict["outside"]
            )
        )
    if "inside" in by_verdict:
        parts.append(f"not excluded at {depths('inside')}")
    if "beyond the grid" in by_verdict:
        parts.append(
            f"undecided at {depths('beyond the grid')} (the paper's γ lies past the grid's "
            "end, which is not distinguishable from γ*)"
        )
    if "no effect" in by_verdict:
        parts.append(
            f"undecided at {depths('no effect')} (no γ scores measurably above γ = 0 there, "
            "so there is no best γ to compare)"
        )
    if "untested" in by_verdict:
        parts.append(f"undecided at {depths('untested')} (one seed, no interval)")
    return (
        f"**Against the paper's γ*(N) = {PAPER_A} N^{PAPER_B}, depth by depth** (judged by the "
        "grid γ on both sides of the paper's value, or the grid's end when it lies past it: it "
        f"*scores measurably below* γ* when each of them has a {level} t interval wholly below "
        "γ*'s): " + "; ".join(parts) + "." + _one_rate_caveat(table)
    )


def _one_rate_caveat(table: pd.DataFrame) -> str:
    """Where every run of `table` trained at one learning rate, say that the per-depth judgment
    compares untuned arms (the raw shear also scales the logits): no verdict on the paper."""
    if "train.lr" not in table or table["train.lr"].nunique() != 1:
        return ""
    return (
        f" Every arm trained at one learning rate ({table['train.lr'].iloc[0]:g}), untuned, and "
        "the raw shear multiplies the initial logits by up to (1 + 2γ)², so these judgments "
        "compare untuned arms: they are not a verdict on the paper's value (the fair study, "
        "`results/fair_gamma_star/`, tunes each arm's rate)."
    )


FLOOR = 0.5  # below this best final accuracy a depth counts as not (yet) learning the task


def saturation_sentence(table: pd.DataFrame, ceiling: float = 0.99) -> str:
    """Issue 14's check that the task does not saturate: per depth, how many q/k γ values end
    (mean over seeds) at or above `ceiling` final accuracy."""
    rows = table[(table["model.shear"] == "qk") & ~table["model.smeared_key"].astype(bool)]
    means = rows.groupby(["model.n_layers", GAMMA])["final_accuracy"].mean()
    counts = {
        int(n): int((group >= ceiling).sum()) for n, group in means.groupby(level="model.n_layers")
    }
    best = {int(n): float(g.max()) for n, g in means.groupby(level="model.n_layers")}
    saturated = [n for n, c in counts.items() if c]
    return (
        f"**Saturation check** (mean final accuracy ≥ {pct(ceiling, 0)}, q/k shear): "
        + ", ".join(f"{counts[n]} γ at N = {n} (best {pct(best[n])})" for n in sorted(counts))
        + (
            f". The ceiling is reached at {len(saturated)} of {len(counts)} depths"
            + (": final accuracy cannot rank γ there, the AUC has to." if saturated else ".")
        )
        + (
            f" At {at_depths(floor)} no γ reaches {pct(FLOOR, 0)}: near the floor, "
            "where the criterion separates little."
            if (floor := [n for n in sorted(best) if best[n] < FLOOR])
            else ""
        )
    )


def probe_block(probe: pd.DataFrame, sweep: pd.DataFrame) -> str:
    """The README's one-seed probe of a longer budget at one depth (`probe`, its results table)
    beside the same depth and seed in the 600-step sweep (`sweep`): final accuracy and AUC per γ,
    and the smeared key."""
    depth, seed = _one(probe, "model.n_layers"), _one(probe, "train.seed")
    steps = _one(probe, "train.steps")
    same = sweep[(sweep["model.n_layers"] == depth) & (sweep["train.seed"] == seed)]

    def rows_of(table: pd.DataFrame) -> dict[str, pd.Series]:
        smeared = table["model.smeared_key"].astype(bool)
        qk = table[~smeared & (table["model.shear"] == "qk")]
        out = {f"{g:g}": row for g, row in qk.set_index(GAMMA).sort_index().iterrows()}
        if smeared.any():
            out[SMEARED_LABEL] = table[smeared].iloc[0]
        return out

    long, short = rows_of(probe), rows_of(same)
    short_steps = _one(same, "train.steps") if len(same) else None
    header = ["γ", f"final accuracy, {steps} steps", "AUC", f"final accuracy, {short_steps} steps"]
    rows = [
        [
            label,
            pct(row["final_accuracy"]),
            f"{row['auc_accuracy']:.3f}",
            pct(short[label]["final_accuracy"]) if label in short else "—",
        ]
        for label, row in long.items()
    ]
    momentum = {k: v for k, v in long.items() if k != SMEARED_LABEL}
    learned = [k for k, v in momentum.items() if v["final_accuracy"] >= FLOOR]
    best = max(momentum, key=lambda k: momentum[k]["auc_accuracy"])
    intro = (
        f"A one-seed probe of a longer budget (`configs/sweeps/mqar_depth2_long.toml`, "
        f"`results/scaling_mqar/depth2_long/`): the sweep's model and task at N = {depth}, seed "
        f"{seed}, trained {steps} steps instead of {short_steps}, every γ of the grid and the "
        "smeared key."
    )
    items = [
        (
            f"{len(learned)} of {len(momentum)} q/k γ reach {pct(FLOOR, 0)} final accuracy "
            f"(γ ∈ {{{', '.join(learned)}}})"
            if learned
            else f"No q/k γ reaches {pct(FLOOR, 0)} final accuracy"
        )
        + f"; the highest AUC is at γ = {best} ({momentum[best]['auc_accuracy']:.3f}, against "
        f"{momentum['0']['auc_accuracy']:.3f} at γ = 0"
        + (
            f" and {long[SMEARED_LABEL]['auc_accuracy']:.3f} for the smeared key)."
            if SMEARED_LABEL in long
            else ")."
        ),
        "One seed: a hint for the GPU part's budget (`benchmarks/gpu/sweep.py`), not a γ* and "
        "not a verdict.",
    ]
    return f"{wrap(intro)}\n\n{markdown_table(header, rows)}\n\n{bullets(items)}"


def _keys_only_sentence(keys_only: ScalingFit) -> str:
    """The keys-only shear per depth: γ*, whether it is separated, and the smeared key beside it."""
    return (
        "**Keys-only shear:** "
        + "; ".join(
            f"γ* = {d.gamma_star:g} at N = {d.n_layers}"
            + (" (the grid's end)" if d.at_grid_edge else "")
            + {True: ", separated from", False: ", not separated from", None: ", beside"}[
                d.separated
            ]
            + (f" the next-best non-zero γ = {d.runner_up:g}" if d.runner_up is not None else "")
            + f", AUC {d.accuracy_at_gamma_star:.2f}"
            + (
                f" against the learned smeared key's {d.smeared_key_accuracy:.2f}"
                if d.smeared_key_accuracy is not None
                else ""
            )
            for d in keys_only.depths
        )
        + (
            ". With a keys-only shear, γ ∈ (−1, 0) makes each key (1 + γ) k_t − γ k_(t−1): a "
            "smeared key with a fixed weight −γ (mixed after RoPE, where the shear sits here)."
            if any(-1 < d.gamma_star < 0 for d in keys_only.depths)
            else "."
        )
    )


def sweep_block(
    qk: ScalingFit, keys_only: ScalingFit | None, spec: dict, table: pd.DataFrame
) -> str:
    """The README's results of the two-sided γ sweep on `mqar`, from the fits of its q/k and
    keys-only rows (`fit.json`, `keys_only/fit.json`) and the finished runs (`table`)."""
    n_done = len(table)
    level = f"{100 * qk.level:g} %"
    header = [
        "shear",
        "N",
        "seeds",
        "γ*",
        f"AUC at γ* [{level}]",
        "next-best γ ≠ 0",
        "its AUC",
        "separated",
        "AUC at γ = 0",
        "smeared key AUC",
    ]
    rows = sweep_depth_rows(qk, "q/k")
    if keys_only is not None:
        rows += sweep_depth_rows(keys_only, "keys only")
    partial = n_done < spec["n_runs"]
    signs = {d.n_layers: d.gamma_star for d in qk.depths if d.beats_no_shear is not False}
    effect = {d.n_layers: d.beats_no_shear for d in qk.depths}
    smoothing = [n for n, g in signs.items() if g < 0 and effect[n]]
    sharpening = [n for n, g in signs.items() if g > 0 and effect[n]]
    flat = [n for n, e in effect.items() if e is False]
    untested = [n for n, e in effect.items() if e is None]
    beaten = [
        d.n_layers
        for d in qk.depths
        if finite_interval(d.smeared_key_interval)
        and finite_interval(d.mean_interval[d.best])
        and d.smeared_key_interval[0] > d.mean_interval[d.best][1]
    ]
    intro = (
        f"**{'Partial' if partial else 'Complete'} sweep: {n_done} of {spec['n_runs']} runs.** "
        "Criterion: the area under the held-out accuracy curve (`auc_accuracy`, the mean accuracy "
        "over training); γ* is the grid γ with the highest mean over seeds"
        + (
            f" (means within {qk.tie_tol:g} of the best are tied, and the tied γ with the lowest "
            "mean final loss wins)"
            if qk.tie_tol
            else ""
        )
        + f", *separated* when its {level} t interval lies wholly above that of the next-best "
        "non-zero γ; γ values whose intervals overlap γ*'s are *not distinguishable* from it "
        "(intervals are wide with few seeds). Rendered from "
        "`results/scaling_mqar/sweep/fit.json` and `keys_only/fit.json`, written by the "
        "`momentum-interp scaling` commands in `results/scaling_mqar/README.md`; the figures are "
        "in `results/scaling_mqar/sweep/scaling.html`."
    )
    sides = [
        f"smoothing (γ < 0) ranks first at {at_depths(smoothing)}" if smoothing else "",
        f"sharpening (γ > 0) at {at_depths(sharpening)}" if sharpening else "",
        f"no γ measurably above γ = 0 at {at_depths(flat)}" if flat else "",
        f"not yet tested against γ = 0 (one seed) at {at_depths(untested)}" if untested else "",
    ]
    items = [
        "**Best γ by depth (q/k shear):** "
        + "; ".join(side for side in [_by_depth(signs), *sides] if side)
        + ".",
        consistency_statement(qk),
        _paper_per_depth(qk, level, table),
        saturation_sentence(table),
    ]
    if keys_only is not None:
        items.insert(1, _keys_only_sentence(keys_only))
    ahead = [  # by the means alone (where intervals are missing or overlap)
        d.n_layers
        for d in qk.depths
        if d.n_layers not in beaten
        and d.smeared_key_accuracy is not None
        and d.smeared_key_accuracy > d.accuracy_at_gamma_star
    ]
    if beaten:
        items.append(
            f"The learned smeared key (no momentum) beats the best γ at {at_depths(beaten)} "
            "(intervals apart)."
        )
    if ahead:
        items.append(
            "The learned smeared key's mean AUC is above the best γ's at N = "
            + ", ".join(
                f"{d.n_layers} ({d.smeared_key_accuracy:.2f} against {d.accuracy_at_gamma_star:.2f})"
                for d in qk.depths
                if d.n_layers in ahead
            )
            + (" (means only: no interval separates them yet)." if partial else " (means only).")
        )
    if partial:
        items.append(
            "Partial: depths with one seed have no intervals and no separation verdict; the "
            "numbers will move as the remaining runs land."
        )
    return f"{wrap(intro)}\n\n{markdown_table(header, rows)}\n\n{bullets(items)}"
