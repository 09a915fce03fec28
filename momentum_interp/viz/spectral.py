"""Spectral forensics rendered: Bode plots, q/k spectra, measured vs analytic gain, band
orthogonality (each builder returns a `go.Figure`), and the report section / page of a
`SpectralResult`. The numbers come from `momentum_interp.analysis.spectral`, the filter maths
from `momentum_interp.model.shear`.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from momentum_interp.analysis import spectral as sp
from momentum_interp.model import shear as sh
from momentum_interp.naming import head_label
from momentum_interp.viz.captions import SPECTRAL_NOTE, orthogonality_verdict, spectral_title
from momentum_interp.viz.report import Report
from momentum_interp.viz.style import DASHES, PALETTE, legend_below, line_styles, log_axis

# Where gain_squared vanishes (γ = −1/2 at Nyquist: a smeared key with α = 1/2) the gain in dB is
# −inf; figures draw it at this floor.
DB_FLOOR = -60.0
# Traces in a legend entry's name before "(+n more)".
_MAX_NAMES = 6
# Open markers, one per head, drawn largest first: where the heads' measurements coincide the
# marks nest inside each other instead of hiding each other.
HEAD_SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open", "hexagon-open")
# Each band term's colour (palette colours): the cross terms warm, the diagonal ones cool.
TERM_COLOURS = {
    "low_high": PALETTE[1],
    "high_low": PALETTE[4],
    "low_low": PALETTE[0],
    "high_high": PALETTE[2],
}


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _floor_db(values: np.ndarray) -> np.ndarray:
    """dB values with −inf / NaN (a zero of H) drawn at `DB_FLOOR`."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), np.maximum(values, DB_FLOOR), DB_FLOOR)


def _log_ticks(fig: go.Figure, rows: int) -> None:
    ticks = [math.pi * 10.0**e for e in (-3, -2, -1)] + [math.pi / 4, math.pi / 2, math.pi]
    text = ["π/1000", "π/100", "π/10", "π/4", "π/2", "π"]
    for row in range(1, rows + 1):
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=text, row=row, col=1)


def bode_plot(table: pd.DataFrame) -> go.Figure:
    """Gain (dB, top) and phase (rad, bottom) against log ω, one trace per distinct γ, from a
    `spectral.bode_table`. Heads and signals with the same γ share a trace (named after all of
    them); a marker at ω = π shows the Nyquist gain `20·log10|1 + 2γ|`. A zero of H (γ = −1/2 at
    π) is drawn at `DB_FLOOR` dB.
    """
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("gain |H(ω)| (dB)", "phase arg H(ω) (rad)"),
    )
    table = table.assign(gamma_key=table["gamma"].round(9))
    groups = list(table.groupby("gamma_key", sort=True))
    for (gamma, group), line in zip(groups, line_styles(len(groups)), strict=True):
        members = group.drop_duplicates(["layer", "head", "signal"])
        names = [head_label(r.layer, r.head) + r.signal for r in members.itertuples()]
        more = f" (+{len(names) - _MAX_NAMES} more)" if len(names) > _MAX_NAMES else ""
        curve = members.iloc[:1][["layer", "head", "signal"]].merge(group)
        curve = curve.sort_values("omega")
        omega = curve["omega"].to_numpy()
        colour = line["color"]
        legend = f"γ={gamma:.4g}: {', '.join(names[:_MAX_NAMES])}{more}"
        fig.add_trace(
            go.Scatter(
                x=omega,
                y=_floor_db(curve["gain_db"].to_numpy()),
                mode="lines",
                name=legend,
                legendgroup=legend,
                line=line,
                hovertemplate="ω=%{x:.4g}<br>gain=%{y:.3g} dB<extra>" + f"γ={gamma:.4g}</extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=omega,
                y=curve["phase_rad"].to_numpy(),
                mode="lines",
                name=legend,
                legendgroup=legend,
                showlegend=False,
                line=line,
                hovertemplate="ω=%{x:.4g}<br>phase=%{y:.3g} rad<extra>" + f"γ={gamma:.4g}</extra>",
            ),
            row=2,
            col=1,
        )
        nyquist = float(sp.nyquist_gain_db(gamma))
        label = f"{nyquist:.2f} dB" if math.isfinite(nyquist) else "−∞ dB (zero)"
        fig.add_trace(
            go.Scatter(
                x=[math.pi],
                y=_floor_db(np.array([nyquist])),
                mode="markers+text",
                marker={"color": colour, "size": 9, "symbol": "diamond"},
                text=[label],
                textposition="middle left",
                name=f"Nyquist 20·log10|1+2γ|, γ={gamma:.4g}",
                legendgroup=legend,
                showlegend=False,
                hovertemplate=f"Nyquist gain 20·log10|1+2γ| = {label}<extra>γ={gamma:.4g}</extra>",
            ),
            row=1,
            col=1,
        )
    _log_ticks(fig, 2)
    fig.update_xaxes(title_text="ω (rad / token)", row=2, col=1)
    fig.update_yaxes(title_text="dB", row=1, col=1)
    fig.update_yaxes(title_text="rad", row=2, col=1)
    fig.update_layout(
        title="Bode plot of each head's shear filter H(ω) = 1 + γ(1 − e^(−iω)) (◆ Nyquist gain)",
        template="plotly_white",
        height=700,
        **legend_below(),  # the γ groups' long names take the width under the plot, not beside it
    )
    return fig


def spectra_figure(spectra: sp.SignalSpectra) -> go.Figure:
    """Power along the sequence of q (top) and k (bottom) per head: raw dashed, sheared solid.

    The DC bin (ω = 0) cannot sit on the log ω axis and is left out.
    """
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=[
            f"{s}: {spectra.hooks[s]['input'].split('.')[-1]} (dashed) → "
            f"{spectra.hooks[s]['sheared'].split('.')[-1]} (solid)"
            for s in sp.SIGNALS
        ],
    )
    omega = spectra.omega[1:]
    for row, s in enumerate(sp.SIGNALS, start=1):
        for head in range(spectra.n_heads):
            colour = _colour(head)
            gamma = spectra.gamma[s][head]
            for kind, values, dash in (
                ("raw", spectra.raw[s], "dash"),
                ("sheared", spectra.sheared[s], "solid"),
            ):
                fig.add_trace(
                    go.Scatter(
                        x=omega,
                        y=values[1:, head],
                        mode="lines",
                        line={"color": colour, "dash": dash},
                        name=f"H{head} (γ={gamma:.3g})",
                        legendgroup=f"H{head}",
                        showlegend=(row == 1 and kind == "sheared"),
                        hovertemplate=f"{s} {kind} H{head}<br>ω=%{{x:.3g}}<br>power=%{{y:.3g}}<extra></extra>",
                    ),
                    row=row,
                    col=1,
                )
        for edge in (sp.BANDS["mid"][0], sp.BANDS["high"][0]):
            fig.add_vline(x=edge, line_dash="dot", line_color="#999", row=row, col=1)
    _log_ticks(fig, 2)
    power = np.concatenate(
        [np.ravel(v[s][1:]) for v in (spectra.raw, spectra.sheared) for s in sp.SIGNALS]
    )
    power = power[np.isfinite(power) & (power > 0)]
    if power.size:  # 1-2-5 labels over the data's range, not plotly's crowded minor digits
        fig.update_yaxes(**log_axis(float(power.min()), float(power.max())))
    fig.update_yaxes(title_text="power")
    fig.update_xaxes(title_text="ω (rad / token)", row=2, col=1)
    fig.update_layout(
        title=(
            f"Layer {spectra.layer}: power spectra along the sequence "
            f"({spectra.window or 'rectangular'} window; dotted: band edges π/4, 3π/4)"
        ),
        template="plotly_white",
        height=650,
    )
    return fig


def ratio_figure(spectra: sp.SignalSpectra) -> go.Figure:
    """Measured sheared/raw power (open markers, one shape per head, nested where the heads
    agree) over the analytic `|H(ω)|²` (one line per distinct γ), in dB."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=[f"{s}: measured (markers) vs |H(ω)|² (lines)" for s in sp.SIGNALS],
    )
    omega = spectra.omega[1:]
    dense = sp.omega_grid(200, low=float(omega[0]) if len(omega) else math.pi * 1e-3)
    ratio = spectra.ratio
    n_heads = spectra.n_heads
    sizes = np.linspace(15, 6, n_heads) if n_heads > 1 else [9.0]
    for row, s in enumerate(sp.SIGNALS, start=1):
        gammas = [float(g) for g in spectra.gamma[s]]
        for head in range(n_heads):
            with np.errstate(divide="ignore", invalid="ignore"):
                measured = 10 * np.log10(ratio[s][1:, head])
            colour = _colour(head)
            fig.add_trace(
                go.Scatter(
                    x=omega,
                    y=_floor_db(measured),
                    mode="markers",
                    marker={
                        "symbol": HEAD_SYMBOLS[head % len(HEAD_SYMBOLS)],
                        "size": float(sizes[head]),
                        "color": colour,
                        "line": {"color": colour, "width": 1.5},
                    },
                    name=f"H{head} (γ={gammas[head]:.3g})",
                    legendgroup=f"H{head}",
                    showlegend=row == 1,
                    hovertemplate=f"{s} H{head} measured<br>ω=%{{x:.3g}}<br>%{{y:.3g}} dB<extra></extra>",
                ),
                row=row,
                col=1,
            )
        distinct = sorted({round(g, 9) for g in gammas})
        for i, gamma in enumerate(distinct):  # grey, a dash per γ: the markers carry colour
            heads = [f"H{h}" for h, g in enumerate(gammas) if round(g, 9) == gamma]
            with np.errstate(divide="ignore", invalid="ignore"):
                analytic = sh.gain_db(gamma, dense)
            fig.add_trace(
                go.Scatter(
                    x=dense,
                    y=_floor_db(analytic),
                    mode="lines",
                    line={"color": "#555", "dash": DASHES[i % len(DASHES)], "width": 1.5},
                    name=f"|H(ω)|², γ={gamma:.3g} ({', '.join(heads)})",
                    legendgroup=f"|H|² γ={gamma:.3g}",
                    showlegend=row == 1,
                    hovertemplate=f"{s} |H|², γ={gamma:.3g}<br>ω=%{{x:.3g}}<br>%{{y:.3g}} dB<extra></extra>",
                ),
                row=row,
                col=1,
            )
    _log_ticks(fig, 2)
    fig.update_yaxes(title_text="dB")
    fig.update_xaxes(title_text="ω (rad / token)", row=2, col=1)
    fig.update_layout(
        title=(
            f"Layer {spectra.layer}: measured power ratio sheared/raw against the analytic "
            f"|H(ω)|² (T={spectra.n_pos}, {spectra.window or 'rectangular'} window)"
        ),
        template="plotly_white",
        height=650,
    )
    return fig


def orthogonality_figure(df: pd.DataFrame) -> go.Figure:
    """Stacked shares of causal score energy per band term for every (model, layer, head).

    Bars run horizontally, one row per head, so long model names sit beside the plot instead of
    squashing it. The cross terms (low·high, high·low) sit at the left of each bar, so the end
    of the high·low segment is the cross share; an ✕ marks the chance level from the band
    energies.
    """
    labels = [_wrap(f"{r.label} · {head_label(r.layer, r.head)}") for r in df.itertuples()]
    y = [label for label, _ in labels]
    fig = go.Figure()
    for term, colour in TERM_COLOURS.items():
        fig.add_trace(
            go.Bar(
                x=df[f"share_{term}"],
                y=y,
                orientation="h",
                name=term.replace("_", "·"),
                marker_color=colour,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=df["null_cross_share"],
            y=y,
            mode="markers",
            marker={"symbol": "x", "size": 10, "color": "black"},
            name="chance cross share (from band energies)",
        )
    )
    cutoff = float(df["cutoff"].iloc[0]) if len(df) else math.pi / 2
    fig.update_layout(
        barmode="stack",
        title=(
            f"Share of causal score energy per band term (split at ω = {cutoff / math.pi:.3g}π); "
            "cross terms first"
        ),
        xaxis={"title": "share of Σ term²", "range": [0, 1.02]},
        yaxis={"autorange": "reversed", "automargin": True},
        template="plotly_white",
    )
    # Each row as tall as its wrapped label; the legend hangs a fixed 70 px under the plot, below
    # the axis title, however many rows there are.
    plot_px = sum(max(28, 16 * lines + 12) for _, lines in labels) or 28
    below = legend_below()
    below["legend"] |= {"y": -70 / plot_px, "traceorder": "normal"}  # the bars' order, left first
    below["margin"] = {"t": 80, "b": 150}
    fig.update_layout(height=plot_px + 230, **below)
    return fig


def _wrap(label: str, width: int = 40) -> tuple[str, int]:
    """An axis label broken into lines of at most `width` characters (plotly's `<br>`), so long
    model names take rows, not the plot's width; and its number of lines."""
    lines = textwrap.wrap(label, width) or [label]
    return "<br>".join(lines), len(lines)


def spectral_figures(result: sp.SpectralResult) -> dict[str, go.Figure]:
    """`bode`, `spectra_L{l}` and `ratio_L{l}` per layer, and `orthogonality`."""
    figs = {"bode": bode_plot(result.bode)}
    for layer, spectra in result.spectra.items():
        figs[f"spectra_L{layer}"] = spectra_figure(spectra)
        figs[f"ratio_L{layer}"] = ratio_figure(spectra)
    figs["orthogonality"] = orthogonality_figure(result.orthogonality)
    return figs


def add_spectral(report: Report, result: sp.SpectralResult, heading: bool = True) -> Report:
    """Append the filters, spectra and band orthogonality of a `SpectralResult` to `report`."""
    figs = spectral_figures(result)
    if heading:
        report.heading(spectral_title(result))
    report.paragraph(
        "Each head shears q and k along the sequence, x̂ₜ = xₜ + γ(xₜ − xₜ₋₁): the "
        "two-tap filter H(ω) = 1 + γ(1 − e^(−iω)), gain 1 at DC and |1 + 2γ| at Nyquist. "
        "Smeared keys are the same filter with γ = α − 1."
    )
    report.heading("Filters (Bode)")
    summary = sp.bode_summary(result.bode)
    report.table(
        ["layer", "head", "signal", "γ", "gain at π·10⁻³ (dB)", "Nyquist gain (dB)"],
        [
            [
                r.layer,
                r.head,
                r.signal,
                f"{r.gamma:.4g}",
                f"{r.low_gain_db:.3g}",
                f"{r.nyquist_gain_db:.3g}",
            ]
            for r in summary.itertuples()
        ],
    )
    report.figure(figs["bode"])
    for layer, spectra in result.spectra.items():
        report.heading(f"Layer {layer}: spectra of q and k")
        report.paragraph(
            f"Power along the sequence ({spectra.n_seq} sequences × {spectra.n_pos} positions, "
            f"{spectra.window or 'rectangular'} window) of the signal entering the shear "
            f"({spectra.hooks['q']['input'].split('.')[-1]} / "
            f"{spectra.hooks['k']['input'].split('.')[-1]}) and of the sheared one. Bands: "
            "low ω < π/4, mid π/4 ≤ ω < 3π/4, high ω ≥ 3π/4."
        )
        report.figure(figs[f"spectra_L{layer}"])
        report.figure(figs[f"ratio_L{layer}"])
        bands = spectra.band_table()
        report.table(
            [
                "head",
                "signal",
                "γ",
                "band",
                "raw share",
                "sheared share",
                "measured gain (dB)",
                "predicted gain (dB)",
            ],
            [
                [
                    r.head,
                    r.signal,
                    f"{r.gamma:.3g}",
                    r.band,
                    f"{r.raw_share:.3f}",
                    f"{r.sheared_share:.3f}",
                    f"{r.measured_gain_db:.2f}",
                    f"{r.predicted_gain_db:.2f}",
                ]
                for r in bands.itertuples()
            ],
        )
    report.heading("Band orthogonality")
    report.paragraph(
        f"q and k as they enter the scores, split at ω = {result.cutoff / math.pi:.3g}π into low "
        "and high bands; the causal scores ⟨qₜ, kₛ⟩ decompose into low·low, low·high, "
        "high·low and high·high terms. The paper's orthogonality theorem predicts small "
        "cross terms with RoPE. Chance level: the cross share expected from the bands' "
        "energies alone."
    )
    report.figure(figs["orthogonality"])
    cols = [
        "label",
        "layer",
        "head",
        "cross_share",
        "null_cross_share",
        "low_share_q",
        "low_share_k",
    ]
    report.table(
        cols,
        [
            [r.label, int(r.layer), int(r.head)] + [f"{getattr(r, c):.3f}" for c in cols[3:]]
            for r in result.orthogonality.itertuples()
        ],
    )
    report.paragraph(orthogonality_verdict(result.separation), note=True)
    report.paragraph(SPECTRAL_NOTE)
    return report
