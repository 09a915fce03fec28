"""Cached generation (KV cache + previous raw q/k for the shear) equals uncached generation."""

from __future__ import annotations

import pytest
import torch
from float32 import forward_tol

from momentum_interp import HookedMomentumTransformer

VARIANTS = [
    dict(shear="qk", shear_placement="post_rope", positional_embedding_type="rotary"),
    dict(shear="qk", shear_placement="pre_rope", positional_embedding_type="rotary"),
    dict(shear="k", positional_embedding_type="standard", gamma=0.7),
    dict(shear="none", smeared_key=True, positional_embedding_type="standard"),
    dict(shear="qk", gamma_learnable=True, attn_only=True, positional_embedding_type="rotary"),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("do_sample", [False, True])
def test_cached_generation_equals_uncached(make_model, variant, do_sample):
    model = make_model(**variant)
    if model.cfg.gamma_learnable:
        with torch.no_grad():
            model.blocks[0].attn.gamma.copy_(torch.tensor([0.3, -0.4, 1.7, 0.9]))
    prompt = torch.randint(0, model.cfg.d_vocab, (2, 5), generator=torch.Generator().manual_seed(3))
    runs = []
    for cached in (True, False):
        torch.manual_seed(0)
        runs.append(
            model.generate(
                prompt,
                max_new_tokens=11,
                do_sample=do_sample,
                use_past_kv_cache=cached,
                verbose=False,
                output_logits=True,
            )
        )
    (tokens_c, logits_c), (tokens_u, logits_u) = runs
    assert tokens_c.shape == (2, 16)
    assert torch.equal(tokens_c, tokens_u)
    torch.testing.assert_close(logits_c, logits_u, **forward_tol(model.cfg))
    # the uncached logits are the model's own forward at each step
    full = model(tokens_u[:, :-1])[:, prompt.shape[1] - 1 :]
    torch.testing.assert_close(logits_u, full, **forward_tol(model.cfg))


def test_generation_on_bundled_induction_model_copies():
    model = HookedMomentumTransformer.from_pretrained("induction-1l-momentum")
    seq = torch.randperm(63, generator=torch.Generator().manual_seed(0))[:20] + 1
    prompt = torch.cat([seq, seq[:4]])[None]
    cached = model.generate(prompt, max_new_tokens=8, do_sample=False, verbose=False)
    uncached = model.generate(
        prompt, max_new_tokens=8, do_sample=False, use_past_kv_cache=False, verbose=False
    )
    assert torch.equal(cached, uncached)
    # the induction model continues the repeated segment
    assert (cached[0, 24:] == seq[4:12]).float().mean() >= 0.75


def test_generation_checks_context(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="exceed the context"):
        model.generate(torch.zeros(1, 10, dtype=torch.long), max_new_tokens=10, verbose=False)
