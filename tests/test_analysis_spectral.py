"""Spectral forensics: Bode data, measured spectra, band orthogonality and the report.

Expected values are computed here independently of `momentum_interp.model.shear`: the filter is
evaluated as the numpy polynomial `(1+γ) − γ e^{−iω}`, the closed forms are written out, the
Nyquist gain is `20·log10|1+2γ|`, smeared-key α comes from a plain logistic, and the score
decomposition is checked against the model's own materialised `hook_attn_scores`.

Tolerances (stated where used):
- filter maths: 1e-12 (float64 closed forms);
- measured power ratio on white Gaussian noise, Hann window, T = 128, 128 (sequence, channel)
  records per head: every bin within 5 % of |H(ω)|² (observed: < 2 %);
- band split and score decomposition: exact up to float64 / float32 rounding.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from momentum_interp.analysis import spectral as sp
from momentum_interp.model import shear as sh
from momentum_interp.viz import spectral as viz
from momentum_interp.viz.captions import orthogonality_verdict
from momentum_interp.viz.sections import page_html

HEAD_GAMMAS = [1.0, 0.3, -0.2, 2.5]
SMEAR_LOGITS = [-1.2, 0.4, 2.0, -0.1]
RATIO_TOL = 0.05


def _numpy_h(gamma, omega):
    """`(1+γ) − γ e^{−iω}`, evaluated directly."""
    gamma = np.asarray(gamma, dtype=float)
    return (1 + gamma) - gamma * np.exp(-1j * np.asarray(omega, dtype=float))


def _closed_gain_sq(gamma, omega):
    return 1 + 4 * gamma * (1 + gamma) * np.sin(omega / 2) ** 2


def _logistic(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=float)))


def _learnable(make_model, gammas=HEAD_GAMMAS, **overrides):
    model = make_model(gamma_learnable=True, **overrides)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.gamma.copy_(torch.tensor(gammas[: model.cfg.n_heads]))
    return model


def _smeared(make_model, logits=SMEAR_LOGITS, **overrides):
    model = make_model(shear="none", smeared_key=True, **overrides)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.smear_logit.copy_(torch.tensor(logits[: model.cfg.n_heads]))
    return model


def _rows(table, signal, omega_pick):
    sub = table[table["signal"] == signal]
    target = sub["omega"].max() if omega_pick == "max" else sub["omega"].min()
    return sub[sub["omega"] == target].sort_values(["layer", "head"])


# ------------------------------------------------------------------------------- Bode


def test_frequency_response_against_numpy_and_closed_forms():
    omega = np.linspace(0, math.pi, 513)[:, None]
    gamma = np.array([-1.7, -0.8, -0.5, -0.2, 0.0, 0.3, 1.0, 4.17])[None, :]
    h = _numpy_h(gamma, omega)
    np.testing.assert_allclose(sh.frequency_response(gamma, omega), h, atol=1e-12)
    np.testing.assert_allclose(sh.gain_squared(gamma, omega), np.abs(h) ** 2, atol=1e-12)
    np.testing.assert_allclose(_closed_gain_sq(gamma, omega), np.abs(h) ** 2, atol=1e-12)
    closed_phase = np.arctan2(gamma * np.sin(omega), 1 + gamma * (1 - np.cos(omega)))
    np.testing.assert_allclose(sh.phase(gamma, omega), closed_phase, atol=1e-12)
    # compare angles on the unit circle (±π at a negative real H are the same angle)
    nonzero = np.abs(h) > 1e-9
    unit = np.exp(1j * sh.phase(gamma, omega))
    np.testing.assert_allclose(unit[nonzero], (h / np.abs(h))[nonzero], atol=1e-9)
    # the time-domain shear of e^{iωt} is H(ω) e^{iωt} for t ≥ 1 (t = 0 is unsheared)
    t = torch.arange(64, dtype=torch.float64)
    for w in (0.3, 1.7, math.pi):
        x = torch.exp(1j * w * t).reshape(1, -1, 1, 1).expand(1, 64, 3, 1)
        g = torch.tensor([-0.6, 0.5, 2.0], dtype=torch.float64)
        y = sh.shear(x, sh.velocity(x), g.to(x.dtype))
        expected = _numpy_h(g.numpy(), w)[None, None, :, None] * x.numpy()
        np.testing.assert_allclose(y.numpy()[:, 1:], expected[:, 1:], atol=1e-12)
        np.testing.assert_allclose(y.numpy()[:, 0], x.numpy()[:, 0], atol=1e-12)


def test_bode_table_per_head_gains_and_phases(make_model):
    model = _learnable(make_model, positional_embedding_type="rotary")
    table = sp.bode_table(model, n_points=50)
    n = model.cfg.n_layers * model.cfg.n_heads * 2 * 50
    assert len(table) == n and list(table.columns) == list(sp.BODE_COLUMNS)
    omega = np.sort(table["omega"].unique())
    assert len(omega) == 50 and math.isclose(omega[-1], math.pi) and omega[0] > 0
    assert np.allclose(np.diff(np.log(omega)), np.log(omega[1] / omega[0]))  # log-spaced
    for signal in ("q", "k"):
        nyq = _rows(table, signal, "max")
        gammas = np.array(HEAD_GAMMAS * model.cfg.n_layers)
        np.testing.assert_allclose(nyq["gamma"], gammas, atol=1e-7)
        np.testing.assert_allclose(nyq["gain_db"], 20 * np.log10(np.abs(1 + 2 * gammas)), atol=1e-5)
        low = _rows(table, signal, "min")
        assert np.all(np.abs(low["gain_db"]) < 1e-3)  # ω = π/1000: DC gain 0 dB
        assert np.all(np.abs(low["phase_rad"]) < 0.01)  # phase → 0 at DC
    h = _numpy_h(table["gamma"].to_numpy(float), table["omega"].to_numpy(float))
    np.testing.assert_allclose(table["gain_db"], 20 * np.log10(np.abs(h)), atol=1e-9)
    np.testing.assert_allclose(table["phase_rad"], np.angle(h), atol=1e-9)
    # exactly at ω = 0 the library gives 0 dB and 0 rad
    np.testing.assert_array_equal(sh.gain_db(np.array(HEAD_GAMMAS), 0.0), 0.0)
    np.testing.assert_array_equal(sh.phase(np.array(HEAD_GAMMAS), 0.0), 0.0)


def test_bode_table_keys_only_and_smeared(make_model):
    keys_only = sp.bode_table(_learnable(make_model, shear="k"), n_points=20)
    assert np.all(keys_only.loc[keys_only["signal"] == "q", "gain_db"].abs() < 1e-12)
    nyq_k = _rows(keys_only, "k", "max")
    np.testing.assert_allclose(
        nyq_k["gain_db"], 20 * np.log10(np.abs(1 + 2 * np.array(HEAD_GAMMAS * 2))), atol=1e-5
    )

    smeared = sp.bode_table(_smeared(make_model), n_points=20)
    alpha = _logistic(SMEAR_LOGITS * 2)
    nyq = _rows(smeared, "k", "max")
    np.testing.assert_allclose(nyq["gamma"], alpha - 1, atol=1e-6)
    np.testing.assert_allclose(nyq["gain_db"], 20 * np.log10(np.abs(2 * alpha - 1)), atol=1e-4)
    assert np.all(smeared.loc[smeared["signal"] == "q", "gain_db"].abs() < 1e-12)
    # α = 1/2 (the default init) puts a zero of H at Nyquist: −inf dB, not NaN
    half = sp.bode_table(make_model(shear="none", smeared_key=True, smear_init=0.5), n_points=20)
    assert np.all(np.isneginf(_rows(half, "k", "max")["gain_db"]))
    assert not half["gain_db"].isna().any()


def test_bode_plot_dedupes_and_marks_nyquist(make_model):
    uniform = viz.bode_plot(sp.bode_table(make_model(gamma=1.0)))
    assert isinstance(uniform, go.Figure)
    assert len(uniform.data) == 3  # one γ: gain, phase, Nyquist marker
    assert uniform.layout.xaxis.type == "log" and uniform.layout.xaxis2.type == "log"
    model = _learnable(make_model)
    fig = viz.bode_plot(sp.bode_table(model, n_points=30))
    markers = [t for t in fig.data if t.mode == "markers+text"]
    assert len(markers) == len(set(HEAD_GAMMAS)) and len(fig.data) == 3 * len(set(HEAD_GAMMAS))
    got = sorted(float(m.y[0]) for m in markers)
    want = sorted(20 * math.log10(abs(1 + 2 * g)) for g in HEAD_GAMMAS)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert all(math.isclose(m.x[0], math.pi) for m in markers)
    # a zero of H is drawn at the floor instead of vanishing
    half = viz.bode_plot(sp.bode_table(make_model(shear="none", smeared_key=True, smear_init=0.5)))
    floors = [float(t.y[0]) for t in half.data if t.mode == "markers+text"]
    assert viz.DB_FLOOR in floors


# ----------------------------------------------------------------------------- spectra


@pytest.mark.parametrize("n_pos", [15, 16])
def test_band_energies_obey_parseval(n_pos):
    """Σ_j weight_j · power_j (rectangular window) is the mean of Σ_t x_t² over (batch, d_head)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, n_pos, 3, 5, generator=gen, dtype=torch.float64) + 2.0  # strong DC
    power = sp.power_spectrum(x, window=None)
    total = (sp.parseval_weights(n_pos)[:, None] * power).sum(axis=0)
    np.testing.assert_allclose(total, x.square().sum(dim=1).mean(dim=(0, 2)).numpy(), rtol=1e-12)


def test_power_spectrum_of_white_noise_is_flat():
    gen = torch.Generator().manual_seed(1)
    x = 3.0 * torch.randn(64, 128, 2, 8, generator=gen, dtype=torch.float64)
    for window in ("hann", None):
        power = sp.power_spectrum(x, window)
        assert power.shape == (65, 2)
        assert abs(power.mean() / 9.0 - 1) < 0.03  # σ² = 9 per bin, any window


def test_shear_on_white_noise_matches_gain_squared():
    """Directly through `shear.shear`: T = 128, 16 sequences × 8 channels per head."""
    gen = torch.Generator().manual_seed(0)
    gamma = torch.tensor([1.0, 0.3, -0.2, -0.8, 2.0], dtype=torch.float64)
    x = torch.randn(16, 128, 5, 8, generator=gen, dtype=torch.float64)
    y = sh.shear(x, sh.velocity(x), gamma)
    omega = sp.frequencies(128)[:, None]
    expected = _closed_gain_sq(gamma.numpy()[None, :], omega)
    ratio = sp.power_spectrum(y, "hann") / sp.power_spectrum(x, "hann")
    assert np.max(np.abs(ratio / expected - 1)) < RATIO_TOL
    # the boundary: without a window the unsheared first sample and the wrap-around bias the
    # ratio; on a short record (T = 16) the error is far above the Hann one
    xs = torch.randn(128, 16, 5, 8, generator=gen, dtype=torch.float64)
    ys = sh.shear(xs, sh.velocity(xs), gamma)
    rect = sp.power_spectrum(ys, None) / sp.power_spectrum(xs, None)
    short = _closed_gain_sq(gamma.numpy()[None, :], sp.frequencies(16)[:, None])
    assert np.max(np.abs(rect / short - 1)) > 2 * RATIO_TOL


MODEL_CASES = {
    "rotary_post": dict(positional_embedding_type="rotary", shear_placement="post_rope"),
    "rotary_pre": dict(positional_embedding_type="rotary", shear_placement="pre_rope"),
    "standard": dict(positional_embedding_type="standard"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_shear_on_injected_noise(make_model, case):
    """Replace the signal entering the shear by white noise; the model's sheared output must
    have the power ratio |H|² (Hann, T = 128, 32 sequences × 4 channels, 5 %)."""
    model = _learnable(make_model, n_ctx=128, n_layers=1, **MODEL_CASES[case])
    entering = "hook_rot" if case == "rotary_post" else "hook"
    gen = torch.Generator().manual_seed(3)

    def noise(act, hook):
        return torch.randn(act.shape, generator=gen).to(act.dtype)

    hooks = [(f"blocks.0.attn.{entering}_{s}", noise) for s in ("q", "k")]
    tokens = torch.randint(0, model.cfg.d_vocab, (32, 128), generator=gen)
    with model.hooks(fwd_hooks=hooks):
        spectra = sp.signal_spectra(model, tokens, layer=0)
    assert spectra.hooks["q"]["input"] == f"blocks.0.attn.{entering}_q"
    expected = _closed_gain_sq(np.array(HEAD_GAMMAS)[None, :], sp.frequencies(128)[:, None])
    for s in ("q", "k"):
        np.testing.assert_allclose(spectra.gamma[s], HEAD_GAMMAS, atol=1e-6)
        assert np.max(np.abs(spectra.ratio[s] / expected - 1)) < RATIO_TOL
    bands = spectra.band_table()
    assert np.max(np.abs(bands["measured_gain_db"] - bands["predicted_gain_db"])) < 0.1
    shares = bands.groupby(["signal", "head"])[["raw_share", "sheared_share"]].sum()
    np.testing.assert_allclose(shares.to_numpy(), 1.0, atol=1e-9)
    # white input spreads over the bands like their widths (1/4, 1/2, 1/4)
    raw = bands.groupby("band")["raw_share"].mean()
    np.testing.assert_allclose(raw[["low", "mid", "high"]], [0.25, 0.5, 0.25], atol=0.04)


def test_smeared_key_spectrum_on_noise(make_model):
    model = _smeared(make_model, n_ctx=128, n_layers=1)
    gen = torch.Generator().manual_seed(4)
    hooks = [("blocks.0.attn.hook_k", lambda act, hook: torch.randn(act.shape, generator=gen))]
    tokens = torch.randint(0, model.cfg.d_vocab, (32, 128), generator=gen)
    with model.hooks(fwd_hooks=hooks):
        spectra = sp.signal_spectra(model, tokens, layer=0)
    alpha = _logistic(SMEAR_LOGITS)
    omega = sp.frequencies(128)[:, None]
    expected = np.abs(alpha[None, :] + (1 - alpha[None, :]) * np.exp(-1j * omega)) ** 2
    assert np.max(np.abs(spectra.ratio["k"] / expected - 1)) < RATIO_TOL
    np.testing.assert_allclose(spectra.ratio["q"], 1.0, atol=1e-9)  # queries unfiltered


# ----------------------------------------------------------------------- orthogonality


def test_band_split_is_exact_and_puts_tones_in_their_band():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 40, 2, 5, generator=gen, dtype=torch.float64)
    low, high = sp.band_split(x, cutoff=math.pi / 2)
    torch.testing.assert_close(low + high, x, atol=1e-12, rtol=0)
    assert abs(float((low * high).sum())) < 1e-9  # disjoint supports: orthogonal over pos
    assert float(low.square().sum()) > 0.1 * float(x.square().sum())
    t = torch.arange(40, dtype=torch.float64)[None, :, None, None]
    slow = torch.cos(2 * math.pi * 3 / 40 * t + 0.4).expand(1, 40, 1, 2)
    fast = torch.cos(2 * math.pi * 17 / 40 * t - 1.1).expand(1, 40, 1, 2)
    lo, hi = sp.band_split(slow + 0.5)  # tone at 0.15π plus DC: all low
    torch.testing.assert_close(lo, slow + 0.5, atol=1e-12, rtol=0)
    assert float(hi.abs().max()) < 1e-12
    lo, hi = sp.band_split(fast)  # tone at 0.85π: all high
    assert float(lo.abs().max()) < 1e-12
    torch.testing.assert_close(hi, fast, atol=1e-12, rtol=0)
    # a tone exactly at the cutoff (bin 10 of 40 = π/2) belongs to the high band
    edge = torch.cos(2 * math.pi * 10 / 40 * t + 0.2).expand(1, 40, 1, 2)
    lo, hi = sp.band_split(edge, cutoff=math.pi / 2)
    assert float(lo.abs().max()) < 1e-12


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_score_band_terms_sum_to_model_scores(make_model, case):
    model = _learnable(make_model, **MODEL_CASES[case])
    layer = 1
    names = sp.hook_names(model, layer)
    tokens = torch.randint(
        0, model.cfg.d_vocab, (3, 16), generator=torch.Generator().manual_seed(6)
    )
    wanted = [names["q"]["scores"], names["k"]["scores"], f"blocks.{layer}.attn.hook_attn_scores"]
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in wanted)
    q, k = cache[wanted[0]].double(), cache[wanted[1]].double()
    terms = sp.score_band_terms(q, k, cutoff=math.pi / 3)
    assert set(terms) == set(sp.BAND_TERMS)
    scores = cache[wanted[2]].double() * math.sqrt(model.cfg.d_head)
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    total = sum(terms.values())
    torch.testing.assert_close(total[..., causal], scores[..., causal], atol=1e-5, rtol=1e-5)

    df = sp.band_orthogonality(model, tokens, layer, cutoff=math.pi / 3)
    assert len(df) == model.cfg.n_heads
    share_cols = [f"share_{t}" for t in sp.BAND_TERMS]
    np.testing.assert_allclose(df[share_cols].sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(df["cross_share"], df["share_low_high"] + df["share_high_low"])
    # independent: cross share from the terms computed above
    energy = {t: (v.square() * causal).sum(dim=(0, 2, 3)).numpy() for t, v in terms.items()}
    expect = (energy["low_high"] + energy["high_low"]) / sum(energy.values())
    np.testing.assert_allclose(df["cross_share"], expect, atol=1e-9)
    assert np.all(np.abs(df[["cos_q", "cos_k"]].to_numpy()) < 1e-9)  # Parseval
    assert bool(df["rotary"].iloc[0]) == (case != "standard")


def _synthetic(rot_cross, plain_cross, null=0.4):
    rows = []
    for rotary, cross in ((True, rot_cross), (False, plain_cross)):
        for head in range(2):
            rows.append(
                dict(
                    rotary=rotary,
                    cutoff=math.pi / 2,
                    cross_share=cross,
                    null_cross_share=null,
                    cos_q=0.0,
                    cos_k=1e-17,
                    head=head,
                )
            )
    return pd.DataFrame(rows)


def _verdict(df: pd.DataFrame) -> tuple[str, str]:
    """The outcome code `orthogonality_summary` finds, and the sentence the page writes of it."""
    separation = sp.orthogonality_summary(df)
    return separation.outcome, orthogonality_verdict(separation)


def test_verdict_follows_the_numbers(make_model):
    outcome, shows = _verdict(_synthetic(0.05, 0.40))
    assert outcome == "separated"
    assert "separation shows" in shows and "0.05 with RoPE" in shows and "0.40 without" in shows
    outcome, swapped = _verdict(_synthetic(0.40, 0.05))
    assert outcome == "not_lowered"
    assert (
        "does not show" in swapped and "0.40 with RoPE" in swapped and "does not lower" in swapped
    )
    outcome, partial = _verdict(_synthetic(0.30, 0.40))
    assert outcome == "lowered_too_little" and "does not show" in partial and "75%" in partial
    # below half of chance but not below half of the non-rotary level: not shown
    outcome, near = _verdict(_synthetic(0.16, 0.20))
    assert outcome == "lowered_too_little"
    assert "does not show" in near and "80%" in near and "40% of chance" in near
    outcome, only_plain = _verdict(_synthetic(0.1, 0.3).query("not rotary"))
    assert outcome == "untested" and "untested" in only_plain and "0.30" in only_plain
    outcome, only_rotary = _verdict(_synthetic(0.1, 0.3).query("rotary"))
    assert outcome == "separated_vs_chance" and "separation shows" in only_rotary
    assert _verdict(_synthetic(0.1, 0.3).iloc[:0])[0] == "no_heads"

    tokens = torch.randint(0, 23, (4, 16), generator=torch.Generator().manual_seed(7))
    rot = sp.band_orthogonality(make_model(positional_embedding_type="rotary"), tokens, 0)
    plain = sp.band_orthogonality(make_model(positional_embedding_type="standard"), tokens, 0)
    both = pd.concat([rot, plain], ignore_index=True)
    _, verdict = _verdict(both)
    assert f"{rot['cross_share'].mean():.2f} with RoPE" in verdict
    assert f"{plain['cross_share'].mean():.2f} without" in verdict
    flipped = both.assign(rotary=~both["rotary"])
    assert _verdict(flipped)[1] != verdict


# ------------------------------------------------------------------------------ report


def test_spectral_report_bundle(make_model):
    model = _learnable(make_model, positional_embedding_type="rotary")
    control = make_model(positional_embedding_type="standard", seed=1)
    tokens = torch.randint(0, 23, (4, 16), generator=torch.Generator().manual_seed(8))
    result = sp.spectral_report(model, tokens, controls={"standard twin": control})
    assert set(result.spectra) == {0, 1}
    assert set(result.orthogonality["label"]) == {sp.model_label(model), "standard twin"}
    assert result.separation.rotary is not None and result.separation.plain is not None
    figs = viz.spectral_figures(result)
    assert set(figs) == {
        "bode",
        "spectra_L0",
        "ratio_L0",
        "spectra_L1",
        "ratio_L1",
        "orthogonality",
    }
    assert all(isinstance(f, go.Figure) for f in figs.values())
    html = page_html(result)
    assert html.startswith("<!DOCTYPE html>") and '<script src="http' not in html
    assert "<script type='text/javascript'>" in html and "Plotly" in html
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["separation"]["outcome"] == result.separation.outcome
    assert data["separation"]["rotary"]["n_heads"] == result.separation.rotary.n_heads
    assert "with RoPE" in html and "without" in html  # the verdict, on the page
    assert len(data["spectra"]["0"]["omega"]) == 9
    nyq = {(r["layer"], r["head"], r["signal"]): r["nyquist_gain_db"] for r in data["bode"]}
    assert math.isclose(nyq[(0, 3, "q")], 20 * math.log10(1 + 2 * HEAD_GAMMAS[3]), abs_tol=1e-5)

    one = sp.spectral_report(_smeared(make_model, logits=[0.0] * 4), tokens, layer=1)
    assert set(one.spectra) == {1} and one.separation.outcome == "untested"
    payload = one.to_dict()
    assert any(r["nyquist_gain_db"] is None for r in payload["bode"])  # α = 1/2: −inf → None
    json.dumps(payload, allow_nan=False)
