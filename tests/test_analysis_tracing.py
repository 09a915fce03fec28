"""Single-layer induction tracing against independent computations: the model's own scores,
explicit per-query loops, weight surgery, and a hand-built induction model."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from plotly.offline import get_plotlyjs

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.analysis.tracing import (
    ABLATION_COLUMNS,
    InductionTrace,
    default_induction_task,
    diagonal_scores,
    head_score_terms,
    head_z_mean,
    induction_keys,
    induction_margins,
    mean_ablation_hooks,
    qk_circuit,
    term_removal_hooks,
    trace_single_layer_induction,
    velocity_zero_hooks,
)
from momentum_interp.data import InductionTask, RepeatedTokensTask
from momentum_interp.evaluation import MEAN_STREAM, evaluate, seeded_generator
from momentum_interp.model.shear import TERM_NAMES
from momentum_interp.viz.captions import trace_caveats, trace_summary
from momentum_interp.viz.sections import page_html
from momentum_interp.viz.tracing import trace_figures

GAMMAS = [0.7, -0.3, 1.9, 0.25]  # distinct per head (TINY has 4 heads)


def _set_gammas(model: HookedMomentumTransformer, values=GAMMAS) -> HookedMomentumTransformer:
    with torch.no_grad():
        for block in model.blocks:
            block.attn.gamma.copy_(torch.tensor(values, dtype=block.attn.gamma.dtype))
            if model.cfg.smeared_key:
                block.attn.smear_logit.copy_(torch.tensor([-1.2, 0.4, 2.0, -0.1]))
    return model


def _tokens(model, n: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.d_vocab, (n, model.cfg.n_ctx), generator=gen)


# ------------------------------------------------------------------ four-term decomposition

VARIANTS = [
    dict(positional_embedding_type="standard"),
    dict(positional_embedding_type="rotary"),
    dict(positional_embedding_type="rotary", rotary_dim=2),  # partial rotation
]


@pytest.mark.parametrize("placement", ["post_rope", "pre_rope"])
@pytest.mark.parametrize("variant", VARIANTS, ids=["standard", "rotary", "rotary_partial"])
@pytest.mark.parametrize("shear", ["qk", "k", "smeared"])
def test_terms_sum_to_attention_scores(make_model, placement, variant, shear):
    kind = dict(shear="none", smeared_key=True) if shear == "smeared" else dict(shear=shear)
    model = make_model(shear_placement=placement, gamma_learnable=True, **variant, **kind)
    _set_gammas(model)
    tokens = _tokens(model)
    causal = torch.ones(model.cfg.n_ctx, model.cfg.n_ctx, dtype=torch.bool).tril()
    _, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        scores = cache[f"blocks.{layer}.attn.hook_attn_scores"]
        all_heads = head_score_terms(model, cache, layer)
        for head in range(model.cfg.n_heads):
            terms = head_score_terms(model, cache, layer, head)
            total = sum(terms[name] for name in TERM_NAMES)
            torch.testing.assert_close(
                total[:, causal], scores[:, head][:, causal].double(), atol=1e-5, rtol=1e-5
            )
            for name in TERM_NAMES:
                torch.testing.assert_close(all_heads[name][:, head], terms[name])
    # the terms are genuinely distinct (all four non-zero where both q and k are sheared)
    if shear == "qk":
        assert all(terms[name].abs().max() > 1e-3 for name in TERM_NAMES)


def _explicit_term(cache, model, layer, head, name, b, t, s, rope) -> float:
    """One term at (t, s) written out from the raw hook_q/hook_k with scalar coefficients."""
    cfg = model.cfg
    attn = model.blocks[layer].attn
    gq, gk = float(attn.gamma_q().detach()[head]), float(attn.gamma_k().detach()[head])
    q = cache[f"blocks.{layer}.attn.hook_q"][b : b + 1, :, head : head + 1].double()
    k = cache[f"blocks.{layer}.attn.hook_k"][b : b + 1, :, head : head + 1].double()
    q_prev = torch.cat([q[:, :1], q[:, :-1]], dim=1)
    k_prev = torch.cat([k[:, :1], k[:, :-1]], dim=1)
    if cfg.positional_embedding_type == "rotary":
        if cfg.shear_placement == "post_rope":  # rotate, then take the predecessor
            q, k = rope(q, cfg.rotary_dim), rope(k, cfg.rotary_dim)
            q_prev = torch.cat([q[:, :1], q[:, :-1]], dim=1)
            k_prev = torch.cat([k[:, :1], k[:, :-1]], dim=1)
        else:  # take the predecessor, rotate at the slot's own position
            q, k = rope(q, cfg.rotary_dim), rope(k, cfg.rotary_dim)
            q_prev, k_prev = rope(q_prev, cfg.rotary_dim), rope(k_prev, cfg.rotary_dim)
    vec = {"q": q[0, t, 0], "q_prev": q_prev[0, t, 0], "k": k[0, s, 0], "k_prev": k_prev[0, s, 0]}
    coeff, a, c = {
        "current_current": ((1 + gq) * (1 + gk), "q", "k"),
        "current_prev_key": (-(1 + gq) * gk, "q", "k_prev"),
        "prev_query_current": (-gq * (1 + gk), "q_prev", "k"),
        "prev_prev": (gq * gk, "q_prev", "k_prev"),
    }[name]
    return coeff * float(vec[a] @ vec[c]) / math.sqrt(cfg.d_head)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(positional_embedding_type="standard"),
        dict(positional_embedding_type="rotary", shear_placement="post_rope"),
        dict(positional_embedding_type="rotary", shear_placement="pre_rope", shear="k"),
    ],
    ids=["standard", "rotary_post", "rotary_pre_k"],
)
def test_margins_match_explicit_loop(make_model, rope, overrides):
    model = _set_gammas(make_model(gamma_learnable=True, **overrides))
    layer, head = 1, 2
    # repeated random tokens: repeats within a half give queries with several earlier occurrences
    task = RepeatedTokensTask(d_vocab=5, half_len=model.cfg.n_ctx // 2)
    batch = task.sample(2, torch.Generator().manual_seed(3))
    _, cache = model.run_with_cache(batch.tokens)
    scores = cache[f"blocks.{layer}.attn.hook_attn_scores"][:, head]
    terms = head_score_terms(model, cache, layer, head)
    query_mask, key_index = induction_keys(batch.tokens, batch.loss_mask)
    per_query = induction_margins(terms, scores, query_mask, key_index)

    rows = batch.tokens.tolist()
    queries = [
        (b, t)
        for b in range(len(rows))
        for t in range(len(rows[b]))
        if batch.loss_mask[b, t] and rows[b][t] in rows[b][:t]
    ]
    assert len(queries) == int(query_mask.sum()) == len(per_query["total"]) > 0
    for index in [0, 1, len(queries) // 2, len(queries) - 1]:
        b, t = queries[index]
        s_star = max(s for s in range(t) if rows[b][s] == rows[b][t]) + 1
        assert int(key_index[b, t]) == s_star
        others = [s for s in range(t + 1) if s != s_star]
        term_sum = 0.0
        for name in TERM_NAMES:
            values = [
                _explicit_term(cache, model, layer, head, name, b, t, s, rope) for s in range(t + 1)
            ]
            margin = values[s_star] - np.mean([values[s] for s in others])
            assert float(per_query[name][index]) == pytest.approx(margin, abs=1e-5)
            term_sum += margin
        total = float(scores[b, t, s_star]) - float(scores[b, t, others].double().mean())
        assert float(per_query["total"][index]) == pytest.approx(total, abs=1e-5)
        assert term_sum == pytest.approx(total, abs=1e-4)  # margins add up to the score's margin


def test_trace_margin_bookkeeping(make_model):
    model = _set_gammas(make_model(gamma_learnable=True, n_ctx=24, d_vocab=30))
    trace = trace_single_layer_induction(model, 1, 0, n_sequences=16, seed=5)
    assert sum(trace.decomposition.term_margins.values()) == pytest.approx(
        trace.decomposition.total_margin, abs=1e-6
    )
    assert sum(trace.decomposition.term_shares.values()) == pytest.approx(1.0, abs=1e-6)
    assert trace.decomposition.dominant_term == max(
        trace.decomposition.term_shares, key=trace.decomposition.term_shares.get
    )
    # every loss_mask position of InductionTask is an induction query
    task = default_induction_task(model.cfg)
    n_expected = 0
    for index in range(1):  # 16 sequences = one batch
        batch = task.sample(16, seeded_generator("cpu", 5, 1, index))
        n_expected += int(batch.loss_mask.sum())
    assert trace.decomposition.n_queries == n_expected
    assert 0.0 <= trace.decomposition.induction_attention <= 1.0
    assert trace.gamma_q == pytest.approx(GAMMAS[0]) and trace.gamma_k == pytest.approx(GAMMAS[0])


# ------------------------------------------------------------------ ablation hooks


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(positional_embedding_type="rotary", shear_placement="pre_rope")],
    ids=["standard", "rotary_pre"],
)
def test_removing_all_terms_gives_uniform_attention(make_model, overrides):
    model = _set_gammas(make_model(gamma_learnable=True, **overrides))
    layer, head = 1, 3
    tokens = _tokens(model)
    name = f"blocks.{layer}.attn.hook_pattern"
    _, clean = model.run_with_cache(tokens, names_filter=name)
    seen = {}
    hooks = term_removal_hooks(model, layer, head, TERM_NAMES)
    hooks.append((name, lambda x, hook: seen.__setitem__("pattern", x.clone())))
    model.run_with_hooks(tokens, fwd_hooks=hooks)
    pattern = seen["pattern"]
    n = model.cfg.n_ctx
    uniform = torch.ones(n, n).tril() / torch.arange(1, n + 1)[:, None]
    torch.testing.assert_close(
        pattern[:, head], uniform.expand_as(pattern[:, head]), atol=1e-5, rtol=0
    )
    others = [h for h in range(model.cfg.n_heads) if h != head]
    torch.testing.assert_close(pattern[:, others], clean[name][:, others])
    assert not model.blocks[layer].attn.hook_attn_scores.has_hooks()  # hooks removed afterwards


def test_removing_one_term_changes_only_that_term(make_model):
    model = _set_gammas(make_model(gamma_learnable=True))
    layer, head = 0, 1
    tokens = _tokens(model)
    name = f"blocks.{layer}.attn.hook_attn_scores"
    _, cache = model.run_with_cache(tokens)
    terms = head_score_terms(model, cache, layer, head)
    seen = {}
    hooks = term_removal_hooks(model, layer, head, ["current_prev_key"])
    hooks.append((name, lambda x, hook: seen.__setitem__("scores", x.clone())))
    model.run_with_hooks(tokens, fwd_hooks=hooks)
    causal = torch.ones(model.cfg.n_ctx, model.cfg.n_ctx, dtype=torch.bool).tril()
    expected = cache[name][:, head].double() - terms["current_prev_key"]
    torch.testing.assert_close(
        seen["scores"][:, head][:, causal].double(), expected[:, causal], atol=1e-5, rtol=0
    )
    assert torch.isneginf(seen["scores"][:, head][:, ~causal]).all()


def test_zeroing_head_velocity_equals_set_gamma_zero(make_model):
    model = make_model(gamma=0.8, shear="qk", gamma_learnable=False)
    layer, head = 1, 2
    tokens = _tokens(model)
    hooked = model.run_with_hooks(tokens, fwd_hooks=velocity_zero_hooks(model, layer, head))
    reference = copy.deepcopy(model)
    reference.set_gamma(0.0, layer, head)
    torch.testing.assert_close(hooked, reference(tokens), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hooked, model(tokens), atol=1e-3)  # the head's momentum mattered


def test_mean_ablating_ov_equals_constant_z_model(make_model):
    model = make_model(gamma=0.5)
    layer, head = 0, 1
    task = InductionTask(d_vocab=model.cfg.d_vocab, seq_len=model.cfg.n_ctx, max_repeat=7)
    mean_z = head_z_mean(model, task, layer, head, n_sequences=8, seed=2)
    # independent mean, from a cache of the MEAN_STREAM batch
    batch = task.sample(8, seeded_generator("cpu", 2, MEAN_STREAM, 0))
    _, cache = model.run_with_cache(batch.tokens)
    torch.testing.assert_close(
        mean_z, cache[f"blocks.{layer}.attn.hook_z"][:, :, head].mean((0, 1))
    )
    # z = Σ_s pattern · v and the pattern sums to 1: constant values (W_V = 0, b_V = mean) give
    # a head whose hook_z is exactly the mean
    constant = copy.deepcopy(model)
    with torch.no_grad():
        constant.blocks[layer].attn.W_V[head].zero_()
        constant.blocks[layer].attn.b_V[head].copy_(mean_z)
    tokens = _tokens(model)
    hooked = model.run_with_hooks(tokens, fwd_hooks=mean_ablation_hooks(model, layer, head, mean_z))
    torch.testing.assert_close(hooked, constant(tokens), atol=1e-5, rtol=1e-5)


def test_ablation_table_rows_match_evaluate(make_model):
    model = make_model(gamma=0.6, n_ctx=24, d_vocab=30)
    task = default_induction_task(model.cfg)
    trace = trace_single_layer_induction(model, 1, 1, task=task, n_sequences=16, seed=4)
    table = trace.ablations
    assert list(table.columns[: len(ABLATION_COLUMNS)]) == list(ABLATION_COLUMNS)
    assert list(table["ablation"]) == [
        "clean",
        "gamma_zero",
        "velocity_zero_head",
        *(f"remove_{n}" for n in TERM_NAMES),
        "mean_ablate_ov",
    ]
    clean = evaluate(model, task, n_batches=1, batch_size=16, seed=4)
    no_momentum = copy.deepcopy(model)
    no_momentum.set_gamma(0.0)
    off = evaluate(no_momentum, task, n_batches=1, batch_size=16, seed=4)
    row = table.set_index("ablation")
    assert row.loc["clean", "accuracy"] == pytest.approx(clean["accuracy"])
    assert row.loc["clean", "loss"] == pytest.approx(clean["loss"], rel=1e-6)
    assert row.loc["gamma_zero", "loss"] == pytest.approx(off["loss"], rel=1e-6)
    assert row.loc["gamma_zero", "delta_loss"] == pytest.approx(
        off["loss"] - clean["loss"], abs=1e-6
    )
    np.testing.assert_allclose(table["delta_accuracy"], table["accuracy"] - clean["accuracy"])
    assert row.loc["gamma_zero", "loss"] != pytest.approx(clean["loss"])
    assert (model.blocks[1].attn.gamma == 0.6).all()  # the original model is untouched


def test_smeared_gamma_zero_is_identity_smear(make_model):
    model = _set_gammas(make_model(shear="none", smeared_key=True))
    tokens = _tokens(model)
    hooked = model.run_with_hooks(tokens, fwd_hooks=velocity_zero_hooks(model))
    identity = copy.deepcopy(model)
    with torch.no_grad():
        for block in identity.blocks:
            block.attn.smear_logit.fill_(60.0)  # sigmoid → 1: α k_t + (1 − α) k_{t−1} = k_t
    assert (identity.gamma_k == 0).all()
    torch.testing.assert_close(hooked, identity(tokens), atol=1e-5, rtol=1e-5)
    trace = trace_single_layer_induction(model, 0, 2, n_sequences=8)
    assert trace.gamma_q == 0.0 and trace.gamma_k == pytest.approx(1 / (1 + math.exp(-2.0)) - 1)
    assert "identity_smear" in trace.caveats and trace.gamma_zero_method == "identity_smear"
    assert any("zeroing hook_k_velocity" in note for note in trace_caveats(trace))


def test_baseline_without_momentum(make_model):
    model = make_model(shear="none")
    trace = trace_single_layer_induction(model, 1, 0, n_sequences=8)
    assert trace.gamma_q == trace.gamma_k == 0.0
    assert trace.decomposition.term_margins["current_current"] == pytest.approx(
        trace.decomposition.total_margin
    )
    assert trace.decomposition.dominant_term == "current_current"  # whatever the sign of its margin
    for name in TERM_NAMES[1:]:
        assert trace.decomposition.term_margins[name] == 0.0
    table = trace.ablations.set_index("ablation")
    for name in ("gamma_zero", "velocity_zero_head", *(f"remove_{n}" for n in TERM_NAMES[1:])):
        assert table.loc[name, "delta_loss"] == pytest.approx(0.0, abs=1e-6), name
    assert table.loc["remove_current_current", "delta_loss"] != pytest.approx(0.0, abs=1e-6)
    assert np.all(trace.qk.matrix == 0.0)  # no current_prev_key path without momentum


# ------------------------------------------------------------------ QK circuit


def test_qk_matrix_matches_explicit_einsum(make_model):
    model = _set_gammas(make_model(gamma_learnable=True, shear="k"))
    layer, head = 1, 2
    attn, ln = model.blocks[layer].attn, model.blocks[layer].ln1
    with torch.no_grad():
        x = model.W_E.double()
        x = x - x.mean(-1, keepdim=True)
        x = (
            x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * ln.w.double()
            + ln.b.double()
        )
        q = torch.einsum("am,md->ad", x, attn.W_Q[head].double()) + attn.b_Q[head].double()
        k = torch.einsum("bm,md->bd", x, attn.W_K[head].double()) + attn.b_K[head].double()
        dots = torch.einsum("ad,bd->ab", q, k).numpy() / math.sqrt(model.cfg.d_head)
    gamma = GAMMAS[head]  # shear="k": γq = 0, γk = γ
    np.testing.assert_allclose(qk_circuit(model, layer, head), -gamma * dots, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        qk_circuit(model, layer, head, "current_current"), (1 + gamma) * dots, rtol=1e-5, atol=1e-5
    )


def test_diagonal_scores():
    matrix = np.array([[3.0, 1.0, 2.0], [0.0, 1.0, 5.0], [1.0, 1.0, 1.0]])
    top1, z = diagonal_scores(matrix)
    assert top1 == pytest.approx(1 / 2)  # row 0 of the two rows with spread (row 2 is constant)
    z0 = (3 - 2) / np.std([3, 1, 2])
    z1 = (1 - 2) / np.std([0, 1, 5])
    assert z == pytest.approx((z0 + z1) / 2)
    assert np.isnan(diagonal_scores(np.zeros((4, 4)))).all()  # no momentum path: undefined


# ------------------------------------------------------------------ hand-built induction model


def _induction_model(d_vocab: int = 16, d_model: int = 32, strength: float = 12.0):
    """One head, one-hot tokens, keys-only shear γ = 1: `k̂_s = 2k_s − k_{s−1}`, W_QK = −c·I.

    Score ∝ −2δ(x_t, x_s) + δ(x_t, x_{s−1}): the current_prev_key term finds the key whose
    previous token is the query's token; OV copies that key's token into channels d_vocab.. that
    the unembedding reads.
    """
    cfg = MomentumConfig(
        d_model=d_model,
        d_head=d_vocab,
        n_heads=1,
        n_layers=1,
        n_ctx=16,
        d_vocab=d_vocab,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="standard",
        shear="k",
        gamma=1.0,
        device="cpu",
    )
    model = HookedMomentumTransformer(cfg).eval()
    eye = torch.eye(d_vocab)
    c = math.sqrt(strength) * d_vocab**0.25  # c² / √d_head = strength
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.embed.W_E[:, :d_vocab] = eye
        attn = model.blocks[0].attn
        attn.W_Q[0, :d_vocab] = c * eye
        attn.W_K[0, :d_vocab] = -c * eye
        attn.W_V[0, :d_vocab] = eye
        attn.W_O[0, :, d_vocab : 2 * d_vocab] = eye
        model.unembed.W_U[d_vocab : 2 * d_vocab] = 10.0 * eye
    return model


def test_hand_built_model_traces_to_current_prev_key():
    model = _induction_model()
    task = default_induction_task(model.cfg)
    trace = trace_single_layer_induction(model, 0, 0, task=task, n_sequences=64)
    assert trace.decomposition.dominant_term == "current_prev_key"
    assert trace.decomposition.term_shares["current_prev_key"] > 0.5
    assert (
        10.0 < trace.decomposition.term_margins["current_prev_key"] <= 12.0
    )  # +c²/√d at s*, minus 12/t when s′ = 0
    assert trace.decomposition.term_margins["prev_query_current"] == 0.0  # queries are not sheared
    assert trace.qk.diagonal_top1 == 1.0 and trace.qk.diagonal_z > 3
    assert trace.qk_current.diagonal_top1 == 0.0  # current_current penalises the same token
    np.testing.assert_allclose(trace.qk.matrix, 12.0 * np.eye(16), atol=1e-4)
    assert trace.decomposition.induction_attention > 0.9
    table = trace.ablations.set_index("ablation")
    assert table.loc["clean", "accuracy"] > 0.9
    for ablation in (
        "gamma_zero",
        "velocity_zero_head",
        "remove_current_prev_key",
        "mean_ablate_ov",
    ):
        assert table.loc[ablation, "delta_accuracy"] < -0.5, ablation
    assert table.loc["remove_prev_query_current", "delta_accuracy"] == 0.0  # the term is zero
    assert abs(table.loc["remove_prev_prev", "delta_accuracy"]) < 1e-12


# ------------------------------------------------------------------ outputs


@pytest.fixture(scope="module")
def small_trace(make_model) -> InductionTrace:
    model = make_model(gamma=0.9, positional_embedding_type="rotary", shear_placement="pre_rope")
    return trace_single_layer_induction(model, 1, 0, n_sequences=8)


def test_figures_and_html(small_trace):
    figures = trace_figures(small_trace)
    expected = {"term_shares", "ablation_accuracy", "qk_circuit"} | {
        f"scores_{name}" for name in TERM_NAMES
    }
    assert expected <= set(figures)
    assert all(hasattr(fig, "to_html") for fig in figures.values())
    page = page_html(small_trace)
    assert '<script src="http' not in page and "<script src='http" not in page
    assert get_plotlyjs()[:500] in page
    assert "current_prev_key" in page and "mean_ablate_ov" in page
    assert "hook_z replaced by its mean (separate batches)" in page  # the ablation's description
    assert "γ = 0 in every head (deep copy, set_gamma(0.0))" in page


def test_summary_and_json(small_trace):
    text = trace_summary(small_trace)
    assert "Dominant term" in text and all(name in text for name in TERM_NAMES)
    assert text.count("Note: QK circuit") == len(small_trace.caveats)
    data = json.loads(json.dumps(small_trace.to_dict()))
    assert set(data["term_margins"]) == set(TERM_NAMES)
    assert len(data["ablations"]) == 8
    full = json.loads(json.dumps(small_trace.to_dict(include_arrays=True)))
    assert len(full["qk_matrix"]) == small_trace.qk.matrix.shape[0]
    assert full["example_terms"]["prev_prev"][0][1] is None  # masked entries → null


def test_rejects_bad_arguments(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="layer"):
        trace_single_layer_induction(model, 5, 0)
    with pytest.raises(ValueError, match="head"):
        trace_single_layer_induction(model, 0, 9)
    with pytest.raises(ValueError, match="unknown term"):
        term_removal_hooks(model, 0, 0, ["current"])


def test_qk_circuit_figure_labels_each_cell_by_its_query_and_key():
    from momentum_interp.viz.tracing import qk_circuit_figure

    matrix = np.arange(25.0).reshape(5, 5)
    fig = qk_circuit_figure(matrix, labels=list("abcde"), max_tokens=4)
    heatmap = fig.data[0]
    assert np.asarray(heatmap.z).shape == (4, 4) and np.asarray(heatmap.z)[1, 3] == 8.0
    assert tuple(heatmap.customdata[1][3]) == ("b", "d")  # row: query b, column: key d
    assert "first 4 of 5 tokens" in fig.layout.title.text
    assert list(fig.layout.yaxis.ticktext) == list("abcd")
