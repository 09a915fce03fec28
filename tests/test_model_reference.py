"""The model against an independent plain-PyTorch transformer written here.

The reference reads the same weights from the model's `state_dict` but computes everything with
its own loops and matmuls in float64: per-head projections, GPT-NeoX rotary (from conftest's
pair-by-pair `rope_reference`), the momentum shear / smeared key as explicit per-position
recurrences, causal softmax attention with 1/sqrt(d_head), LayerNorm/RMSNorm and GELU/ReLU MLPs.
Nothing from `momentum_interp.model` is used to compute expected values.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from float32 import forward_tol

from momentum_interp import HookedMomentumTransformer, MomentumConfig

# --------------------------------------------------------------------------- reference


def _norm(x: torch.Tensor, sd: dict, prefix: str, kind: str | None, eps: float) -> torch.Tensor:
    if kind is None:
        return x
    if kind == "LN":
        mean = x.sum(-1, keepdim=True) / x.shape[-1]
        centred = x - mean
        var = (centred * centred).sum(-1, keepdim=True) / x.shape[-1]
        return centred / torch.sqrt(var + eps) * sd[f"{prefix}.w"] + sd[f"{prefix}.b"]
    if kind == "RMS":
        ms = (x * x).sum(-1, keepdim=True) / x.shape[-1]
        return x / torch.sqrt(ms + eps) * sd[f"{prefix}.w"]
    raise AssertionError(kind)


def _two_tap_shear(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """`x̂_t = x_t + γ (x_t − x_{t−1})`, `x̂_0 = x_0`, for `x: [batch, pos, d]`."""
    out = x.clone()
    for t in range(1, x.shape[1]):
        out[:, t] = x[:, t] + gamma * (x[:, t] - x[:, t - 1])
    return out


def _smear(k: torch.Tensor, alpha: float) -> torch.Tensor:
    """Olsson et al.'s smeared key `k̃_t = α k_t + (1−α) k_{t−1}`, `k̃_0 = k_0`."""
    out = k.clone()
    for t in range(1, k.shape[1]):
        out[:, t] = alpha * k[:, t] + (1 - alpha) * k[:, t - 1]
    return out


def _rotate(x: torch.Tensor, cfg: MomentumConfig, rope) -> torch.Tensor:
    """Rotary on a single head `[batch, pos, d_head]` (`rope`: conftest's reference rotary)."""
    rotary_dim = cfg.rotary_dim if cfg.rotary_dim is not None else cfg.d_head
    return rope(x[:, :, None, :], rotary_dim, 10000.0)[:, :, 0, :]


def _softmax_causal(scores: torch.Tensor) -> torch.Tensor:
    n = scores.shape[-1]
    mask = torch.ones(n, n, dtype=torch.bool).triu(diagonal=1)  # key after query
    scores = scores.masked_fill(mask, -math.inf)
    e = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def reference_logits(
    rope,
    cfg: MomentumConfig,
    state_dict: dict,
    tokens: torch.Tensor,
    gamma_q: list[list[float]],
    gamma_k: list[list[float]],
    smear_logits: list[list[float]] | None = None,
) -> torch.Tensor:
    """Logits of the momentum transformer, written from the description alone (float64).

    `gamma_q[l][h]`, `gamma_k[l][h]`: the shear of each head's queries and keys (0 = untouched).
    `smear_logits[l][h]`: when given, keys are smeared with α = sigmoid(logit) instead of sheared.
    """
    sd = {k: v.detach().to(torch.float64) for k, v in state_dict.items()}
    n_pos = tokens.shape[1]
    x = sd["embed.W_E"][tokens]
    if cfg.positional_embedding_type == "standard":
        x = x + sd["pos_embed.W_pos"][:n_pos][None]
    rotary = cfg.positional_embedding_type == "rotary"
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}"
        h_in = _norm(x, sd, f"{p}.ln1", cfg.normalization_type, cfg.eps)
        attn_out = sd[f"{p}.attn.b_O"].expand_as(x).clone()
        for head in range(cfg.n_heads):
            a = f"{p}.attn"
            q = h_in @ sd[f"{a}.W_Q"][head] + sd[f"{a}.b_Q"][head]
            k = h_in @ sd[f"{a}.W_K"][head] + sd[f"{a}.b_K"][head]
            v = h_in @ sd[f"{a}.W_V"][head] + sd[f"{a}.b_V"][head]
            if rotary and cfg.shear_placement == "post_rope":
                q, k = _rotate(q, cfg, rope), _rotate(k, cfg, rope)
            q = _two_tap_shear(q, gamma_q[layer][head])
            if smear_logits is not None:
                alpha = 1.0 / (1.0 + math.exp(-smear_logits[layer][head]))
                k = _smear(k, alpha)
            else:
                k = _two_tap_shear(k, gamma_k[layer][head])
            if rotary and cfg.shear_placement == "pre_rope":
                q, k = _rotate(q, cfg, rope), _rotate(k, cfg, rope)
            scores = q @ k.transpose(-1, -2) / math.sqrt(cfg.d_head)
            z = _softmax_causal(scores) @ v
            attn_out = attn_out + z @ sd[f"{a}.W_O"][head]
        x = x + attn_out
        if not cfg.attn_only:
            h_in = _norm(x, sd, f"{p}.ln2", cfg.normalization_type, cfg.eps)
            pre = h_in @ sd[f"{p}.mlp.W_in"] + sd[f"{p}.mlp.b_in"]
            if cfg.act_fn == "gelu":
                post = 0.5 * pre * (1.0 + torch.erf(pre / math.sqrt(2.0)))
            else:
                post = torch.where(pre > 0, pre, torch.zeros_like(pre))
            x = x + post @ sd[f"{p}.mlp.W_out"] + sd[f"{p}.mlp.b_out"]
    x = _norm(x, sd, "ln_final", cfg.normalization_type, cfg.eps)
    return x @ sd["unembed.W_U"] + sd["unembed.b_U"]


def _zeros(cfg: MomentumConfig) -> list[list[float]]:
    return [[0.0] * cfg.n_heads for _ in range(cfg.n_layers)]


def _tokens(cfg: MomentumConfig, batch: int = 3, n_pos: int | None = None, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.d_vocab, (batch, n_pos or cfg.n_ctx), generator=gen)


POSITIONS = {
    "standard": dict(positional_embedding_type="standard"),
    "rotary": dict(positional_embedding_type="rotary"),
    "rotary_partial": dict(positional_embedding_type="rotary", d_head=8, rotary_dim=4),
}


# ------------------------------------------------------------------- the reference itself


def test_reference_is_not_trivially_agreeable(make_model, rope):
    """Sanity of the harness: the reference must notice a wrong gamma, a dropped bias or gain."""
    model = make_model(gamma=0.7, positional_embedding_type="rotary")
    tokens = _tokens(model.cfg)
    g = [[0.7] * 4, [0.7] * 4]
    good = reference_logits(rope, model.cfg, model.state_dict(), tokens, g, g)
    torch.testing.assert_close(model(tokens).double(), good, **forward_tol(model.cfg))
    wrong_gamma = reference_logits(
        rope, model.cfg, model.state_dict(), tokens, g, _zeros(model.cfg)
    )
    assert (wrong_gamma - good).abs().max() > 1e-3
    sd = dict(model.state_dict())
    sd["blocks.1.attn.b_K"] = torch.zeros_like(sd["blocks.1.attn.b_K"])
    no_bias = reference_logits(rope, model.cfg, sd, tokens, g, g)
    assert (no_bias - good).abs().max() > 1e-4


# ------------------------------------------------------------------------- momentum off


@pytest.mark.parametrize(
    ("position", "attn_only", "norm", "off"),
    list(itertools.product(POSITIONS, [True, False], ["LN", "RMS", None], ["none", "gamma0"])),
)
def test_momentum_off_matches_reference(make_model, rope, position, attn_only, norm, off):
    act_fn = "relu" if norm == "RMS" else "gelu"
    momentum = dict(shear="none", gamma=1.3) if off == "none" else dict(shear="qk", gamma=0.0)
    model = make_model(
        **POSITIONS[position],
        attn_only=attn_only,
        normalization_type=norm,
        act_fn=act_fn,
        **momentum,
    )
    cfg = model.cfg
    tokens = _tokens(cfg)
    expected = reference_logits(rope, cfg, model.state_dict(), tokens, _zeros(cfg), _zeros(cfg))
    torch.testing.assert_close(model(tokens).double(), expected, **forward_tol(cfg))
    # a shorter sequence too (positions / masks must be sliced correctly)
    short = tokens[:2, :7]
    expected = reference_logits(rope, cfg, model.state_dict(), short, _zeros(cfg), _zeros(cfg))
    torch.testing.assert_close(model(short).double(), expected, **forward_tol(cfg))


@pytest.mark.parametrize(
    ("position", "placement", "shear"),
    list(itertools.product(POSITIONS, ["post_rope", "pre_rope"], ["qk", "k"])),
)
def test_gamma_zero_is_bitwise_shear_none(make_model, rope, position, placement, shear):
    model = make_model(**POSITIONS[position], shear=shear, gamma=0.0, shear_placement=placement)
    baseline = HookedMomentumTransformer(
        MomentumConfig(**{**model.cfg.to_dict(), "shear": "none", "gamma": 1.0, "device": "cpu"})
    ).eval()
    baseline.load_state_dict(model.state_dict())
    tokens = _tokens(model.cfg)
    assert torch.equal(model(tokens), baseline(tokens))


# --------------------------------------------------------------------------- momentum on


def _per_head_gammas(n_layers: int, n_heads: int) -> list[list[float]]:
    base = [-1.5, 0.3, 2.0, 4.5, -0.4, 1.1, 0.0, 7.0]
    return [
        [base[(3 * layer + h) % len(base)] for h in range(n_heads)] for layer in range(n_layers)
    ]


@pytest.mark.parametrize(
    ("position", "placement", "shear", "learnable"),
    list(itertools.product(POSITIONS, ["post_rope", "pre_rope"], ["qk", "k"], [False, True])),
)
def test_momentum_matches_reference(make_model, rope, position, placement, shear, learnable):
    model = make_model(
        **POSITIONS[position],
        shear=shear,
        shear_placement=placement,
        gamma=0.8,
        gamma_learnable=learnable,
        attn_only=position == "rotary",
        normalization_type="RMS" if position == "standard" else "LN",
    )
    cfg = model.cfg
    if learnable:
        gammas = _per_head_gammas(cfg.n_layers, cfg.n_heads)
        with torch.no_grad():
            for layer, block in enumerate(model.blocks):
                block.attn.gamma.copy_(torch.tensor(gammas[layer]))
    else:
        gammas = [[0.8] * cfg.n_heads for _ in range(cfg.n_layers)]
    gamma_q = gammas if shear == "qk" else _zeros(cfg)
    tokens = _tokens(cfg)
    expected = reference_logits(rope, cfg, model.state_dict(), tokens, gamma_q, gammas)
    torch.testing.assert_close(model(tokens).double(), expected, **forward_tol(cfg))
    # and the momentum actually changes the output (the test could tell it was ignored)
    plain = reference_logits(rope, cfg, model.state_dict(), tokens, _zeros(cfg), _zeros(cfg))
    assert (plain - expected).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("position", "placement"), list(itertools.product(POSITIONS, ["post_rope", "pre_rope"]))
)
def test_smeared_key_matches_reference(make_model, rope, position, placement):
    model = make_model(
        **POSITIONS[position], shear="none", smeared_key=True, shear_placement=placement
    )
    cfg = model.cfg
    logits_values = [
        [-1.0, 0.3, 1.2, 2.5, -2.0, 0.0, 0.7, -0.3][: cfg.n_heads],
        [0.9] * cfg.n_heads,
    ]
    logits_values[1][0] = -3.0
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            block.attn.smear_logit.copy_(torch.tensor(logits_values[layer]))
    tokens = _tokens(cfg)
    expected = reference_logits(
        rope, cfg, model.state_dict(), tokens, _zeros(cfg), _zeros(cfg), smear_logits=logits_values
    )
    torch.testing.assert_close(model(tokens).double(), expected, **forward_tol(cfg))
    plain = reference_logits(rope, cfg, model.state_dict(), tokens, _zeros(cfg), _zeros(cfg))
    assert (plain - expected).abs().max() > 1e-3


def test_smear_init_is_used(make_model, rope):
    """A fresh smeared-key model starts at α = smear_init."""
    model = make_model(shear="none", smeared_key=True, smear_init=0.2)
    cfg = model.cfg
    logit = math.log(0.2 / 0.8)
    tokens = _tokens(cfg)
    expected = reference_logits(
        rope,
        cfg,
        model.state_dict(),
        tokens,
        _zeros(cfg),
        _zeros(cfg),
        smear_logits=[[logit] * cfg.n_heads] * cfg.n_layers,
    )
    torch.testing.assert_close(model(tokens).double(), expected, **forward_tol(cfg))


@pytest.mark.parametrize("placement", ["post_rope", "pre_rope"])
def test_float64_model_matches_reference_tightly(make_model, rope, placement):
    """A float64 model must compute in float64 throughout (rotary tables and gamma included)."""
    model = make_model(
        positional_embedding_type="rotary",
        shear_placement=placement,
        gamma=0.3,
        dtype="float64",
        n_ctx=32,
    )
    cfg = model.cfg
    tokens = _tokens(cfg)
    g = [[0.3] * cfg.n_heads for _ in range(cfg.n_layers)]
    expected = reference_logits(rope, cfg, model.state_dict(), tokens, g, g)
    logits = model(tokens)
    assert logits.dtype == torch.float64
    torch.testing.assert_close(logits, expected, **forward_tol(cfg, dtype=torch.float64))
