"""One-line descriptions of a momentum architecture, for traces, spectra, reports and model cards."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def _get(cfg: Any, name: str, default: Any) -> Any:
    return cfg.get(name, default) if isinstance(cfg, Mapping) else getattr(cfg, name, default)


def attention_variant(cfg: Any) -> str:
    """The attention variant of a `MomentumConfig` (or its dict): which signals are sheared, with
    what γ, and where, e.g. "momentum on q and k, γ = 1.0, post-rope"."""
    if _get(cfg, "smeared_key", False):
        return "smeared key (learned per-head α, keys only)"
    shear = _get(cfg, "shear", "qk")
    if shear == "none":
        return "no momentum"
    learned = "learned per-head γ, initial " if _get(cfg, "gamma_learnable", False) else "γ = "
    placement = _get(cfg, "shear_placement", "post_rope").replace("_", "-")
    signals = "q and k" if shear == "qk" else "keys only"
    return f"momentum on {signals}, {learned}{_get(cfg, 'gamma', 1.0)}, {placement}"


def describe(cfg: Any) -> str:
    """Depth, attention variant and positions, e.g. "1-layer, no momentum, rotary positions"."""
    positions = (
        "rotary" if _get(cfg, "positional_embedding_type", "standard") == "rotary" else "learned"
    )
    return f"{_get(cfg, 'n_layers', '?')}-layer, {attention_variant(cfg)}, {positions} positions"


def model_label(model) -> str:
    """`describe(cfg)` headed by the model's name; learned shears add the range of effective γ
    (`model.gamma_q`, `model.gamma_k`, non-zero entries)."""
    cfg = model.cfg
    label = f"{cfg.model_name}: {describe(cfg)}"
    if not (cfg.gamma_learnable or cfg.smeared_key):
        return label
    g = torch.cat([model.gamma_q.flatten(), model.gamma_k.flatten()])
    g = g[g != 0] if bool((g != 0).any()) else g
    lo, hi = float(g.min()), float(g.max())
    gammas = f"γ = {lo:.3g}" if math.isclose(lo, hi) else f"γ ∈ [{lo:.3g}, {hi:.3g}]"
    return f"{label}; effective {gammas}"
