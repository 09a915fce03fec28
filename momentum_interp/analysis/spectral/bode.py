"""Bode data: gain (dB) and phase of every head's filter `H(ω) = 1 + γ(1 − e^{−iω})` on q and k,
with the head's *effective* γ (`model.gamma_q` / `model.gamma_k`: 0 where a signal is not
sheared, α − 1 for a smeared key). The filter maths is `momentum_interp.model.shear`
(docs/maths.md, "The shear as a filter")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from momentum_interp.model import shear as sh

BODE_COLUMNS = ("layer", "head", "signal", "gamma", "omega", "gain_db", "phase_rad")


def omega_grid(n_points: int = 200, low: float = math.pi * 1e-3) -> np.ndarray:
    """`n_points` log-spaced frequencies from `low` to π (both included)."""
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2, got {n_points}.")
    if not 0 < low < math.pi:
        raise ValueError(f"low must lie in (0, π), got {low}.")
    return np.geomspace(low, math.pi, n_points)


def _gain_db(gamma: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """`shear.gain_db`, with −inf (not NaN) where `|H|²` is zero up to rounding."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sh.gain_db(gamma, omega)
    zero = sh.gain_squared(gamma, omega) <= 1e-12
    return np.where(zero, -np.inf, out)


def head_gammas(model) -> pd.DataFrame:
    """Effective shear per (layer, head, signal): columns layer, head, signal, gamma."""
    rows = []
    for signal, gammas in (("q", model.gamma_q), ("k", model.gamma_k)):
        values = gammas.double().cpu().numpy()
        for layer in range(values.shape[0]):
            for head in range(values.shape[1]):
                rows.append((layer, head, signal, float(values[layer, head])))
    return pd.DataFrame(rows, columns=["layer", "head", "signal", "gamma"])


def bode_table(model, n_points: int = 200) -> pd.DataFrame:
    """Gain (dB) and phase (rad) of every head's filter on q and k over log-spaced ω ∈ (0, π].

    One row per (layer, head, signal ∈ {q, k}, ω), columns `BODE_COLUMNS`. γ is the effective
    shear of that signal (`model.gamma_q` / `model.gamma_k`): 0 where a signal is not filtered
    (flat 0 dB), α − 1 for smeared keys. ω runs from π·10⁻³ to π, so the last row of each head
    is the Nyquist gain `20·log10|1 + 2γ|` (−inf for γ = −1/2).
    """
    omega = omega_grid(n_points)
    heads = head_gammas(model)
    gamma = heads["gamma"].to_numpy()[:, None]
    gain = _gain_db(gamma, omega[None, :])
    angle = sh.phase(gamma, omega[None, :])
    n = len(omega)
    return pd.DataFrame(
        {
            "layer": np.repeat(heads["layer"].to_numpy(), n),
            "head": np.repeat(heads["head"].to_numpy(), n),
            "signal": np.repeat(heads["signal"].to_numpy(), n),
            "gamma": np.repeat(heads["gamma"].to_numpy(), n),
            "omega": np.tile(omega, len(heads)),
            "gain_db": gain.ravel(),
            "phase_rad": angle.ravel(),
        }
    )


def nyquist_gain_db(gamma: float | np.ndarray) -> np.ndarray:
    """Gain at ω = π, `20·log10|1 + 2γ|` (evaluated through `shear.gain_db`)."""
    return _gain_db(np.asarray(gamma, dtype=float), np.asarray(math.pi))


def bode_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (layer, head, signal): gamma, the gain (dB) at the grid's lowest ω (near DC)
    and at Nyquist, and the phase of largest magnitude (signed, radians) with its ω."""
    grouped = table.groupby(["layer", "head", "signal"], sort=True)
    rows = []
    for (layer, head, signal), g in grouped:
        g = g.sort_values("omega")
        peak = g["phase_rad"].abs().idxmax()
        rows.append(
            {
                "layer": int(layer),
                "head": int(head),
                "signal": signal,
                "gamma": float(g["gamma"].iloc[0]),
                "low_gain_db": float(g["gain_db"].iloc[0]),
                "nyquist_gain_db": float(g["gain_db"].iloc[-1]),
                "max_abs_phase_rad": float(table.loc[peak, "phase_rad"]),
                "omega_at_max_phase": float(table.loc[peak, "omega"]),
            }
        )
    return pd.DataFrame(rows)
