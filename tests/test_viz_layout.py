"""Each layout fault of the report, checked on the figure or HTML a renderer produces: the rule of
`viz.style` it breaks is read back from the output, not from the renderer's arguments."""

from __future__ import annotations

import colorsys
import itertools
import json
import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from momentum_interp.analysis import spectral as sp
from momentum_interp.analysis.statistics import Estimate
from momentum_interp.analysis.tracing import trace_single_layer_induction
from momentum_interp.viz import style
from momentum_interp.viz.attention import attention_patterns_html
from momentum_interp.viz.figures import estimate_bars, training_curves
from momentum_interp.viz.report import Report
from momentum_interp.viz.spectral import orthogonality_figure, spectra_figure
from momentum_interp.viz.tracing import add_trace, qk_circuit_figure, term_score_figure

TOKENS = [str(t) for t in range(100, 164)]  # 64 integer tokens


def _labelled_ticks(axis) -> list[str]:
    assert axis.tickmode == "array", "a token axis lists its labelled ticks"
    return list(axis.ticktext)


def test_qk_circuit_labels_at_most_twenty_of_64_tokens():
    fig = qk_circuit_figure(np.random.default_rng(0).normal(size=(64, 64)), TOKENS)
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        text = _labelled_ticks(axis)
        assert 1 < len(text) <= 20
        # each label still names the token at its position
        assert all(TOKENS[v] == t for v, t in zip(axis.tickvals, text, strict=True))


def test_term_map_thins_ticks_and_puts_the_legend_below_the_colour_bar():
    scores = np.tril(np.random.default_rng(1).normal(size=(64, 64)))
    scores[np.triu_indices(64, 1)] = np.nan
    fig = term_score_figure(scores, TOKENS, [(40, 9), (41, 10)], "current_prev_key")
    assert len(_labelled_ticks(fig.layout.xaxis)) <= 20
    assert len(_labelled_ticks(fig.layout.yaxis)) <= 20
    heatmap = next(t for t in fig.data if isinstance(t, go.Heatmap))
    # the colour bar spans the plot's height (paper y in [0, 1], plotly's default) at its right
    bar_y = heatmap.colorbar.y if heatmap.colorbar.y is not None else 0.5
    bar_len = heatmap.colorbar.len if heatmap.colorbar.len is not None else 1.0
    assert fig.layout.showlegend
    legend = fig.layout.legend
    assert legend.yanchor == "top" and legend.y < bar_y - bar_len / 2, (legend.y, bar_y)


def test_long_log_axis_labels_1_2_5_steps_in_full():
    rng = np.random.default_rng(2)
    n_pos, n_heads = 64, 2
    omega = sp.frequencies(n_pos)
    power = {s: 10 ** rng.uniform(-3, 2, size=(len(omega), n_heads)) for s in sp.SIGNALS}
    hooks = {s: {"input": f"blocks.0.attn.hook_{s}", "sheared": f"hook_{s}_sheared"} for s in "qk"}
    spectra = sp.SignalSpectra(
        layer=0,
        omega=omega,
        raw=power,
        sheared={s: 2 * v for s, v in power.items()},
        gamma={s: np.array([0.5, 1.0]) for s in sp.SIGNALS},
        hooks=hooks,
        n_seq=4,
        n_pos=n_pos,
        window=None,
    )
    fig = spectra_figure(spectra)
    for name in ("yaxis", "yaxis2"):
        axis = fig.layout[name]
        assert axis.type == "log" and axis.tickmode == "array"
        values = [float(t) for t in axis.ticktext]  # every label is a whole number: "0.2", not "2"
        np.testing.assert_allclose(values, axis.tickvals)
        mantissas = {f"{v:e}"[0] for v in values}
        assert mantissas <= {"1", "2", "5"}
        per_decade = len(values) / math.log10(max(values) / min(values))
        assert per_decade <= 3.5  # never nine crowded minor labels a decade
        assert axis.minor.ticks == ""  # minor ticks unlabelled and undrawn


def test_estimate_bars_reference_label_clear_of_the_bars_and_titled():
    estimates = [Estimate(0.9, 0.85, 0.95), Estimate(0.3, 0.2, 0.4), Estimate(0.83, 0.8, 0.86)]
    fig = estimate_bars(["a", "b", "c"], estimates, "acc", reference=0.834, y_title="accuracy")
    assert fig.layout.yaxis.title.text == "accuracy"
    (label,) = [a for a in fig.layout.annotations if "0.834" in a.text]
    # the plot area ends at paper x = 1: the label starts there, in the right margin
    assert label.xref == "paper" and label.x >= 1 and label.xanchor == "left"
    assert fig.layout.margin.r >= 80


def test_orthogonality_labels_beside_the_plot_not_under_it():
    labels = [f"induction-1l-momentum-best trained {i}" for i in range(12)]
    df = pd.DataFrame(
        {
            "label": labels,
            "layer": 0,
            "head": range(12),
            **{f"share_{t}": 0.25 for t in ("low_high", "high_low", "low_low", "high_high")},
            "null_cross_share": 0.5,
            "cutoff": math.pi / 2,
        }
    )
    fig = orthogonality_figure(df)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert all(b.orientation == "h" for b in bars)  # long names on the y axis, none rotated
    assert fig.layout.height >= 25 * len(df)  # the plot grows with the rows
    assert all(len(line) <= 40 for t in bars[0].y for line in t.split("<br>"))
    assert fig.layout.legend.y < 0


def test_loss_curves_colour_by_arm_and_shade_by_seed():
    """Thirteen runs of five arms (the LM comparison): one palette colour per arm, in shades by
    seed, grouped in the legend; without arms, thirteen distinct line styles."""
    runs = {f"arm{a}-seed{s}": f"arm{a}" for a in range(5) for s in range(3 if a < 3 else 2)}
    histories = {
        name: {"eval": [{"step": s, "loss": 1 / (s + i + 1)} for s in (0, 10)]}
        for i, name in enumerate(runs)
    }
    fig = training_curves(histories, metric="loss", arms=runs)
    assert len(fig.data) == 13 and fig.layout.legend.y < 0
    by_arm: dict[str, list] = {}
    for trace in fig.data:
        assert trace.legendgroup == runs[trace.name]
        by_arm.setdefault(trace.legendgroup, []).append(trace.line.color)
    hues = {}
    for arm, colours in by_arm.items():
        assert len(set(colours)) == len(colours)  # each seed its own shade
        arm_hues = [_hue(c) for c in colours]
        assert max(arm_hues) - min(arm_hues) < 0.01, (arm, colours)  # ... of one hue
        hues[arm] = arm_hues[0]
    apart = [abs(a - b) for a, b in itertools.combinations(hues.values(), 2)]
    assert min(apart) > 0.03, hues  # arms apart
    plain = training_curves(histories, metric="loss")
    styles = {(t.line.color, t.line.dash) for t in plain.data}
    assert len(styles) == 13


def _hue(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0]


def _cells(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<t[dh] class="(\w+)(?: long)?">([^<]*)</t[dh]>', page)


def test_report_tables_show_missing_values_as_a_dash():
    frame = pd.DataFrame({"config": ["a", "b"], "loss": [1.23456, float("nan")], "n": [1, 2]})
    page = Report("t").dataframe(frame).table(["x", "y"], [["r", float("nan")], ["s", None]])
    html = page.to_html()
    texts = [text for _, text in _cells(html)]
    assert "nan" not in [t.lower() for t in texts] and "None" not in texts
    assert texts.count(style.MISSING) == 3
    assert "1.2346" in texts


def test_text_columns_left_numbers_right():
    html = (
        Report("t")
        .table(["model", "role", "layers", "loss"], [["m1", "control", 1, "0.512"]])
        .to_html()
    )
    cells = _cells(html)
    kinds = {text: kind for kind, text in cells}
    assert kinds["role"] == kinds["control"] == kinds["m1"] == "text"
    assert kinds["layers"] == kinds["1"] == kinds["0.512"] == "num"
    assert re.search(r"\.text\s*\{\s*text-align:\s*left", html)
    assert re.search(r"\.num\s*\{\s*text-align:\s*right", html)


def test_names_stay_on_one_line_prose_wraps_wide_tables_scroll():
    role = "1-layer momentum, q/k shear post-RoPE, γ=1 (the paper), as trained here"
    html = Report("t").table(["run", "role"], [["lm-momentum-S-seed0", role]]).to_html()
    assert '<td class="text">lm-momentum-S-seed0</td>' in html
    assert f'<td class="text long">{role}</td>' in html
    assert re.search(r"td\.text\s*\{\s*white-space:\s*nowrap", html)
    assert re.search(r"td\.long\s*\{\s*white-space:\s*normal", html)
    assert re.search(r'<div class="table-scroll"><table class="mi-table">', html)
    assert re.search(r"\.table-scroll\s*\{\s*overflow-x:\s*auto", html)


def test_trace_summary_wraps_inside_its_column(make_model):
    model = make_model(n_layers=1)
    trace = trace_single_layer_induction(model, 0, 0, n_sequences=8, seed=0)
    html = add_trace(Report("t"), trace).to_html()
    assert re.search(r'<pre class="wrap">', html)
    assert "white-space: pre-wrap" in html and "overflow-wrap: anywhere" in html


def test_integer_tokens_one_readable_label_each():
    tokens = ["37", "43", "12", "86"]
    html = str(attention_patterns_html(torch.eye(4)[None], tokens, ["L0H0"]))
    props = json.loads(re.search(r'"tokens":\s*(\[[^\]]*\])', html).group(1))
    assert [t.strip() for t in props] == tokens  # one label per token
    assert "".join(props).split() == tokens  # joined as the strip shows them: still apart


def test_head_selector_buttons_fit_on_one_line():
    names = [
        f"induction-1l-{k} L0H{h} (0.9{h})" for h, k in enumerate(["a", "bb", "ccc", "d", "e"])
    ]
    html = str(attention_patterns_html(torch.eye(3).repeat(5, 1, 1), ["1", "2", "3"], names))
    shown = json.loads(re.search(r'"attentionHeadNames":\s*(\[[^\]]*\])', html).group(1))
    assert len(shown) == len(names) and len(set(shown)) == len(names)
    assert all(len(n) <= 8 for n in shown)
    for label, name in zip(shown, names, strict=True):  # the key names every head in full
        assert f"<b>{label}</b> {name}" in html


@pytest.mark.parametrize("n", [1, 13, 24, 48])
def test_line_styles_stay_distinct(n):
    styles = style.line_styles(n)
    assert len({(s["color"], s["dash"]) for s in styles}) == n
    assert {s["color"] for s in styles} <= set(style.PALETTE)


def test_scaling_figures_use_the_palette_and_the_log_rule():
    from momentum_interp.analysis.scaling import bundled_results, fit_scaling
    from momentum_interp.sweeps.tables import load_table
    from momentum_interp.viz.scaling import accuracy_vs_gamma, gamma_star_vs_depth

    result = fit_scaling(load_table(bundled_results()), n_boot=200)
    fig = gamma_star_vs_depth(result)
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.type == "log" and axis.tickmode == "array"
    y_ticks = fig.layout.yaxis.ticktext
    assert all(t.lstrip("0.").startswith(("1", "2", "5")) for t in y_ticks), y_ticks
    depths = [d.n_layers for d in result.depths]
    assert list(fig.layout.xaxis.tickvals) == depths  # every depth a tick, labelled in full
    assert list(fig.layout.xaxis.ticktext) == [str(n) for n in depths]
    lines = {t.line.color for t in accuracy_vs_gamma(result).data if t.line.color}
    assert len(lines) == len(result.depths)  # one distinct palette colour per depth
    assert lines <= set(style.PALETTE)
