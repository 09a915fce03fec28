"""With momentum off and the same weights, each tutorial call gives TransformerLens's own numbers:
a randomly initialised `transformers` GPT-2 (GPT-2's defaults: gelu_new, learned positions,
biases, tied embeddings; built here, nothing downloaded), imported with `from_hf` and compared
with `TransformerBridge` in compatibility mode (which folds, centres and centres the unembedding)."""

from __future__ import annotations

import copy

import pytest
import torch
from float32 import forward_tol
from transformer_lens import patching
from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
from transformer_lens.tools.analysis.logit_lens import logit_lens
from transformers import GPT2Config, GPT2LMHeadModel

from momentum_interp import HookedMomentumTransformer, MomentumConfig

GPT2 = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=64)
# The bridge in compatibility mode folds and centres the weights; ours are as loaded.
TOL = forward_tol(
    MomentumConfig(
        n_layers=GPT2.n_layer,
        d_model=GPT2.n_embd,
        d_head=GPT2.n_embd // GPT2.n_head,
        n_heads=GPT2.n_head,
        n_ctx=GPT2.n_positions,
        d_vocab=GPT2.vocab_size,
        d_mlp=4 * GPT2.n_embd,
    ),
    processed=True,
)


def _centred(x):
    return x - x.mean(-1, keepdim=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    hf_model = GPT2LMHeadModel(GPT2).eval()
    with torch.no_grad():  # GPT-2's init zeroes biases and sets LN gains to 1: make them real
        for name, param in hf_model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    directory = tmp_path_factory.mktemp("gpt2")
    hf_model.save_pretrained(directory)
    ours = HookedMomentumTransformer.from_hf(directory)
    bridge = build_bridge_from_module(copy.deepcopy(hf_model), "GPT2LMHeadModel", hf_config=GPT2)
    bridge.enable_compatibility_mode()
    processed = copy.deepcopy(ours).process_weights()
    tokens = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    return hf_model, ours, processed, bridge, tokens


def test_from_hf_reproduces_the_logits(models):
    hf_model, ours, _, _, tokens = models
    with torch.no_grad():
        reference = hf_model(tokens).logits
    torch.testing.assert_close(ours(tokens), reference, **TOL)
    assert ours.cfg.act_fn == "gelu_new" and not ours.cfg.momentum_enabled
    assert torch.equal(ours.W_U, ours.W_E.T)  # the tied unembedding
    # momentum at γ = 0 is the plain model; γ = 0.5 is not
    zero = HookedMomentumTransformer.from_hf(hf_model, shear="qk", gamma=0.0)
    torch.testing.assert_close(zero(tokens), reference, **TOL)
    half = HookedMomentumTransformer.from_hf(hf_model, shear="qk", gamma=0.5)
    assert (half(tokens) - reference).abs().max() > 2e-4  # GPT-2 init: small, near-uniform scores


def test_activations_and_weights_match_the_bridge(models):
    _, _, ours, bridge, tokens = models
    logits, cache = ours.run_with_cache(tokens)
    bridge_logits, bridge_cache = bridge.run_with_cache(tokens)
    torch.testing.assert_close(_centred(logits), _centred(bridge_logits), **TOL)
    for name in ("hook_embed", "hook_pos_embed"):
        torch.testing.assert_close(cache[name], bridge_cache[name], **TOL)
    for layer in range(2):
        for short in (
            "resid_pre",
            "resid_mid",
            "resid_post",
            "attn_out",
            "mlp_out",
            "pattern",
            "z",
            "q",
            "k",
            "v",
            "pre",
            "post",
        ):
            (
                torch.testing.assert_close(cache[short, layer], bridge_cache[short, layer], **TOL),
                short,
            )
    for name in (
        "W_Q",
        "W_K",
        "W_V",
        "W_O",
        "b_Q",
        "b_K",
        "b_O",
        "W_in",
        "b_in",
        "W_out",
        "b_out",
        "W_U",
        "b_U",
        "W_E",
        "W_pos",
        "W_E_pos",
    ):
        torch.testing.assert_close(getattr(ours, name), getattr(bridge, name), **TOL), name
    for mode in ("Q", "K", "V"):
        torch.testing.assert_close(
            ours.all_composition_scores(mode).scores,
            bridge.all_composition_scores(mode).scores,
            **TOL,
        )
    for layer in range(3):
        torch.testing.assert_close(
            ours.accumulated_bias(layer), bridge.accumulated_bias(layer), **TOL
        )
    torch.testing.assert_close(
        ours.tokens_to_residual_directions(tokens[0]),
        bridge.tokens_to_residual_directions(tokens[0]),
        **TOL,
    )


def test_dla_and_logit_lens_match_the_bridge(models):
    _, _, ours, bridge, tokens = models
    _, cache = ours.run_with_cache(tokens)
    _, bridge_cache = bridge.run_with_cache(tokens)
    right, wrong = tokens[:, -1], tokens[:, 0]
    calls = {
        "decompose_resid": lambda c: c.decompose_resid(pos_slice=-1, return_labels=True),
        "stack_head_results": lambda c: c.stack_head_results(
            pos_slice=-1, incl_remainder=True, return_labels=True
        ),
        "full": lambda c: c.get_full_resid_decomposition(pos_slice=-1, return_labels=True),
        "accumulated": lambda c: c.accumulated_resid(
            pos_slice=-1, incl_mid=True, return_labels=True
        ),
    }
    for name, call in calls.items():
        (stack, labels), (bridge_stack, bridge_labels) = call(cache), call(bridge_cache)
        assert labels == bridge_labels, name
        torch.testing.assert_close(stack, bridge_stack, **TOL)
        attrs = cache.logit_attrs(stack, right, wrong, pos_slice=-1)
        bridge_attrs = bridge_cache.logit_attrs(bridge_stack, right, wrong, pos_slice=-1)
        torch.testing.assert_close(attrs, bridge_attrs, **TOL)
    lens, bridge_lens = logit_lens(ours, tokens), logit_lens(bridge, tokens)
    assert lens.labels == bridge_lens.labels
    torch.testing.assert_close(
        lens.values.log_softmax(-1), bridge_lens.values.log_softmax(-1), **TOL
    )


def test_patching_and_generation_match_the_bridge(models):
    _, _, ours, bridge, tokens = models
    clean, corrupted = tokens[:1], tokens[1:]
    answer, other = int(clean[0, -1]), int(corrupted[0, -1])

    def metric(logits):
        return logits[0, -1, answer] - logits[0, -1, other]

    results = []
    for model in (ours, bridge):
        _, clean_cache = model.run_with_cache(clean)
        _, corrupted_cache = model.run_with_cache(corrupted)
        results.append(
            (
                patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric),
                patching.get_act_patch_attn_head_out_all_pos(model, corrupted, clean_cache, metric),
                patching.get_act_patch_direct_path(
                    model, corrupted, clean_cache, corrupted_cache, metric, 0, 2, "k", verbose=False
                ),
            )
        )
    for mine, theirs in zip(*results, strict=True):
        torch.testing.assert_close(mine, theirs, **TOL)
    ours_tokens = ours.generate(clean, max_new_tokens=6, do_sample=False, verbose=False)
    bridge_tokens = bridge.generate(clean, max_new_tokens=6, do_sample=False, verbose=False)
    assert torch.equal(ours_tokens, bridge_tokens)
    torch.testing.assert_close(
        ours(tokens, return_type="loss", loss_per_token=True),
        bridge(tokens, return_type="loss", loss_per_token=True),
        **TOL,
    )
