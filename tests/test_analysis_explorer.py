"""The explorer's four dot products rebuild each head's scores, and the pattern they give at a γ
is the pattern of the 1-layer model run with that γ (TransformerLens hooks on the same weights)."""

import pytest
import torch

from momentum_interp import HookedMomentumTransformer
from momentum_interp.analysis import what_if_shear_hooks
from momentum_interp.analysis.explorer import (
    causal_softmax,
    coefficients,
    explorer_data,
    induction_keys,
    scores_from_dots,
)
from momentum_interp.config import MomentumConfig
from momentum_interp.zoo import ZOO


@pytest.fixture(scope="module")
def zoo():
    return {name: HookedMomentumTransformer.from_pretrained(name) for name in ZOO}  # every role


@pytest.fixture(scope="module")
def data(zoo):
    return explorer_data(zoo)


def _hooked(model, tokens, name):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith(name))
    return torch.stack(
        [cache[f"blocks.{layer}.attn.{name}"][0] for layer in range(model.cfg.n_layers)]
    )


def _check_reconstruction(model, entry, tokens):
    """Scores at each head's own γ from the four terms equal hook_attn_scores (causal part)."""
    scores = _hooked(model, tokens, "hook_attn_scores").double()  # [layer, head, pos, pos]
    dots = torch.as_tensor(entry.dots).double()
    causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            gamma = float(entry.gamma[layer, head])
            gamma_q = gamma if entry.shear == "qk" else 0.0
            assert gamma_q == pytest.approx(float(model.gamma_q[layer, head]), abs=1e-7)
            assert gamma == pytest.approx(float(model.gamma_k[layer, head]), abs=1e-7)
            rebuilt = scores_from_dots(dots[layer, head], gamma_q, gamma, entry.shear_norm)
            torch.testing.assert_close(
                rebuilt[causal], scores[layer, head][causal], atol=1e-5, rtol=0
            )


def test_terms_rebuild_hook_attn_scores_for_every_zoo_model(zoo, data):
    tokens = torch.tensor([data.tokens])
    assert [m.name for m in data.models] == list(ZOO)
    for entry in data.models:
        _check_reconstruction(zoo[entry.name], entry, tokens)
    shears = {m.name: m.shear for m in data.models}
    assert shears["induction-1l-smeared-key"] == "k" and shears["induction-1l-momentum-best"] == "k"
    assert shears["induction-1l-momentum"] == "qk"
    smeared = next(m for m in data.models if m.name == "induction-1l-smeared-key")
    alpha = torch.sigmoid(zoo["induction-1l-smeared-key"].blocks[0].attn.smear_logit).detach()
    torch.testing.assert_close(torch.as_tensor(smeared.gamma[0]), alpha - 1)  # γ = α − 1


@pytest.mark.parametrize("placement", ["post_rope", "pre_rope"])
@pytest.mark.parametrize("shear", ["qk", "k"])
def test_terms_rebuild_scores_for_per_head_gamma_and_both_placements(placement, shear):
    cfg = MomentumConfig(
        n_layers=2, d_model=32, n_heads=4, d_head=8, d_vocab=20, n_ctx=16, attn_only=True,
        positional_embedding_type="rotary", rotary_dim=8, shear=shear, shear_placement=placement,
        gamma_learnable=True, seed=3,
    )  # fmt: skip
    model = HookedMomentumTransformer(cfg)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.gamma.copy_(torch.tensor([0.0, 0.5, 1.0, 2.5]))
    tokens = torch.randint(0, 20, (1, 16), generator=torch.Generator().manual_seed(0))
    data = explorer_data({"m": model}, tokens)
    _check_reconstruction(model, data.models[0], tokens)


@pytest.mark.parametrize("name", ["induction-1l-momentum", "induction-1l-momentum-best"])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 0.37])
def test_softmax_at_gamma_is_the_one_layer_model_run_with_that_gamma(zoo, data, name, gamma):
    entry = next(m for m in data.models if m.name == name)
    model = HookedMomentumTransformer.from_pretrained(name)
    model.set_gamma(gamma)
    expected = _hooked(model, torch.tensor([data.tokens]), "hook_pattern")[0].double()
    gamma_q = gamma if entry.shear == "qk" else 0.0
    pattern = causal_softmax(
        scores_from_dots(torch.as_tensor(entry.dots[0]).double(), gamma_q, gamma)
    )
    torch.testing.assert_close(pattern, expected, atol=1e-5, rtol=0)


def test_coefficients_and_induction_keys_by_hand():
    assert coefficients(1.0, 1.0) == (4.0, -2.0, -2.0, 1.0)
    assert coefficients(0.0, 0.5) == (1.5, -0.5, -0.0, 0.0)
    # normalised: divided by √(1 + 2γ + 2γ²) per side (√5 at γ = 1)
    assert coefficients(1.0, 1.0, shear_norm=True) == pytest.approx((0.8, -0.4, -0.4, 0.2))
    # tokens 5 7 9 5 7: the second 5 (t=3) looks for the key after the first 5 (s*=1).
    assert induction_keys([5, 7, 9, 5, 7]) == [-1, -1, -1, 1, 2]


@pytest.mark.parametrize(
    "options",
    [
        {"shear": "qk", "shear_norm": True},
        {"shear": "k", "shear_norm": True},
        {"shear": "none", "learned_temperature": True},
    ],
)
def test_terms_rebuild_the_scores_of_normalised_and_temperature_models(options):
    model = HookedMomentumTransformer(
        MomentumConfig(
            n_layers=2,
            d_model=16,
            n_heads=2,
            d_head=8,
            d_vocab=20,
            n_ctx=16,
            attn_only=True,
            positional_embedding_type="rotary",
            gamma=0.8,
            seed=3,
            **options,
        )
    )
    if options.get("learned_temperature"):
        with torch.no_grad():
            for block in model.blocks:
                block.attn.log_temperature.uniform_(-0.5, 0.5)
    tokens = torch.randint(0, 20, (1, 16), generator=torch.Generator().manual_seed(0))
    (entry,) = explorer_data({"m": model}, tokens).models
    _check_reconstruction(model, entry, tokens)


def test_models_must_share_a_vocabulary(zoo):
    other = HookedMomentumTransformer(
        MomentumConfig(
            n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=10, n_ctx=8, attn_only=True
        )
    )
    with pytest.raises(ValueError, match="share one vocabulary"):
        explorer_data({"a": zoo["induction-1l-momentum"], "b": other})
    with pytest.raises(ValueError, match="one sequence"):
        explorer_data({"a": other}, torch.zeros(2, 4, dtype=torch.long))
    long = HookedMomentumTransformer(
        MomentumConfig(
            n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=10, n_ctx=300, attn_only=True
        )
    )
    with pytest.raises(ValueError, match="at most 256 tokens"):
        explorer_data({"a": long}, torch.zeros(1, 300, dtype=torch.long))


def _rescaled(**options) -> HookedMomentumTransformer:
    cfg = MomentumConfig(
        n_layers=1, d_model=32, n_heads=4, d_head=8, d_vocab=20, n_ctx=16, attn_only=True,
        gamma=0.6, seed=3, **options,
    )  # fmt: skip
    return HookedMomentumTransformer(cfg).eval()


def test_a_learned_temperature_scales_the_terms_and_a_what_if_needs_no_shear():
    """The page's identity must carry the learned per-head logit scale (γ-free, folded into the
    dots); the what-if shear refuses a model that shears already."""
    model = _rescaled(learned_temperature=True)
    with torch.no_grad():
        model.blocks[0].attn.log_temperature.copy_(torch.tensor([0.5, -0.3, 0.0, 1.0]))
    tokens = torch.randint(0, 20, (1, 16), generator=torch.Generator().manual_seed(0))
    _check_reconstruction(model, explorer_data({"t": model}, tokens).models[0], tokens)
    with pytest.raises(ValueError, match="set_gamma"):  # a second shear on top of its own
        what_if_shear_hooks(model, 0.5)


def test_scores_the_terms_do_not_rebuild_are_refused():
    """A model whose scores are not ⟨q̂, k̂⟩ / scale (here: doubled by a hook) is refused rather
    than shown with wrong patterns."""
    model = _rescaled()
    tokens = torch.randint(0, 20, (1, 16), generator=torch.Generator().manual_seed(0))

    def double(scores, hook):
        return scores * 2

    doubled = model.hooks(fwd_hooks=[("blocks.0.attn.hook_attn_scores", double)])
    with doubled, pytest.raises(ValueError, match="do not rebuild this model's attention scores"):
        explorer_data({"m": model}, tokens)
