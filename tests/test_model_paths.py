"""Fast (SDPA) vs analysis (materialised) path, TransformerLens utilities, weights and tokens."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformer_lens import FactoredMatrix
from transformer_lens.head_detector import detect_head
from transformer_lens.patching import generic_activation_patch, get_act_patch_resid_pre

from momentum_interp import HookedMomentumTransformer, MomentumConfig

PATH_CONFIGS = {
    "standard_ln_qk": dict(gamma=1.0),
    "rotary_pre_k_learnable": dict(
        positional_embedding_type="rotary",
        shear="k",
        shear_placement="pre_rope",
        gamma_learnable=True,
    ),
    "rotary_partial_post_qk_learnable_rms": dict(
        positional_embedding_type="rotary",
        d_head=8,
        rotary_dim=4,
        gamma_learnable=True,
        normalization_type="RMS",
        act_fn="relu",
    ),
    "smeared_attn_only": dict(shear="none", smeared_key=True, attn_only=True),
    "no_momentum_no_norm": dict(shear="none", normalization_type=None, use_attn_result=True),
}


def _tokens(cfg, batch=3, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.d_vocab, (batch, cfg.n_ctx), generator=gen)


def _set_distinct_gammas(model):
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            if isinstance(block.attn.gamma, torch.nn.Parameter):
                block.attn.gamma.copy_(
                    torch.tensor([-0.7, 0.4, 1.5, 3.0][: model.cfg.n_heads]) + layer
                )
            if hasattr(block.attn, "smear_logit"):
                block.attn.smear_logit.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]) - layer)


@pytest.fixture
def sdpa_calls(monkeypatch):
    """Record calls of `F.scaled_dot_product_attention` (layers that took the fast path), each as
    the dtype of the queries it was given."""
    calls = []
    original = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].dtype)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    return calls


def _loss_and_grads(model, tokens):
    model.zero_grad(set_to_none=True)
    logits, loss = model(tokens, return_type="both")
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["standard_ln_qk", "rotary_partial_post_qk_learnable_rms"])
def test_fast_and_analysis_paths_agree_under_bf16_autocast(make_model, sdpa_calls, name):
    """Training precision: both paths under bf16 autocast agree to bf16 rounding, and each stays
    as close to the float32 result as bf16 allows (so the comparison is not of two broken runs)."""
    model = make_model(**PATH_CONFIGS[name])
    _set_distinct_gammas(model)
    tokens = _tokens(model.cfg)
    logits_fp32, grads_fp32 = _loss_and_grads(model, tokens)
    sdpa_calls.clear()

    def noop(pattern, hook):
        pass

    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits_fast, grads_fast = _loss_and_grads(model, tokens)
        assert set(sdpa_calls) == {torch.bfloat16}  # biases do not promote q/k/v to float32
        sdpa_calls.clear()
        with model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_pattern"), noop)]):
            logits_slow, grads_slow = _loss_and_grads(model, tokens)
        assert not sdpa_calls
    scale = logits_fp32.abs().max().item()
    for logits in (logits_fast, logits_slow):
        error = (logits.float() - logits_fp32).abs().max().item()
        assert 1e-4 * scale < error < 0.05 * scale  # bf16 really ran, and only rounded
    assert (logits_fast.float() - logits_slow.float()).abs().max().item() < 0.05 * scale
    # Gradients: the whole gradient vector to within bf16 rounding (cosine > 0.995), and every
    # parameter's own to within 0.97 (measured: 0.986 to 0.9999; bf16 CPU kernels are not
    # bit-deterministic, so the smallest varies between runs).
    flat = {
        "fp32": torch.cat([g.flatten() for g in grads_fp32.values()]),
        "fast": torch.cat([g.flatten().float() for g in grads_fast.values()]),
        "slow": torch.cat([g.flatten().float() for g in grads_slow.values()]),
    }
    for a, b in (("fast", "fp32"), ("slow", "fp32"), ("fast", "slow")):
        assert F.cosine_similarity(flat[a], flat[b], dim=0) > 0.995, (a, b)
    largest = max(g.norm() for g in grads_fp32.values())
    for param_name, grad in grads_fp32.items():
        if grad.norm() < 1e-4 * largest:  # zero but for rounding, e.g. b_K (softmax shift)
            continue
        pair = (grads_fast[param_name], grads_slow[param_name], grad)
        for a, b in ((0, 2), (1, 2), (0, 1)):
            cosine = F.cosine_similarity(pair[a].flatten().float(), pair[b].flatten(), dim=0)
            assert cosine > 0.97, (param_name, a, b, cosine.item())


@pytest.mark.parametrize("name", PATH_CONFIGS)
def test_fast_and_analysis_paths_agree(make_model, sdpa_calls, name):
    model = make_model(**PATH_CONFIGS[name])
    _set_distinct_gammas(model)
    tokens = _tokens(model.cfg)
    n_layers = model.cfg.n_layers

    logits_fast, grads_fast = _loss_and_grads(model, tokens)
    assert len(sdpa_calls) == n_layers  # really the fast path
    sdpa_calls.clear()

    seen = []

    def noop(pattern, hook):
        seen.append(hook.name)

    with torch.no_grad():
        hooked = model.run_with_hooks(
            tokens, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), noop)]
        )
    assert len(seen) == n_layers and not sdpa_calls
    torch.testing.assert_close(hooked, logits_fast, atol=1e-5, rtol=1e-5)

    with model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_pattern"), noop)]):
        logits_slow, grads_slow = _loss_and_grads(model, tokens)
    assert not sdpa_calls
    torch.testing.assert_close(logits_slow, logits_fast, atol=1e-5, rtol=1e-5)
    assert grads_fast.keys() == grads_slow.keys()
    for param_name, grad in grads_fast.items():
        assert grad.abs().max() > 0 or "b_O" in param_name, param_name  # gradients really flow
        torch.testing.assert_close(
            grads_slow[param_name], grad, atol=1e-4, rtol=1e-4, msg=param_name
        )


def test_only_score_and_pattern_hooks_force_the_analysis_path(make_model, sdpa_calls):
    model = make_model()
    tokens = _tokens(model.cfg)
    noop = lambda x, hook: None
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_q_sheared", noop)])
        assert len(sdpa_calls) == 2
        sdpa_calls.clear()
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_attn_scores", noop)])
        assert len(sdpa_calls) == 1  # layer 0 fast, layer 1 materialised
        sdpa_calls.clear()
    # a backward-only hook on the pattern needs the materialised pattern too
    _, cache = model.run_with_cache(
        tokens, return_type="loss", names_filter=lambda n: n.endswith("hook_pattern"), incl_bwd=True
    )
    assert "blocks.0.attn.hook_pattern_grad" in cache.cache_dict
    assert not sdpa_calls


def test_pattern_hook_edits_take_effect(make_model):
    """Replacing the pattern by uniform causal attention makes z the running mean of v."""
    model = make_model()
    tokens = _tokens(model.cfg, batch=2)

    def uniform(pattern, hook):
        n = pattern.shape[-1]
        causal = torch.ones(n, n).tril()
        return (causal / causal.sum(-1, keepdim=True)).expand_as(pattern)

    with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", uniform)]):
        _, cache = model.run_with_cache(tokens)
    v = cache["v", 0]
    running_mean = v.cumsum(1) / torch.arange(1, v.shape[1] + 1)[None, :, None, None]
    torch.testing.assert_close(cache["z", 0], running_mean, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ TransformerLens tools


@pytest.mark.parametrize("position", ["standard", "rotary"])
def test_detect_head_matches_hand_computation(make_model, position):
    model = make_model(positional_embedding_type=position, gamma=1.5, d_vocab=10)
    scores = detect_head(model, "1 2 3 4 1 2 3 4", "induction_head")
    assert scores.shape == (model.cfg.n_layers, model.cfg.n_heads)

    _, cache = model.run_with_cache(torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4]]))
    # token at t repeats the one at t−4; an induction head attends to the token after it: t−3
    induction_cells = [(4, 1), (5, 2), (6, 3), (7, 4)]
    prev_cells = [(t, t - 1) for t in range(1, 8)]
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0]  # [head, q, k]
        expected = sum(pattern[:, t, s] for t, s in induction_cells) / pattern.sum((-1, -2))
        torch.testing.assert_close(scores[layer], expected, atol=1e-6, rtol=1e-5)
    prev = detect_head(model, "1 2 3 4 1 2 3 4", "previous_token_head")
    pattern = cache["blocks.1.attn.hook_pattern"][0]
    expected = sum(pattern[:, t, s] for t, s in prev_cells) / 8
    torch.testing.assert_close(prev[1], expected, atol=1e-6, rtol=1e-5)


def test_resid_pre_patching_recovers_the_clean_metric(make_model):
    model = make_model(gamma=0.8, positional_embedding_type="rotary")
    n = 10
    clean = torch.tensor([[3, 7, 1, 4, 9, 2, 6, 5, 8, 0]])
    corrupted = clean.clone()
    corrupted[0, 3] = 11  # differs at exactly one position
    target = 5

    def metric(logits):
        return logits[0, -1, target]

    with torch.no_grad():
        clean_metric = metric(model(clean))
        corrupted_metric = metric(model(corrupted))
    assert abs(clean_metric - corrupted_metric) > 1e-4
    _, clean_cache = model.run_with_cache(clean, names_filter=lambda name: "resid_pre" in name)

    result = get_act_patch_resid_pre(model, corrupted, clean_cache, metric)
    assert result.shape == (model.cfg.n_layers, n)
    # layer 0: the resid at position 3 is the only difference, so patching it recovers everything
    assert result[0, 3] == clean_metric
    others = [p for p in range(n) if p != 3]
    assert torch.all(result[0, others] == corrupted_metric)
    # layer 1: positions before the corruption are identical in both runs
    assert torch.all(result[1, :3] == corrupted_metric)

    def patch_every_position(corrupted_act, index, clean_act):
        corrupted_act[:] = clean_act
        return corrupted_act

    every = generic_activation_patch(
        model,
        corrupted,
        clean_cache,
        metric,
        patch_every_position,
        "resid_pre",
        index_df=pd.DataFrame({"layer": [0, 1]}),
    )
    assert torch.all(every == clean_metric), (every, clean_metric)


# --------------------------------------------------------------------------- weights


def test_stacked_weight_shapes_and_values(make_model):
    model = make_model(d_model=16, d_head=8, n_heads=3, d_mlp=20, n_layers=2, d_vocab=23)
    sd = model.state_dict()
    L, H, dm, dh, dmlp, dv, n_ctx = 2, 3, 16, 8, 20, 23, 16
    shapes = {
        "W_Q": (L, H, dm, dh),
        "W_K": (L, H, dm, dh),
        "W_V": (L, H, dm, dh),
        "W_O": (L, H, dh, dm),
        "b_Q": (L, H, dh),
        "b_K": (L, H, dh),
        "b_V": (L, H, dh),
        "b_O": (L, dm),
        "W_in": (L, dm, dmlp),
        "W_out": (L, dmlp, dm),
        "b_in": (L, dmlp),
        "b_out": (L, dm),
    }
    for name, shape in shapes.items():
        stacked = getattr(model, name)
        assert tuple(stacked.shape) == shape, name
        module = "attn" if name[-1] in "QKVO" else "mlp"
        for layer in range(L):
            assert torch.equal(stacked[layer], sd[f"blocks.{layer}.{module}.{name}"]), name
    assert tuple(model.W_E.shape) == (dv, dm) and torch.equal(model.W_E, sd["embed.W_E"])
    assert tuple(model.W_pos.shape) == (n_ctx, dm) and torch.equal(
        model.W_pos, sd["pos_embed.W_pos"]
    )
    assert tuple(model.W_U.shape) == (dm, dv) and torch.equal(model.W_U, sd["unembed.W_U"])
    assert tuple(model.b_U.shape) == (dv,)


def test_missing_weights_raise_attribute_error(make_model):
    # nn.Module.__getattr__ replaces the properties' own messages, but the type (and so hasattr) holds
    rotary, attn_only = make_model(positional_embedding_type="rotary"), make_model(attn_only=True)
    with pytest.raises(AttributeError):
        _ = rotary.W_pos
    with pytest.raises(AttributeError):
        _ = attn_only.W_in
    assert not hasattr(rotary, "W_pos") and not hasattr(attn_only, "b_out")


def test_factored_qk_and_ov_circuits(make_model):
    model = make_model(shear="none", use_attn_result=True)
    with torch.no_grad():  # no q/k/v biases, so the circuits are the whole story
        for block in model.blocks:
            block.attn.b_Q.zero_(), block.attn.b_K.zero_(), block.attn.b_V.zero_()
    sd = model.state_dict()
    cfg = model.cfg
    qk, ov = model.QK, model.OV
    assert isinstance(qk, FactoredMatrix) and isinstance(ov, FactoredMatrix)
    assert tuple(qk.shape) == (2, 4, 16, 16) and tuple(ov.shape) == (2, 4, 16, 16)
    for layer in range(2):
        a = f"blocks.{layer}.attn"
        for h in range(4):
            W_QK = sd[f"{a}.W_Q"][h] @ sd[f"{a}.W_K"][h].T
            W_OV = sd[f"{a}.W_V"][h] @ sd[f"{a}.W_O"][h]
            torch.testing.assert_close(qk.AB[layer, h], W_QK)
            torch.testing.assert_close(ov.AB[layer, h], W_OV)

    # orientation: x_t QK x_sᵀ / √d_head are the scores; pattern · (x OV) is each head's result
    _, cache = model.run_with_cache(_tokens(cfg, batch=1))
    x = cache["blocks.1.ln1.hook_normalized"][0]
    scores = cache["attn_scores", 1][0]
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    for h in range(4):
        expected = x @ qk.AB[1, h] @ x.T / math.sqrt(cfg.d_head)
        torch.testing.assert_close(scores[h][causal], expected[causal], atol=1e-5, rtol=1e-5)
        result = cache["result", 1][0, :, h]
        torch.testing.assert_close(
            result, cache["pattern", 1][0, h] @ (x @ ov.AB[1, h]), atol=1e-5, rtol=1e-5
        )


# ---------------------------------------------------------------------------- tokens


def test_integer_token_round_trips(make_model):
    model = make_model(d_vocab=23)
    assert torch.equal(model.to_tokens([3, 4, 5]), torch.tensor([[3, 4, 5]]))
    assert torch.equal(model.to_tokens("3 4 5"), torch.tensor([[3, 4, 5]]))
    assert torch.equal(model.to_tokens(" 3  4\n5 "), torch.tensor([[3, 4, 5]]))
    assert torch.equal(model.to_tokens([[1, 2], [22, 0]]), torch.tensor([[1, 2], [22, 0]]))
    assert torch.equal(model.to_tokens(["1 2", "22 0"]), torch.tensor([[1, 2], [22, 0]]))
    assert model.to_string(torch.tensor([3, 4, 5])) == "3 4 5"
    assert model.to_string([3, 4, 5]) == "3 4 5"
    assert model.to_string(torch.tensor([[1, 2], [22, 0]])) == ["1 2", "22 0"]
    assert model.to_str_tokens("3 4 5") == ["3", "4", "5"]
    assert model.to_tokens(model.to_string([7, 0, 22])).tolist() == [[7, 0, 22]]
    with torch.no_grad():
        assert torch.equal(model("3 4 5"), model(torch.tensor([[3, 4, 5]])))
        assert torch.equal(model([3, 4, 5]), model(torch.tensor([[3, 4, 5]])))
    with pytest.raises(ValueError, match="space-separated"):
        model.to_tokens("hello world")


def test_tokenizer_round_trips(bpe_tokenizer):
    cfg = MomentumConfig(
        d_model=16,
        d_head=4,
        n_layers=1,
        n_ctx=32,
        d_vocab=bpe_tokenizer.get_vocab_size(),
        device="cpu",
    )
    model = HookedMomentumTransformer(cfg, tokenizer=bpe_tokenizer).eval()
    bos = bpe_tokenizer.token_to_id("<|endoftext|>")
    text = "the cat naïve café ✓"  # includes characters never seen in training
    ids = bpe_tokenizer.encode(text).ids
    tokens = model.to_tokens(text, prepend_bos=False)
    assert tokens.tolist() == [ids]
    assert model.to_string(tokens[0]) == text
    with_bos = model.to_tokens(text)  # default_prepend_bos=True
    assert with_bos.tolist() == [[bos, *ids]]
    assert model.to_string(with_bos[0]) == "<|endoftext|>" + text
    assert "".join(model.to_str_tokens("def foo(x):")) == "<|endoftext|>def foo(x):"
    batch = model.to_tokens(["the cat", "the hat"], prepend_bos=False)
    assert model.to_string(batch) == ["the cat", "the hat"]
    with torch.no_grad():
        assert torch.equal(model(text), model(with_bos))


def test_tokenizer_larger_than_vocab_is_rejected(bpe_tokenizer):
    cfg = MomentumConfig(d_model=16, d_head=4, n_layers=1, n_ctx=32, d_vocab=100, device="cpu")
    with pytest.raises(ValueError, match="d_vocab"):
        HookedMomentumTransformer(cfg, tokenizer=bpe_tokenizer)


# ---------------------------------------------------------------------------- devices


def test_cpu_keeps_cfg_device_in_sync(make_model):
    model = make_model()
    model.cfg.device = "cuda:1"  # as if the model had been moved to a GPU with .to("cuda:1")
    assert model.cpu() is model
    assert model.cfg.device == "cpu"
    assert model.W_E.device.type == "cpu"


@pytest.mark.parametrize(
    ("device", "expected"),
    [(None, "cuda"), (1, "cuda:1"), ("cuda:2", "cuda:2"), (torch.device("cuda", 3), "cuda:3")],
)
def test_cuda_goes_through_to(make_model, monkeypatch, device, expected):
    """`.cuda()` must update `cfg.device` like `.to()` does; checked without a GPU by recording
    the device that `.to` is asked for."""
    model = make_model()
    asked = []
    monkeypatch.setattr(model, "to", lambda dev: asked.append(str(dev)) or model)
    assert (model.cuda() if device is None else model.cuda(device)) is model
    assert asked == [expected]
