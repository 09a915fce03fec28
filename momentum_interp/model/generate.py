"""Autoregressive generation with a key/value cache that also carries the previous raw q and k.

The shear at position t needs `x_{t−1}`, the signal *entering* the shear at the previous position
(rotated for post-RoPE placement, raw for pre-RoPE), so each layer keeps the last query and key
beside its keys and values. Each new chunk is sheared against them and rotated at its true
positions; cached and uncached generation then compute the same logits (tested to 1e-5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import einsum
from tqdm.auto import tqdm
from transformer_lens.utilities import sample_logits

from momentum_interp.model.components import add_bias
from momentum_interp.model.shear import fused_shear


@dataclass
class LayerKVCache:
    """One layer's cache: `keys`/`values: [batch, pos, head, d_head]` as they enter the scores,
    `last_q`/`last_k: [batch, 1, head, d_head]` as they entered the shear at the last position."""

    keys: torch.Tensor
    values: torch.Tensor
    last_q: torch.Tensor
    last_k: torch.Tensor


def _filter_chunk(
    attn, x: torch.Tensor, last: torch.Tensor | None, gamma: torch.Tensor, offset: int
):
    """Rotate and shear a chunk at positions `offset, ...` against the previous signal `last`;
    returns (filtered chunk, the chunk's last signal as it entered the shear)."""
    post_rope = attn.rotary is not None and attn.cfg.shear_placement == "post_rope"
    if post_rope:
        x = attn.rotary(x, offset)
    entering = x
    full = x if last is None else torch.cat([last, x], dim=1)
    x = fused_shear(full, gamma.to(x.dtype))[:, full.shape[1] - x.shape[1] :]
    if attn.rotary is not None and not post_rope:
        x = attn.rotary(x, offset)
    return x, entering[:, -1:]


def _attention_step(
    attn, x: torch.Tensor, cache: LayerKVCache | None, offset: int
) -> tuple[torch.Tensor, LayerKVCache]:
    """`x: [batch, new_pos, d_model]` (normalised) at positions `offset, ...` → output, new cache."""
    q = add_bias(einsum(x, attn.W_Q, "b p m, h m d -> b p h d"), attn.b_Q)
    k = add_bias(einsum(x, attn.W_K, "b p m, h m d -> b p h d"), attn.b_K)
    v = add_bias(einsum(x, attn.W_V, "b p m, h m d -> b p h d"), attn.b_V)
    q, last_q = _filter_chunk(
        attn, q, None if cache is None else cache.last_q, attn.gamma_q(), offset
    )
    k, last_k = _filter_chunk(
        attn, k, None if cache is None else cache.last_k, attn.gamma_k(), offset
    )
    if attn.rescales():
        q = q * attn.scale_q().to(q.dtype)[:, None]
        k = k * attn.scale_k().to(k.dtype)[:, None]
    if cache is not None:
        k, v = torch.cat([cache.keys, k], dim=1), torch.cat([cache.values, v], dim=1)
    n_new, n_all = q.shape[1], k.shape[1]
    key_pos = torch.arange(n_all, device=q.device)
    query_pos = torch.arange(offset, offset + n_new, device=q.device)
    mask = key_pos[None, :] <= query_pos[:, None]  # [new_pos, all_pos]
    scores = einsum(q, k, "b q h d, b k h d -> b h q k") / math.sqrt(attn.cfg.d_head)
    pattern = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    z = einsum(pattern, v, "b h q k, b k h d -> b q h d")
    out = add_bias(einsum(z, attn.W_O, "b p h d, h d m -> b p m"), attn.b_O)
    return out, LayerKVCache(k, v, last_q, last_k)


def forward_with_cache(
    model, tokens: torch.Tensor, caches: list[LayerKVCache] | None
) -> tuple[torch.Tensor, list[LayerKVCache]]:
    """Logits `[batch, new_pos, d_vocab]` of `tokens` following the cached prefix, and new caches."""
    offset = 0 if caches is None else caches[0].keys.shape[1]
    resid = model.embed(tokens)
    if model.cfg.positional_embedding_type == "standard":
        resid = resid + model.pos_embed.W_pos[offset : offset + tokens.shape[1]]
    new_caches = []
    for layer, block in enumerate(model.blocks):
        out, cache = _attention_step(
            block.attn, block.ln1(resid), None if caches is None else caches[layer], offset
        )
        new_caches.append(cache)
        resid = resid + out
        if not model.cfg.attn_only:
            resid = resid + block.mlp(block.ln2(resid))
    return model.unembed(model.ln_final(resid)), new_caches


@torch.no_grad()
def generate(
    model,
    input: str | Sequence | torch.Tensor = "",
    max_new_tokens: int = 10,
    stop_at_eos: bool = True,
    eos_token_id: int | None = None,
    do_sample: bool = True,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    freq_penalty: float = 0.0,
    use_past_kv_cache: bool = True,
    prepend_bos: bool | None = None,
    return_type: str | None = "input",
    verbose: bool = True,
    output_logits: bool = False,
):
    """HookedTransformer.generate: sample `max_new_tokens` tokens (greedy with `do_sample=False`).

    Returns text when given text (or `return_type="str"`), else tokens `[batch, pos + new]`; with
    `output_logits`, also the logits that chose each new token, `[batch, new, d_vocab]`. The cached
    path does not fire hooks; `use_past_kv_cache=False` reruns the full forward (hooks fire).
    """
    if return_type not in ("input", "str", "tokens", None):
        raise ValueError(f"return_type must be 'input', 'str' or 'tokens', got {return_type!r}.")
    tokens = model.to_tokens(input, prepend_bos=prepend_bos)
    if tokens.shape[1] + max_new_tokens > model.cfg.n_ctx:
        raise ValueError(
            f"{tokens.shape[1]} prompt tokens + max_new_tokens={max_new_tokens} exceed the context "
            f"n_ctx={model.cfg.n_ctx}; shorten the prompt or generate fewer tokens."
        )
    if stop_at_eos and eos_token_id is None and model.tokenizer is not None:
        eos_token_id = model.tokenizer.eos_token_id
    stop_at_eos = stop_at_eos and eos_token_id is not None
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    caches, new_logits, chunk = None, [], tokens
    for _ in tqdm(range(max_new_tokens), disable=not verbose, desc="generate"):
        if use_past_kv_cache:
            logits, caches = forward_with_cache(model, chunk, caches)
        else:
            logits = model(tokens)
        final = logits[:, -1]
        new_logits.append(final)
        if do_sample:
            next_token = sample_logits(
                final, top_k, top_p, temperature, freq_penalty, tokens=tokens
            )
        else:
            next_token = final.argmax(-1)
        if stop_at_eos:
            next_token = torch.where(finished, eos_token_id, next_token)
            finished |= next_token == eos_token_id
        chunk = next_token[:, None].to(tokens.device)
        tokens = torch.cat([tokens, chunk], dim=1)
        if stop_at_eos and finished.all():
            break
    as_text = return_type == "str" or (return_type == "input" and isinstance(input, str))
    result = model.to_string(tokens) if as_text else tokens
    if as_text and isinstance(input, str):
        result = result[0]
    return (result, torch.stack(new_logits, dim=1)) if output_logits else result
