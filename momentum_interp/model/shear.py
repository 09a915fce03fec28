"""The momentum shear and its filter maths, in one place (docs/maths.md, sections 1–3).

Along the sequence axis the shear `x̂_t = x_t + γ (x_t − x_{t−1})` is the two-tap filter
`H(z) = (1+γ) − γ z⁻¹`. Olsson et al.'s smeared key `α k_t + (1−α) k_{t−1}` is the same filter
with γ = α − 1. Everything that computes a velocity, a shear, a frequency response or the
four-term score expansion calls these functions.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import einsum


def previous(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """`x_{t−1}` along `dim`, with the first position its own predecessor (so its velocity is 0)."""
    first = x.narrow(dim, 0, 1)
    return torch.cat([first, x.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)


def velocity(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Kinematic difference `p_t = x_t − x_{t−1}` along `dim`, with `p_0 = 0`."""
    return x - previous(x, dim)


def shear(x: torch.Tensor, velocity_: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """`x + γ p` for `x, p: [batch, pos, head, d_head]` and per-head `gamma: [head]`."""
    return x + gamma[:, None] * velocity_


def fused_shear(x: torch.Tensor, gamma: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """`shear(x, velocity(x), γ)` without materialising `p`: `(1+γ) x_t − γ x_{t−1}` as one
    `lerp(x_{t−1}, x_t, 1+γ)`. Same layout and per-head `gamma: [head]` as `shear`."""
    return torch.lerp(previous(x, dim), x, (1.0 + gamma)[:, None])


def rms_gain(gamma: torch.Tensor) -> torch.Tensor:
    """RMS gain of the shear over all frequencies, `√(1 + 2γ + 2γ²)` (= the mean of `|H(ω)|²`
    over ω, square-rooted): the factor by which it scales white q/k, so dividing by it keeps the
    score scale at initialisation flat in γ (the gain-normalised shear)."""
    return torch.sqrt(1.0 + 2.0 * gamma + 2.0 * gamma**2)


def smear_gamma(alpha: torch.Tensor) -> torch.Tensor:
    """The shear γ equivalent to a smeared key `α k_t + (1−α) k_{t−1}`."""
    return alpha - 1.0


def frequency_response(gamma: float | np.ndarray, omega: np.ndarray) -> np.ndarray:
    """`H(e^{iω}) = 1 + γ (1 − e^{−iω})`, broadcasting γ against ω."""
    gamma = np.asarray(gamma, dtype=float)
    return 1.0 + gamma * (1.0 - np.exp(-1j * np.asarray(omega, dtype=float)))


def gain_squared(gamma: float | np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Closed form `|H(ω)|² = 1 + 4γ(1+γ) sin²(ω/2)`."""
    gamma = np.asarray(gamma, dtype=float)
    return 1.0 + 4.0 * gamma * (1.0 + gamma) * np.sin(np.asarray(omega) / 2.0) ** 2


def gain_db(gamma: float | np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Gain of the shear in decibels, `10 log10 |H(ω)|²`."""
    return 10.0 * np.log10(gain_squared(gamma, omega))


def phase(gamma: float | np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Closed form `arg H = atan2(γ sin ω, 1 + γ(1 − cos ω))` in radians."""
    gamma = np.asarray(gamma, dtype=float)
    omega = np.asarray(omega, dtype=float)
    return np.arctan2(gamma * np.sin(omega), 1.0 + gamma * (1.0 - np.cos(omega)))


TERM_NAMES = ("current_current", "current_prev_key", "prev_query_current", "prev_prev")


def score_terms(
    q: torch.Tensor,
    k: torch.Tensor,
    gamma_q: torch.Tensor,
    gamma_k: torch.Tensor,
    scale_q: torch.Tensor | None = None,
    scale_k: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The four bilinear terms whose sum is `⟨q̂_t, k̂_s⟩` (unscaled, unmasked).

    `q, k: [batch, pos, head, d_head]` are the signals before the shear, `gamma_*: [head]`.
    Returns `[batch, head, q_pos, k_pos]` tensors keyed by `TERM_NAMES`:
    `(1+γq)(1+γk)⟨q_t,k_s⟩ − (1+γq)γk⟨q_t,k_{s−1}⟩ − γq(1+γk)⟨q_{t−1},k_s⟩ + γqγk⟨q_{t−1},k_{s−1}⟩`.
    With γq = γk = γ these are the paper's coefficients. The identity holds when nothing rotates
    the sheared signal afterwards (non-rotary or post-RoPE); with pre-RoPE placement the previous
    vectors must be rotated at the current position, as `analysis.tracing` does.
    `scale_q`, `scale_k: [head]` multiply the filtered signals after the shear (the gain
    normalisation and a learned temperature, `MomentumAttention.scale_q`); every term carries them.
    """
    q_prev, k_prev = previous(q), previous(k)
    scale = torch.ones_like(gamma_q)
    if scale_q is not None:
        scale = scale * scale_q
    if scale_k is not None:
        scale = scale * scale_k

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return einsum(a, b, "batch q_pos head d, batch k_pos head d -> batch head q_pos k_pos")

    def coeff(c: torch.Tensor) -> torch.Tensor:
        return (c * scale)[:, None, None]

    return {
        "current_current": coeff((1 + gamma_q) * (1 + gamma_k)) * dot(q, k),
        "current_prev_key": coeff(-(1 + gamma_q) * gamma_k) * dot(q, k_prev),
        "prev_query_current": coeff(-gamma_q * (1 + gamma_k)) * dot(q_prev, k),
        "prev_prev": coeff(gamma_q * gamma_k) * dot(q_prev, k_prev),
    }
