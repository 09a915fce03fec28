"""With momentum off and the same weights, each tutorial call gives TransformerLens's own numbers:
a randomly initialised `transformers` GPT-2 (GPT-2's defaults: gelu_new, learned positions,
biases, tied embeddings; built here, nothing downloaded), imported with `from_hf` and compared
with `TransformerBridge`, both loaded the TransformerLens 4 way (then `enable_compatibility_mode()`,
which folds, centres and centres the unembedding). Our analyses (scores, rankings, figures, the
explorer and its what-if shear) run on the bridge too, with the numbers they give on ours."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from float32 import forward_tol
from transformer_lens import SVDInterpreter, TransformerBridgeConfig, patching
from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
from transformer_lens.tools.analysis.logit_lens import logit_lens
from transformer_lens.utilities import get_act_name
from transformers import GPT2Config, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.analysis import (
    rank_heads_ci,
    score_heads,
    trace_single_layer_induction,
    what_if_shear_hooks,
)
from momentum_interp.analysis.explorer import causal_softmax, explorer_data, scores_from_dots
from momentum_interp.compat.hook_names import exemption
from momentum_interp.viz import Explorer, attention_patterns_html, score_heatmaps
from momentum_interp.viz.captions import slider_caption

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
def models(gpt2_pair):
    hf_model, _, ours, bridge = gpt2_pair
    processed = copy.deepcopy(ours)
    processed.enable_compatibility_mode()  # the TransformerLens 4 way, as the bridge was loaded
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
    # uncached: the bridge's KV-cached generate leaves its own forward's argmax on these weights
    # (TransformerLens 4.3: step 5 picks 25 where bridge(tokens) and the uncached path give 43)
    bridge_tokens = bridge.generate(
        clean, max_new_tokens=6, do_sample=False, verbose=False, use_past_kv_cache=False
    )
    assert torch.equal(ours_tokens, bridge_tokens)
    torch.testing.assert_close(
        ours(tokens, return_type="loss", loss_per_token=True),
        bridge(tokens, return_type="loss", loss_per_token=True),
        **TOL,
    )


def test_every_bridge_hook_name_is_ours_or_exempt(models):
    """Each of the bridge's hook names reaches our hook with the same value (cache lookup, names
    filters, hooks that edit it), or is exempt with a reason that its KeyError gives."""
    _, _, ours, bridge, tokens = models
    _, cache = ours.run_with_cache(tokens)
    _, bridge_cache = bridge.run_with_cache(tokens)
    assert get_act_name("in", 1) == "blocks.1.hook_in"
    exempt = _unmapped(ours, bridge)
    assert len(exempt) == 2 + 2 + 5 * 2, exempt  # ids, logits, ln1 in / q, k, v in / fused qkv
    for name in exempt:
        with pytest.raises(KeyError, match="no counterpart in this model: "):
            cache[name]
    for name in bridge_cache.cache_dict:  # those that fired (hook_result & co need a flag)
        if name not in exempt:
            torch.testing.assert_close(cache[name], bridge_cache[name], **TOL, msg=name)
    # names filters take the bridge's names; the cache keeps ours and serves either
    _, one = ours.run_with_cache(tokens, names_filter=get_act_name("in", 1))
    assert list(one.cache_dict) == ["blocks.1.hook_resid_pre"]
    _, ins = ours.run_with_cache(tokens, names_filter=lambda name: name.endswith(".hook_in"))
    assert (
        "blocks.0.hook_resid_pre" in ins.cache_dict and "ln_final.hook_normalized" in ins.cache_dict
    )
    # an edit through an alias reaches the same readers as on the bridge
    shift = torch.randn(64, generator=torch.Generator().manual_seed(2))

    def move(x, hook):
        return x + shift

    for name in (
        "blocks.1.hook_in",
        "blocks.0.attn.hook_in",
        "blocks.1.mlp.hook_in",
        "ln_final.hook_in",
    ):
        torch.testing.assert_close(
            _centred(ours.run_with_hooks(tokens, fwd_hooks=[(name, move)])),
            _centred(bridge.run_with_hooks(tokens, fwd_hooks=[(name, move)])),
            **TOL,
            msg=name,
        )
    with pytest.raises(KeyError, match="set_use_split_qkv_input"):
        ours.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.q.hook_in", move)])


def _unmapped(ours, bridge) -> list[str]:
    """The bridge's hook names that are not ours or an alias of ours: each must be exempt."""
    names = [n for n in bridge.hook_dict if n not in ours.hook_dict and n not in ours.hook_aliases]
    assert [n for n in names if exemption(n) is None] == []
    return names


def test_rotary_bridge_hook_names_are_ours_or_exempt(make_model, llama_bridge):
    """The same on a rotary family: a Llama bridge's names against a rotary, RMSNorm model of ours
    (exempt: RoPE's tables and the gated MLP's gate, which this architecture does not have)."""
    ours = make_model(positional_embedding_type="rotary", normalization_type="RMS")
    exempt = _unmapped(ours, llama_bridge)
    assert "blocks.1.attn.hook_rot_k" not in exempt and "blocks.1.mlp.gate.hook_out" in exempt
    with pytest.raises(KeyError, match="RoPE's cos/sin tables"):
        ours.run_with_hooks(
            torch.zeros(1, 3, dtype=torch.long), fwd_hooks=[("blocks.1.attn.hook_cos", print)]
        )


def test_tl_parameters_and_svd_interpreter_match_the_bridge(models):
    _, _, ours, bridge, _ = models
    mine, theirs = dict(ours.tl_named_parameters()), dict(bridge.tl_named_parameters())
    assert set(mine) == set(theirs)
    for name, value in mine.items():
        torch.testing.assert_close(value, theirs[name], **TOL, msg=name)
    mine["blocks.0.attn.W_Q"].data[0, 0, 0] += 1.0  # a view of the fused W_QKV: edits the model
    assert ours.W_Q[0, 0, 0, 0] == mine["blocks.0.attn.W_Q"][0, 0, 0]
    mine["blocks.0.attn.W_Q"].data[0, 0, 0] -= 1.0
    for kind, head in (("OV", 1), ("w_in", None), ("w_out", None)):
        torch.testing.assert_close(
            SVDInterpreter(ours).get_singular_vectors(kind, 1, num_vectors=3, head_index=head),
            SVDInterpreter(bridge).get_singular_vectors(kind, 1, num_vectors=3, head_index=head),
            **TOL,
        )


# TransformerBridgeConfig options for architectures or loaders this model is not: never read here
CONFIG_EXEMPT = {
    *("d_model", "d_head", "n_layers", "n_ctx", "n_heads", "d_vocab", "kwargs"),  # ours as well
    *("architecture", "default_padding_side", "load_in_4bit", "attn_implementation"),  # loaders
    *("per_layer_head_dim", "per_layer_num_key_value_heads"),  # heterogeneous layers
    *("relative_attention_max_distance", "relative_attention_num_buckets"),  # T5
    *("decoder_start_token_id", "scale_embedding"),  # encoder-decoder
    *("use_normalization_before_and_after", "rmsnorm_uses_offset", "qk_norm_after_rope"),
    *("attn_scores_soft_cap", "output_logits_soft_cap", "rotary_interleaved_cos_sin"),
    *("use_NTK_by_parts_rope", "NTK_by_parts_low_freq_factor", "NTK_by_parts_high_freq_factor"),
    "NTK_by_parts_factor",
    *("is_audio_model", "is_visual_model", "is_stateful", "is_multimodal"),
    *("vision_hidden_size", "vision_num_layers", "vision_num_heads", "mm_tokens_per_image"),
    *("n_params", "init_weights"),  # a property of ours / a constructor flag
}


def test_config_has_the_fields_tl_reads(models):
    _, _, ours, bridge, _ = models
    fields = set(inspect.signature(TransformerBridgeConfig.__init__).parameters) - {"self"}
    missing = sorted(f for f in fields - CONFIG_EXEMPT if not hasattr(ours.cfg, f))
    assert missing == []
    same = (
        "checkpoint_index", "checkpoint_value", "checkpoint_label_type", "from_checkpoint",
        "d_vocab_out", "use_attn_scale", "attention_dir", "n_devices", "parallel_attn_mlp",
        "post_embedding_ln", "use_local_attn", "use_qk_norm", "scale_attn_by_inverse_layer_idx",
        "rotary_adjacent_pairs", "use_hook_tokens", "initializer_range", "init_mode", "act_fn",
        "normalization_type", "eps", "d_mlp", "attn_only", "gated_mlp", "final_rms",
    )  # fmt: skip
    assert {f: getattr(ours.cfg, f) for f in same} == {f: getattr(bridge.cfg, f) for f in same}
    assert ours.cfg.attn_scale == 4.0  # √d_head, which the bridge's −1 stands for


def test_to_tokens_and_forward_truncate_as_the_bridge(models):
    _, ours, _, bridge, _ = models
    text = "the cat sat on the mat, " * 20
    tokens = ours.to_tokens(text)
    assert tokens.shape == (1, 64) and torch.equal(tokens, bridge.to_tokens(text))
    full = ours.to_tokens(text, truncate=False, move_to_device=False)
    assert full.shape[1] > 64 and torch.equal(full, bridge.to_tokens(text, truncate=False))
    torch.testing.assert_close(ours(text), ours(tokens))
    with pytest.raises(ValueError, match="exceeds the model's context n_ctx=64"):
        ours(full)


def test_dla_recipe_after_compatibility_mode_on_ours_and_the_bridge(models):
    """The tutorial's DLA: apply_ln_to_stack, then · (W_U[a] − W_U[b]), + (b_U[a] − b_U[b])."""
    _, _, processed, bridge, tokens = models
    right, wrong = int(tokens[0, -1]), int(tokens[0, 0])
    results = []
    for model in (processed, bridge):
        logits, cache = model.run_with_cache(tokens[:1])
        stack = cache.apply_ln_to_stack(cache.decompose_resid(pos_slice=-1), pos_slice=-1)
        recipe = stack.sum(0)[0] @ (model.W_U[:, right] - model.W_U[:, wrong])
        bias = model.b_U[right] - model.b_U[wrong]
        diff = logits[0, -1, right] - logits[0, -1, wrong]
        torch.testing.assert_close(recipe + bias, diff, **TOL)
        results.append(recipe)
    torch.testing.assert_close(*results, **TOL)


def test_refactor_factored_attn_matrices_matches_the_bridge(gpt2_pair, models):
    hf_model, _, ours, _ = gpt2_pair
    tokens = models[-1]
    refactored = copy.deepcopy(ours)
    refactored.enable_compatibility_mode(refactor_factored_attn_matrices=True)
    bridge = build_bridge_from_module(
        copy.deepcopy(hf_model), "GPT2LMHeadModel", hf_config=hf_model.config
    )
    bridge.enable_compatibility_mode(refactor_factored_attn_matrices=True)
    # the SVD fixes each factor up to the sign of its columns: compare what the sign leaves alone
    for name in ("QK", "OV"):
        torch.testing.assert_close(getattr(refactored, name).AB, getattr(bridge, name).AB, **TOL)
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        norms = getattr(refactored, name).norm(dim=-2)
        torch.testing.assert_close(norms, getattr(bridge, name).norm(dim=-2), **TOL)
    q_norms, k_norms = (  # balanced: [W; b] of queries and keys have equal column norms
        torch.cat(
            [getattr(refactored, f"W_{x}"), getattr(refactored, f"b_{x}")[..., None, :]], -2
        ).norm(dim=-2)
        for x in "QK"
    )
    torch.testing.assert_close(q_norms, k_norms, **TOL)
    torch.testing.assert_close(refactored.b_O, bridge.b_O, **TOL)
    torch.testing.assert_close(_centred(refactored(tokens)), _centred(ours(tokens)), **TOL)
    # with momentum and learned positions the refactor keeps the logits too
    sheared = HookedMomentumTransformer.from_hf(hf_model, shear="qk", gamma=0.7)
    logits = sheared(tokens)
    sheared.enable_compatibility_mode(refactor_factored_attn_matrices=True)
    torch.testing.assert_close(_centred(sheared(tokens)), _centred(logits), **TOL)


def test_scores_rankings_and_figures_on_the_bridge(models):
    _, _, ours, bridge, _ = models
    table = score_heads(bridge, n_sequences=8)
    ours_table = score_heads(ours, n_sequences=8)
    torch.testing.assert_close(
        torch.tensor(table.to_numpy()), torch.tensor(ours_table.to_numpy()), **TOL
    )
    ranking = rank_heads_ci(bridge, n_sequences=8)
    assert ranking.heads == rank_heads_ci(ours, n_sequences=8).heads
    figures = score_heatmaps(table)
    assert list(figures) == [
        "induction",
        "prefix_matching",
        "previous_token",
        "duplicate_token",
        "copying",
    ]
    assert figures["copying"].data[0].z.shape == (2, 4)
    text = "the cat sat on the mat"
    _, cache = bridge.run_with_cache(text)
    page = attention_patterns_html(
        cache["pattern", 0][0], bridge.to_str_tokens(text), ["a", "b", "c", "d"]
    )
    assert "circuits-vis" in str(page)
    with pytest.raises(ValueError, match="TransformerBridge has no momentum attention"):
        trace_single_layer_induction(bridge, 0, 0, n_sequences=8)


@pytest.fixture(scope="module")
def llama_bridge(gpt2_pair):
    """A random rotary Llama with grouped-query attention (2 key heads for 4 query heads), with
    the GPT-2's tokenizer (the explorer compares models on the same tokens)."""
    directory = gpt2_pair[1]
    torch.manual_seed(0)
    config = LlamaConfig(
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=gpt2_pair[2].cfg.d_vocab,
        max_position_embeddings=64,
    )
    bridge = build_bridge_from_module(
        LlamaForCausalLM(config).eval(),
        "LlamaForCausalLM",
        hf_config=config,
        tokenizer=PreTrainedTokenizerFast.from_pretrained(directory),
    )
    bridge.enable_compatibility_mode()
    return bridge


def test_explorer_and_what_if_shear_on_bridges(models, llama_bridge):
    """The explorer's four terms rebuild the bridge's scores at γ = 0, and at γ the pattern they
    give is the bridge's own pattern with `what_if_shear_hooks` sheared at inference (after RoPE
    on the rotary Llama) in that layer."""
    _, _, ours, gpt2, _ = models
    data = explorer_data({"gpt2": gpt2, "llama": llama_bridge, "ours": ours})
    tokens = torch.tensor([data.tokens])
    torch.testing.assert_close(data.models[0].dots, data.models[2].dots, **TOL)
    for entry, model in zip(data.models[:2], (gpt2, llama_bridge), strict=True):
        assert entry.shear == "qk" and not entry.gamma.any() and entry.slider == "what_if"
        assert "no momentum" in slider_caption(entry)
        dots = torch.as_tensor(entry.dots).double()
        for layer, gamma in ((0, 0.7), (1, -0.4)):
            hooks = what_if_shear_hooks(model, gamma, layer=layer)
            with model.hooks(fwd_hooks=hooks):
                _, cache = model.run_with_cache(tokens, names_filter=lambda n: "hook_pattern" in n)
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0].double()
            rebuilt = causal_softmax(scores_from_dots(dots[layer], gamma, gamma))
            torch.testing.assert_close(rebuilt, pattern, atol=1e-5, rtol=0)
    data = explorer_data({"gpt2": gpt2, "llama": llama_bridge}, "the cat sat on the mat")
    page = Explorer(data).to_html()
    assert "This TransformerBridge has no momentum" in page
    assert [name for name, _ in what_if_shear_hooks(llama_bridge, 1.0, layer=1, shear="k")] == [
        "blocks.1.attn.hook_rot_k"
    ]
    with pytest.raises(ValueError, match="grouped-query attention"):
        what_if_shear_hooks(llama_bridge, 1.0, layer=0, head=1)


def test_scores_on_a_grouped_query_rotary_bridge(llama_bridge):
    """Each query head's copying score uses its group's shared W_V."""
    table = score_heads(llama_bridge, n_sequences=4)
    assert table.shape == (8, 7) and table.notna().all().all()
    w_v, w_o = llama_bridge.W_V.detach().double(), llama_bridge.W_O.detach().double()
    w_u, w_e = llama_bridge.W_U.detach().double(), llama_bridge.W_E.detach().double()
    eigenvalues = torch.linalg.eigvals(w_e @ w_v[1, 1] @ w_o[1, 3] @ w_u)  # head 3: group 1
    expected = eigenvalues.real.sum() / eigenvalues.abs().sum()
    assert table.set_index(["layer", "head"]).loc[(1, 3), "copying"] == pytest.approx(
        float(expected), abs=1e-6
    )
