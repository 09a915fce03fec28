"""Weight processing is exact with momentum: logits unchanged (to float32 rounding) for every γ, shear
mode and placement; centring the unembedding moves all logits at a position by one constant."""

from __future__ import annotations

import copy

import pytest
import torch
from float32 import forward_tol

from momentum_interp import HookedMomentumTransformer

VARIANTS = [
    dict(shear="qk", shear_placement="post_rope", positional_embedding_type="rotary"),
    dict(shear="qk", shear_placement="pre_rope", positional_embedding_type="rotary"),
    dict(shear="k", shear_placement="post_rope", positional_embedding_type="standard"),
    dict(shear="none", smeared_key=True, positional_embedding_type="standard"),
]


def _centred(logits: torch.Tensor) -> torch.Tensor:
    return logits - logits.mean(-1, keepdim=True)


def _tokens(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.d_vocab, (3, model.cfg.n_ctx), generator=gen)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("gamma", [0.0, 1.0, "learned"])
def test_process_weights_keeps_logits(make_model, variant, gamma):
    learned = gamma == "learned"
    model = make_model(gamma_learnable=learned, **variant)
    if learned and model.cfg.shear != "none":
        with torch.no_grad():
            for block in model.blocks:
                block.attn.gamma.copy_(torch.tensor([0.3, -0.4, 1.7, 0.9]))
    elif model.cfg.shear != "none":
        model.set_gamma(gamma)
    tokens = _tokens(model)
    before = model(tokens)
    processed = copy.deepcopy(model).process_weights(center_unembed=False)
    torch.testing.assert_close(processed(tokens), before, **forward_tol(model.cfg, processed=True))
    for block in processed.blocks:  # the norms are now parameter-free, b_V is folded
        assert torch.equal(block.ln1.w, torch.ones_like(block.ln1.w))
        assert torch.equal(block.ln1.b, torch.zeros_like(block.ln1.b))
        assert torch.equal(block.attn.b_V, torch.zeros_like(block.attn.b_V))
        assert block.attn.W_O.mean(-1).abs().max() < 1e-6
    processed.center_unembed()
    after = processed(tokens)
    assert (after - before).abs().max() > 1e-3  # logits move ...
    close = forward_tol(model.cfg, processed=True)
    torch.testing.assert_close(_centred(after), _centred(before), **close)  # ... by a constant


def test_rms_norm_folds_but_refuses_centring(make_model):
    model = make_model(normalization_type="RMS", positional_embedding_type="rotary")
    tokens = _tokens(model)
    before = model(tokens)
    untouched = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="exact only when every reader"):
        model.process_weights()
    for name, value in model.state_dict().items():  # refused before any step ran
        assert torch.equal(value, untouched[name]), name
    model.process_weights(center_writing_weights=False)
    close = forward_tol(model.cfg, processed=True)
    torch.testing.assert_close(_centred(model(tokens)), _centred(before), **close)


def test_compatibility_mode_skips_centring_without_layernorm(make_model):
    """TransformerLens's enable_compatibility_mode on an RMSNorm model: fold, but skip centring
    (as TransformerLens does) rather than refuse it."""
    model = make_model(normalization_type="RMS", positional_embedding_type="rotary")
    tokens = _tokens(model)
    before = model(tokens)
    model.enable_compatibility_mode()
    assert model.compatibility_mode
    torch.testing.assert_close(
        _centred(model(tokens)), _centred(before), **forward_tol(model.cfg, processed=True)
    )
    assert torch.equal(model.ln_final.w, torch.ones_like(model.ln_final.w))
    assert model.W_E.mean(-1).abs().max() > 1e-3  # not centred


@pytest.mark.parametrize(
    "variant",
    [
        dict(shear="qk", gamma=0.8, learned_temperature=True),
        dict(shear="k", gamma=-0.4, shear_norm=True),
        dict(shear="none", smeared_key=True),
    ],
)
def test_refactor_factored_attn_matrices_keeps_logits(make_model, variant):
    """With learned positions every score is a sum of `[x_a 1] W̃_Q W̃_Kᵀ [x_b 1]ᵀ` over shifted
    positions, so TransformerLens's refactor is exact under any shear and q/k scale."""
    model = make_model(positional_embedding_type="standard", **variant)
    if variant.get("learned_temperature"):
        with torch.no_grad():
            for block in model.blocks:
                block.attn.log_temperature.copy_(torch.tensor([0.3, -0.2, 0.5, 0.1]))
    tokens = _tokens(model)
    before = model(tokens)
    W_Q = model.W_Q.clone()
    model.process_weights(refactor_factored_attn_matrices=True)
    torch.testing.assert_close(
        _centred(model(tokens)), _centred(before), **forward_tol(model.cfg, processed=True)
    )
    assert (model.W_Q - W_Q).abs().max() > 0.1  # the factors did change


def test_refactor_is_refused_with_rope(make_model):
    model = make_model(positional_embedding_type="rotary")
    untouched = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="with RoPE the rotation between them"):
        model.enable_compatibility_mode(refactor_factored_attn_matrices=True)
    for name, value in model.state_dict().items():  # refused before any step ran
        assert torch.equal(value, untouched[name]), name


def test_from_pretrained_processed_matches_unprocessed():
    plain = HookedMomentumTransformer.from_pretrained("induction-1l-momentum")
    processed = HookedMomentumTransformer.from_pretrained(
        "induction-1l-momentum", fold_ln=True, center_writing_weights=True, center_unembed=True
    )
    tokens = _tokens(plain)
    close = forward_tol(plain.cfg, processed=True)
    torch.testing.assert_close(_centred(processed(tokens)), _centred(plain(tokens)), **close)
    assert not torch.equal(processed.W_U, plain.W_U)
    # default loading stays unprocessed: the trained final-norm gain is still there
    assert (plain.ln_final.w - 1).abs().max() > 0.01
    torch.testing.assert_close(processed.ln_final.w, torch.ones_like(processed.ln_final.w))
