"""The language-model comparison (`analysis.lm`) rendered: its report section, its page, and the
committed files `momentum-interp lm-compare` writes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go

from momentum_interp.analysis.lm import (
    RECORDS,
    TABLE,
    LMComparison,
    compare_runs,
    summarise,
)
from momentum_interp.io import atomic_write_json, atomic_write_text
from momentum_interp.tables import frame_rows, markdown_table
from momentum_interp.training.state import load_metrics
from momentum_interp.viz.figures import training_curves
from momentum_interp.viz.report import Report
from momentum_interp.viz.security import plotly_text
from momentum_interp.viz.style import legend_below, line_styles


def frame_table(frame) -> str:
    """A DataFrame as a Markdown table, floats to 4 places (the committed `comparison.md`)."""
    return markdown_table(list(frame.columns), frame_rows(frame, "{:.4f}")) + "\n"


def add_lm_comparison(report: Report, comparison: LMComparison, heading: bool = True) -> Report:
    """Append the comparison tables (mean over seeds, every run) and the loss curves."""
    if heading:
        report.heading(comparison.title)
    report.paragraph(
        "Validation loss overall and on repeated-span positions (tokens that continue a span "
        f"seen earlier in the window); gaps are relative to {comparison.reference}. All runs "
        "share one corpus, tokenizer, token budget and schedule."
    )
    for caption, frame in (
        ("Mean over seeds", summarise(comparison.table)),
        ("Every run", comparison.table),
    ):
        report.paragraph(caption)
        report.dataframe(frame, digits=4)
    report.figure(loss_curves(comparison))
    return report


def loss_curves(comparison: LMComparison) -> go.Figure:
    """Every run's validation loss against step: a colour per config (arm), a shade per seed."""
    arms = dict(zip(comparison.table["run"], comparison.table["config"], strict=True))
    return training_curves(comparison.histories, metric="loss", arms=arms)


def loss_by_position(
    curves: Mapping[str, Sequence[float]],
    windows: Mapping[str, tuple[float, float]] | None = None,
) -> go.Figure:
    """Mean held-out loss of predicting token j against j, one line per model (`curves`: name ->
    loss at j = 1 … T−1). A curve that falls with j is in-context learning; `windows` (label ->
    (low, high) fractions of T, e.g. the ICL score's early and late windows) are shaded."""
    if not curves:
        raise ValueError("loss_by_position needs at least one curve.")
    fig = go.Figure()
    n_pos = max(len(c) for c in curves.values()) + 1
    for (name, curve), line in zip(curves.items(), line_styles(len(curves)), strict=True):
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(curve) + 1)),
                y=list(curve),
                mode="lines",
                name=plotly_text(name),
                line=line,
            )
        )
    for label, (low, high) in (windows or {}).items():
        fig.add_vrect(
            x0=low * n_pos,
            x1=high * n_pos,
            fillcolor="#888",
            opacity=0.15,
            line_width=0,
            annotation_text=label,
            annotation_position="top left",
        )
    fig.update_layout(
        title="Held-out loss by position: predicting token j from the j tokens before it",
        xaxis_title="position j in the window",
        yaxis_title="mean loss (nats)",
        template="plotly_white",
        **legend_below(),
    )
    return fig


def lm_comparison_html(comparison: LMComparison) -> str:
    """A self-contained page of the comparison."""
    return add_lm_comparison(Report(comparison.title), comparison, heading=False).to_html()


def write_comparison(run_dirs: list[str | Path], reference: str, out_dir: Path) -> dict[str, Path]:
    """The comparison table (CSV, Markdown), each run's config and curves (JSON), and a
    self-contained page with the table and the validation-loss curves: small enough to commit."""
    table = compare_runs(run_dirs, reference)
    summary = summarise(table)
    histories = {Path(d).name: load_metrics(d) for d in run_dirs}
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, records = out_dir / TABLE, out_dir / "comparison.md", out_dir / RECORDS
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_text(
        md_path,
        "Mean over seeds per config:\n\n"
        + frame_table(summary)
        + "\nEvery run:\n\n"
        + frame_table(table),
    )
    atomic_write_json(
        records,
        {
            "reference": reference,
            "runs": {
                Path(d).name: {
                    "run_config": json.loads((Path(d) / "run_config.json").read_text()),
                    "eval": histories[Path(d).name]["eval"],
                }
                for d in run_dirs
            },
        },
    )
    page = out_dir / "report.html"
    atomic_write_text(page, lm_comparison_html(LMComparison(table, histories, reference)))
    print(summary.to_string(index=False, float_format="%.4f"))
    return {"table": csv_path, "markdown": md_path, "records": records, "page": page}
