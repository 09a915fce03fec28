"""The fair γ*(N) study's figure: AUC against γ per shear family at one depth, from a depth of
`study.json` (`analysis.gamma_study.DepthStudy.to_dict()`): each family's mean over fresh seeds
with its 95 % t interval, its vertex γ* marked, the controls as horizontal lines, the paper's
γ*(N) as a vertical one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from momentum_interp.viz.style import legend_below, line_styles

Depth = Mapping[str, Any]  # one entry of study.json's "depths"


def auc_by_gamma(depth: Depth, family_names: Mapping[str, str]) -> go.Figure:
    """AUC against γ, a line per shear family (`family_names`: its label), at one depth."""
    families = depth["families"]
    controls = depth["controls"]
    styles = line_styles(len(families) + len(controls))
    fig = go.Figure()
    for index, (family, style) in enumerate(zip(families, styles, strict=False)):
        arms = sorted(family["arms"], key=lambda arm: arm["gamma"])
        name = family_names.get(family["family"], family["family"])
        fig.add_trace(
            go.Scatter(
                x=[arm["gamma"] for arm in arms],
                y=[arm["auc_mean"] for arm in arms],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [arm["auc_ci"][1] - arm["auc_mean"] for arm in arms],
                    "arrayminus": [arm["auc_mean"] - arm["auc_ci"][0] for arm in arms],
                    "thickness": 1,
                },
                mode="lines+markers",
                line=style,
                name=name,
                legendgroup=name,
                hovertemplate=f"{name}<br>γ %{{x}}<br>AUC %{{y:.3f}}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[family["gamma_star"]],
                y=[max(arm["auc_mean"] for arm in arms)],
                mode="markers",
                # later families' stars smaller, so equal vertices nest instead of hiding
                marker={"symbol": "star-open", "size": 18 - 3 * index, "color": style["color"]},
                name=f"{name}: vertex γ* {family['gamma_star']:.3g}",
                legendgroup=name,
            )
        )
    gammas = [arm["gamma"] for family in families for arm in family["arms"]]
    for control, style in zip(controls, styles[len(families) :], strict=True):
        fig.add_trace(
            go.Scatter(
                x=[min(gammas), max(gammas)],
                y=[control["auc_mean"]] * 2,
                mode="lines",
                line={**style, "dash": "dot", "width": 1.5},
                name=f"{control['arm']} (control)",
                hovertemplate=f"{control['arm']}<br>AUC {control['auc_mean']:.3f}<extra></extra>",
            )
        )
    fig.add_vline(
        x=depth["paper_gamma_star"],
        line={"color": "#444", "dash": "dash", "width": 1},
        annotation_text=f"paper's γ*({depth['n_layers']}) = {depth['paper_gamma_star']:.3g}",
        annotation_position="top",
    )
    fig.update_layout(
        title=f"N = {depth['n_layers']}: AUC of held-out accuracy against γ, each arm at its "
        "own learning rate (fresh seeds, 95 % t intervals)",
        xaxis_title="γ",
        yaxis_title="AUC of held-out accuracy",
        height=520,
        template="plotly_white",
        **legend_below(),
    )
    return fig
