"""Activation patching of the momentum signals, built on `transformer_lens.patching`.

The velocity `p_t = x_t − x_{t−1}` and the sheared signal `x̂_t = x_t + γ p_t` of queries and keys
are hooked per head and position (`blocks.{l}.attn.hook_{q,k}_{velocity,sheared}`). These
functions patch the clean run's signal into the corrupted run, one (layer, position, head) or one
(layer, head) at a time, and return the metric for each patch, as TransformerLens's
`get_act_patch_attn_head_*` do for q, k, v and z. Patching a velocity changes what the shear adds
(`γ p_t`); patching a sheared signal replaces what enters the attention scores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformer_lens import ActivationCache, patching

MOMENTUM_SIGNALS = ("q_velocity", "k_velocity", "q_sheared", "k_sheared")


def _check(model, signal: str) -> None:
    if signal not in MOMENTUM_SIGNALS:
        raise ValueError(f"signal must be one of {list(MOMENTUM_SIGNALS)}, got {signal!r}.")
    if not model.cfg.momentum_enabled:
        raise ValueError(
            f"This model does not filter queries or keys (shear='none', no smeared key), so its "
            f"{signal} changes nothing downstream; patch q, k, v or z instead "
            "(transformer_lens.patching.get_act_patch_attn_head_*)."
        )
    if signal.startswith("q") and model.cfg.shear != "qk":
        raise ValueError(
            f"Queries are not sheared in this model (shear={model.cfg.shear!r}), so {signal} "
            "does not reach the scores; patch k_velocity or k_sheared."
        )


def _patch(model, corrupted_tokens, clean_cache, patching_metric, signal, setter, axes):
    """Checked `generic_activation_patch` of one momentum signal."""
    _check(model, signal)
    return patching.generic_activation_patch(
        model,
        corrupted_tokens,
        clean_cache,
        patching_metric,
        patch_setter=setter,
        activation_name=signal,
        index_axis_names=axes,
    )


def get_act_patch_momentum_by_pos(
    model,
    corrupted_tokens: torch.Tensor,
    clean_cache: ActivationCache,
    patching_metric: Callable[[torch.Tensor], torch.Tensor],
    signal: str = "k_velocity",
) -> torch.Tensor:
    """Patch one momentum signal at each (layer, position, head): `[layer, pos, head]`."""
    setter, axes = patching.layer_pos_head_vector_patch_setter, ("layer", "pos", "head_index")
    return _patch(model, corrupted_tokens, clean_cache, patching_metric, signal, setter, axes)


def get_act_patch_momentum_all_pos(
    model,
    corrupted_tokens: torch.Tensor,
    clean_cache: ActivationCache,
    patching_metric: Callable[[torch.Tensor], torch.Tensor],
    signal: str = "k_velocity",
) -> torch.Tensor:
    """Patch one momentum signal of each (layer, head) at every position: `[layer, head]`."""
    setter, axes = patching.layer_head_vector_patch_setter, ("layer", "head_index")
    return _patch(model, corrupted_tokens, clean_cache, patching_metric, signal, setter, axes)
