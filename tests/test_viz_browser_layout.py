"""Each figure fault a reader met, measured in headless Chromium on figures drawn from tiny
fixtures: colour-bar tick labels that overlap, marks hidden under other traces' marks, a legend
whose symbols or order do not match the plot, depths without a tick, raw TeX braces, an
attention grid taller than the screen. The browser harness is `tests/browser.py`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from browser import (
    chromedriver,
    figure_layouts,
    figures_page,
    hidden_traces,
    legend_and_stack,
    legend_mismatches,
    overlapping_labels,
    raw_tex,
)

from momentum_interp.analysis import spectral as sp
from momentum_interp.viz.report import Report

pytest.importorskip("selenium")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    with chromedriver(tmp_path_factory.mktemp("profile")) as browser:
        browser.set_window_size(1400, 1000)
        yield browser


def _layouts(driver, tmp_path, *figures) -> list[dict]:
    return figure_layouts(driver, figures_page(figures, tmp_path / "figures.html"))


@pytest.mark.parametrize("n_layers", [1, 2, 12])
def test_score_colour_bar_stays_legible_and_follows_the_data(driver, tmp_path, n_layers):
    """A 1-layer model's heatmap is one row high: its colour bar's tick labels must not pile up,
    and scores 0.17–0.21 must span the colour scale, not a sliver of a fixed 0–1."""
    from momentum_interp.viz.scores import score_heatmaps

    rng = np.random.default_rng(n_layers)
    df = pd.DataFrame(
        [
            {"layer": layer, "head": head, "induction": 0.17 + 0.04 * rng.random()}
            for layer in range(n_layers)
            for head in range(4)
        ]
    )
    fig = score_heatmaps(df)["induction"]
    (layout,) = _layouts(driver, tmp_path, fig)
    ticks = layout["colorbar_ticks"]
    assert len(ticks) >= 3, ticks
    assert overlapping_labels(ticks) == []
    trace = fig.data[0]
    assert (trace.zmin, trace.zmax) == pytest.approx((df["induction"].min(), df["induction"].max()))


def _spectra(n_heads: int = 4, n_pos: int = 32) -> sp.SignalSpectra:
    """Spectra in which every head's shear has the same effect, so their measured ratios (and
    markers) coincide exactly."""
    omega = sp.frequencies(n_pos)
    power = np.tile(np.linspace(1.0, 2.0, len(omega))[:, None], (1, n_heads))
    hooks = {
        s: {"input": f"blocks.0.attn.hook_rot_{s}", "sheared": f"hook_{s}_sheared"} for s in "qk"
    }
    return sp.SignalSpectra(
        layer=0,
        omega=omega,
        raw={s: power for s in sp.SIGNALS},
        sheared={s: power * (1 + omega[:, None]) for s in sp.SIGNALS},
        gamma={s: np.ones(n_heads) for s in sp.SIGNALS},
        hooks=hooks,
        n_seq=4,
        n_pos=n_pos,
        window=None,
    )


def test_heads_that_measure_alike_all_stay_visible(driver, tmp_path):
    """In the measured-vs-|H|² plot four heads with the same γ measure the same ratio: every
    head keeps a mark a reader can see, none is covered by the next head's."""
    from momentum_interp.viz.spectral import ratio_figure

    (layout,) = _layouts(driver, tmp_path, ratio_figure(_spectra()))
    heads = [t for t in layout["traces"] if t["marks"]]
    assert len(heads) == 2 * 4  # four heads, in the q and the k panel
    assert hidden_traces(layout) == []
    assert legend_mismatches(layout) == []


def test_gamma_star_chart_ticks_every_depth_and_its_legend_shows_its_marks(driver, tmp_path):
    """γ*(N) on the committed sweep: every swept depth is labelled on the axis, and the window of
    tied γ, drawn as grey bars, shows as a bar (a line) in the legend, not as a dot."""
    from momentum_interp.analysis.scaling import bundled_results, fit_scaling
    from momentum_interp.sweeps.tables import load_table
    from momentum_interp.viz.scaling import accuracy_vs_gamma, gamma_star_vs_depth

    result = fit_scaling(load_table(bundled_results()), n_boot=50)
    assert any(d.window and d.window[1] > d.window[0] for d in result.depths)
    layout, by_gamma = _layouts(
        driver, tmp_path, gamma_star_vs_depth(result), accuracy_vs_gamma(result, result.table)
    )
    assert {str(d.n_layers) for d in result.depths} <= set(layout["xticks"]), layout["xticks"]
    assert legend_mismatches(layout) == []
    assert hidden_traces(layout) == []
    # every depth's smeared-key control reaches 100 %: five marks at one point, all visible
    assert hidden_traces(by_gamma) == []


def test_band_legend_runs_in_the_order_of_the_stacked_bars(driver, tmp_path):
    """The band-orthogonality bars stack low·high, high·low, low·low, high·high from the left;
    the legend under them reads in that order."""
    from momentum_interp.viz.spectral import orthogonality_figure

    shares = {"share_low_high": 0.3, "share_high_low": 0.2, "share_low_low": 0.2}
    df = pd.DataFrame(
        {
            "label": ["model-a", "model-b"],
            "layer": 0,
            "head": [0, 1],
            **shares,
            "share_high_high": 0.3,
            "null_cross_share": 0.45,
            "cutoff": math.pi / 2,
        }
    )
    (layout,) = _layouts(driver, tmp_path, orthogonality_figure(df))
    legend, stacked = legend_and_stack(layout)
    assert stacked == ["low·high", "high·low", "low·low", "high·high"]
    assert legend == stacked
    assert hidden_traces(layout) == []


def test_spectral_pages_show_maths_without_tex_braces(driver, tmp_path, make_model):
    """The spectral section of a tiny model, figures and prose, as a reader sees it: the filter is
    written 1 + γ(1 − e^(−iω)), the shear x̂ₜ = xₜ + γ(xₜ − xₜ₋₁), never with `^{`/`_{`."""
    from momentum_interp.viz.spectral import add_spectral

    model = make_model(n_layers=1)
    tokens = torch.randint(
        0, model.cfg.d_vocab, (4, model.cfg.n_ctx), generator=torch.Generator().manual_seed(0)
    )
    page = add_spectral(Report("spectral"), sp.spectral_report(model, tokens)).save(
        tmp_path / "s.html"
    )
    layouts = figure_layouts(driver, page)
    assert len(layouts) >= 3
    texts = [t for layout in layouts for t in layout["texts"]]
    assert any("e^(−iω)" in t for t in texts)
    assert raw_tex(texts) == []
    prose = driver.execute_script("return document.body.innerText;")
    assert "xₜ₋₁" in prose and raw_tex(prose.splitlines()) == []
    assert all(hidden_traces(layout) == [] for layout in layouts)
    assert all(legend_mismatches(layout) == [] for layout in layouts)


def test_attention_grid_fits_one_screen_and_its_column(driver, tmp_path):
    """A 64-token circuitsvis view (the report's layer patterns) stays within one screen's height
    and inside the page's column."""
    from momentum_interp.viz.attention import attention_patterns_html

    n = 64
    scores = torch.randn(4, n, n, generator=torch.Generator().manual_seed(0))
    patterns = scores.masked_fill(torch.ones(n, n).triu(1).bool(), -torch.inf).softmax(-1)
    view = attention_patterns_html(
        patterns, [str(i) for i in range(n)], ["L0H0", "L0H1", "L0H2", "L0H3"]
    )
    page = Report("attention").raw(str(view)).save(tmp_path / "attention.html")
    driver.get(page.as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.querySelectorAll('canvas').length > 4;")
    )
    box, column, screen = driver.execute_script(
        """const view = document.querySelector("[id^=circuits-vis]");
        const r = view.getBoundingClientRect(), c = document.body.getBoundingClientRect();
        return [{top: r.top, bottom: r.bottom, right: r.right}, {right: c.right},
                window.innerHeight];"""
    )
    assert box["bottom"] - box["top"] <= screen, (box, screen)
    assert box["right"] <= column["right"] + 1
