"""Data of the interactive circuit explorer: each head's score split into four γ-free dot products.

With a layer's inputs held fixed, its unsheared signals q and k are fixed, and a head's score is
a quadratic in the shear, `⟨q̂_t, k̂_s⟩ = (1+γq)(1+γk) A − (1+γq)γk B − γq(1+γk) C + γqγk D`, with
`A = ⟨q_t, k_s⟩`, `B = ⟨q_t, k_{s−1}⟩`, `C = ⟨q_{t−1}, k_s⟩`, `D = ⟨q_{t−1}, k_{s−1}⟩` (scaled by
`1/√d_head`; for pre-RoPE shear each slot is rotated at its own position). So the page can
recompute scores and softmax for any γ without the model. The slider's γ shears q and k ("qk")
or keys only ("k", keys-only momentum and the smeared key, whose `α k_t + (1−α) k_{t−1}` is the
shear γ = α − 1); it starts at each head's own γ. For a 1-layer model the pattern at γ is the
model's own pattern run with that γ; for a deeper model it is the layer's pattern with its
inputs frozen (earlier layers keep their γ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import einsum

from momentum_interp.analysis.scoring import repeated_random_tokens
from momentum_interp.model.inputs import str_tokens
from momentum_interp.model.shear import previous, rms_gain

# Longest sequence the page takes: it holds [layer, head, 4, pos, pos] floats.
MAX_POS = 256

# The four dot products, in the order of `shear.TERM_NAMES` (current_current, current_prev_key,
# prev_query_current, prev_prev).
DOTS = ("q_t·k_s", "q_t·k_s−1", "q_t−1·k_s", "q_t−1·k_s−1")


def coefficients(
    gamma_q: float, gamma_k: float, shear_norm: bool = False, temperature: float = 1.0
) -> tuple[float, float, float, float]:
    """The coefficient of each of `DOTS` in the score at shears `(γq, γk)`; a gain-normalised
    shear divides by `rms_gain(γq) · rms_gain(γk)`, a learned temperature multiplies."""
    scale = temperature
    if shear_norm:
        scale /= float(rms_gain(torch.tensor(gamma_q)) * rms_gain(torch.tensor(gamma_k)))
    return (
        scale * (1 + gamma_q) * (1 + gamma_k),
        -scale * (1 + gamma_q) * gamma_k,
        -scale * gamma_q * (1 + gamma_k),
        scale * gamma_q * gamma_k,
    )


def scores_from_dots(
    dots: torch.Tensor, gamma_q, gamma_k, shear_norm: bool = False, temperature: float = 1.0
) -> torch.Tensor:
    """Scores `[..., q_pos, k_pos]` from `dots: [..., 4, q_pos, k_pos]` at scalar shears
    (unmasked); the same sum the page computes in JavaScript."""
    coeffs = coefficients(float(gamma_q), float(gamma_k), shear_norm, float(temperature))
    return sum(c * dots[..., i, :, :] for i, c in enumerate(coeffs))


def causal_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Attention pattern from scores `[..., pos, pos]`: keys after the query masked out."""
    n_pos = scores.shape[-1]
    causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)


def signal_names(model, layer: int) -> tuple[str, str]:
    """The hooks holding the q and k the shear acts on (for pre-RoPE: the raw ones, rotated later)."""
    cfg, prefix = model.cfg, f"blocks.{layer}.attn."
    if cfg.positional_embedding_type == "rotary" and cfg.shear_placement == "post_rope":
        return prefix + "hook_rot_q", prefix + "hook_rot_k"
    return prefix + "hook_q", prefix + "hook_k"


def score_dots(model, cache, layer: int) -> torch.Tensor:
    """The four dot products of every head of one layer, `[head, 4, q_pos, k_pos]` (sequence 0
    of the cache, float64, scaled by `1/√d_head`)."""
    attn = model.blocks[layer].attn
    q_name, k_name = signal_names(model, layer)
    q = cache[q_name][0:1].detach().to(torch.float64)  # [1, pos, head, d_head]
    k = cache[k_name][0:1].detach().to(torch.float64)
    q_prev, k_prev = previous(q), previous(k)
    if attn.rotary is not None and model.cfg.shear_placement == "pre_rope":
        # R_t(x_t + γ(x_t − x_{t−1})): each slot rotated at its own position.
        q, q_prev, k, k_prev = (attn.rotary(x) for x in (q, q_prev, k, k_prev))
    pairs = ((q, k), (q, k_prev), (q_prev, k), (q_prev, k_prev))
    dots = [einsum(a[0], b[0], "q h d, k h d -> h q k") for a, b in pairs]
    return torch.stack(dots, dim=1) / math.sqrt(model.cfg.d_head)


def slider_shear(model) -> str:
    """Which signals the slider's γ shears: keys only for keys-only and smeared-key models."""
    cfg = model.cfg
    return "k" if cfg.smeared_key or cfg.shear == "k" else "qk"


def what_if(model, name: str) -> str:
    """One line saying what the slider's pattern is for this model."""
    cfg = model.cfg
    if cfg.smeared_key:
        kind = (
            "A smeared key α k_t + (1−α) k_t−1 is the keys-only shear γ = α − 1: the slider "
            "starts at each head's learned α − 1 and moves that key filter."
        )
    elif cfg.shear == "none":
        kind = (
            "This model was trained without a shear: the slider shows what shearing its q and k "
            "by γ would do to this head (γ = 0 is the model itself)."
        )
    else:
        sheared = "keys only" if cfg.shear == "k" else "queries and keys"
        kind = f"The slider sets the shear γ of {sheared}; it starts at the head's own γ."
    if cfg.n_layers == 1:
        return (
            kind
            + " For this 1-layer model the pattern at γ is the model's own pattern run with that γ."
        )
    return kind + (
        f" For this {cfg.n_layers}-layer model it is the layer's pattern with its inputs frozen "
        "(earlier layers keep their own γ)."
    )


@dataclass
class ExplorerModel:
    """One model's data: `dots: [layer, head, 4, pos, pos]`, slider start `gamma: [layer, head]`,
    whether the shear is gain-normalised, and each head's learned temperature (ones if none)."""

    name: str
    shear: str
    gamma: np.ndarray
    dots: np.ndarray
    note: str
    shear_norm: bool
    temperature: np.ndarray

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shear": self.shear,
            "gamma": self.gamma.tolist(),
            "dots": self.dots.tolist(),
            "note": self.note,
            "shear_norm": self.shear_norm,
            "temperature": self.temperature.tolist(),
        }


@dataclass
class ExplorerData:
    """Everything the explorer page shows, for one token sequence and several models."""

    tokens: list[int]
    str_tokens: list[str]
    induction_keys: list[int]  # s* per query position, −1 where the token has not occurred yet
    models: list[ExplorerModel]

    def to_dict(self) -> dict:
        return {
            "tokens": self.tokens,
            "str_tokens": self.str_tokens,
            "induction_keys": self.induction_keys,
            "dot_names": list(DOTS),
            "models": [m.to_dict() for m in self.models],
        }


def induction_keys(tokens: Sequence[int]) -> list[int]:
    """For each query t: `s′ + 1`, s′ the latest earlier position holding token t (−1 if none)."""
    last_seen: dict[int, int] = {}
    keys = []
    for t, token in enumerate(tokens):
        keys.append(last_seen[token] + 1 if token in last_seen else -1)
        last_seen[token] = t
    return keys


def default_tokens(model, seed: int = 0) -> torch.Tensor:
    """`[1, pos]` repeated random tokens (half the context or 16 tokens, then their repeat)."""
    half = max(2, min(16, model.cfg.n_ctx // 2, model.cfg.d_vocab))
    return repeated_random_tokens(model.cfg.d_vocab, half, 1, seed=seed)


def explorer_model(model, tokens: torch.Tensor, name: str) -> ExplorerModel:
    """One model's four dot products for every head on `tokens: [1, pos]`."""
    cfg = model.cfg
    names = {n for layer in range(cfg.n_layers) for n in signal_names(model, layer)}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(cfg.device), names_filter=lambda n: n in names)
        dots = torch.stack([score_dots(model, cache, layer) for layer in range(cfg.n_layers)])
    gamma = model.gamma_k  # [layer, head]: equals gamma_q where queries are sheared
    temperature = torch.stack(
        [
            block.attn.log_temperature.detach().exp()
            if cfg.learned_temperature
            else torch.ones(cfg.n_heads)
            for block in model.blocks
        ]
    )
    return ExplorerModel(
        name=name,
        shear=slider_shear(model),
        gamma=gamma.float().cpu().numpy(),
        dots=dots.float().cpu().numpy(),
        note=what_if(model, name),
        shear_norm=bool(cfg.shear_norm and not cfg.smeared_key),
        temperature=temperature.float().cpu().numpy(),
    )


def explorer_data(models: Mapping[str, object], tokens: torch.Tensor | None = None) -> ExplorerData:
    """Explorer data for several models on the same `tokens: [1, pos]` (default: repeated random
    tokens of the first model's vocabulary). The models must share one vocabulary."""
    if not models:
        raise ValueError("explorer_data needs at least one model.")
    first = next(iter(models.values()))
    vocab = {(m.cfg.d_vocab, m.tokenizer is None) for m in models.values()}
    if len(vocab) > 1:
        raise ValueError(
            f"the models must share one vocabulary to be compared on the same tokens; got "
            f"{ {name: m.cfg.d_vocab for name, m in models.items()} }."
        )
    tokens = default_tokens(first) if tokens is None else tokens
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        raise ValueError(f"tokens must be one sequence, [1, pos]; got {tuple(tokens.shape)}.")
    if tokens.shape[1] > MAX_POS:
        raise ValueError(
            f"the explorer shows at most {MAX_POS} tokens (it holds every head's pos × pos "
            f"terms); got {tokens.shape[1]}."
        )
    for model in models.values():
        tokens = model.to_tokens(tokens).cpu()  # checks ids and length against the model
    ids = tokens[0].tolist()
    return ExplorerData(
        tokens=ids,
        str_tokens=str_tokens(ids, first.tokenizer),
        induction_keys=induction_keys(ids),
        models=[explorer_model(m, tokens, name) for name, m in models.items()],
    )
