"""The layout rules of `viz.style`, one test each."""

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from momentum_interp.viz import style


@pytest.mark.parametrize("n", [1, 7, 20, 21, 64, 1000])
def test_token_axis_labels_at_most_twenty_ticks_evenly(n):
    labels = [str(i * 3) for i in range(n)]
    axis = style.token_axis(labels)
    assert 1 <= len(axis["tickvals"]) <= style.MAX_TICKS
    assert axis["tickvals"][0] == 0
    strides = set(np.diff(axis["tickvals"]).tolist())
    assert len(strides) <= 1  # evenly spaced
    assert axis["ticktext"] == [labels[i] for i in axis["tickvals"]]
    if n <= style.MAX_TICKS:
        assert axis["tickvals"] == list(range(n))  # short axes keep every label


def test_legend_sits_below_the_plot_clear_of_a_colour_bar():
    fig = go.Figure(go.Heatmap(z=[[0, 1], [1, 0]], showscale=True))
    fig.add_scatter(x=[0], y=[0], name="induction key s*")
    fig.update_layout(**style.legend_below())
    legend = fig.layout.legend
    # A colour bar spans the plot's height (y in [0, 1]) at its right; a legend hanging from
    # y < 0 cannot touch it.
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"
    assert fig.layout.margin.b >= 100  # room for the legend under the axis labels


def test_wrap_css_wraps_preformatted_text():
    assert "white-space: pre-wrap" in style.WRAP_CSS and "overflow-wrap: anywhere" in style.WRAP_CSS


def test_palette_stays_distinct_to_colour_blind_eyes():
    """Every pair of palette colours stays apart (CIE76 ΔE ≥ 15) for normal vision and under
    simulated protanopia, deuteranopia and tritanopia (Machado et al. 2009, severity 1); plotly's
    Dark24, the palette before, has pairs that merge."""
    assert _min_distance(style.PALETTE) >= 15
    assert _min_distance(DARK24) < 15
    assert style.palette(3) == list(style.PALETTE[:3])
    with pytest.raises(ValueError, match="line_styles"):
        style.palette(len(style.PALETTE) + 1)


def test_shades_keep_the_hue_and_grow_lighter():
    shades = style.shades("#0072B2", 3)
    assert len(set(shades)) == 3 and style.shades("#0072B2", 1) == ["#0072B2"]
    lightness = [sum(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in shades]
    assert lightness == sorted(lightness)


DARK24 = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86",
    "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE",
)  # fmt: skip
# Machado, Oliveira & Fernandes (2009), severity 1.0, on linear RGB.
CVD = {
    "none": np.eye(3),
    "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
               [-0.003882, -0.048116, 1.051998]],
    "deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
               [-0.011820, 0.042940, 0.968881]],
    "tritan": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
               [0.004733, 0.691367, 0.303900]],
}  # fmt: skip


def _lab(linear: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of linear-RGB colours `[n, 3]`."""
    xyz = (
        np.clip(linear, 0, 1)
        @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    )
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _min_distance(colours) -> float:
    """The smallest ΔE between two of `colours` under any of the `CVD` simulations."""
    srgb = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in colours])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    worst = math.inf
    for matrix in CVD.values():
        lab = _lab(linear @ np.asarray(matrix).T)
        d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
        worst = min(worst, d[np.triu_indices(len(colours), 1)].min())
    return float(worst)


def test_log_ticks_are_one_two_five_with_full_labels():
    assert style.log_ticks(0.3, 30) == [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
    axis = style.log_axis(0.1, 1.0)
    assert axis["tickvals"] == [0.1, 0.2, 0.5, 1.0]
    assert axis["ticktext"] == ["0.1", "0.2", "0.5", "1"]  # 0.3-style values never print as "3"
    many = style.log_ticks(1e-6, 1e6)  # 13 decades: powers of ten only
    assert all(math.log10(t) == round(math.log10(t)) for t in many) and len(many) == 13
    with pytest.raises(ValueError):
        style.log_ticks(0, 1)


def test_table_aligns_text_left_numbers_right_and_shows_missing_as_dash():
    frame = pd.DataFrame({"role": ["baseline", "momentum"], "loss": [3.8654, float("nan")]})
    table = style.table_html(frame)
    assert '<th class="text">role</th>' in table and '<th class="num">loss</th>' in table
    assert '<td class="text">baseline</td>' in table
    assert '<td class="num">3.865</td>' in table
    assert '<td class="num">—</td>' in table and "nan" not in table.lower()
    assert "text-align: left" in style.WRAP_CSS and "text-align: right" in style.WRAP_CSS


def test_integer_tokens_stay_apart_and_axis_labels_are_unique():
    assert "".join(style.token_labels(["37", "43", "12"])) == "37 43 12 "
    assert style.token_labels(["The", " cat"]) == ["The", " cat"]  # text tokens untouched
    labels = style.axis_labels(["7", "7", " "])
    assert len(set(labels)) == 3 and labels[0] == "7 ·0" and labels[2] == "' ' ·2"
