"""TransformerLens 4 tutorial workflows on our models, checked against numbers computed here:
DLA identities, the logit lens, residual decompositions, split inputs, tokens and the cache; and
a TransformerLens 4-style walk-through, loaded the TransformerLens 4 way, whose every printed
number equals TransformerBridge's on the same weights."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY, randomize_
from float32 import forward_tol, sum_tolerance
from transformer_lens import SVDInterpreter, patching
from transformer_lens.head_detector import detect_head
from transformer_lens.tools.analysis.direct_logit_attribution import direct_logit_attribution
from transformer_lens.tools.analysis.logit_lens import logit_lens
from transformer_lens.utilities import get_act_name, get_attention_mask
from transformer_lens.utilities import test_prompt as tl_test_prompt

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.model.shear import velocity


@pytest.fixture(scope="module")
def induction():
    return HookedMomentumTransformer.from_pretrained("induction-1l-momentum")


@pytest.fixture(scope="module", params=["standard", "rotary"])
def text_model(request, bpe_tokenizer):
    """A 2-layer text model with MLPs and random (non-trivial) weights, momentum on."""
    cfg = MomentumConfig(
        **{**TINY, "d_vocab": bpe_tokenizer.get_vocab_size(), "n_ctx": 32, "seed": 0},
        positional_embedding_type=request.param,
        gamma=0.8,
    )
    return randomize_(HookedMomentumTransformer(cfg, tokenizer=bpe_tokenizer).eval())


def _induction_case(model):
    """A repeated random sequence; answer = the token that followed last time, wrong = another."""
    seq = torch.randperm(63, generator=torch.Generator().manual_seed(0))[:20] + 1
    tokens = torch.cat([seq, seq[:6]])[None]
    return tokens, int(seq[6]), int(seq[2])


def _dla_identities(model, tokens, right, wrong):
    logits, cache = model.run_with_cache(tokens)
    true_diff = logits[0, -1, right] - logits[0, -1, wrong]
    bias = model.unembed_bias_terms(right) - model.unembed_bias_terms(wrong)
    right_t, wrong_t = torch.tensor([right]), torch.tensor([wrong])
    stacks = {
        "decompose_resid": cache.decompose_resid(pos_slice=-1),
        "stack_head_results": cache.stack_head_results(pos_slice=-1, incl_remainder=True),
        "full": cache.get_full_resid_decomposition(pos_slice=-1, expand_neurons=True),
        "full_mlp_layers": cache.get_full_resid_decomposition(pos_slice=-1, expand_neurons=False),
    }
    for name, stack in stacks.items():
        # every decomposition sums to the final residual stream (one more sum, over components) ...
        close = forward_tol(model.cfg, then=(len(stack),))
        torch.testing.assert_close(stack.sum(0), cache["resid_post", -1][:, -1], **close)
        # ... and its attributions to the logit difference, up to the bias no component writes
        attrs = cache.logit_attrs(stack, right_t, wrong_t, pos_slice=-1)
        torch.testing.assert_close(attrs.sum(0)[0] + bias, true_diff, **close), name
    dla = direct_logit_attribution(model, tokens, right_t, wrong_t, unit="head")
    close = forward_tol(model.cfg, then=(len(dla.attribution),))
    torch.testing.assert_close(dla.attribution.sum(0)[0] + bias, true_diff, **close)
    return true_diff, bias


def test_dla_identities_on_bundled_induction_model(induction):
    tokens, right, wrong = _induction_case(induction)
    true_diff, bias = _dla_identities(induction, tokens, right, wrong)
    # the recipe with plain W_U columns (the final norm's gain not folded) is off by more
    # than the bias term: what tokens_to_residual_directions exists to prevent
    _, cache = induction.run_with_cache(tokens)
    stack = cache.apply_ln_to_stack(cache.decompose_resid(pos_slice=-1), pos_slice=-1)
    naive = stack.sum(0)[0] @ (induction.W_U[:, right] - induction.W_U[:, wrong])
    assert (naive + bias - true_diff).abs() > 0.5


def test_dla_identities_after_process_weights(induction):
    processed = HookedMomentumTransformer.from_pretrained(
        "induction-1l-momentum", fold_ln=True, center_writing_weights=True, center_unembed=True
    )
    tokens, right, wrong = _induction_case(processed)
    _, bias = _dla_identities(processed, tokens, right, wrong)
    # processed: the directions are plain W_U columns and the leftover is b_U alone
    torch.testing.assert_close(
        processed.tokens_to_residual_directions(right), processed.W_U[:, right]
    )
    torch.testing.assert_close(bias, processed.b_U[right] - processed.b_U[wrong])


def test_dla_identities_on_text_model(text_model):
    tokens = text_model.to_tokens("the cat sat on the mat, the cat sat on the")
    right, wrong = text_model.to_single_token(" mat"), text_model.to_single_token(" hat")
    _dla_identities(text_model, tokens, right, wrong)


def test_logit_lens_last_layer_is_the_logits(induction, text_model):
    for model in (induction, text_model):
        tokens = model.to_tokens("1 2 3 4 5 1 2 3" if model.tokenizer is None else "the cat sat")
        close = forward_tol(model.cfg)
        logits, cache = model.run_with_cache(tokens)
        result = logit_lens(model, tokens)
        assert result.labels[-1] == "final_post"
        torch.testing.assert_close(result.values[-1], logits[:, -1], **close)
        torch.testing.assert_close(cache.logit_lens().values[-1], logits[:, -1], **close)
        accumulated = cache.accumulated_resid(apply_ln=True)  # the tutorial's recipe
        torch.testing.assert_close(model.unembed(accumulated[-1]), logits, **close)


def test_start_and_stop_at_layer_and_losses(text_model):
    tokens = text_model.to_tokens(["the cat sat on the mat", "import os\nimport sys"])
    logits = text_model(tokens)
    resid = text_model(tokens, stop_at_layer=1)
    _, cache = text_model.run_with_cache(tokens)
    torch.testing.assert_close(resid, cache["resid_pre", 1])
    torch.testing.assert_close(text_model(resid, start_at_layer=1), logits)
    embed, embed_tokens, _, _ = text_model.input_to_embed(tokens)
    assert torch.equal(embed_tokens, tokens)
    torch.testing.assert_close(text_model(embed, start_at_layer=0), logits)
    # per-token loss by hand: −log p(next token)
    by_hand = -logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    per_token = text_model(tokens, return_type="loss", loss_per_token=True)
    torch.testing.assert_close(per_token, by_hand)
    torch.testing.assert_close(text_model.loss_fn(logits, tokens), by_hand.mean())
    loss = text_model(resid, return_type="loss", start_at_layer=1, tokens=tokens)
    torch.testing.assert_close(loss, by_hand.mean())


def test_tokenizer_surface_and_attention_mask(text_model):
    tok = text_model.tokenizer
    assert tok.bos_token_id == tok.pad_token_id == 0 and tok.padding_side == "right"
    tokens = text_model.to_tokens(["the cat", "the cat sat on the mat"])
    n_short = len(text_model.to_str_tokens("the cat"))
    mask = get_attention_mask(tok, tokens, prepend_bos=True)
    assert mask[0].tolist() == [1] * n_short + [0] * (tokens.shape[1] - n_short)
    assert mask[1].all()
    assert text_model.to_str_tokens("the cat", prepend_bos=False) == ["the", " cat"]
    assert text_model.to_str_tokens(["the", "cat"], prepend_bos=False) == [["the"], ["cat"]]
    mat = text_model.to_single_token(" mat")
    assert text_model.to_single_str_token(mat) == " mat"
    assert text_model.to_string(torch.tensor(mat)) == " mat"
    assert text_model.get_token_position(" cat", "the cat sat on the cat", mode="last") == 6
    assert text_model.to_string(tokens[1]) == "<|endoftext|>the cat sat on the mat"
    # text in, text out: the greedy continuation is the model's argmax, step by step
    text = text_model.generate("the cat", max_new_tokens=3, do_sample=False, verbose=False)
    prompt = text_model.to_tokens("the cat")
    for _ in range(3):
        prompt = torch.cat([prompt, text_model(prompt)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert text == text_model.to_string(prompt[0])
    # loss with the attention mask ignores the padding, as TransformerLens's does
    logits = text_model(tokens)
    lone = text_model(tokens[:1, :n_short], return_type="loss")
    torch.testing.assert_close(text_model.loss_fn(logits[:1], tokens[:1], mask[:1]), lone)


def test_test_prompt_reports_the_models_numbers(induction, capsys):
    tokens, right, _ = _induction_case(induction)
    prompt = " ".join(str(t) for t in tokens[0].tolist())
    tl_test_prompt(prompt, str(right), induction, prepend_space_to_answer=True, top_k=3)
    out = capsys.readouterr().out
    logits = induction(tokens)[0, -1]
    assert f"Logit: {logits[right].item():5.2f}" in out
    expected_rank = int((logits > logits[right]).sum())
    assert f"Rank: {expected_rank: <8}" in out


def test_momentum_hooks_in_the_cache_shorthand(induction):
    tokens, _, _ = _induction_case(induction)
    _, cache = induction.run_with_cache(tokens)
    rot_k = cache["rot_k", 0]  # post-RoPE shear: the rotated keys are sheared
    torch.testing.assert_close(cache["k_velocity", 0], velocity(rot_k))
    torch.testing.assert_close(cache["k_sheared", -1], rot_k + velocity(rot_k))  # γ = 1
    assert cache["blocks.0.hook_q_velocity"] is cache["q_velocity", 0]
    with pytest.raises(KeyError, match="attention-only"):
        cache["mlp_out", 0]
    with pytest.raises(KeyError, match="attention-only"):
        induction.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda x, hook: x)])
    with pytest.raises(ValueError, match="attention-only"):
        induction.set_use_hook_mlp_in(True)
    _, plain = induction.run_with_cache(tokens, return_cache_object=False)
    assert isinstance(plain, dict) and torch.equal(
        plain["blocks.0.attn.hook_q_sheared"], cache["q_sheared", 0]
    )


@pytest.mark.parametrize("flag", ["split_qkv_input", "attn_in", "hook_mlp_in"])
def test_split_input_hooks_keep_logits_and_patch_one_head(text_model, flag):
    tokens = text_model.to_tokens("the cat sat on the mat")
    logits = text_model(tokens)
    getattr(text_model, f"set_use_{flag}")(True)
    try:
        _, cache = text_model.run_with_cache(tokens)
        torch.testing.assert_close(text_model(tokens), logits, **forward_tol(text_model.cfg))
        if flag == "hook_mlp_in":
            torch.testing.assert_close(cache["mlp_in", 1], cache["resid_mid", 1])
            return
        name = (
            "blocks.1.attn.hook_q_input"
            if flag == "split_qkv_input"
            else "blocks.1.attn.hook_attn_in"
        )
        assert cache[name].shape == (1, tokens.shape[1], 4, 16)

        # moving head 2's query input alone changes only head 2's query, by hand
        shift = torch.randn(16, generator=torch.Generator().manual_seed(0))

        def move(x, hook):
            x[:, :, 2] += shift
            return x

        with text_model.hooks(fwd_hooks=[(name, move)]):
            _, moved = text_model.run_with_cache(tokens)
        attn, ln1 = text_model.blocks[1].attn, text_model.blocks[1].ln1
        q2 = ln1(cache["resid_pre", 1] + shift) @ attn.W_Q[2] + attn.b_Q[2]
        torch.testing.assert_close(moved["q", 1][:, :, 2], q2, **forward_tol(text_model.cfg))
        torch.testing.assert_close(moved["q", 1][:, :, [0, 1, 3]], cache["q", 1][:, :, [0, 1, 3]])
    finally:
        getattr(text_model, f"set_use_{flag}")(False)


def test_composition_scores_by_definition(text_model):
    scores = text_model.all_composition_scores("K")
    assert scores.shape == (2, 4, 2, 4) and scores.scores[1].abs().max() == 0
    ov = (text_model.W_V[0, 1] @ text_model.W_O[0, 1]).double()
    qk = (text_model.W_Q[1, 3] @ text_model.W_K[1, 3].T).double()
    expected = (ov @ qk.T).norm() / (ov.norm() * qk.norm())
    # float32 against float64: products over d_head, then d_model, then Frobenius norms' sums
    d_model, d_head = text_model.cfg.d_model, text_model.cfg.d_head
    tol = sum(sum_tolerance(n) for n in (d_head, d_head, d_model, d_model**2, d_model**2))
    torch.testing.assert_close(scores.scores[0, 1, 1, 3].double(), expected, atol=tol, rtol=tol)


def test_config_follows_dtype_and_failed_cuda(text_model):
    model = copy.deepcopy(text_model)
    model.to(torch.float64)
    assert model.cfg.dtype == torch.float64 and model.W_E.dtype == torch.float64
    if not torch.cuda.is_available():
        with pytest.raises((AssertionError, RuntimeError)):
            model.cuda()
        assert model.cfg.device == "cpu"
    cfg = model.cfg
    assert cfg.n_params == cfg.n_layers * (
        4 * cfg.d_model * cfg.d_head * cfg.n_heads + 2 * cfg.d_model * cfg.d_mlp
    )
    if cfg.positional_embedding_type == "standard":
        assert torch.equal(model.W_E_pos, torch.cat([model.W_E, model.W_pos]))
    bias = model.accumulated_bias(2)
    expected = sum(b.attn.b_O + b.mlp.b_out for b in model.blocks)
    torch.testing.assert_close(bias, expected)


def _tour(model) -> list[tuple[str, object]]:
    """A TransformerLens 4-style walk-through written for this repository (after loading and
    `enable_compatibility_mode`), as `(what it prints, the value)` pairs, in order."""
    printed = []

    def say(label, value):
        print(label, value)
        printed.append((label, value))

    cfg = model.cfg
    say("config", [cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_vocab, cfg.n_ctx])
    say("checkpoint", (cfg.checkpoint_index, cfg.checkpoint_value))
    for name, param in sorted(model.tl_named_parameters()):
        if name.startswith("blocks.0.attn."):
            say(f"{name} norm", param.norm())
    text = "the cat sat on the mat, the cat sat on the hat"
    tokens = model.to_tokens(text)
    say("tokens", tokens)
    say("str tokens", model.to_str_tokens(text))
    say("loss", model(text, return_type="loss"))
    logits, cache = model.run_with_cache(tokens)
    say("top next token", logits[0, -1].argmax())
    say("|residual entering block 1|", cache[get_act_name("in", 1)].norm())
    say("layer 1 head 2 attention, last query", cache["pattern", 1][0, 2, -1])
    answer, wrong = int(tokens[0, 5]), int(tokens[0, 3])
    direction = model.W_U[:, answer] - model.W_U[:, wrong]
    logit_diff = logits[0, -1, answer] - logits[0, -1, wrong]
    say("logit difference", logit_diff)
    lens, labels = cache.accumulated_resid(
        layer=-1, incl_mid=True, pos_slice=-1, apply_ln=True, return_labels=True
    )
    say("logit lens", (labels, lens[:, 0] @ direction))
    heads = cache.stack_head_results(layer=-1, pos_slice=-1, apply_ln=True)
    say("DLA per head", heads[:, 0] @ direction)
    components = cache.apply_ln_to_stack(cache.decompose_resid(pos_slice=-1), pos_slice=-1)
    say(
        "DLA total + b_U difference",
        (components[:, 0] @ direction).sum()
        + direction.new_tensor(float(model.b_U[answer] - model.b_U[wrong])),
    )

    def ablate_head_0(z, hook):
        z[:, :, 0] = 0.0
        return z

    ablated = model.run_with_hooks(
        tokens, return_type="loss", fwd_hooks=[(get_act_name("z", 0), ablate_head_0)]
    )
    say("loss with L0H0 ablated", ablated)
    corrupted = tokens.clone()
    corrupted[0, 1] = wrong

    def metric(out):
        return out[0, -1, answer] - out[0, -1, wrong]

    say("patching resid_pre", patching.get_act_patch_resid_pre(model, corrupted, cache, metric))
    say("previous-token heads", detect_head(model, text, "previous_token_head"))
    vectors = SVDInterpreter(model).get_singular_vectors("OV", 1, num_vectors=2, head_index=0)
    say("OV singular vectors of L1H0", vectors)
    long_text = text * 10
    say("long text: tokens", model.to_tokens(long_text).shape)
    say("long text: last logits", model(long_text)[0, -1])
    say("K-composition", model.all_composition_scores("K").scores)
    return printed


# Issue 23's bar for the walk-through: every printed number equal to 1e-4. (forward_tolerance's
# first-order float32 bound for this GPT-2 size is 2.2e-4; the differences seen are ~1e-6.)
TOL = dict(atol=1e-4, rtol=1e-4)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a.detach().cpu(), b.detach().cpu(), **TOL)
        return True
    if isinstance(a, tuple | list) and any(isinstance(x, torch.Tensor) for x in a):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_tutorial_walkthrough_prints_the_bridges_numbers(gpt2_pair):
    _, directory, _, bridge = gpt2_pair
    model = HookedMomentumTransformer.from_hf(directory)
    model.enable_compatibility_mode(
        fold_ln=True, center_writing_weights=True, center_unembed=True,
        refactor_factored_attn_matrices=False,
    )  # fmt: skip
    ours, theirs = _tour(model), _tour(bridge)
    assert [label for label, _ in ours] == [label for label, _ in theirs]
    for (label, mine), (_, reference) in zip(ours, theirs, strict=True):
        assert _same(mine, reference), label
    printed = dict(ours)
    torch.testing.assert_close(printed["DLA total + b_U difference"], printed["logit difference"])


def test_tutorial_calls_on_the_bundled_language_model():
    """The walk-through runs on lm-momentum-S (rotary, momentum on) loaded the TransformerLens 4
    way, with its DLA identity; W_pos names RoPE, and the QK refactor is refused."""
    model = HookedMomentumTransformer.from_pretrained("lm-momentum-S")
    assert not model.training
    with pytest.raises(ValueError, match="with RoPE"):
        model.enable_compatibility_mode(refactor_factored_attn_matrices=True)
    untouched = model.W_Q.clone()
    model.enable_compatibility_mode(fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert model.compatibility_mode and not torch.equal(model.W_Q, untouched)
    printed = dict(_tour(model))
    torch.testing.assert_close(
        printed["DLA total + b_U difference"], printed["logit difference"], **TOL
    )
    assert printed["long text: tokens"] == (1, 128)
    assert not hasattr(model, "W_pos")
    with pytest.raises(AttributeError, match="W_E_pos: this model encodes positions with RoPE"):
        _ = model.W_E_pos


def test_dla_recipe_after_compatibility_mode_on_the_induction_model():
    """Loaded unprocessed, the tutorial's recipe plus the b_U difference misses the logit
    difference (7.16 vs 11.28 on this prompt); after enable_compatibility_mode it is exact."""
    model = HookedMomentumTransformer.from_pretrained("induction-1l-momentum")
    tokens, right, wrong = _induction_case(model)

    def recipe_error(model):
        logits, cache = model.run_with_cache(tokens)
        stack = cache.apply_ln_to_stack(cache.decompose_resid(pos_slice=-1), pos_slice=-1)
        recipe = stack.sum(0)[0] @ (model.W_U[:, right] - model.W_U[:, wrong])
        diff = logits[0, -1, right] - logits[0, -1, wrong]
        return float(recipe + model.b_U[right] - model.b_U[wrong] - diff)

    assert abs(recipe_error(model)) > 0.3
    model.enable_compatibility_mode()
    assert abs(recipe_error(model)) < 1e-4
    with pytest.raises(AttributeError, match="attention-only and has no MLPs"):
        _ = model.W_in
