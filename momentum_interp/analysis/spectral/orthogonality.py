"""Band orthogonality: the paper's "orthogonality theorem" says that with RoPE the low ("DC",
semantic) and high ("AC", mechanistic) bands of the sheared queries/keys separate. Two readings
(docs/maths.md, "Band orthogonality"): (i) bands along the sequence axis, split at a cutoff ω;
we measure how much of the score energy the cross-band terms carry; (ii) bands over the rotary
frequency pairs within each head's channels (`high_frequency_channels`), which split the score
into two parts with no cross terms by construction; what is measured there is which part
carries the induction margin (`analysis.tracing.mechanism`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from einops import einsum
from jaxtyping import Float, Int

from momentum_interp.analysis.spectral.spectra import (
    SIGNALS,
    cache_signals,
    frequencies,
    hook_names,
)
from momentum_interp.architecture import model_label
from momentum_interp.model.rotary import rotary_frequencies

BAND_TERMS = ("low_low", "low_high", "high_low", "high_high")
# The separation counts as shown when the cross-band share with RoPE is at most this fraction of
# both the non-rotary share and its own chance level (see `orthogonality_summary`).
SEPARATION_FACTOR = 0.5


def band_split(
    x: Float[torch.Tensor, ...], cutoff: float = math.pi / 2, dim: int = 1
) -> tuple[Float[torch.Tensor, ...], Float[torch.Tensor, ...]]:
    """Split `x` along `dim` into (low, high): rfft, zero the other band, irfft.

    Low keeps `0 ≤ ω < cutoff` (DC included), high keeps `cutoff ≤ ω ≤ π`. No window: the two
    parts sum back to `x` exactly (up to rounding) and are orthogonal over the whole axis.
    """
    n_pos = x.shape[dim]
    spectrum = torch.fft.rfft(x, dim=dim)
    omega = torch.as_tensor(frequencies(n_pos), device=x.device)
    shape = [1] * x.ndim
    shape[dim] = -1
    low_mask = (omega < cutoff).view(shape)
    low = torch.fft.irfft(spectrum * low_mask, n=n_pos, dim=dim)
    high = torch.fft.irfft(spectrum * ~low_mask, n=n_pos, dim=dim)
    return low, high


def channel_frequencies(cfg) -> torch.Tensor:
    """Rotation frequency (radians per position) of each of a head's channels, `[d_head]`,
    float64: channels (j, j + rotary_dim/2) form rotary pair j (`rotary_frequencies`); channels
    past `rotary_dim` do not rotate (θ = 0). A model with learned positions gets the frequencies
    its channels would have under RoPE with its `rotary_dim` and base, so a control is split into
    the same channel groups."""
    theta = rotary_frequencies(cfg.rotary_dim, cfg.rotary_base)
    return torch.cat([theta, theta, torch.zeros(cfg.d_head - cfg.rotary_dim, dtype=theta.dtype)])


def high_frequency_channels(cfg) -> torch.Tensor:
    """`[d_head]` bool: the channels rotating faster than the median channel (for d_head =
    rotary_dim, the faster half of the rotary pairs): the high group of the frequency-pair
    reading; the rest is the low group. Whole pairs, so the split commutes with the rotation."""
    theta = channel_frequencies(cfg)
    return theta > theta.median()


def score_band_terms(
    q: Float[torch.Tensor, "batch pos head d_head"],
    k: Float[torch.Tensor, "batch pos head d_head"],
    cutoff: float = math.pi / 2,
) -> dict[str, Float[torch.Tensor, "batch head q_pos k_pos"]]:
    """The four band terms whose sum is `⟨q_t, k_s⟩` (unscaled, unmasked).

    `q, k: [batch, pos, head, d_head]` (the signals entering the scores). Returns
    `[batch, head, q_pos, k_pos]` tensors keyed by `BAND_TERMS`, query band first:
    `low_high[t, s] = ⟨q_low_t, k_high_s⟩`.
    """
    q_bands = dict(zip(("low", "high"), band_split(q, cutoff), strict=True))
    k_bands = dict(zip(("low", "high"), band_split(k, cutoff), strict=True))
    out = {}
    for term in BAND_TERMS:
        qb, kb = term.split("_")
        out[term] = einsum(
            q_bands[qb],
            k_bands[kb],
            "batch q_pos head d, batch k_pos head d -> batch head q_pos k_pos",
        )
    return out


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine between `a` and `b` per (sequence, head), flattened over pos and d_head → `[head]`."""
    dot = einsum(a, b, "batch pos head d, batch pos head d -> batch head")
    norm = a.square().sum(dim=(1, 3)).sqrt() * b.square().sum(dim=(1, 3)).sqrt()
    return torch.where(norm > 0, dot / norm.clamp(min=1e-300), torch.zeros_like(dot)).mean(0)


def band_orthogonality(
    model,
    tokens: Int[torch.Tensor, "batch pos"],
    layer: int,
    cutoff: float = math.pi / 2,
    label: str | None = None,
) -> pd.DataFrame:
    """Per head: do the low and high bands of the q/k entering the scores separate?

    The signals are the sheared q and k as they enter the scores (`hook_*_sheared`; for
    pre-RoPE rotary models the rotated `hook_rot_*`). Each is split at `cutoff` with
    `band_split`. Columns:

    - ``cos_q`` / ``cos_k``: cosine between low and high parts (flattened over pos and d_head per
      sequence, averaged). By Parseval this is 0 for *any* signal (disjoint frequency supports),
      so it checks the split, not the theorem.
    - ``low_share_q`` / ``low_share_k``: fraction of the signal's energy in the low band.
    - ``share_low_low`` … ``share_high_high``: each band term's share of
      `Σ_terms Σ_{s ≤ t} term[t, s]²` (causal entries, pooled over sequences).
    - ``cross_share`` = share_low_high + share_high_low: the quantity the theorem predicts small.
    - ``null_cross_share`` = `p_q(1−p_k) + (1−p_q)p_k` with `p = low_share`: the share expected if
      the bands' directions were unrelated (score energy ∝ product of band energies).
    """
    tokens = model.to_tokens(tokens)
    names = hook_names(model, layer)
    acts = cache_signals(model, tokens, [names[s]["scores"] for s in SIGNALS])
    q = acts[names["q"]["scores"]].double()
    k = acts[names["k"]["scores"]].double()
    n_seq, n_pos, n_heads, _ = q.shape

    terms = score_band_terms(q, k, cutoff)
    causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=q.device).tril()
    energy = {t: (v.square() * causal).sum(dim=(0, 2, 3)) for t, v in terms.items()}  # [head]
    total = sum(energy.values())
    shares = {t: (energy[t] / total).cpu().numpy() for t in BAND_TERMS}

    q_low, q_high = band_split(q, cutoff)
    k_low, k_high = band_split(k, cutoff)
    p_q = (q_low.square().sum(dim=(0, 1, 3)) / q.square().sum(dim=(0, 1, 3))).cpu().numpy()
    p_k = (k_low.square().sum(dim=(0, 1, 3)) / k.square().sum(dim=(0, 1, 3))).cpu().numpy()
    cos_q = _cosine(q_low, q_high).cpu().numpy()
    cos_k = _cosine(k_low, k_high).cpu().numpy()

    cfg = model.cfg
    gamma_q = model.gamma_q[layer].double().cpu().numpy()
    gamma_k = model.gamma_k[layer].double().cpu().numpy()
    return pd.DataFrame(
        {
            "label": label if label is not None else model_label(model),
            "rotary": cfg.positional_embedding_type == "rotary",
            "placement": cfg.shear_placement,
            "layer": layer,
            "head": np.arange(n_heads),
            "gamma_q": gamma_q,
            "gamma_k": gamma_k,
            "cutoff": cutoff,
            "cos_q": cos_q,
            "cos_k": cos_k,
            "low_share_q": p_q,
            "low_share_k": p_k,
            **{f"share_{t}": shares[t] for t in BAND_TERMS},
            "cross_share": shares["low_high"] + shares["high_low"],
            "null_cross_share": p_q * (1 - p_k) + (1 - p_q) * p_k,
            "n_seq": n_seq,
            "n_pos": n_pos,
        }
    )


@dataclass
class BandShare:
    """Mean cross-band share of score energy over a group of heads, with its chance level (the
    share expected from the bands' energies alone)."""

    cross_share: float
    null_cross_share: float
    n_heads: int


# What `orthogonality_summary` can find, by code (`viz.captions` words them). With rotary and
# non-rotary heads: "separated" (the rotary share is at most `factor` times both the non-rotary
# share and its chance level), "not_lowered" (RoPE does not lower the share) or
# "lowered_too_little"; with rotary heads only, against chance: "separated_vs_chance" or
# "not_separated_vs_chance"; with non-rotary heads only: "untested"; no heads: "no_heads".
OUTCOMES = (
    "separated",
    "not_lowered",
    "lowered_too_little",
    "separated_vs_chance",
    "not_separated_vs_chance",
    "untested",
    "no_heads",
)


@dataclass
class Separation:
    """What the band-orthogonality table measured, against what the paper predicts: the mean
    shares of rotary and non-rotary heads (None where there are none), the outcome (`OUTCOMES`)
    and the largest |cos| between a signal's low and high parts."""

    outcome: str
    cutoff: float | None = None
    rotary: BandShare | None = None
    plain: BandShare | None = None
    max_abs_cos: float | None = None
    factor: float = SEPARATION_FACTOR

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def orthogonality_summary(df: pd.DataFrame) -> Separation:
    """The separation a band-orthogonality table shows: `cross_share` (and its chance level
    `null_cross_share`) averaged over the rows of rotary and of non-rotary models. The predicted
    separation counts as shown when the rotary share is at most `SEPARATION_FACTOR` times both
    the non-rotary share and its chance level."""
    if df.empty:
        return Separation("no_heads")
    groups = {flag: df[df["rotary"] == flag] for flag in (True, False)}
    shares = {
        flag: BandShare(float(g["cross_share"].mean()), float(g["null_cross_share"].mean()), len(g))
        for flag, g in groups.items()
        if len(g)
    }
    rotary, plain = shares.get(True), shares.get(False)
    factor = SEPARATION_FACTOR
    if rotary is not None and plain is not None:
        r, n, r0 = rotary.cross_share, plain.cross_share, rotary.null_cross_share
        if r <= factor * n and r <= factor * r0:
            outcome = "separated"
        else:
            outcome = "not_lowered" if r >= n else "lowered_too_little"
    elif rotary is not None:
        separated = rotary.cross_share <= factor * rotary.null_cross_share
        outcome = "separated_vs_chance" if separated else "not_separated_vs_chance"
    else:
        outcome = "untested"
    return Separation(
        outcome=outcome,
        cutoff=float(df["cutoff"].iloc[0]),
        rotary=rotary,
        plain=plain,
        max_abs_cos=float(np.nanmax(np.abs(df[["cos_q", "cos_k"]].to_numpy()))),
        factor=factor,
    )
