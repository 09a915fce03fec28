""" "What if this head had momentum?": the paper's shear applied at inference, as forward hooks, to
any TransformerLens model without momentum (a TransformerBridge, or one of ours with shear off).

Each selected head's query and key signal becomes `x_t + γ (x_t − x_{t−1})` (`shear.fused_shear`,
the maths our attention runs): after RoPE on rotary models (`hook_rot_q/k`, the paper's post-RoPE
placement), on `hook_q/k` directly with learned positions. Everything downstream (scores, pattern,
later layers, logits) follows, so any analysis run under `model.hooks(fwd_hooks=...)` sees the
sheared model. `tracing.terms.signal_hook_names` is where the explorer reads the signal a shear acts on.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from momentum_interp.analysis.protocol import TLModel
from momentum_interp.analysis.tracing.inputs import check_head
from momentum_interp.analysis.tracing.terms import signal_hook_names
from momentum_interp.model.shear import fused_shear

SHEARS = ("qk", "k")


def what_if_shear_hooks(
    model: TLModel,
    gamma: float,
    layer: int | None = None,
    head: int | None = None,
    shear: str = "qk",
) -> list[tuple[str, Callable]]:
    """Forward hooks that shear the queries and keys (`shear="qk"`, the paper) or the keys only
    (`"k"`) of one head, of one layer's heads, or of every head by `gamma`; γ = 0 is the model
    itself. Use `model.run_with_hooks(tokens, fwd_hooks=hooks)` or `with model.hooks(hooks): ...`.

    Refused on a model that already shears (change its own γ with `set_gamma`), and for one head's
    keys under grouped-query attention (its keys are shared with other heads)."""
    cfg = model.cfg
    if getattr(cfg, "momentum_enabled", False):
        raise ValueError(
            "This model already filters its queries or keys (momentum attention); its own γ per "
            "head is model.gamma_q / model.gamma_k. Change it with model.set_gamma(γ, layer, head) "
            "instead of adding a second shear."
        )
    if shear not in SHEARS:
        raise ValueError(f"shear must be one of {list(SHEARS)}, got {shear!r}.")
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not math.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number, got {gamma!r}.")
    check_head(model, layer, head)
    n_kv = getattr(cfg, "n_key_value_heads", None)
    if head is not None and n_kv not in (None, cfg.n_heads):
        raise ValueError(
            f"This model shares each key among {cfg.n_heads // n_kv} query heads (grouped-query "
            f"attention, n_key_value_heads={n_kv}), so one head's keys cannot be sheared alone; "
            "pass head=None to shear every head of the layer."
        )

    def apply(x: torch.Tensor, hook) -> torch.Tensor:  # x: [batch, pos, head, d_head]
        gammas = torch.zeros(x.shape[2], dtype=x.dtype, device=x.device)
        gammas[slice(None) if head is None else head] = gamma
        return fused_shear(x, gammas)

    layers = range(cfg.n_layers) if layer is None else [layer]
    hooks = []
    for index in layers:
        q_name, k_name = signal_hook_names(model, index)
        hooks += [(k_name, apply)] if shear == "k" else [(q_name, apply), (k_name, apply)]
    return hooks
