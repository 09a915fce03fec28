"""What the analyses need of a model: the TransformerLens surface that `HookedMomentumTransformer`
and TransformerLens's own `TransformerBridge` share, so head scores, rankings and the explorer run
on either; and the test for momentum attention, which only the four-term analyses need."""

from __future__ import annotations

from typing import Any, Protocol, TypeGuard, runtime_checkable

import torch
from transformer_lens.model_protocol import TransformerLensModel

from momentum_interp.model.attention import MomentumAttention
from momentum_interp.model.transformer import HookedMomentumTransformer


@runtime_checkable
class TLModel(TransformerLensModel, Protocol):
    """TransformerLens's model protocol (`cfg`, `run_with_cache`, `run_with_hooks`, `to_tokens`)
    plus a callable forward, `tokenizer` (None for integer-token models), `blocks`, and the
    stacked weights `W_E [d_vocab, d_model]`, `W_U [d_model, d_vocab]`,
    `W_V [layer, head, d_model, d_head]`, `W_O [layer, head, d_head, d_model]`."""

    tokenizer: Any

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    @property
    def blocks(self) -> Any: ...

    @property
    def W_E(self) -> torch.Tensor: ...

    @property
    def W_U(self) -> torch.Tensor: ...

    @property
    def W_V(self) -> torch.Tensor: ...

    @property
    def W_O(self) -> torch.Tensor: ...


def has_momentum_attention(model: TLModel) -> TypeGuard[HookedMomentumTransformer]:
    """Whether the model is ours and every block's attention is `MomentumAttention` (a per-head
    γ, the velocity and sheared-signal hooks), as opposed to e.g. a TransformerBridge's; where it
    is, the type checker knows the model's momentum fields (`cfg.shear`, `gamma_q`, ...)."""
    return isinstance(model, HookedMomentumTransformer) and all(
        isinstance(block.attn, MomentumAttention) for block in model.blocks
    )
