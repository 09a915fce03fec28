"""The per-head input fork of `use_split_qkv_input` / `use_attn_in` (TransformerLens semantics).

Each head reads its own copy of the block's residual input, `[batch, pos, head, d_model]`, before
`ln1`, so a hook can change what one head's query, key or value sees (path patching). This is an
analysis path only: with both flags off the block calls `attn(ln1(resid))` as usual.
"""

from __future__ import annotations

import torch
from einops import einsum, repeat
from transformer_lens.hook_points import HookPoint

from momentum_interp.model.components import add_bias


def _fork(resid: torch.Tensor, hook: HookPoint, n_heads: int) -> torch.Tensor:
    return hook(repeat(resid, "b p m -> b p h m", h=n_heads).clone())


def split_input_attention(block: torch.nn.Module, resid: torch.Tensor) -> torch.Tensor:
    """`resid: [batch, pos, d_model]` (the block's `hook_resid_pre`) → attention output."""
    attn, cfg = block.attn, block.attn.cfg
    if cfg.use_split_qkv_input:
        inputs = [_fork(resid, getattr(attn, f"hook_{x}_input"), cfg.n_heads) for x in "qkv"]
    else:
        inputs = [_fork(resid, attn.hook_attn_in, cfg.n_heads)] * 3
    q_in, k_in, v_in = (block.ln1(x) for x in inputs)
    q = attn.hook_q(add_bias(einsum(q_in, attn.W_Q, "b p h m, h m d -> b p h d"), attn.b_Q))
    k = attn.hook_k(add_bias(einsum(k_in, attn.W_K, "b p h m, h m d -> b p h d"), attn.b_K))
    v = attn.hook_v(add_bias(einsum(v_in, attn.W_V, "b p h m, h m d -> b p h d"), attn.b_V))
    return attn.attend(q, k, v)
