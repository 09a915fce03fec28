"""Head scores (`analysis.scoring`) rendered: layer × head heatmaps and the report section."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from momentum_interp.analysis.scoring import SCORES
from momentum_interp.viz.style import colorbar_below

ROW_PX = 50  # height of one layer's row of cells


def colour_range(z: np.ndarray, signed: bool) -> tuple[float, float]:
    """The data's own range, so close scores (0.17 against 0.21) differ in colour: symmetric
    about 0 for a signed score; a constant grid gets a unit-wide range around its value."""
    finite = z[np.isfinite(z)]
    if not finite.size:
        return (-1.0, 1.0) if signed else (0.0, 1.0)
    if signed:
        limit = float(np.abs(finite).max()) or 1.0
        return -limit, limit
    low, high = float(finite.min()), float(finite.max())
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def score_heatmaps(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    zrange: tuple[float, float] | None = None,
) -> dict[str, go.Figure]:
    """One layer × head heatmap per score column, each cell annotated with its value.

    Colours span the data's range (`colour_range`; a signed score of the registry, copying, on a
    diverging scale centred on 0), or `zrange` when given, e.g. `zrange=(0, 1)` to compare
    figures on one fixed scale. Layer 0 is the top row; the colour bar lies under the plot.
    """
    columns = [c for c in SCORES if c in df.columns] if columns is None else list(columns)
    if zrange is not None and not zrange[0] < zrange[1]:
        raise ValueError(f"zrange must be (low, high) with low < high, got {zrange}.")
    figures = {}
    for column in columns:
        if column not in df.columns:
            raise ValueError(f"Unknown score column {column!r}; choose from {list(df.columns)}.")
        grid = df.pivot(index="layer", columns="head", values=column).sort_index(axis=0)
        grid = grid.sort_index(axis=1)
        z = grid.to_numpy(dtype=np.float64)
        signed = column in SCORES and SCORES[column].signed
        zmin, zmax = colour_range(z, signed) if zrange is None else zrange
        plot_px = ROW_PX * len(grid.index)
        heatmap = go.Heatmap(
            z=z,
            x=[str(h) for h in grid.columns],
            y=[str(layer) for layer in grid.index],
            zmin=zmin,
            zmax=zmax,
            colorscale="RdBu" if signed else "Blues",
            texttemplate="%{z:.2f}",
            hovertemplate="layer %{y}, head %{x}: %{z:.3f}<extra></extra>",
            colorbar=colorbar_below(plot_px, column),
        )
        fig = go.Figure(heatmap)
        margin = {"t": 60, "b": 150, "l": 60, "r": 30}
        fig.update_layout(
            title=f"{column.replace('_', ' ')} score",
            xaxis_title="head",
            yaxis_title="layer",
            yaxis={"autorange": "reversed", "type": "category"},
            xaxis={"type": "category"},
            height=plot_px + margin["t"] + margin["b"],
            margin=margin,
        )
        figures[column] = fig
    return figures
