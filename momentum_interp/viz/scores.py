"""Head scores (`analysis.scoring`) rendered: layer × head heatmaps and the report section."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from momentum_interp.analysis.scoring import SCORES


def score_heatmaps(df: pd.DataFrame, columns: Sequence[str] | None = None) -> dict[str, go.Figure]:
    """One layer × head heatmap per score column, each cell annotated with its value.

    Colour range 0..1, or −1..1 (diverging, centred on 0) for a signed score of the registry
    (copying).
    Layer 0 is the top row.
    """
    columns = [c for c in SCORES if c in df.columns] if columns is None else list(columns)
    figures = {}
    for column in columns:
        if column not in df.columns:
            raise ValueError(f"Unknown score column {column!r}; choose from {list(df.columns)}.")
        grid = df.pivot(index="layer", columns="head", values=column).sort_index(axis=0)
        grid = grid.sort_index(axis=1)
        signed = column in SCORES and SCORES[column].signed
        heatmap = go.Heatmap(
            z=grid.to_numpy(dtype=np.float64),
            x=[str(h) for h in grid.columns],
            y=[str(layer) for layer in grid.index],
            zmin=-1.0 if signed else 0.0,
            zmax=1.0,
            colorscale="RdBu" if signed else "Blues",
            texttemplate="%{z:.2f}",
            hovertemplate="layer %{y}, head %{x}: %{z:.3f}<extra></extra>",
            colorbar={"title": column},
        )
        fig = go.Figure(heatmap)
        fig.update_layout(
            title=f"{column.replace('_', ' ')} score",
            xaxis_title="head",
            yaxis_title="layer",
            yaxis={"autorange": "reversed", "type": "category"},
            xaxis={"type": "category"},
            height=180 + 50 * df["layer"].nunique(),
        )
        figures[column] = fig
    return figures
