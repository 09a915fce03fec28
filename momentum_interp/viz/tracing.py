"""Single-layer induction traces (`analysis.tracing`) rendered: plotly figures (each builder
returns a `go.Figure`) and the report section / page of an `InductionTrace`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from momentum_interp.analysis.tracing import InductionTrace
from momentum_interp.model.shear import TERM_NAMES
from momentum_interp.naming import head_label
from momentum_interp.viz.captions import (
    ablation_description,
    trace_caveats,
    trace_summary,
    trace_title,
)
from momentum_interp.viz.report import Report
from momentum_interp.viz.security import plotly_text
from momentum_interp.viz.style import PALETTE, legend_below, token_axis

# The explorer's colours: attention takes the palette's first, the terms the next four.
TERM_COLORS = dict(zip(TERM_NAMES, PALETTE[1:5], strict=True))


def term_share_figure(
    term_margins: Mapping[str, float],
    term_shares: Mapping[str, float],
    total_margin: float,
    dominant_term: str | None = None,
) -> go.Figure:
    """Bar chart of each term's share of the mean induction margin (hover: the margin itself)."""
    names = [n for n in TERM_NAMES if n in term_shares]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[term_shares[n] for n in names],
            marker_color=[TERM_COLORS.get(n, "#888") for n in names],
            customdata=[term_margins[n] for n in names],
            hovertemplate="%{x}<br>share %{y:.3f}<br>mean margin %{customdata:.4g}<extra></extra>",
        )
    )
    fig.add_hline(y=0, line_color="#444", line_width=1)
    title = f"Share of the mean induction score margin (total {total_margin:.3g})"
    if dominant_term:
        title += f"; dominant: {dominant_term}"
    fig.update_layout(
        title=title, yaxis_title="share of total margin", template="plotly_white", showlegend=False
    )
    return fig


def ablation_figure(ablations: pd.DataFrame) -> go.Figure:
    """Induction accuracy under each ablation (95 % interval where given), clean as a dashed line."""
    error = None
    if {"accuracy_low", "accuracy_high"} <= set(ablations.columns):
        error = {
            "type": "data",
            "symmetric": False,
            "array": (ablations["accuracy_high"] - ablations["accuracy"]).tolist(),
            "arrayminus": (ablations["accuracy"] - ablations["accuracy_low"]).tolist(),
        }
    fig = go.Figure(
        go.Bar(
            x=ablations["ablation"].tolist(),
            y=ablations["accuracy"].tolist(),
            marker_color=PALETTE[0],
            error_y=error,
            customdata=np.stack([ablations["delta_accuracy"], ablations["loss"]], axis=-1),
            hovertemplate=(
                "%{x}<br>accuracy %{y:.3f} (Δ %{customdata[0]:+.3f})"
                "<br>loss %{customdata[1]:.3f}<extra></extra>"
            ),
        )
    )
    clean = ablations.loc[ablations["ablation"] == "clean", "accuracy"]
    if len(clean):
        fig.add_hline(y=float(clean.iloc[0]), line_dash="dash", annotation_text="clean")
    fig.update_layout(
        title="Induction accuracy under ablations",
        yaxis_title="accuracy on predictable positions",
        yaxis_range=[0, 1.05],
        template="plotly_white",
    )
    return fig


def qk_circuit_figure(
    matrix: np.ndarray, labels: Sequence[str] | None = None, title: str = "", max_tokens: int = 64
) -> go.Figure:
    """Heatmap of a token-level QK circuit (rows: query token, columns: key token), showing the
    first `max_tokens` tokens so that the page stays small."""
    matrix = np.asarray(matrix, dtype=float)
    n = min(matrix.shape[0], max_tokens)
    labels = [str(i) for i in range(matrix.shape[0])] if labels is None else list(labels)
    shown = matrix[:n, :n]
    limit = float(np.nanmax(np.abs(shown))) if shown.size else 1.0
    shown_labels = np.array([plotly_text(label) for label in labels[:n]], dtype=object)
    fig = _query_key_heatmap(
        shown,
        limit,
        labels[:n],
        axis_titles=("query token a", "key token b"),
        customdata=np.stack(np.meshgrid(shown_labels, shown_labels, indexing="ij"), axis=-1),
        hovertemplate="query %{customdata[0]} / key %{customdata[1]}: %{z:.4g}<extra></extra>",
    )
    suffix = f" (first {n} of {matrix.shape[0]} tokens)" if n < matrix.shape[0] else ""
    fig.update_layout(title=title + suffix)
    return fig


def term_score_figure(
    scores: np.ndarray,
    labels: Sequence[str],
    induction_pairs: Sequence[tuple[int, int]] = (),
    term: str = "",
    max_positions: int = 256,
) -> go.Figure:
    """Heatmap of one score term on one sequence (query rows, key columns, NaN above the
    diagonal), with the induction key s* of each induction query t marked."""
    scores = np.asarray(scores, dtype=float)
    n = min(scores.shape[0], max_positions)
    shown = scores[:n, :n]
    finite = shown[np.isfinite(shown)]
    limit = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    fig = _query_key_heatmap(
        shown,
        limit,
        [f"{i}:{labels[i]}" for i in range(n)],
        axis_titles=("query position t", "key position s"),
        hovertemplate="query %{y} / key %{x}: %{z:.4g}<extra></extra>",
    )
    pairs = [(t, s) for t, s in induction_pairs if t < n and s < n]
    if pairs:
        fig.add_trace(
            go.Scatter(
                x=[s for _, s in pairs],
                y=[t for t, _ in pairs],
                mode="markers",
                marker={"symbol": "circle-open", "size": 9, "color": "black", "line_width": 2},
                name="induction key s*",
                hovertemplate="query %{y} → s* %{x}<extra></extra>",
            )
        )
    suffix = f" (first {n} positions)" if n < scores.shape[0] else ""
    fig.update_layout(
        title=f"{term} term of the scores (÷√d_head){suffix}",
        showlegend=bool(pairs),
        **legend_below(),  # clear of the colour bar
    )
    return fig


def _query_key_heatmap(
    z: np.ndarray,
    limit: float,
    ticktext: Sequence[str],
    axis_titles: tuple[str, str],
    **heatmap_kwargs,
) -> go.Figure:
    """A square [query, key] heatmap on a diverging scale symmetric about 0, queries down the rows,
    its token axes thinned to at most `style.MAX_TICKS` labels."""
    ids = list(range(z.shape[0]))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=ids,
            y=ids,
            zmid=0,
            zmin=-limit,
            zmax=limit,
            colorscale="RdBu_r",
            **heatmap_kwargs,
        )
    )
    query_title, key_title = axis_titles
    axis = token_axis(list(ticktext))  # at most style.MAX_TICKS labels on a long axis
    fig.update_layout(
        xaxis={"title": key_title, **axis},
        yaxis={"title": query_title, **axis, "tickangle": 0, "autorange": "reversed"},
        template="plotly_white",
        width=700,
        height=650,
    )
    return fig


def trace_figures(trace: InductionTrace) -> dict[str, go.Figure]:
    """Term shares, ablation accuracy, both QK circuits and the per-term example score maps."""
    d, where = trace.decomposition, head_label(trace.layer, trace.head)
    figs = {
        "term_shares": term_share_figure(
            d.term_margins, d.term_shares, d.total_margin, d.dominant_term
        ),
        "ablation_accuracy": ablation_figure(trace.ablations),
        "qk_circuit": qk_circuit_figure(
            trace.qk.matrix,
            trace.qk.labels,
            f"{where} QK circuit, current_prev_key: query token a vs key's previous token b",
        ),
        "qk_circuit_current": qk_circuit_figure(
            trace.qk_current.matrix,
            trace.qk_current.labels,
            f"{where} QK circuit, current_current (contrast)",
        ),
    }
    example = trace.example
    for name in TERM_NAMES:
        figs[f"scores_{name}"] = term_score_figure(
            example.terms[name], example.labels, example.pairs, name
        )
    return figs


def add_trace(report: Report, trace: InductionTrace, heading: bool = True) -> Report:
    """Append a trace's sections (summary, margins, ablations, QK circuit, example) to `report`."""
    figs = trace_figures(trace)
    d = trace.decomposition
    if heading:
        report.heading(trace_title(trace))
    report.preformatted(trace_summary(trace))
    for note in trace_caveats(trace):
        report.paragraph(note, note=True)
    report.heading("Which score term carries the induction attention")
    report.paragraph(
        "Margin of a term = its value at the induction key s* (the token after the earlier "
        "occurrence of the query's token) minus its mean over the other causal keys, averaged "
        "over induction queries; scores are scaled by 1/sqrt(d_head). The four margins add up "
        "to the margin of the full score."
    )
    report.table(
        ["term", "mean margin", "share of total"],
        [[n, f"{d.term_margins[n]:+.4g}", f"{d.term_shares[n]:+.3f}"] for n in TERM_NAMES]
        + [["total", f"{d.total_margin:+.4g}", "1.000"]],
    )
    report.figure(figs["term_shares"])
    report.heading("Ablations")
    report.table(
        [*trace.ablations.columns, "description"],
        [
            [f"{v:.4f}" if isinstance(v, float) else v for v in row]
            + [ablation_description(trace, row[0])]
            for row in trace.ablations.itertuples(index=False)
        ],
    )
    report.figure(figs["ablation_accuracy"])
    report.heading("Token-level QK circuit")
    report.table(
        ["term", "diagonal top-1", "mean diagonal z"],
        [
            [c.term, f"{c.diagonal_top1:.3f}", f"{c.diagonal_z:.3f}"]
            for c in (trace.qk, trace.qk_current)
        ],
    )
    report.figure(figs["qk_circuit"]).figure(figs["qk_circuit_current"])
    report.heading("Per-term scores on one example sequence")
    report.paragraph("Markers: the induction key s* of each induction query t.")
    for name in TERM_NAMES:
        report.figure(figs[f"scores_{name}"])
    return report
