"""Figures of induction over training, drawn from formation tables (`analysis.formation`).

`formation_curves`: one column per arm, rows for the repeated-token loss, the in-context-learning
score and the tracked head's induction and prefix-matching scores against step (log axis), one
line per training seed (the arm's colour, lighter for later seeds), each run's phase window
shaded. `term_margins`: a shearing model's tracked-head margin split into its score terms, over
training. `pattern_multiples`: the tracked head's attention pattern at a few checkpoints.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from momentum_interp.viz.style import legend_below, line_styles, log_axis, shades
from momentum_interp.viz.tracing import TERM_COLORS

Table = Mapping[str, Any]  # one run's formation.json

CURVES = (  # (row field, axis title)
    ("loss_repeat", "repeated-token loss (nats)"),
    ("icl_score", "ICL score (nats)"),
    ("induction", "induction score"),
    ("prefix_matching", "prefix-matching score"),
)
TERM_DASH = {  # one dash per score term, so terms read apart without colour
    "current_current": "solid",
    "current_prev_key": "dash",
    "prev_query_current": "dot",
    "prev_prev": "dashdot",
}  # colours: the trace figures' TERM_COLORS
WINDOW_OPACITY = 0.12


def _column_title(label: str, width: int = 14) -> str:
    """A long configuration name broken at its hyphens, so narrow columns' titles do not meet."""
    return "<br>".join(textwrap.wrap(label, width, break_on_hyphens=True))


def _steps(tables: Sequence[Table]) -> tuple[int, int]:
    steps = [row["step"] for table in tables for row in table["rows"]]
    return min(steps), max(steps)


def formation_curves(arms: Sequence[tuple[str, Sequence[Table]]]) -> go.Figure:
    """Loss, ICL score and the tracked head's scores against step, one column per arm (module
    doc); `arms` is `(label, tables by seed)`."""
    if not arms:
        raise ValueError("formation_curves needs at least one arm.")
    styles = line_styles(len(arms))
    fig = make_subplots(
        rows=len(CURVES),
        cols=len(arms),
        shared_xaxes=True,
        shared_yaxes="rows",
        column_titles=[_column_title(label) for label, _ in arms],
        vertical_spacing=0.04,
        horizontal_spacing=0.015,
    )
    low, high = _steps([t for _, tables in arms for t in tables])
    for col, ((label, tables), style) in enumerate(zip(arms, styles, strict=True), start=1):
        seed_colours = shades(style["color"], len(tables))
        for index, table in enumerate(tables):
            steps = [row["step"] for row in table["rows"]]
            shade = seed_colours[index]
            name = f"{label} seed {table['train_seed']}"  # hover; the legend names the arm
            for row_index, (field, _) in enumerate(CURVES, start=1):
                fig.add_trace(
                    go.Scatter(
                        x=steps,
                        y=[row[field] for row in table["rows"]],
                        mode="lines",
                        line={"color": shade, "dash": style["dash"], "width": 1.6},
                        name=label,
                        legendgroup=label,
                        showlegend=row_index == 1 and index == 0,
                        hovertemplate=f"{name}<br>step %{{x}}<br>%{{y:.3f}}<extra></extra>",
                    ),
                    row=row_index,
                    col=col,
                )
            window = table["phase_change"]["window"]
            if table["phase_change"]["detected"] and window:
                for row_index in range(1, len(CURVES) + 1):
                    fig.add_vrect(
                        x0=window[0],
                        x1=window[1],
                        fillcolor=shade,
                        opacity=WINDOW_OPACITY,
                        line_width=0,
                        row=row_index,
                        col=col,
                    )
    for row_index, (_, title) in enumerate(CURVES, start=1):
        fig.update_yaxes(title_text=title, row=row_index, col=1)
        for col in range(1, len(arms) + 1):
            fig.update_xaxes(**log_axis(low, high), row=row_index, col=col)
    for col in range(1, len(arms) + 1):
        fig.update_xaxes(title_text="step", row=len(CURVES), col=col)
    fig.update_layout(
        title="Induction over training: a line per training seed (lighter: later seeds), each "
        "run's phase-change window shaded",
        height=200 * len(CURVES) + 200,
        template="plotly_white",
        **legend_below(),
    )
    fig.update_layout(margin={"t": 130})  # room for two-line column titles under the title
    return fig


def term_margins(arms: Sequence[tuple[str, Sequence[Table]]]) -> go.Figure:
    """The tracked head's mean induction margin split into the four score terms, against step,
    one column per shearing arm; a colour per term, seeds as separate lines of that colour."""
    arms = [(label, tables) for label, tables in arms if tables[0]["rows"][0]["term_margins"]]
    if not arms:
        raise ValueError("term_margins needs an arm of a shearing model (rows with term_margins).")
    terms = list(TERM_DASH)
    fig = make_subplots(
        rows=1,
        cols=len(arms),
        shared_yaxes=True,
        column_titles=[_column_title(label, 24) for label, _ in arms],
        horizontal_spacing=0.03,
    )
    low, high = _steps([t for _, tables in arms for t in tables])
    for col, (_, tables) in enumerate(arms, start=1):
        for index, table in enumerate(tables):
            steps = [row["step"] for row in table["rows"]]
            for term in terms:
                seed_colour = shades(TERM_COLORS[term], len(tables))[index]
                fig.add_trace(
                    go.Scatter(
                        x=steps,
                        y=[row["term_margins"][term] for row in table["rows"]],
                        mode="lines",
                        line={"color": seed_colour, "dash": TERM_DASH[term]},
                        name=term,
                        legendgroup=term,
                        showlegend=col == 1 and index == 0,
                        hovertemplate=f"{term}<br>step %{{x}}<br>%{{y:.3f}}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="step", **log_axis(low, high), row=1, col=col)
    fig.update_yaxes(
        title_text="margin on s* over the other keys' mean (score units)", row=1, col=1
    )
    fig.update_layout(
        title="Which score term carries the tracked head's induction margin, over training",
        height=460,
        template="plotly_white",
        **legend_below(),
    )
    return fig


def pattern_multiples(table: Table, title: str) -> go.Figure:
    """The tracked head's attention pattern on one repeated sequence at the kept checkpoints,
    side by side on one 0–1 colour scale (attention weights are probabilities)."""
    steps = sorted(int(step) for step in table["patterns"])
    window = table["phase_change"]["window"] if table["phase_change"]["detected"] else None
    names = [
        f"step {s}" + ("<br>window start" if window and s == window[0] else "")
        + ("<br>window end" if window and s == window[1] else "")
        for s in steps
    ]  # fmt: skip
    fig = make_subplots(rows=1, cols=len(steps), subplot_titles=names, horizontal_spacing=0.02)
    for col, step in enumerate(steps, start=1):
        fig.add_trace(
            go.Heatmap(
                z=table["patterns"][str(step)],
                zmin=0,
                zmax=1,
                colorscale="Blues",
                showscale=col == len(steps),
                colorbar={"title": {"text": "attention"}, "len": 0.9},
                hovertemplate="query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=1, col=col)
        fig.update_xaxes(title_text="key", row=1, col=col)
    fig.update_yaxes(title_text="query", row=1, col=1)
    fig.update_layout(
        title=f"{title}: head {table['head']}'s attention over training",
        height=360,
        template="plotly_white",
    )
    return fig
