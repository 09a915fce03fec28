"""Hook points: names, shapes and values against the formulas of docs/maths.md computed here.

Expected values are built from the cached `hook_q`/`hook_k` (or `hook_rot_q`/`hook_rot_k` for
post-RoPE rotary models) with explicit slicing, the conftest rotary reference and plain softmax;
the only library function used is `shear.score_terms`, and only as the thing being checked.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from transformer_lens import ActivationCache

from momentum_interp.model.shear import TERM_NAMES, score_terms

TOL = dict(atol=1e-5, rtol=1e-5)

CONFIGS = {
    "standard": dict(positional_embedding_type="standard"),
    "rotary": dict(positional_embedding_type="rotary"),
    "rotary_partial": dict(positional_embedding_type="rotary", d_head=8, rotary_dim=4),
}
HEAD_GAMMAS = [[-1.5, 0.3, 2.0, 4.0], [0.9, -0.6, 0.0, 1.7]]


def _velocity(x: torch.Tensor) -> torch.Tensor:
    """`p_t = x_t − x_{t−1}` along pos (dim 1) with `p_0 = 0`, by explicit slicing."""
    p = torch.zeros_like(x)
    p[:, 1:] = x[:, 1:] - x[:, :-1]
    return p


def _prev(x: torch.Tensor) -> torch.Tensor:
    """`x_{t−1}` with `x_{−1} := x_0` (the convention that makes `p_0 = 0`)."""
    out = x.clone()
    out[:, 1:] = x[:, :-1]
    return out


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`⟨a_t, b_s⟩` per head: `[batch, pos, head, d]² → [batch, head, q_pos, k_pos]`."""
    return torch.matmul(a.permute(0, 2, 1, 3), b.permute(0, 2, 3, 1))


def _momentum_model(make_model, position, placement, shear, seed=0):
    model = make_model(
        seed=seed,
        **CONFIGS[position],
        shear=shear,
        shear_placement=placement,
        gamma_learnable=True,
    )
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            block.attn.gamma.copy_(torch.tensor(HEAD_GAMMAS[layer][: model.cfg.n_heads]))
    return model


def _gammas(shear: str, layer: int, n_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.tensor(HEAD_GAMMAS[layer][:n_heads])
    zero = torch.zeros(n_heads)
    return (g if shear == "qk" else zero), (g if shear in ("qk", "k") else zero)


def _tokens(cfg, batch=2, seed=3):
    return torch.randint(
        0, cfg.d_vocab, (batch, cfg.n_ctx), generator=torch.Generator().manual_seed(seed)
    )


MATRIX = list(itertools.product(CONFIGS, ["post_rope", "pre_rope"], ["qk", "k", "none"]))


@pytest.mark.parametrize(("position", "placement", "shear"), MATRIX)
def test_velocity_shear_rotary_score_and_pattern_hooks(
    make_model, rope, position, placement, shear
):
    model = _momentum_model(make_model, position, placement, shear)
    cfg = model.cfg
    tokens = _tokens(cfg)
    _, cache = model.run_with_cache(tokens)
    rotary = cfg.positional_embedding_type == "rotary"
    causal = torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool).tril()
    for layer in range(cfg.n_layers):
        a = f"blocks.{layer}.attn"
        gq, gk = _gammas(shear, layer, cfg.n_heads)
        final = {}
        for which, gamma in (("q", gq), ("k", gk)):
            raw = cache[f"{a}.hook_{which}"]
            assert raw.shape == (2, cfg.n_ctx, cfg.n_heads, cfg.d_head)
            if rotary and placement == "post_rope":
                # hook_rot_* is the rotation of the raw projection, and it is what gets sheared
                torch.testing.assert_close(
                    cache[f"{a}.hook_rot_{which}"], rope(raw, cfg.rotary_dim), **TOL
                )
                signal = cache[f"{a}.hook_rot_{which}"]
            else:
                signal = raw
            p = _velocity(signal)
            torch.testing.assert_close(cache[f"{a}.hook_{which}_velocity"], p, **TOL)
            assert torch.all(cache[f"{a}.hook_{which}_velocity"][:, 0] == 0)
            sheared = signal + gamma[None, None, :, None] * p
            torch.testing.assert_close(cache[f"{a}.hook_{which}_sheared"], sheared, **TOL)
            if rotary and placement == "pre_rope":
                # hook_rot_* sees the sheared signal, rotated
                torch.testing.assert_close(
                    cache[f"{a}.hook_rot_{which}"], rope(sheared, cfg.rotary_dim), **TOL
                )
                final[which] = cache[f"{a}.hook_rot_{which}"]
            else:
                final[which] = sheared

        scores = cache[f"{a}.hook_attn_scores"]
        assert scores.shape == (2, cfg.n_heads, cfg.n_ctx, cfg.n_ctx)
        expected = _dot(final["q"], final["k"]) / math.sqrt(cfg.d_head)
        torch.testing.assert_close(scores[..., causal], expected[..., causal], **TOL)
        assert torch.all(scores[..., ~causal] == -math.inf)

        pattern = cache[f"{a}.hook_pattern"]
        torch.testing.assert_close(pattern.sum(-1), torch.ones(2, cfg.n_heads, cfg.n_ctx))
        assert torch.all(pattern[..., ~causal] == 0)
        e = torch.exp(expected - expected.masked_fill(~causal, -math.inf).amax(-1, keepdim=True))
        e = e.masked_fill(~causal, 0.0)
        torch.testing.assert_close(pattern, e / e.sum(-1, keepdim=True), **TOL)

        v = cache[f"{a}.hook_v"]
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        torch.testing.assert_close(cache[f"{a}.hook_z"], z, **TOL)
        state = model.state_dict()
        out = torch.einsum("bqhd,hdm->bqm", z, state[f"{a}.W_O"]) + state[f"{a}.b_O"]
        torch.testing.assert_close(cache[f"blocks.{layer}.hook_attn_out"], out, **TOL)


@pytest.mark.parametrize(
    ("position", "placement"), list(itertools.product(CONFIGS, ["post_rope", "pre_rope"]))
)
def test_score_identity_four_bilinear_terms(make_model, rope, position, placement):
    """docs/maths.md §3: ⟨q̂_t,k̂_s⟩ = (1+γ)²⟨q_t,k_s⟩ − γ(1+γ)⟨q_t,k_{s−1}⟩ − γ(1+γ)⟨q_{t−1},k_s⟩ + γ²⟨q_{t−1},k_{s−1}⟩."""
    model = _momentum_model(make_model, position, placement, "qk")
    cfg = model.cfg
    _, cache = model.run_with_cache(_tokens(cfg))
    causal = torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool).tril()
    rotary = cfg.positional_embedding_type == "rotary"
    for layer in range(cfg.n_layers):
        a = f"blocks.{layer}.attn"
        g = torch.tensor(HEAD_GAMMAS[layer][: cfg.n_heads])[None, :, None, None]
        if rotary and placement == "pre_rope":
            # the rotation is applied at the *current* position to both x_t and x_{t−1}
            q, k = cache[f"{a}.hook_q"], cache[f"{a}.hook_k"]
            qt, kt = rope(q, cfg.rotary_dim), rope(k, cfg.rotary_dim)
            qp, kp = rope(_prev(q), cfg.rotary_dim), rope(_prev(k), cfg.rotary_dim)
        else:
            name = "rot_" if rotary else ""
            q, k = cache[f"{a}.hook_{name}q"], cache[f"{a}.hook_{name}k"]
            qt, kt, qp, kp = q, k, _prev(q), _prev(k)
        terms = (
            (1 + g) ** 2 * _dot(qt, kt)
            - g * (1 + g) * _dot(qt, kp)
            - g * (1 + g) * _dot(qp, kt)
            + g**2 * _dot(qp, kp)
        )
        expected = terms / math.sqrt(cfg.d_head)
        scores = cache[f"{a}.hook_attn_scores"]
        torch.testing.assert_close(scores[..., causal], expected[..., causal], **TOL)
        if not (rotary and placement == "pre_rope"):
            # the library's decomposition sums to the same scores
            gamma = torch.tensor(HEAD_GAMMAS[layer][: cfg.n_heads])
            parts = score_terms(q, k, gamma, gamma)
            assert set(parts) == set(TERM_NAMES)
            total = sum(parts.values()) / math.sqrt(cfg.d_head)
            torch.testing.assert_close(total[..., causal], expected[..., causal], **TOL)
            torch.testing.assert_close(
                parts["current_prev_key"], -g * (1 + g) * _dot(qt, kp), **TOL
            )


def test_score_terms_with_different_query_and_key_gammas(make_model):
    """`k` mode: γq = 0, so only (1+γ)⟨q_t,k_s⟩ − γ⟨q_t,k_{s−1}⟩ remain."""
    model = _momentum_model(make_model, "standard", "post_rope", "k")
    cfg = model.cfg
    _, cache = model.run_with_cache(_tokens(cfg))
    causal = torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool).tril()
    q, k = cache["blocks.1.attn.hook_q"], cache["blocks.1.attn.hook_k"]
    gk = torch.tensor(HEAD_GAMMAS[1][: cfg.n_heads])
    g = gk[None, :, None, None]
    expected = ((1 + g) * _dot(q, k) - g * _dot(q, _prev(k))) / math.sqrt(cfg.d_head)
    scores = cache["blocks.1.attn.hook_attn_scores"]
    torch.testing.assert_close(scores[..., causal], expected[..., causal], **TOL)
    parts = score_terms(q, k, torch.zeros(cfg.n_heads), gk)
    assert torch.all(parts["prev_query_current"] == 0) and torch.all(parts["prev_prev"] == 0)
    total = sum(parts.values()) / math.sqrt(cfg.d_head)
    torch.testing.assert_close(total[..., causal], expected[..., causal], **TOL)


def test_score_terms_with_unequal_query_and_key_gammas():
    """Each term against the expansion of ⟨(1+γq)q_t − γq q_{t−1}, (1+γk)k_s − γk k_{s−1}⟩."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 7, 3, 5, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 7, 3, 5, generator=gen, dtype=torch.float64)
    gq = torch.tensor([0.5, -1.25, 3.0], dtype=torch.float64)
    gk = torch.tensor([2.0, 0.75, -0.5], dtype=torch.float64)
    a, b = gq[None, :, None, None], gk[None, :, None, None]
    parts = score_terms(q, k, gq, gk)
    expected_terms = {
        "current_current": (1 + a) * (1 + b) * _dot(q, k),
        "current_prev_key": -(1 + a) * b * _dot(q, _prev(k)),
        "prev_query_current": -a * (1 + b) * _dot(_prev(q), k),
        "prev_prev": a * b * _dot(_prev(q), _prev(k)),
    }
    for name, term in expected_terms.items():
        torch.testing.assert_close(parts[name], term, msg=name)
    q_hat = q + gq[None, None, :, None] * _velocity(q)
    k_hat = k + gk[None, None, :, None] * _velocity(k)
    torch.testing.assert_close(sum(parts.values()), _dot(q_hat, k_hat))


@pytest.mark.parametrize("position", ["standard", "rotary"])
@pytest.mark.parametrize("attn_only", [True, False])
def test_hook_names_exist(make_model, position, attn_only):
    model = make_model(positional_embedding_type=position, attn_only=attn_only)
    names = set(model.hook_dict)
    attn = [
        "hook_q", "hook_k", "hook_v", "hook_q_velocity", "hook_k_velocity", "hook_q_sheared",
        "hook_k_sheared", "hook_attn_scores", "hook_pattern", "hook_z", "hook_result",
    ]  # fmt: skip
    if position == "rotary":
        attn += ["hook_rot_q", "hook_rot_k"]
    expected = {"hook_embed", "ln_final.hook_normalized"}
    for layer in range(model.cfg.n_layers):
        expected |= {f"blocks.{layer}.attn.{h}" for h in attn}
        expected |= {
            f"blocks.{layer}.{h}" for h in ("hook_resid_pre", "hook_resid_post", "hook_attn_out")
        }
        if not attn_only:
            expected |= {f"blocks.{layer}.{h}" for h in ("hook_resid_mid", "hook_mlp_out")}
            expected |= {f"blocks.{layer}.mlp.hook_pre", f"blocks.{layer}.mlp.hook_post"}
    if position == "standard":
        expected.add("hook_pos_embed")
    else:
        assert "hook_pos_embed" not in names
        assert "blocks.0.attn.hook_rot_q" in names
    assert expected <= names, sorted(expected - names)
    if position == "standard":
        assert not any("hook_rot" in n for n in names)


def test_residual_stream_hooks_add_up(make_model):
    """resid_post = resid_pre + attn_out + mlp_out, embed + pos_embed = resid_pre of layer 0."""
    model = make_model()
    tokens = _tokens(model.cfg)
    logits, cache = model.run_with_cache(tokens)
    state = model.state_dict()
    torch.testing.assert_close(cache["hook_embed"], state["embed.W_E"][tokens])
    torch.testing.assert_close(
        cache["hook_pos_embed"], state["pos_embed.W_pos"][None].expand(2, -1, -1)
    )
    torch.testing.assert_close(cache["resid_pre", 0], cache["hook_embed"] + cache["hook_pos_embed"])
    for layer in range(model.cfg.n_layers):
        mid = cache["resid_pre", layer] + cache["attn_out", layer]
        torch.testing.assert_close(cache["resid_mid", layer], mid)
        torch.testing.assert_close(cache["resid_post", layer], mid + cache["mlp_out", layer])
    final = cache["ln_final.hook_normalized"] @ state["unembed.W_U"] + state["unembed.b_U"]
    torch.testing.assert_close(logits, final, **TOL)


def test_hook_result_sums_to_attention_output(make_model):
    model = make_model(use_attn_result=True)
    _, cache = model.run_with_cache(_tokens(model.cfg))
    for layer in range(model.cfg.n_layers):
        result = cache[f"blocks.{layer}.attn.hook_result"]
        assert result.shape == (2, model.cfg.n_ctx, model.cfg.n_heads, model.cfg.d_model)
        b_O = model.state_dict()[f"blocks.{layer}.attn.b_O"]
        torch.testing.assert_close(result.sum(2) + b_O, cache["attn_out", layer], **TOL)


def test_activation_cache_shorthand(make_model):
    model = make_model(positional_embedding_type="rotary")
    tokens = _tokens(model.cfg, batch=1)
    _, cache = model.run_with_cache(tokens)
    assert isinstance(cache, ActivationCache)
    assert cache["pattern", 0].shape == (1, model.cfg.n_heads, model.cfg.n_ctx, model.cfg.n_ctx)
    assert torch.equal(cache["pattern", 0], cache["blocks.0.attn.hook_pattern"])
    assert torch.equal(cache["pattern", -1], cache["blocks.1.attn.hook_pattern"])
    assert torch.equal(cache["q", 1], cache["blocks.1.attn.hook_q"])
    assert torch.equal(cache["rot_k", 1], cache["blocks.1.attn.hook_rot_k"])
    assert torch.equal(cache["q_sheared", 1, "attn"], cache["blocks.1.attn.hook_q_sheared"])
    _, unbatched = model.run_with_cache(tokens, remove_batch_dim=True)
    torch.testing.assert_close(unbatched["pattern", 0], cache["pattern", 0][0])


@pytest.mark.parametrize(
    ("shear", "placement", "position"),
    [
        ("qk", "post_rope", "rotary"),
        ("qk", "pre_rope", "rotary"),
        ("qk", "post_rope", "standard"),
        ("k", "post_rope", "rotary"),
        ("k", "pre_rope", "standard"),
    ],
)
def test_zeroing_velocity_equals_gamma_zero(make_model, shear, placement, position):
    model = _momentum_model(make_model, position, placement, shear)
    tokens = _tokens(model.cfg)
    with torch.no_grad():
        sheared = model(tokens)

        def zero(x, hook):
            return torch.zeros_like(x)

        names = ["k"] if shear == "k" else ["q", "k"]
        hooks = [(f"blocks.{i}.attn.hook_{w}_velocity", zero) for i in range(2) for w in names]
        ablated = model.run_with_hooks(tokens, fwd_hooks=hooks)
        only_q = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{i}.attn.hook_q_velocity", zero) for i in range(2)]
        )
        model.set_gamma(0.0)
        assert torch.all(model.gamma_q == 0) and torch.all(model.gamma_k == 0)
        plain = model(tokens)
    assert torch.equal(ablated, plain)
    assert (sheared - plain).abs().max() > 1e-3
    if shear == "k":  # queries are not sheared, so their velocity does not matter
        assert torch.equal(only_q, sheared)
    else:  # zeroing only the query velocity is a real, partial ablation
        assert (only_q - sheared).abs().max() > 1e-4 and (only_q - plain).abs().max() > 1e-4


def test_set_gamma_one_head_one_layer(make_model):
    model = make_model(gamma=0.5)
    model.set_gamma(2.0, layer=1, head=3)
    expected = torch.full((2, 4), 0.5)
    expected[1, 3] = 2.0
    assert torch.equal(model.gamma_q, expected) and torch.equal(model.gamma_k, expected)
    model.set_gamma(-1.0, layer=0)
    expected[0] = -1.0
    assert torch.equal(model.gamma_k, expected)


def test_smeared_key_hooks(make_model):
    """For a smeared key, `hook_k_sheared` is α k_t + (1−α) k_{t−1} and queries are untouched."""
    model = make_model(shear="none", smeared_key=True)
    alphas = torch.tensor([0.1, 0.4, 0.75, 0.95])
    with torch.no_grad():
        for block in model.blocks:
            block.attn.smear_logit.copy_(torch.log(alphas / (1 - alphas)))
    _, cache = model.run_with_cache(_tokens(model.cfg))
    for layer in range(model.cfg.n_layers):
        k = cache["k", layer]
        smeared = k.clone()
        al = alphas[None, :, None]
        smeared[:, 1:] = al * k[:, 1:] + (1 - al) * k[:, :-1]
        torch.testing.assert_close(cache["k_sheared", layer, "attn"], smeared, **TOL)
        torch.testing.assert_close(cache["q_sheared", layer, "attn"], cache["q", layer])
    torch.testing.assert_close(model.gamma_k, (alphas - 1).expand(2, 4), **TOL)
    assert torch.all(model.gamma_q == 0)


@pytest.mark.parametrize("norm", ["LN", "RMS"])
def test_fused_norm_matches_the_explicit_one(make_model, norm):
    """Unhooked norms run as one fused op; a hook on `hook_scale` switches to the explicit maths
    (which computes the scale it needs). Both give the same logits."""
    model = make_model(normalization_type=norm)
    tokens = torch.randint(0, model.cfg.d_vocab, (2, model.cfg.n_ctx))
    scales = []
    with torch.no_grad():
        fused = model(tokens)
        explicit = model.run_with_hooks(
            tokens,
            fwd_hooks=[(lambda n: n.endswith("hook_scale"), lambda t, hook: scales.append(t))],
        )
    assert len(scales) == 2 * model.cfg.n_layers + 1  # ln1, ln2 per block, and ln_final
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-5)
    assert not torch.equal(scales[0], torch.ones_like(scales[0]))


@pytest.mark.parametrize(
    "overrides, filtered",
    [
        (dict(shear="none"), ()),
        (dict(shear="k"), ("k",)),
        (dict(shear="qk"), ("q", "k")),
        (dict(shear="none", smeared_key=True), ("k",)),
    ],
)
def test_unfiltered_signals_skip_the_shear_unless_hooked(
    make_model, monkeypatch, overrides, filtered
):
    """A signal the config does not filter (γ ≡ 0) costs no velocity or shear in training, and a
    filtered one runs the fused shear (no separate velocity); yet the velocity and sheared hooks
    still report `x_t − x_{t−1}` and the sheared signal when asked."""
    import momentum_interp.model.attention as attention

    model = make_model(positional_embedding_type="rotary", **overrides)
    tokens = torch.randint(0, model.cfg.d_vocab, (2, model.cfg.n_ctx))
    calls, fused_calls = [], []
    original, original_fused = attention.velocity, attention.fused_shear
    monkeypatch.setattr(attention, "velocity", lambda x: calls.append(1) or original(x))
    monkeypatch.setattr(
        attention, "fused_shear", lambda x, g: fused_calls.append(1) or original_fused(x, g)
    )
    with torch.no_grad():
        model(tokens)
    assert len(calls) == 0
    assert len(fused_calls) == len(filtered) * model.cfg.n_layers

    calls.clear()
    fused_calls.clear()
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    assert len(calls) == 2 * model.cfg.n_layers and not fused_calls  # every hook fires
    for which in ("q", "k"):
        rotated = cache[f"blocks.0.attn.hook_rot_{which}"]
        velocity = cache[f"blocks.0.attn.hook_{which}_velocity"]
        torch.testing.assert_close(velocity[:, 1:], rotated[:, 1:] - rotated[:, :-1])
        assert torch.equal(velocity[:, 0], torch.zeros_like(velocity[:, 0]))
        if which not in filtered:
            assert torch.equal(cache[f"blocks.0.attn.hook_{which}_sheared"], rotated)


@pytest.mark.parametrize("placement", ["post_rope", "pre_rope"])
def test_fused_shear_gives_the_hooked_paths_numbers(make_model, placement):
    """Unhooked, the shear runs as `lerp(x_{t−1}, x, 1+γ)`; a hook on a velocity switches to
    `x + γ (x − x_{t−1})`. Per-head γ on both sides of −1/2 (where lerp changes formula)."""
    model = make_model(positional_embedding_type="rotary", shear="qk", shear_placement=placement)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.gamma.copy_(torch.tensor([1.0, -0.7, 0.3, 2.5]))
    tokens = torch.randint(0, model.cfg.d_vocab, (2, model.cfg.n_ctx))
    with torch.no_grad():
        fused = model(tokens)
        explicit = model.run_with_hooks(
            tokens, fwd_hooks=[(lambda n: n.endswith("velocity"), lambda t, hook: t)]
        )
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_fused_shear_by_hand():
    from momentum_interp.model.shear import fused_shear

    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)  # [batch, pos, head, d_head]
    gamma = torch.tensor([1.0, -0.7, 2.5], dtype=torch.float64)
    g = gamma[None, None, :, None]
    expected = x.clone()  # position 0 is its own predecessor: unchanged
    expected[:, 1:] = (1 + g) * x[:, 1:] - g * x[:, :-1]
    torch.testing.assert_close(fused_shear(x, gamma), expected, atol=1e-12, rtol=0)
