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

Any TransformerLens model works (`protocol.TLModel`; a TransformerBridge in compatibility mode):
without momentum its slider starts at γ = 0 and shows what the shear of
`what_if.what_if_shear_hooks` (after RoPE, or on q and k directly with learned positions) would
do. The four terms must rebuild the model's own `hook_attn_scores`, or the model is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import einsum
from jaxtyping import Float, Int

from momentum_interp.analysis.heads import induction_heads_to_trace
from momentum_interp.analysis.protocol import TLModel, has_momentum_attention
from momentum_interp.analysis.scoring import repeated_random_tokens
from momentum_interp.analysis.tracing.terms import signal_hook_names
from momentum_interp.defaults import DEFAULT_SEED
from momentum_interp.model.inputs import check_tokens, str_tokens
from momentum_interp.model.shear import previous, rms_gain

# Longest sequence the page takes: it holds [layer, head, 4, pos, pos] floats.
MAX_POS = 256

# The four dot products, in the order of `shear.TERM_NAMES` (current_current, current_prev_key,
# prev_query_current, prev_prev).
DOTS = ("qₜ·kₛ", "qₜ·kₛ₋₁", "qₜ₋₁·kₛ", "qₜ₋₁·kₛ₋₁")


def coefficients(gamma_q, gamma_k, shear_norm: bool = False) -> tuple:
    """The coefficient of each of `DOTS` in the score at shears `(γq, γk)` (floats or tensors);
    a gain-normalised shear divides them by `rms_gain(γq) · rms_gain(γk)`."""
    scale: float | torch.Tensor = 1.0
    if shear_norm:
        gain = rms_gain(torch.as_tensor(gamma_q)) * rms_gain(torch.as_tensor(gamma_k))
        scale = float(1.0 / gain) if gain.ndim == 0 else 1.0 / gain
    return (
        scale * (1 + gamma_q) * (1 + gamma_k),
        -scale * (1 + gamma_q) * gamma_k,
        -scale * gamma_q * (1 + gamma_k),
        scale * gamma_q * gamma_k,
    )


def scores_from_dots(
    dots: Float[torch.Tensor, "*head 4 q_pos k_pos"], gamma_q, gamma_k, shear_norm: bool = False
) -> Float[torch.Tensor, "*head q_pos k_pos"]:
    """Scores `[..., q_pos, k_pos]` from `dots: [..., 4, q_pos, k_pos]` at shears that are
    scalars or broadcast against the scores (e.g. `[layer, head, 1, 1]`), unmasked; the same sum
    the page computes in JavaScript."""
    gamma_q, gamma_k = (torch.as_tensor(g, dtype=dots.dtype) for g in (gamma_q, gamma_k))
    coeffs = coefficients(gamma_q, gamma_k, shear_norm)
    return sum(c * dots[..., i, :, :] for i, c in enumerate(coeffs))


def causal_softmax(
    scores: Float[torch.Tensor, "*batch q_pos k_pos"],
) -> Float[torch.Tensor, "*batch q_pos k_pos"]:
    """Attention pattern from scores `[..., pos, pos]`: keys after the query masked out."""
    n_pos = scores.shape[-1]
    causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)


def attn_scale(cfg) -> float:
    """What the model divides `q·k` by: TransformerLens's `attn_scale` (−1 meaning √d_head)."""
    if not getattr(cfg, "use_attn_scale", True):
        return 1.0
    scale = getattr(cfg, "attn_scale", -1.0)
    return scale if scale > 0 else math.sqrt(cfg.d_head)


def score_dots(model: TLModel, cache, layer: int) -> Float[torch.Tensor, "head 4 q_pos k_pos"]:
    """The four dot products of every head of one layer, `[head, 4, q_pos, k_pos]` (sequence 0
    of the cache, float64, divided by the model's `attn_scale` and, for a learned temperature,
    multiplied by it; a gain-normalised shear's γ-dependent factor is in `coefficients`). Under grouped-query attention each head uses its group's keys."""
    q_name, k_name = signal_hook_names(model, layer)
    q = cache[q_name][0:1].detach().to(torch.float64)  # [1, pos, head, d_head]
    k = cache[k_name][0:1].detach().to(torch.float64)
    if q.ndim != 4:
        raise ValueError(
            f"{q_name} is {tuple(q.shape)}, not [batch, pos, head, d_head]; on a "
            "TransformerBridge call enable_compatibility_mode() first."
        )
    k = k.repeat_interleave(q.shape[2] // k.shape[2], dim=2)
    q_prev, k_prev = previous(q), previous(k)
    cfg = model.cfg if has_momentum_attention(model) else None  # a momentum model's config
    attn = model.blocks[layer].attn
    if cfg is not None and attn.rotary is not None and cfg.shear_placement == "pre_rope":
        # R_t(x_t + γ(x_t − x_{t−1})): each slot rotated at its own position.
        q, q_prev, k, k_prev = (attn.rotary(x) for x in (q, q_prev, k, k_prev))
    pairs = ((q, k), (q, k_prev), (q_prev, k), (q_prev, k_prev))
    dots = torch.stack([einsum(a[0], b[0], "q h d, k h d -> h q k") for a, b in pairs], dim=1)
    if cfg is not None and cfg.learned_temperature:  # γ-free: folded into the dots
        dots = dots * attn.log_temperature.detach().exp().double()[:, None, None, None]
    return dots / attn_scale(model.cfg)


def slider_shear(model: TLModel) -> str:
    """Which signals the slider's γ shears: keys only for keys-only and smeared-key models."""
    cfg = model.cfg
    return "k" if getattr(cfg, "smeared_key", False) or getattr(cfg, "shear", None) == "k" else "qk"


# What the slider's pattern is, by model (`slider_kind`; `viz.captions` words it): "what_if" (no
# momentum attention: the shear `what_if.what_if_shear_hooks` would apply), "smeared_key" (the
# keys-only shear γ = α − 1 of a learned smear), "no_shear" (trained with shear="none": the
# what-if shear) or "own_shear" (the model's own γ).
SLIDER_KINDS = ("what_if", "smeared_key", "no_shear", "own_shear")


def slider_kind(model: TLModel) -> str:
    """Which of `SLIDER_KINDS` the slider shows for this model."""
    if not has_momentum_attention(model):
        return "what_if"
    cfg = model.cfg  # a MomentumConfig: the check above narrows the model
    if cfg.smeared_key:
        return "smeared_key"
    return "no_shear" if cfg.shear == "none" else "own_shear"


@dataclass
class Opening:
    """Where the page opens for one model: the top induction head by `score`'s ranking
    (`heads.induction_heads_to_trace`, the rule every trace uses) at the query whose induction
    key s* it attends to most; with that head's mean attention on s* over all induction queries
    and its median query, so the opening view can be checked against a typical one. Without
    induction queries (no token repeats) it opens on the last query and `mean` is None."""

    layer: int
    head: int
    query: int
    attention: float | None  # the head's attention on s* at `query`
    mean: float | None  # mean attention on s* over every query with an induction key
    median_query: int | None  # the query whose attention on s* is the median
    n_queries: int  # queries with an induction key

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def opening_view(
    dots: Float[torch.Tensor, "4 pos pos"],
    gamma_q: float,
    gamma_k: float,
    shear_norm: bool,
    keys: Sequence[int],
) -> tuple[int, float | None, float | None, int | None, int]:
    """`(query, attention, mean, median query, n_queries)` of one head from its
    `dots: [4, pos, pos]` at its own shear, `keys` the induction key per query (−1 if none)."""
    pattern = causal_softmax(scores_from_dots(dots, gamma_q, gamma_k, shear_norm))
    queries = [t for t, s in enumerate(keys) if s >= 0]
    if not queries:
        return len(keys) - 1, None, None, None, 0
    on_star = pattern[queries, [keys[t] for t in queries]]  # [n_queries]
    order = on_star.argsort().tolist()
    best = order[-1]
    return (
        queries[best],
        float(on_star[best]),
        float(on_star.mean()),
        queries[order[(len(order) - 1) // 2]],
        len(queries),
    )


@dataclass
class ExplorerModel:
    """One model's data: `dots: [layer, head, 4, pos, pos]`, slider start `gamma: [layer, head]`,
    whether its shear is gain-normalised (the page then divides by the RMS gain at any γ), the
    view the page opens on, and what the slider's pattern is (`slider`, one of `SLIDER_KINDS`,
    with the facts its caption states: the model's class, rotary or not, its depth)."""

    name: str
    shear: str
    gamma: Float[np.ndarray, "layer head"]
    dots: Float[np.ndarray, "layer head 4 pos pos"]
    opening: Opening
    slider: str
    model_class: str
    rotary: bool
    n_layers: int
    shear_norm: bool = False

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shear": self.shear,
            "gamma": self.gamma.tolist(),
            "dots": self.dots.tolist(),
            "opening": self.opening.to_dict(),
            "slider": self.slider,
            "model_class": self.model_class,
            "rotary": self.rotary,
            "n_layers": self.n_layers,
            "shear_norm": self.shear_norm,
        }


@dataclass
class ExplorerData:
    """Everything the explorer page shows, for one token sequence and several models; `seed`
    drew the sequence (repeated random tokens), None when it was given."""

    tokens: list[int]
    str_tokens: list[str]
    induction_keys: list[int]  # s* per query position, −1 where the token has not occurred yet
    models: list[ExplorerModel]
    seed: int | None = None

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
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


def default_tokens(model: TLModel, seed: int = DEFAULT_SEED) -> Int[torch.Tensor, "1 pos"]:
    """`[1, pos]` repeated random tokens (half the context or 16 tokens, then their repeat)."""
    half = max(2, min(16, model.cfg.n_ctx // 2, model.cfg.d_vocab))
    return repeated_random_tokens(model.cfg.d_vocab, half, 1, seed=seed)


def _own_gammas(model: TLModel) -> tuple[torch.Tensor, torch.Tensor]:
    """`(γq, γk)`, each `[layer, head]`: the model's own shear (zeros without momentum)."""
    if has_momentum_attention(model):
        return model.gamma_q, model.gamma_k
    zeros = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    return zeros, zeros


def _check_rebuilds_scores(model: TLModel, cache, dots: torch.Tensor, shear_norm: bool) -> None:
    """The page's identity must hold at the model's own γ: the four terms rebuild its
    `hook_attn_scores` on causal entries. It fails for attention that is not `q̂·k̂ / scale`
    (e.g. ALiBi, soft-capped scores), which the page would show wrongly."""
    gamma_q, gamma_k = (g.double().cpu()[..., None, None] for g in _own_gammas(model))
    rebuilt = scores_from_dots(dots.cpu(), gamma_q, gamma_k, shear_norm)  # [layer, head, pos, pos]
    actual = torch.stack(
        [cache[f"blocks.{layer}.attn.hook_attn_scores"][0] for layer in range(len(dots))]
    )
    causal = torch.ones(actual.shape[-2:], dtype=torch.bool).tril()
    eps = torch.finfo(actual.dtype).eps
    actual = actual.detach().double().cpu()[..., causal]
    error = float((rebuilt[..., causal] - actual).abs().max())
    tolerance = max(1e-3, 10 * eps) * (1 + float(actual.abs().max()))
    if error > tolerance:
        raise ValueError(
            f"The explorer's four terms do not rebuild this model's attention scores (largest "
            f"difference {error:.3g}): its attention is not ⟨q̂_t, k̂_s⟩ / attn_scale (soft-capped "
            "scores, ALiBi or another position bias?), so the page would show wrong patterns."
        )


def explorer_model(model: TLModel, tokens: Int[torch.Tensor, "1 pos"], name: str) -> ExplorerModel:
    """One model's four dot products for every head on `tokens: [1, pos]`."""
    cfg = model.cfg
    names = {
        hook
        for layer in range(cfg.n_layers)
        for hook in (*signal_hook_names(model, layer), f"blocks.{layer}.attn.hook_attn_scores")
    }
    with torch.no_grad():
        _, cache = model.run_with_cache(
            tokens.to(model.W_E.device), names_filter=lambda n: n in names
        )
        dots = torch.stack([score_dots(model, cache, layer) for layer in range(cfg.n_layers)])
    shear_norm = bool(getattr(cfg, "shear_norm", False) and not getattr(cfg, "smeared_key", False))
    _check_rebuilds_scores(model, cache, dots, shear_norm)
    gamma_q, gamma = _own_gammas(model)  # [layer, head]; γk equals γq where queries are sheared
    layer, head = induction_heads_to_trace(model).top
    view = opening_view(
        dots[layer, head].cpu(),
        float(gamma_q[layer, head]),
        float(gamma[layer, head]),
        shear_norm,
        induction_keys(tokens[0].tolist()),
    )
    return ExplorerModel(
        name=name,
        shear=slider_shear(model),
        gamma=gamma.float().cpu().numpy(),
        dots=dots.float().cpu().numpy(),
        opening=Opening(layer, head, *view),
        slider=slider_kind(model),
        model_class=type(model).__name__,
        rotary=cfg.positional_embedding_type == "rotary",
        n_layers=cfg.n_layers,
        shear_norm=shear_norm,
    )


def explorer_data(
    models: Sequence[str] | Mapping[str, TLModel],
    tokens: Int[torch.Tensor, "1 pos"] | str | None = None,
    seed: int = DEFAULT_SEED,
) -> ExplorerData:
    """Explorer data for several models (bundled names, or `{name: model}`) on the same tokens:
    `[1, pos]` ids, text or space-separated ids (default: repeated random tokens of the first
    model's vocabulary, drawn with `seed`). The models must share one vocabulary."""
    if not models:
        raise ValueError("explorer_data needs at least one model.")
    if not isinstance(models, Mapping):
        from momentum_interp.model.transformer import HookedMomentumTransformer

        models = {name: HookedMomentumTransformer.from_pretrained(name) for name in models}
    first = next(iter(models.values()))
    sequence = first.to_tokens(tokens) if isinstance(tokens, str) else tokens
    vocab = {(m.cfg.d_vocab, m.tokenizer is None) for m in models.values()}
    if len(vocab) > 1:
        raise ValueError(
            f"the models must share one vocabulary to be compared on the same tokens; got "
            f"{ {name: m.cfg.d_vocab for name, m in models.items()} }."
        )
    drawn = sequence is None
    sequence = default_tokens(first, seed) if sequence is None else sequence
    if sequence.ndim != 2 or sequence.shape[0] != 1:
        raise ValueError(f"tokens must be one sequence, [1, pos]; got {tuple(sequence.shape)}.")
    if sequence.shape[1] > MAX_POS:
        raise ValueError(
            f"the explorer shows at most {MAX_POS} tokens (it holds every head's pos × pos "
            f"terms); got {sequence.shape[1]}."
        )
    for model in models.values():
        sequence = check_tokens(sequence, model.cfg.d_vocab, model.cfg.n_ctx).cpu()
    ids = sequence[0].tolist()
    return ExplorerData(
        tokens=ids,
        str_tokens=str_tokens(ids, first.tokenizer),
        induction_keys=induction_keys(ids),
        models=[explorer_model(m, sequence, name) for name, m in models.items()],
        seed=seed if drawn else None,
    )
