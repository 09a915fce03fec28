"""CPU proxies for the GPU targets: matmul kernels per step, host syncs, the fused weights and
the chunked loss, each checked against an independent computation."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import (
    nanogpt,  # noqa: E402
    op_counts,  # noqa: E402
)
from benchmarks.throughput import PRESETS  # noqa: E402
from momentum_interp import HookedMomentumTransformer  # noqa: E402
from momentum_interp.model import inputs  # noqa: E402
from momentum_interp.model.loss import (  # noqa: E402
    next_token_loss,
    unembed_next_token_loss,
)

PRESET = PRESETS["tiny"]


def _models(seq_len: int = 32):
    ours = HookedMomentumTransformer(PRESET.config(seq_len, momentum=True))
    gamma0 = HookedMomentumTransformer(PRESET.config(seq_len, momentum=False))
    tokens = torch.randint(
        0, PRESET.d_vocab, (2, seq_len), generator=torch.Generator().manual_seed(0)
    )
    return ours, gamma0, tokens


def test_nanogpt_reference_equals_ours_at_gamma_zero():
    _, gamma0, tokens = _models()
    gpt = nanogpt.from_momentum(gamma0)
    logits, _ = gpt(tokens)
    torch.testing.assert_close(logits, gamma0(tokens), atol=1e-5, rtol=1e-5)
    _, loss = gpt(tokens[:, :-1], tokens[:, 1:])  # nanoGPT's (inputs, targets) convention
    torch.testing.assert_close(loss, gamma0(tokens, return_type="loss"), atol=1e-5, rtol=1e-5)


def test_training_step_has_no_more_matmuls_than_the_plain_gpt():
    ours, gamma0, tokens = _models()
    gpt = nanogpt.from_momentum(gamma0)
    counted_ours = op_counts.count_ops(lambda: ours(tokens, return_type="loss").backward())
    counted_gpt = op_counts.count_ops(lambda: gpt(tokens, tokens.roll(-1, 1))[1].backward())
    n_ours = op_counts.total(counted_ours, op_counts.MATMULS)
    n_gpt = op_counts.total(counted_gpt, op_counts.MATMULS)
    # per block: qkv, W_O, W_in, W_out forward + 2 each backward; unembedding 1 + 2
    assert n_gpt == 12 * PRESET.n_layers + 3
    assert n_ours <= n_gpt


def test_forward_syncs_only_in_the_documented_token_check():
    ours, _, tokens = _models()
    check = op_counts.count_ops(lambda: inputs.check_tokens(tokens, PRESET.d_vocab, 32))
    assert check["_local_scalar_dense"] == 2  # int(min), int(max) of host tokens
    for return_type in ("logits", "loss"):
        forward = op_counts.count_ops(lambda rt=return_type: ours(tokens, return_type=rt))
        assert forward["_local_scalar_dense"] == check["_local_scalar_dense"]


def test_device_token_check_is_an_async_assert(monkeypatch):
    """Tokens not on the host are checked by `_assert_async` (no `.item()`); CPU stands in."""
    tokens = torch.tensor([[1, 2, 3]])
    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("meta")))
    counted = op_counts.count_ops(lambda: inputs.check_tokens(tokens, 10, 8))
    assert counted["_assert_async"] == 1 and counted["_local_scalar_dense"] == 0
    with pytest.raises(RuntimeError, match="outside the vocabulary"):
        inputs.check_tokens(torch.tensor([[1, 12]]), 10, 8)


def test_split_weights_are_write_through_views():
    ours, _, tokens = _models()
    attn = ours.blocks[0].attn
    before = ours(tokens)
    w_q = attn.W_Q.clone()
    attn.W_Q.data.mul_(2)
    torch.testing.assert_close(attn.W_QKV[0], 2 * w_q)
    torch.testing.assert_close(ours.W_Q[0], 2 * w_q)
    assert not torch.equal(ours(tokens), before)
    attn.W_Q = w_q  # assignment copies into the fused parameter
    torch.testing.assert_close(ours(tokens), before)
    with torch.no_grad():
        attn.b_V[1] = 0.5
    assert torch.equal(attn.b_QKV[2, 1], torch.full_like(attn.b_QKV[2, 1], 0.5))


def test_state_dict_keeps_transformer_lens_keys_and_round_trips_exactly(tmp_path):
    ours, _, tokens = _models()
    state = ours.state_dict()
    assert "blocks.0.attn.W_Q" in state and "blocks.0.attn.W_QKV" not in state
    assert state["blocks.0.attn.W_K"].shape == (
        PRESET.n_heads,
        PRESET.d_model,
        PRESET.d_model // PRESET.n_heads,
    )
    ours.save_pretrained(tmp_path / "ckpt")
    loaded = HookedMomentumTransformer.from_pretrained(tmp_path / "ckpt")
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert torch.equal(loaded(tokens), ours.eval()(tokens))


@pytest.mark.parametrize("masked", [False, True])
def test_chunked_unembedding_loss_equals_the_plain_loss(masked):
    gen = torch.Generator().manual_seed(1)
    resid = torch.randn(3, 9, 16, generator=gen, requires_grad=True)
    W_U = torch.randn(16, 13, generator=gen, requires_grad=True)
    b_U = torch.randn(13, generator=gen, requires_grad=True)
    tokens = torch.randint(0, 13, (3, 9), generator=gen)
    mask = torch.rand(3, 9, generator=gen) > 0.5 if masked else None
    expected = next_token_loss(resid @ W_U + b_U, tokens, mask)
    grads = torch.autograd.grad(2 * expected, (resid, W_U, b_U))
    for rows in (1, 5, 1000):
        loss = unembed_next_token_loss(resid, W_U, b_U, tokens, mask, chunk_rows=rows)
        torch.testing.assert_close(loss, expected)
        for got, want in zip(torch.autograd.grad(2 * loss, (resid, W_U, b_U)), grads, strict=True):
            torch.testing.assert_close(got, want)


def test_model_loss_is_the_loss_of_its_logits():
    ours, _, tokens = _models()
    mask = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(2)) > 0.3
    logits, both = ours(tokens, return_type="both", loss_mask=mask)
    loss = ours(tokens, return_type="loss", loss_mask=mask)
    torch.testing.assert_close(loss, next_token_loss(logits, tokens, mask))
    torch.testing.assert_close(loss, both)
