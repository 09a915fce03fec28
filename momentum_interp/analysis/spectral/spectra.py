"""Empirical spectra: the power along the sequence of the signal entering the shear and of the
sheared one, their ratio against `|H(ω)|²`, and energy per band.

Conventions
-----------
Frequencies are radians per token, `ω_j = 2πj/T` for `j = 0..⌊T/2⌋` (`torch.fft.rfft` over the
position axis). A power spectrum is `|rfft(w · x)|² / Σ w²`, averaged over batch and d_head, so
white noise of variance σ² has a flat spectrum σ² under any window.

Bands (`BANDS`): ``low`` = 0 ≤ ω < π/4 (DC included), ``mid`` = π/4 ≤ ω < 3π/4,
``high`` = 3π/4 ≤ ω ≤ π (Nyquist included). Band energies are one-sided sums with Parseval
weights (2 for every bin but DC and, for even T, Nyquist).

Accuracy of the measured ratio
------------------------------
The shear is exact along the sequence except at the first position, which has no predecessor
(`p_0 = 0`, so `x̂_0 = x_0`), and a finite record leaks power between bins. With the default
Hann window (`w_0 = w_{T−1} = 0`) the first sample gets zero weight and, for white input,
`sheared/raw` has expectation `(1+γ)² + γ² − 2γ(1+γ)ρ cos ω` with `ρ = Σ w_t w_{t+1} / Σ w_t²`
(`ρ → 1` as T grows: 1 − ρ ≈ 2π²/(3T²) for Hann), i.e. `|H(ω)|²` up to a bias of at most
`2|γ(1+γ)|·6.6/T²`. Per bin `Y_w = H X_w − γ e^{−iω} Σ_t (w_{t+1} − w_t) x_t e^{−iωt}`; the
correction has relative power ≈ `4π²γ²/(3T²|H(ω)|²)`, so its cross term with `H X_w` makes the
ratio fluctuate by ≈ `7|γ| / (T |H(ω)| √N)` for N (sequence, channel) records. A single record
is not enough (bins where the windowed input spectrum nearly vanishes give wild ratios); at
T = 128 with N = 128 every bin is within 5 % of `|H(ω)|²` (the tests' tolerance; observed
≤ 2 % for γ ≤ 2, ≤ 3.5 % with γ = 2.5). With
``window=None`` (rectangular) the boundary sample and the wrap-around add a relative error of
order `2γ²/(T|H(ω)|²)` plus far larger fluctuations (at T = 16, errors of 40–60 % remain
after 1,000 records). Spectra of real activations are not white: a
strong DC component leaks through the window's side lobes into high bins, so compare the
*band* gains (`SignalSpectra.band_table`) rather than single bins there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float

from momentum_interp.model import shear as sh

SIGNALS = ("q", "k")
BANDS: dict[str, tuple[float, float]] = {
    "low": (0.0, math.pi / 4),
    "mid": (math.pi / 4, 3 * math.pi / 4),
    "high": (3 * math.pi / 4, math.pi),
}


def json_floats(x) -> Any:
    """Nested lists of Python floats; non-finite numbers become None (strict JSON)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0:
        v = float(arr)
        return v if math.isfinite(v) else None
    return [json_floats(v) for v in arr]


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame's rows as JSON-able dicts (numpy scalars unwrapped, non-finite floats None)."""
    out = []
    for row in df.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, bool | np.bool_):
                clean[key] = bool(value)
            elif isinstance(value, int | np.integer):
                clean[key] = int(value)
            elif isinstance(value, float | np.floating):
                clean[key] = json_floats(value)
            else:
                clean[key] = value
        out.append(clean)
    return out


def frequencies(n_pos: int) -> np.ndarray:
    """The rfft frequencies `ω_j = 2πj/T`, j = 0..⌊T/2⌋, in radians per token."""
    return 2 * math.pi * np.arange(n_pos // 2 + 1) / n_pos


def parseval_weights(n_pos: int) -> np.ndarray:
    """One-sided weights: 1 for DC (and Nyquist when T is even), 2 for the other bins."""
    weights = np.full(n_pos // 2 + 1, 2.0)
    weights[0] = 1.0
    if n_pos % 2 == 0:
        weights[-1] = 1.0
    return weights


def _window(n_pos: int, window: str | None) -> torch.Tensor:
    if window is None or window == "rect":
        return torch.ones(n_pos, dtype=torch.float64)
    if window == "hann":
        return torch.hann_window(n_pos, periodic=False, dtype=torch.float64)
    raise ValueError(f"window must be 'hann', 'rect' or None, got {window!r}.")


def power_spectrum(
    x: Float[torch.Tensor, "batch pos head d_head"], window: str | None = "hann"
) -> Float[np.ndarray, "freq head"]:
    """Power along the sequence per head: `x: [batch, pos, head, d_head]` → `[n_freq, head]`.

    `|rfft(w·x)|² / Σw²` over the position axis, averaged over batch and d_head (float64).
    """
    if x.ndim != 4:
        raise ValueError(f"expected [batch, pos, head, d_head], got shape {tuple(x.shape)}.")
    n_pos = x.shape[1]
    if n_pos < 2:
        raise ValueError("a spectrum needs at least 2 positions.")
    w = _window(n_pos, window).to(x.device)
    spectrum = torch.fft.rfft(x.detach().double() * w[None, :, None, None], dim=1)
    power = spectrum.abs().square().mean(dim=(0, 3)) / w.square().sum()
    return power.cpu().numpy()


def hook_names(model, layer: int) -> dict[str, dict[str, str]]:
    """Per signal: the hook that enters the shear, the sheared one, and what enters the scores."""
    cfg = model.cfg
    if not 0 <= layer < cfg.n_layers:
        raise ValueError(f"layer must be in [0, {cfg.n_layers}), got {layer}.")
    prefix = f"blocks.{layer}.attn."
    rotary = cfg.positional_embedding_type == "rotary"
    post = cfg.shear_placement == "post_rope"
    names = {}
    for s in SIGNALS:
        entering = f"hook_rot_{s}" if rotary and post else f"hook_{s}"
        scores = f"hook_rot_{s}" if rotary and not post else f"hook_{s}_sheared"
        names[s] = {
            "input": prefix + entering,
            "sheared": prefix + f"hook_{s}_sheared",
            "scores": prefix + scores,
        }
    return names


def cache_signals(model, tokens, names: list[str]) -> dict[str, torch.Tensor]:
    """The named activations of one forward pass over `tokens` (`[batch, pos]` ids or text)."""
    tokens = model.to_tokens(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}.")
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return {name: cache[name] for name in names}


def _band_masks(omega: np.ndarray) -> dict[str, np.ndarray]:
    masks = {}
    for name, (lo, hi) in BANDS.items():
        upper = omega <= hi if hi >= math.pi else omega < hi
        masks[name] = (omega >= lo) & upper
    return masks


@dataclass
class SignalSpectra:
    """Spectra of one layer's q and k signals before and after the shear.

    `raw[s]` / `sheared[s]`: `[n_freq, head]` power spectra of signal `s` ∈ {"q", "k"} entering
    the shear (`hooks[s]["input"]`) and leaving it (`hooks[s]["sheared"]`); `omega: [n_freq]`;
    `gamma[s]: [head]` the effective shear.
    """

    layer: int
    omega: np.ndarray
    gamma: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    sheared: dict[str, np.ndarray]
    hooks: dict[str, dict[str, str]]
    window: str | None
    n_seq: int
    n_pos: int

    @property
    def n_heads(self) -> int:
        return self.raw["q"].shape[1]

    @property
    def ratio(self) -> dict[str, np.ndarray]:
        """Measured `sheared / raw` power per signal, `[n_freq, head]` (NaN where raw is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                s: np.where(self.raw[s] > 0, self.sheared[s] / self.raw[s], np.nan) for s in SIGNALS
            }

    @property
    def analytic(self) -> dict[str, np.ndarray]:
        """`|H(ω)|²` (`shear.gain_squared`) per signal at the measured frequencies, `[n_freq, head]`."""
        return {s: sh.gain_squared(self.gamma[s][None, :], self.omega[:, None]) for s in SIGNALS}

    def to_frame(self) -> pd.DataFrame:
        """Long table: layer, head, signal, omega, raw_power, sheared_power, ratio, analytic."""
        frames = []
        ratio, analytic = self.ratio, self.analytic
        n_freq = len(self.omega)
        for s in SIGNALS:
            for head in range(self.n_heads):
                frames.append(
                    pd.DataFrame(
                        {
                            "layer": self.layer,
                            "head": head,
                            "signal": s,
                            "gamma": float(self.gamma[s][head]),
                            "omega": self.omega,
                            "raw_power": self.raw[s][:, head],
                            "sheared_power": self.sheared[s][:, head],
                            "ratio": ratio[s][:, head],
                            "analytic": analytic[s][:, head],
                        },
                        index=range(n_freq),
                    )
                )
        return pd.concat(frames, ignore_index=True)

    def band_table(self) -> pd.DataFrame:
        """Energy per band (`BANDS`) per (head, signal).

        Columns: raw_share / sheared_share (fraction of the signal's energy in the band, before
        and after the shear), measured_gain_db (`10·log10` of sheared over raw band energy) and
        predicted_gain_db (the same from the raw spectrum weighted by `|H(ω)|²`, i.e. what an
        exact filter would give the measured input).
        """
        weights = parseval_weights(self.n_pos)
        masks = _band_masks(self.omega)
        analytic = self.analytic
        rows = []
        for s in SIGNALS:
            raw = self.raw[s] * weights[:, None]
            out = self.sheared[s] * weights[:, None]
            predicted = raw * analytic[s]
            for head in range(self.n_heads):
                for band, mask in masks.items():
                    e_raw, e_out = raw[mask, head].sum(), out[mask, head].sum()
                    e_pred = predicted[mask, head].sum()
                    with np.errstate(divide="ignore", invalid="ignore"):
                        measured = 10 * np.log10(e_out / e_raw) if e_raw > 0 else np.nan
                        pred = 10 * np.log10(e_pred / e_raw) if e_raw > 0 else np.nan
                    rows.append(
                        {
                            "layer": self.layer,
                            "head": head,
                            "signal": s,
                            "gamma": float(self.gamma[s][head]),
                            "band": band,
                            "omega_lo": BANDS[band][0],
                            "omega_hi": BANDS[band][1],
                            "n_bins": int(mask.sum()),
                            "raw_share": e_raw / raw[:, head].sum(),
                            "sheared_share": e_out / out[:, head].sum(),
                            "measured_gain_db": float(measured),
                            "predicted_gain_db": float(pred),
                        }
                    )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "layer": self.layer,
            "window": self.window,
            "n_seq": self.n_seq,
            "n_pos": self.n_pos,
            "hooks": self.hooks,
            "omega": json_floats(self.omega),
            "gamma": {s: json_floats(self.gamma[s]) for s in SIGNALS},
            "raw_power": {s: json_floats(self.raw[s].T) for s in SIGNALS},
            "sheared_power": {s: json_floats(self.sheared[s].T) for s in SIGNALS},
            "ratio": {s: json_floats(ratio[s].T) for s in SIGNALS},
            "bands": json_records(self.band_table()),
        }


def signal_spectra(model, tokens, layer: int, window: str | None = "hann") -> SignalSpectra:
    """Power spectra along the sequence of one layer's q and k, before and after the shear.

    The signal entering the shear is `hook_rot_*` for post-RoPE rotary models and `hook_q/k`
    otherwise (pre-RoPE shears the raw signal); the sheared one is `hook_*_sheared`. Hooks the
    caller has attached (e.g. `with model.hooks(...)` replacing the input by noise) stay active.
    `window`: "hann" (default; zero weight on the unsheared first sample) or None/"rect".
    """
    names = hook_names(model, layer)
    acts = cache_signals(
        model, tokens, [names[s][r] for s in SIGNALS for r in ("input", "sheared")]
    )
    first = acts[names["q"]["input"]]
    gammas = {"q": model.gamma_q[layer], "k": model.gamma_k[layer]}
    return SignalSpectra(
        layer=layer,
        omega=frequencies(first.shape[1]),
        gamma={s: gammas[s].double().cpu().numpy() for s in SIGNALS},
        raw={s: power_spectrum(acts[names[s]["input"]], window) for s in SIGNALS},
        sheared={s: power_spectrum(acts[names[s]["sheared"]], window) for s in SIGNALS},
        hooks={s: {"input": names[s]["input"], "sheared": names[s]["sheared"]} for s in SIGNALS},
        window=window,
        n_seq=first.shape[0],
        n_pos=first.shape[1],
    )
