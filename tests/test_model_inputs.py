"""Input and config validation, and a hypothesis property test over random architectures."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.evaluation import next_token_loss

BASE = dict(d_model=16, d_head=4, n_layers=1, n_ctx=12, d_vocab=20, device="cpu")
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model() -> HookedMomentumTransformer:
    return HookedMomentumTransformer(MomentumConfig(**BASE, seed=0)).eval()


# ------------------------------------------------------------------------------ tokens


@SETTINGS
@given(
    bad=st.one_of(st.integers(-(2**40), -1), st.integers(20, 2**40)),
    pos=st.integers(0, 5),
    batch=st.integers(1, 3),
)
def test_out_of_range_token_ids(model, bad, pos, batch):
    tokens = torch.zeros(batch, 6, dtype=torch.long)
    tokens[batch - 1, pos] = bad
    with pytest.raises(ValueError, match=rf"Token id {bad} at .*\[0, 20\)"):
        model(tokens)
    with pytest.raises(ValueError, match=r"\[0, 20\)"):
        model.to_tokens([0, 1, bad])


@SETTINGS
@given(extra=st.integers(1, 30), batch=st.integers(1, 2))
def test_sequence_longer_than_context(model, extra, batch):
    tokens = torch.zeros(batch, 12 + extra, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"{12 + extra} exceeds .*n_ctx=12"):
        model(tokens)


def test_full_context_is_fine(model):
    with torch.no_grad():
        assert model(torch.zeros(2, 12, dtype=torch.long)).shape == (2, 12, 20)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bool])
def test_non_integer_tokens(model, dtype):
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(1, 4, dtype=dtype))


def test_other_integer_dtypes_are_accepted(model):
    with torch.no_grad():
        ref = model(torch.tensor([[1, 2, 3]]))
        for dtype in (torch.int32, torch.int16, torch.uint8):
            assert torch.equal(model(torch.tensor([[1, 2, 3]], dtype=dtype)), ref)


@pytest.mark.parametrize("shape", [(1, 2, 3), (2, 2, 2, 2)])
def test_tokens_with_too_many_dims(model, shape):
    with pytest.raises(ValueError, match=r"shape \[pos\] or \[batch, pos\]"):
        model(torch.zeros(shape, dtype=torch.long))


def test_zero_dim_tokens(model):
    with pytest.raises(ValueError, match="shape"):
        model(torch.tensor(3))


@pytest.mark.parametrize(
    "empty",
    [
        torch.zeros(0, dtype=torch.long),
        torch.zeros(1, 0, dtype=torch.long),
        torch.zeros(0, 4, dtype=torch.long),
        "",
        "   ",
        [[]],
        [],
    ],
    ids=["1d", "batch_no_pos", "no_batch", "empty_text", "blank_text", "empty_row", "empty_list"],
)
def test_empty_input(model, empty):
    with pytest.raises(ValueError, match="empty"):
        model(empty)


def test_not_a_sequence(model):
    with pytest.raises(TypeError, match="Expected text"):
        model.to_tokens(3.5)


def test_ragged_lists(model):
    with pytest.raises(ValueError, match="different lengths"):
        model.to_tokens([[1, 2], [3]])


def test_bad_return_type(model):
    with pytest.raises(ValueError, match="return_type"):
        model(torch.tensor([[1, 2]]), return_type="logit")


def test_one_dimensional_tokens_are_a_batch_of_one(model):
    with torch.no_grad():
        assert torch.equal(model(torch.tensor([1, 2, 3])), model(torch.tensor([[1, 2, 3]])))


def test_loss_is_next_token_cross_entropy(model):
    tokens = torch.tensor([[1, 5, 2, 7, 7], [0, 3, 3, 9, 4]])
    with torch.no_grad():
        logits, loss = model(tokens, return_type="both")
        logp = logits.log_softmax(-1)
        nll = [-logp[b, t, tokens[b, t + 1]] for b in range(2) for t in range(4)]
        torch.testing.assert_close(loss, torch.stack(nll).mean())
        mask = torch.tensor([[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
        picked = [-logp[b, t, tokens[b, t + 1]] for b, t in ((0, 0), (0, 3), (1, 2))]
        torch.testing.assert_close(
            model(tokens, return_type="loss", loss_mask=mask), torch.stack(picked).mean()
        )
        assert model(tokens, return_type=None) is None


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize("gamma", [math.nan, math.inf, -math.inf])
def test_non_finite_gamma_in_config(gamma):
    with pytest.raises(ValueError, match="gamma must be finite"):
        MomentumConfig(**BASE, gamma=gamma)


@pytest.mark.parametrize("gamma", ["1.0", None, True])
def test_non_numeric_gamma_in_config(gamma):
    with pytest.raises(ValueError, match="gamma must be a real number"):
        MomentumConfig(**BASE, gamma=gamma)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_set_gamma(model, value):
    before = model.gamma_q.clone()
    with pytest.raises(ValueError, match="gamma must be finite"):
        model.set_gamma(value)
    assert torch.equal(model.gamma_q, before)  # nothing was half-applied


def test_unknown_option():
    with pytest.raises(ValueError, match=r"Unknown MomentumConfig option\(s\) 'bogus'\. Valid: "):
        MomentumConfig(**BASE, bogus=1)
    with pytest.raises(ValueError, match="bogus"):
        MomentumConfig.from_dict({**BASE, "bogus": 1})
    with pytest.raises(ValueError, match="bogus"):
        HookedMomentumTransformer({**BASE, "bogus": 1})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("shear", "qq"),
        ("shear_placement", "x"),
        ("act_fn", "tanh"),
        ("normalization_type", "BN"),
        ("positional_embedding_type", "alibi"),
        ("dtype", "float16"),
    ],
)
def test_invalid_choices(option, value):
    with pytest.raises(ValueError, match=rf"{option}={value!r} is not supported; choose one of"):
        MomentumConfig(**{**BASE, option: value})


@pytest.mark.parametrize("shear", ["qk", "k"])
def test_smeared_key_needs_shear_none(shear):
    with pytest.raises(ValueError, match="smeared_key=True.*shear='none'"):
        MomentumConfig(**BASE, smeared_key=True, shear=shear)


@pytest.mark.parametrize("smear_init", [0.0, 1.0, -0.5, 2.0])
def test_smear_init_outside_unit_interval(smear_init):
    with pytest.raises(ValueError, match="smear_init"):
        MomentumConfig(**BASE, shear="none", smeared_key=True, smear_init=smear_init)


def test_d_head_defaults_to_d_model_over_n_heads():
    cfg = MomentumConfig(d_model=16, n_heads=4, n_layers=1, n_ctx=8, device="cpu")
    assert (cfg.d_head, cfg.n_heads) == (4, 4)
    assert MomentumConfig.from_dict(cfg.to_dict()).d_head == 4
    with pytest.raises(
        ValueError,
        match=r"d_head is not set and d_model=16 is not a multiple of "
        r"n_heads=3.*set d_head",
    ):
        MomentumConfig(d_model=16, n_heads=3, n_layers=1, n_ctx=8)
    with pytest.raises(ValueError, match=r"missing the required option\(s\) d_head \(or n_heads\)"):
        MomentumConfig(d_model=16, n_layers=1, n_ctx=8)
    with pytest.raises(ValueError, match=r"missing the required option\(s\) n_layers"):
        MomentumConfig(d_model=16, d_head=4, n_ctx=8)


@pytest.mark.parametrize("device", ["cuda:7", "gpu"])
def test_a_device_this_machine_lacks_is_named(device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ValueError, match=rf"device '{device}' .*\['cpu'"):
        MomentumConfig(**{**BASE, "device": device})
    with pytest.raises(ValueError, match=rf"device '{device}' .*\['cpu'"):
        HookedMomentumTransformer.from_pretrained("induction-1l-momentum", device=device)


def test_d_model_not_a_multiple_of_d_head():
    with pytest.raises(ValueError, match="not a multiple of d_head"):
        MomentumConfig(d_model=18, d_head=4, n_layers=1, n_ctx=8)
    # with n_heads given explicitly it is allowed (TransformerLens semantics)
    cfg = MomentumConfig(d_model=18, d_head=4, n_heads=3, n_layers=1, n_ctx=8, device="cpu")
    model = HookedMomentumTransformer(cfg)
    with torch.no_grad():
        assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, cfg.d_vocab)


@pytest.mark.parametrize("rotary_dim", [3, 0, 6, -2])
def test_bad_rotary_dim(rotary_dim):
    with pytest.raises(ValueError, match="rotary_dim must be even and in"):
        MomentumConfig(**BASE, positional_embedding_type="rotary", rotary_dim=rotary_dim)


@pytest.mark.parametrize(
    ("option", "value"),
    [("d_model", 0), ("n_layers", -1), ("n_ctx", 2.5), ("d_vocab", True), ("d_mlp", 0)],
)
def test_non_positive_sizes(option, value):
    with pytest.raises(ValueError, match=rf"{option} must be a positive integer"):
        MomentumConfig(**{**BASE, option: value})


def test_config_dict_round_trip():
    cfg = MomentumConfig(**BASE, gamma=0.4, shear="k", dtype="float64", rotary_dim=2,
                         positional_embedding_type="rotary")  # fmt: skip
    again = MomentumConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    assert again.dtype == torch.float64 and again.rotary_dim == 2 and again.n_heads == 4


# -------------------------------------------------------------------- property test


def _velocity(x):
    p = torch.zeros_like(x)
    p[:, 1:] = x[:, 1:] - x[:, :-1]
    return p


def _prev(x):
    out = x.clone()
    out[:, 1:] = x[:, :-1]
    return out


def _dot(a, b):
    return torch.matmul(a.permute(0, 2, 1, 3), b.permute(0, 2, 3, 1))


@st.composite
def architectures(draw):
    d_head = draw(st.sampled_from([2, 4, 6, 8]))
    n_heads = draw(st.integers(1, 4))
    position = draw(st.sampled_from(["standard", "rotary"]))
    n_ctx = draw(st.integers(2, 32))
    cfg = dict(
        d_model=draw(st.integers(4, 32)),
        d_head=d_head,
        n_heads=n_heads,
        n_layers=draw(st.integers(1, 3)),
        n_ctx=n_ctx,
        d_vocab=draw(st.integers(2, 40)),
        d_mlp=draw(st.integers(1, 32)),
        attn_only=draw(st.booleans()),
        positional_embedding_type=position,
        shear=draw(st.sampled_from(["qk", "k", "none"])),
        shear_placement=draw(st.sampled_from(["post_rope", "pre_rope"])),
        gamma=draw(st.floats(-2.0, 8.0, allow_nan=False, width=32)),
        normalization_type=draw(st.sampled_from(["LN", "RMS", None])),
        act_fn=draw(st.sampled_from(["gelu", "relu"])),
        seed=draw(st.integers(0, 2**16)),
        device="cpu",
    )
    if position == "rotary":
        cfg["rotary_dim"] = draw(st.sampled_from([r for r in range(2, d_head + 1, 2)]))
    seq_len = draw(st.integers(1, n_ctx))
    batch = draw(st.integers(1, 3))
    return cfg, seq_len, batch


@SETTINGS
@given(arch=architectures(), data=st.data())
def test_property_random_architectures(rope, arch, data):
    cfg_kwargs, seq_len, batch = arch
    cfg = MomentumConfig(**cfg_kwargs)
    model = HookedMomentumTransformer(cfg).eval()
    gamma = cfg_kwargs["gamma"]
    tokens = torch.tensor(
        data.draw(
            st.lists(
                st.lists(st.integers(0, cfg.d_vocab - 1), min_size=seq_len, max_size=seq_len),
                min_size=batch,
                max_size=batch,
            )
        )
    )
    with torch.no_grad():
        fast = model(tokens)
        assert fast.shape == (batch, seq_len, cfg.d_vocab)
        assert torch.isfinite(fast).all()
        slow, cache = model.run_with_cache(tokens)  # every hook attached: analysis path
    # The fast path shears as lerp(x_{t−1}, x, 1+γ), the hooked one as x + γ(x − x_{t−1}): equal
    # maths, different float32 rounding, which the shear amplifies by up to 1 + 2|γ|.
    scale = (1.0 + fast.abs().max().item()) * (1.0 + 2.0 * abs(gamma))
    torch.testing.assert_close(slow, fast, atol=1e-5 * scale, rtol=1e-5)

    gq = gamma if cfg.shear == "qk" else 0.0
    gk = gamma if cfg.shear in ("qk", "k") else 0.0
    rotary = cfg.positional_embedding_type == "rotary"
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    for layer in range(cfg.n_layers):
        a = f"blocks.{layer}.attn"
        if rotary and cfg.shear_placement == "pre_rope":
            # x̂_t rotated at t is (1+γ) R_t x_t − γ R_t x_{t−1}: both rotated at the current t
            q, k = cache[f"{a}.hook_q"], cache[f"{a}.hook_k"]
            r = cfg.rotary_dim
            qt, kt, qp, kp = rope(q, r), rope(k, r), rope(_prev(q), r), rope(_prev(k), r)
        else:
            name = "rot_" if rotary else ""
            q, k = cache[f"{a}.hook_{name}q"], cache[f"{a}.hook_{name}k"]
            qt, kt, qp, kp = q, k, _prev(q), _prev(k)
        torch.testing.assert_close(cache[f"{a}.hook_q_velocity"], _velocity(q))
        torch.testing.assert_close(cache[f"{a}.hook_k_sheared"], k + gk * _velocity(k))
        expected = (
            (1 + gq) * (1 + gk) * _dot(qt, kt)
            - (1 + gq) * gk * _dot(qt, kp)
            - gq * (1 + gk) * _dot(qp, kt)
            + gq * gk * _dot(qp, kp)
        )
        expected = expected / math.sqrt(cfg.d_head)
        scores = cache[f"{a}.hook_attn_scores"]
        assert torch.isfinite(scores[..., causal]).all()
        tol = 1e-5 * (1.0 + expected.abs().max().item())
        torch.testing.assert_close(scores[..., causal], expected[..., causal], atol=tol, rtol=1e-5)
        pattern = cache[f"{a}.hook_pattern"]
        torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
        assert torch.all(pattern[..., ~causal] == 0)


# --------------------------------------------------------------- config: numeric options


@pytest.mark.parametrize("dtype", [torch.float16, torch.int64, torch.complex64])
def test_unsupported_dtype_object(dtype):
    """A torch.dtype outside the supported set used to pass and break `to_dict` (save) later."""
    with pytest.raises(
        ValueError,
        match=rf"dtype={dtype!r} is not supported; choose one of \['float32', 'float64', 'bfloat16'\]",
    ):
        MomentumConfig(**BASE, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, "float64"])
def test_supported_dtypes_round_trip(dtype):
    cfg = MomentumConfig(**BASE, dtype=dtype)
    assert MomentumConfig.from_dict(cfg.to_dict()).dtype == cfg.dtype


@pytest.mark.parametrize("init_range", [math.nan, math.inf, -math.inf, 0.0, "0.02", True])
def test_bad_init_range(init_range):
    with pytest.raises(
        ValueError, match=r"init_range must be a finite positive standard deviation.*init_range=0"
    ):
        MomentumConfig(**BASE, init_range=init_range)


@pytest.mark.parametrize("init_range", [None, -1.0, -1])
def test_unset_init_range_gets_the_default(init_range):
    cfg = MomentumConfig(**BASE, init_range=init_range)
    assert cfg.init_range == pytest.approx(0.8 / math.sqrt(BASE["d_model"]))
    assert MomentumConfig(**BASE, init_range=0.05).init_range == 0.05


@pytest.mark.parametrize("eps", [-1.0, 0.0, math.nan, math.inf, None, "1e-5", True])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match=r"eps must be a finite positive number.*eps=1e-5"):
        MomentumConfig(**BASE, eps=eps)


@pytest.mark.parametrize("eps", [1e-5, 1e-12, 1])
def test_good_eps_gives_finite_logits(eps):
    model = HookedMomentumTransformer(MomentumConfig(**BASE, eps=eps, seed=0))
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]]))).all()


# ------------------------------------------------------------------- next-token loss


@pytest.mark.parametrize("return_type", ["loss", "both"])
def test_loss_of_a_single_position_is_refused(model, return_type):
    with pytest.raises(ValueError, match=r"pos >= 2, got \(2, 1\).*at least 2 tokens"):
        model(torch.tensor([[1], [2]]), return_type=return_type)
    with torch.no_grad():  # logits of a single position are fine
        assert model(torch.tensor([[1], [2]])).shape == (2, 1, BASE["d_vocab"])


@pytest.mark.parametrize("mask_shape", [(2,), (1, 5), (2, 4), (2, 5, 1), (5, 2)])
def test_loss_mask_of_the_wrong_shape_is_refused(model, mask_shape):
    tokens = torch.tensor([[1, 5, 2, 7, 7], [0, 3, 3, 9, 4]])
    mask = torch.ones(mask_shape, dtype=torch.bool)
    with pytest.raises(
        ValueError,
        match=rf"loss_mask has shape {re.escape(str(mask_shape))} but tokens have shape "
        r"\(2, 5\); pass a \[batch, pos\] loss_mask of the same shape",
    ):
        model(tokens, return_type="loss", loss_mask=mask)


def test_next_token_loss_validates_direct_calls():
    logits = torch.zeros(2, 1, 4)
    with pytest.raises(ValueError, match="pos >= 2"):
        next_token_loss(logits, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="loss_mask has shape"):
        next_token_loss(
            torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 1, 3)
        )
