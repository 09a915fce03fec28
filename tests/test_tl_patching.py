"""Path patching and momentum-signal patching equal patches computed by hand."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, randomize_
from float32 import forward_tol
from transformer_lens import patching

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.compat.patching import (
    get_act_patch_momentum_all_pos,
    get_act_patch_momentum_by_pos,
)


def _pair(d_vocab: int, n: int = 10):
    gen = torch.Generator().manual_seed(0)
    seq = torch.randperm(d_vocab - 1, generator=gen)[:n] + 1
    clean = torch.cat([seq, seq[: n // 2]])[None]
    corrupted = clean.clone()
    corrupted[0, n:] = torch.randperm(d_vocab - 1, generator=gen)[: n // 2] + 1
    return clean, corrupted, int(seq[n // 2]), int(seq[1])


@pytest.mark.parametrize("component", ["q", "k", "v"])
def test_direct_path_patch_equals_hand_patch(component):
    cfg = MomentumConfig(**{**TINY, "seed": 0}, positional_embedding_type="rotary", gamma=0.8)
    model = randomize_(HookedMomentumTransformer(cfg).eval())
    clean, corrupted, right, wrong = _pair(cfg.d_vocab, 8)
    _, clean_cache = model.run_with_cache(clean)
    _, corrupted_cache = model.run_with_cache(corrupted)

    def metric(logits):
        return logits[0, -1, right] - logits[0, -1, wrong]

    src_layer, src_head = 0, 1
    result = patching.get_act_patch_direct_path(
        model,
        corrupted,
        clean_cache,
        corrupted_cache,
        metric,
        src_layer,
        src_head,
        component=component,
        verbose=False,
    )
    assert not model.cfg.use_split_qkv_input  # the caller's flags are restored
    W_O = model.blocks[0].attn.W_O[src_head]
    delta = (clean_cache["z", 0][:, :, src_head] - corrupted_cache["z", 0][:, :, src_head]) @ W_O
    attn, ln1 = model.blocks[1].attn, model.blocks[1].ln1
    W, b = getattr(attn, f"W_{component.upper()}"), getattr(attn, f"b_{component.upper()}")
    for dst_head in range(cfg.n_heads):
        # by hand: only this head's q/k/v reads the residual with the source head's clean write
        new = ln1(corrupted_cache["resid_pre", 1] + delta) @ W[dst_head] + b[dst_head]

        def replace(x, hook, new=new, dst_head=dst_head):
            x[:, :, dst_head] = new
            return x

        logits = model.run_with_hooks(
            corrupted, fwd_hooks=[(f"blocks.1.attn.hook_{component}", replace)]
        )
        torch.testing.assert_close(result[1, dst_head], metric(logits), **forward_tol(cfg))
    assert result[0].abs().max() == 0  # rows at or before the source layer are placeholders
    assert (result[1] - metric(model(corrupted))).abs().max() > 1e-4  # the patches do something


@pytest.fixture(scope="module")
def induction():
    return HookedMomentumTransformer.from_pretrained("induction-1l-momentum")


def test_key_velocity_patch_equals_hand_patch_on_one_layer(induction):
    clean, corrupted, right, wrong = _pair(64)
    _, clean_cache = induction.run_with_cache(clean)
    _, corrupted_cache = induction.run_with_cache(corrupted)

    def metric(logits):
        return logits[0, -1, right] - logits[0, -1, wrong]

    by_pos = get_act_patch_momentum_by_pos(induction, corrupted, clean_cache, metric, "k_velocity")
    assert by_pos.shape == (1, clean.shape[1], 4)
    gamma = induction.gamma_k[0]
    d_velocity = clean_cache["k_velocity", 0] - corrupted_cache["k_velocity", 0]
    for pos in (3, 9, 12):
        for head in range(4):
            # by hand: patching p_t adds γ (p_clean − p_corrupted) to the sheared key at t
            def shift(x, hook, pos=pos, head=head):
                x[:, pos, head] += gamma[head] * d_velocity[:, pos, head]
                return x

            logits = induction.run_with_hooks(
                corrupted, fwd_hooks=[("blocks.0.attn.hook_k_sheared", shift)]
            )
            torch.testing.assert_close(
                by_pos[0, pos, head], metric(logits), **forward_tol(induction.cfg)
            )
    all_pos = get_act_patch_momentum_all_pos(induction, corrupted, clean_cache, metric, "k_sheared")
    assert all_pos.shape == (1, 4)
    clean_keys = clean_cache["k_sheared", 0]
    for head in range(4):  # by hand: this head's keys, as they enter the scores, from the clean run

        def restore(x, hook, head=head):
            x[:, :, head] = clean_keys[:, :, head]
            return x

        logits = induction.run_with_hooks(
            corrupted, fwd_hooks=[("blocks.0.attn.hook_k_sheared", restore)]
        )
        torch.testing.assert_close(all_pos[0, head], metric(logits), **forward_tol(induction.cfg))
    assert all_pos.max() > metric(induction(corrupted)) + 0.5  # some head's keys carry the answer


def test_momentum_patching_refuses_unfiltered_signals(make_model):
    plain = make_model(shear="none")
    tokens = torch.zeros(1, 4, dtype=torch.long)
    _, cache = plain.run_with_cache(tokens)
    with pytest.raises(ValueError, match="does not filter"):
        get_act_patch_momentum_by_pos(plain, tokens, cache, lambda x: x.sum(), "k_velocity")
    keys_only = make_model(shear="k")
    with pytest.raises(ValueError, match="Queries are not sheared"):
        get_act_patch_momentum_all_pos(keys_only, tokens, cache, lambda x: x.sum(), "q_velocity")


def test_edge_attribution_and_faithfulness_run_and_bracket_the_gap():
    from transformer_lens.tools.analysis.attribution_patching import (
        EdgeAttributionConfig,
        attribution_patch,
        faithfulness,
    )

    cfg = MomentumConfig(**{**TINY, "seed": 0}, positional_embedding_type="rotary", gamma=0.8)
    model = randomize_(HookedMomentumTransformer(cfg).eval())
    clean, corrupted, right, wrong = _pair(cfg.d_vocab, 6)

    def metric(logits):
        return logits[0, -1, right] - logits[0, -1, wrong]

    edges = attribution_patch(
        model, clean, corrupted, metric, EdgeAttributionConfig(granularity="edge")
    )
    n_edges = len(edges.edge_scores)
    full = faithfulness(model, clean, corrupted, metric, edges.top_edges(k=n_edges))
    empty = faithfulness(model, clean, corrupted, metric, [])
    assert full.total_edges == n_edges
    # keeping every edge is the clean model; keeping none is the corrupted one
    torch.testing.assert_close(
        torch.tensor(full.full_metric), metric(model(clean)), **forward_tol(cfg)
    )
    torch.testing.assert_close(
        torch.tensor(full.corrupt_metric), metric(model(corrupted)), **forward_tol(cfg)
    )
    assert full.recovered == pytest.approx(1.0, abs=1e-4)
    assert empty.recovered == pytest.approx(0.0, abs=1e-4)
    # the flags the sweep needed were restored
    assert not (
        model.cfg.use_split_qkv_input or model.cfg.use_attn_result or model.cfg.use_hook_mlp_in
    )
