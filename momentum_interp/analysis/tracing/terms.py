"""The four-term decomposition of one head's attention score, and induction margins.

The head's score `⟨q̂_t, k̂_s⟩ / √d_head` splits into the four bilinear terms of
`shear.score_terms` (docs/maths.md, "The four-term score identity"), computed from the cached
signal that enters the shear: `hook_rot_q/k` for post-RoPE rotary models, `hook_q/k` otherwise.
With pre-RoPE placement the shear acts before the rotation, so the terms are `⟨R_t q_t,
R_s k_{s−1}⟩` etc. (each slot rotated at its own position); the coefficients are still those of
`score_terms`. On causal entries the terms sum to `hook_attn_scores` exactly. The margin of a
term at an induction query t (target key s* = s′ + 1) is `term[t, s*]` minus its mean over the
other causal keys, or minus its value at one competing key: s′ itself (the earlier occurrence of
the query's own token) or the strongest other key (docs/maths.md, "Induction margins").
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int

from momentum_interp.model.shear import previous, score_terms


def causal_mask(n_pos: int, device) -> Bool[torch.Tensor, "q_pos k_pos"]:
    """`[q_pos, k_pos]` True on and below the diagonal (keys a query may attend to)."""
    return torch.ones(n_pos, n_pos, dtype=torch.bool, device=device).tril()


def signal_hook_names(model, layer: int) -> tuple[str, str]:
    """Names of the hooks holding the (query, key) signal the shear acts on: the rotated ones
    with RoPE, unless the model is one of ours with pre-RoPE placement (its raw q and k are
    sheared, then rotated). Any TransformerLens model: one without momentum counts as post-RoPE."""
    cfg, prefix = model.cfg, f"blocks.{layer}.attn."
    placement = getattr(cfg, "shear_placement", "post_rope")
    if cfg.positional_embedding_type == "rotary" and placement == "post_rope":
        return prefix + "hook_rot_q", prefix + "hook_rot_k"
    return prefix + "hook_q", prefix + "hook_k"


def head_filter(attn, heads: slice, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The selected heads' filter, detached: shears `gamma_q`, `gamma_k` and the factors
    `scale_q`, `scale_k` applied after them (gain normalisation, learned temperature), `[head]`."""
    return {
        name: getattr(attn, name)().detach()[heads].to(dtype)
        for name in ("gamma_q", "gamma_k", "scale_q", "scale_k")
    }


def term_coefficients(
    attn, heads: slice = slice(None), dtype=torch.float64
) -> dict[str, torch.Tensor]:
    """Per-head coefficient of each term, `[head]`, read off `score_terms` on unit signals (so
    the coefficient formula lives only in `shear.score_terms`)."""
    filt = head_filter(attn, heads, dtype)
    ones = torch.ones(1, 1, filt["gamma_q"].shape[0], 1, dtype=dtype, device=filt["gamma_q"].device)
    return {name: value[0, :, 0, 0] for name, value in score_terms(ones, ones, **filt).items()}


def terms_from_signals(
    attn,
    q: Float[torch.Tensor, "batch pos head d_head"],
    k: Float[torch.Tensor, "batch pos head d_head"],
    heads: slice = slice(None),
) -> dict[str, Float[torch.Tensor, "batch head q_pos k_pos"]]:
    """The four score terms, scaled by `1/√d_head`, `[batch, head, q_pos, k_pos]` (unmasked).

    `q, k: [batch, pos, head, d_head]` are the signals `signal_hook_names` names, for the heads
    `heads` of `attn` (the layer's `MomentumAttention`), whose filter they are decomposed by.
    Sequences must start at position 0 (the rotary angles are taken from the position index).
    """
    scale = math.sqrt(attn.cfg.d_head)
    if attn.rotary is None or attn.cfg.shear_placement == "post_rope":
        terms = score_terms(q, k, **head_filter(attn, heads, q.dtype))
        return {name: value / scale for name, value in terms.items()}
    # Pre-RoPE: R_t(x_t + γ(x_t − x_{t−1})) = (1+γ) R_t x_t − γ R_t x_{t−1}: each slot is rotated
    # at its own position, whichever raw vector it holds.
    rotate = attn.rotary
    signals = {
        "q": rotate(q),
        "q_prev": rotate(previous(q)),
        "k": rotate(k),
        "k_prev": rotate(previous(k)),
    }
    pairs = {
        "current_current": ("q", "k"),
        "current_prev_key": ("q", "k_prev"),
        "prev_query_current": ("q_prev", "k"),
        "prev_prev": ("q_prev", "k_prev"),
    }
    coeffs = term_coefficients(attn, heads, q.dtype)
    out = {}
    for name, (a, b) in pairs.items():
        dot = torch.einsum("bqhd,bkhd->bhqk", signals[a], signals[b])
        out[name] = coeffs[name][:, None, None] * dot / scale
    return out


def head_score_terms(
    model,
    cache,
    layer: int,
    head: int | None = None,
    channels: Bool[torch.Tensor, " d_head"] | None = None,
) -> dict[str, Float[torch.Tensor, "batch *head q_pos k_pos"]]:
    """The four scaled score terms of one head `[batch, q_pos, k_pos]` (or of every head,
    `[batch, head, q_pos, k_pos]`, when `head` is None) from an `ActivationCache` holding the
    layer's `signal_hook_names`, in float64. On causal entries they sum to `hook_attn_scores`.

    `channels: [d_head]` (bool) keeps only those channels of q and k: the terms' part carried by
    them. Whole rotary pairs commute with the rotation and the shear, so the parts of a split
    into pairs add up to the terms exactly."""
    attn = model.blocks[layer].attn
    q_name, k_name = signal_hook_names(model, layer)
    heads = slice(None) if head is None else slice(head, head + 1)
    with torch.no_grad():
        q, k = cache[q_name][:, :, heads], cache[k_name][:, :, heads]
        dtype = torch.float64  # one head's [batch, pos, pos] maps: cheap, and exact to compare
        q, k = q.to(dtype), k.to(dtype)
        if channels is not None:
            q, k = q * channels.to(q), k * channels.to(k)
        terms = terms_from_signals(attn, q, k, heads)
    return terms if head is None else {name: value[:, 0] for name, value in terms.items()}


def induction_keys(
    tokens: Int[torch.Tensor, "batch pos"], loss_mask: Bool[torch.Tensor, "batch pos"]
) -> tuple[Bool[torch.Tensor, "batch pos"], Int[torch.Tensor, "batch pos"]]:
    """`(query_mask, key_index)`, both `[batch, pos]`: the induction queries (loss_mask positions
    whose token occurred earlier) and their target key `s* = s′ + 1`, s′ the most recent earlier
    occurrence (−1 where t is not a query)."""
    n_pos = tokens.shape[1]
    pos = torch.arange(n_pos, device=tokens.device)
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & (pos[None, None, :] < pos[None, :, None])
    # Most recent earlier occurrence: the largest s′ < t with the same token.
    last = torch.where(earlier, pos[None, None, :], -1).amax(dim=-1)  # [batch, pos]
    query_mask = loss_mask.bool() & (last >= 0)
    key_index = torch.where(query_mask, last + 1, torch.full_like(last, -1))
    return query_mask, key_index


MARGIN_REFERENCES = ("mean_other", "earlier_occurrence", "strongest")


def strongest_competitor(
    scores: Float[torch.Tensor, "batch q_pos k_pos"], key_index: Int[torch.Tensor, "batch q_pos"]
) -> Int[torch.Tensor, "batch q_pos"]:
    """`[batch, q_pos]`: the causal key other than s* with the highest score `scores: [batch,
    q_pos, k_pos]` (the key the head would attend to most if not to s*); 0 where t has no other
    causal key."""
    n_pos = scores.shape[-1]
    keys = torch.arange(n_pos, device=scores.device)
    other = causal_mask(n_pos, scores.device) & (keys != key_index[..., None])
    return torch.where(other, scores, -torch.inf).argmax(dim=-1)


def competitors(scores: torch.Tensor, key_index: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """The keys an induction margin is taken against, by `MARGIN_REFERENCES` name: None for the
    mean of the other causal keys, s′ = s* − 1 (the earlier occurrence of the query's own token)
    and the strongest competitor; index tensors `[batch, q_pos]`."""
    return {
        "mean_other": None,
        "earlier_occurrence": key_index - 1,
        "strongest": strongest_competitor(scores, key_index),
    }


def margins(
    x: Float[torch.Tensor, "batch q_pos k_pos"],
    query_mask: Bool[torch.Tensor, "batch q_pos"],
    key_index: Int[torch.Tensor, "batch q_pos"],
    competitor: Int[torch.Tensor, "batch q_pos"] | None = None,
) -> Float[torch.Tensor, " query"]:
    """Per induction query: `x[t, s*]` minus the mean of `x[t, s]` over the other causal keys, or
    minus `x[t, competitor[t]]` when `competitor: [batch, q_pos]` (key indices) is given.

    `x: [batch, q_pos, k_pos]` (entries above the diagonal are ignored, so −inf masking is fine);
    returns a flat tensor over the queries in `query_mask` (row-major order)."""
    n_pos = x.shape[-1]
    causal = causal_mask(n_pos, x.device)
    x = torch.where(causal, x, torch.zeros((), dtype=x.dtype, device=x.device))
    target = x.gather(-1, key_index.clamp(min=0)[..., None])[..., 0]
    if competitor is not None:
        return (target - x.gather(-1, competitor.clamp(min=0)[..., None])[..., 0])[query_mask]
    row_sum = x.sum(dim=-1)  # [batch, q_pos]
    n_other = torch.arange(n_pos, device=x.device, dtype=x.dtype).expand_as(row_sum)  # t keys
    other_mean = (row_sum - target) / n_other.clamp(min=1)
    return (target - other_mean)[query_mask]


def induction_margins(
    terms: dict[str, Float[torch.Tensor, "batch q_pos k_pos"]],
    scores: Float[torch.Tensor, "batch q_pos k_pos"],
    query_mask: Bool[torch.Tensor, "batch q_pos"],
    key_index: Int[torch.Tensor, "batch q_pos"],
    competitor: Int[torch.Tensor, "batch q_pos"] | None = None,
) -> dict[str, Float[torch.Tensor, " query"]]:
    """Per-query margins of each term and of the full score (`"total"`), flat over queries,
    against the mean of the other keys or against `competitor` (as `margins`)."""
    out = {name: margins(value, query_mask, key_index, competitor) for name, value in terms.items()}
    dtype = next(iter(terms.values())).dtype
    out["total"] = margins(scores.to(dtype), query_mask, key_index, competitor)
    return out
