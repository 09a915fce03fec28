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


def test_palette_has_distinct_deterministic_colours_for_thirteen_lines():
    colours = style.palette(13)
    assert len(set(colours)) == 13 and colours == style.palette(13)
    assert len(set(style.PALETTE)) == len(style.PALETTE) >= 13
    with pytest.raises(ValueError, match="distinct colours"):
        style.palette(len(style.PALETTE) + 1)


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
