"""Head scores against independent computations: explicit loops, head_detector, numpy eigvals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformer_lens.head_detector import (
    detect_head,
    get_duplicate_token_head_detection_pattern,
    get_induction_head_detection_pattern,
)

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.analysis.scoring import (
    copying_scores,
    in_context_learning_score,
    rank_heads,
    repeated_random_tokens,
    score_heads,
    score_heads_on_tokens,
    token_match_masks,
)
from momentum_interp.viz.scores import score_heatmaps

# The built-in scores, in column order (the registry must keep them).
ATTENTION = ("induction", "prefix_matching", "previous_token", "duplicate_token")
SCORE_COLUMNS = (*ATTENTION, "copying")
BASE = dict(d_model=32, d_head=8, n_layers=2, n_ctx=32, d_vocab=40, attn_only=True)


@pytest.fixture(scope="module")
def build(make_model):
    """`build(seed, **overrides)`: a tiny randomised model (biases and norm gains too)."""

    def factory(seed: int = 0, **overrides) -> HookedMomentumTransformer:
        return make_model(seed=seed, **{**BASE, **overrides})

    return factory


@pytest.fixture(scope="module")
def model(build) -> HookedMomentumTransformer:
    return build()


# ------------------------------------------------------------------ references


def reference_scores(model, tokens: torch.Tensor, half_len=None, offset=0) -> dict:
    """Each attention score with explicit loops over sequences, query rows t and keys s."""
    cfg = model.cfg
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)  # its own forward, full cache
    seqs = tokens.tolist()
    out = {name: np.full((cfg.n_layers, cfg.n_heads), np.nan) for name in ATTENTION}
    for layer in range(cfg.n_layers):
        patterns = cache[f"blocks.{layer}.attn.hook_pattern"].double().tolist()
        for head in range(cfg.n_heads):
            total = dict.fromkeys(ATTENTION, 0.0)
            count = dict.fromkeys(ATTENTION, 0)
            for b, seq in enumerate(seqs):
                for t in range(len(seq)):
                    row = patterns[b][head][t]
                    if t >= 1:
                        total["previous_token"] += row[t - 1]
                        count["previous_token"] += 1
                    dup = [s for s in range(t) if seq[s] == seq[t]]
                    if dup:
                        total["duplicate_token"] += sum(row[s] for s in dup)
                        count["duplicate_token"] += 1
                    pre = [s for s in range(1, t + 1) if seq[s - 1] == seq[t]]
                    if pre:
                        total["prefix_matching"] += sum(row[s] for s in pre)
                        count["prefix_matching"] += 1
                    if half_len is not None and t >= offset + half_len:
                        total["induction"] += row[t - half_len + 1]
                        count["induction"] += 1
            for name in ATTENTION:
                if count[name]:
                    out[name][layer, head] = total[name] / count[name]
    return out


def reference_icl(logits: torch.Tensor, tokens: torch.Tensor, early_j, late_j) -> float:
    """Late minus early mean loss, predicted-token indices j given explicitly."""
    logp = logits.detach().double().log_softmax(-1)
    n_seq, n_pos = tokens.shape
    loss = [[-float(logp[b, j - 1, tokens[b, j]]) for j in range(1, n_pos)] for b in range(n_seq)]
    mean_at = lambda j: sum(loss[b][j - 1] for b in range(n_seq)) / n_seq
    return sum(map(mean_at, late_j)) / len(late_j) - sum(map(mean_at, early_j)) / len(early_j)


def assert_frame_matches(df: pd.DataFrame, ref: dict, atol: float = 1e-5) -> None:
    for name, values in ref.items():
        got = df[name].to_numpy().reshape(values.shape)
        np.testing.assert_allclose(got, values, atol=atol, rtol=0, err_msg=name)


# ---------------------------------------------------------------------- contract


def test_frame_contract(model):
    df = score_heads(model, n_sequences=6, seed=1)
    cfg = model.cfg
    assert list(df.columns) == ["layer", "head", *SCORE_COLUMNS]
    assert len(df) == cfg.n_layers * cfg.n_heads
    assert df["layer"].tolist() == [
        layer for layer in range(cfg.n_layers) for _ in range(cfg.n_heads)
    ]
    assert df["head"].tolist() == list(range(cfg.n_heads)) * cfg.n_layers
    assert df["layer"].dtype == np.int64 and df["head"].dtype == np.int64
    assert all(df[c].dtype == np.float64 for c in SCORE_COLUMNS)
    assert df[list(ATTENTION)].to_numpy().min() >= 0
    assert df[list(ATTENTION)].to_numpy().max() <= 1 + 1e-6
    assert df["copying"].between(-1 - 1e-9, 1 + 1e-9).all()
    assert math.isfinite(df.attrs["in_context_learning"])
    assert df.attrs["half_len"] == cfg.n_ctx // 2 and df.attrs["n_sequences"] == 6


def test_deterministic_under_seed_and_batching(model):
    a = score_heads(model, n_sequences=10, seed=3)
    b = score_heads(model, n_sequences=10, seed=3, batch_size=3)
    pd.testing.assert_frame_equal(a, b, atol=1e-6, rtol=0)
    assert a.attrs["in_context_learning"] == pytest.approx(b.attrs["in_context_learning"], abs=1e-6)
    c = score_heads(model, n_sequences=10, seed=4)
    assert not np.allclose(a["induction"], c["induction"], atol=1e-6)


# ------------------------------------------------------------ explicit loops


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        dict(positional_embedding_type="rotary", attn_only=False, d_mlp=48, gamma=0.5),
    ],
    ids=["standard-attn-only", "rotary-momentum-mlp"],
)
def test_score_heads_matches_loops(build, overrides):
    model = build(seed=2, **overrides)
    df = score_heads(model, n_sequences=4, half_len=14, seed=5, batch_size=3)
    tokens = repeated_random_tokens(model.cfg.d_vocab, 14, 4, seed=5)
    assert tokens.shape == (4, 28) and torch.equal(tokens[:, :14], tokens[:, 14:])
    assert_frame_matches(df, reference_scores(model, tokens, half_len=14))
    # ICL from the same passes: T = 28 -> early j in [1.4, 4.2) = {2,3,4}, late j >= 25.2.
    logits = model(tokens)
    expected = reference_icl(logits, tokens, early_j=[2, 3, 4], late_j=[26, 27])
    assert df.attrs["in_context_learning"] == pytest.approx(expected, abs=1e-5)


def test_scores_on_arbitrary_tokens_with_bos(model):
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 6, (3, 25), generator=gen)  # small vocab: many repeats
    tokens[:, 0] = 39  # a BOS-like first token
    df = score_heads_on_tokens(model, tokens, half_len=12, offset=1)
    assert_frame_matches(df, reference_scores(model, tokens, half_len=12, offset=1))
    no_induction = score_heads_on_tokens(model, tokens)
    assert no_induction["induction"].isna().all()
    assert not no_induction["prefix_matching"].isna().any()


def test_bos_option_of_score_heads(model):
    df = score_heads(model, n_sequences=3, seed=0, bos_token=0)
    tokens = repeated_random_tokens(40, 15, 3, seed=0, bos_token=0)
    assert tokens.shape == (3, 31) and (tokens[:, 0] == 0).all() and (tokens[:, 1:] != 0).all()
    assert_frame_matches(df, reference_scores(model, tokens, half_len=15, offset=1))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=6, max_size=6), min_size=1, max_size=3))
def test_token_match_masks_brute_force(rows):
    tokens = torch.tensor(rows)
    duplicate, prefix = token_match_masks(tokens)
    for b, seq in enumerate(rows):
        for t in range(6):
            for s in range(6):
                assert bool(duplicate[b, t, s]) == (s < t and seq[s] == seq[t])
                assert bool(prefix[b, t, s]) == (1 <= s <= t and seq[s - 1] == seq[t])


# ------------------------------------------------------------- head_detector


def test_agrees_with_head_detector(build):
    model = build(seed=1, n_ctx=40)  # detect_head needs seq_len < n_ctx
    tokens = repeated_random_tokens(model.cfg.d_vocab, 16, 1, seed=7)
    n_pos = tokens.shape[1]
    seq = " ".join(map(str, tokens[0].tolist()))
    assert torch.equal(model.to_tokens(seq), tokens)
    df = score_heads_on_tokens(model, tokens, half_len=16)
    shape = (model.cfg.n_layers, model.cfg.n_heads)
    grid = lambda column: df[column].to_numpy().reshape(shape)

    def detected(pattern) -> np.ndarray:
        with torch.no_grad():
            return detect_head(model, seq, pattern, error_measure="mul").double().numpy()

    # "mul" = mass on the detection pattern / all rows; ours averages over qualifying rows.
    prefix_rows = int(get_induction_head_detection_pattern(tokens).any(-1).sum())
    dup_rows = int(get_duplicate_token_head_detection_pattern(tokens).any(-1).sum())
    assert 16 <= prefix_rows < n_pos and 16 <= dup_rows < n_pos
    np.testing.assert_allclose(
        grid("prefix_matching") * prefix_rows / n_pos, detected("induction_head"), atol=1e-5
    )
    np.testing.assert_allclose(
        grid("duplicate_token") * dup_rows / n_pos, detected("duplicate_token_head"), atol=1e-5
    )
    np.testing.assert_allclose(
        grid("previous_token") * (n_pos - 1) / n_pos, detected("previous_token_head"), atol=1e-5
    )
    stripe = torch.zeros(n_pos, n_pos)
    for t in range(16, n_pos):
        stripe[t, t - 15] = 1.0
    np.testing.assert_allclose(grid("induction") * 16 / n_pos, detected(stripe), atol=1e-5)


# ---------------------------------------------------------------------- copying


def set_copying_head(model, layer: int, head: int, sign: float) -> None:
    """Make `W_E W_V W_O W_U = sign · (W_E P)(W_E P)ᵀ`: positive semi-definite times sign."""
    d_model, d_head = model.cfg.d_model, model.cfg.d_head
    basis, _ = torch.linalg.qr(
        torch.randn(d_model, d_head, generator=torch.Generator().manual_seed(0))
    )
    with torch.no_grad():
        attn = model.blocks[layer].attn
        attn.W_V[head] = basis
        attn.W_O[head] = sign * basis.T
        model.unembed.W_U.copy_(model.W_E.T)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_copying_extremes(build, sign):
    model = build(seed=3)
    set_copying_head(model, 1, 2, sign)
    scores = copying_scores(model)
    assert scores[1, 2].item() == pytest.approx(sign, abs=1e-9)
    others = scores.flatten()[torch.arange(scores.numel()) != 1 * model.cfg.n_heads + 2]
    assert others.abs().max() < 0.95
    df = score_heads(model, n_sequences=2)
    assert df.set_index(["layer", "head"]).loc[(1, 2), "copying"] == pytest.approx(sign, abs=1e-9)


def test_copying_matches_numpy_eigvals(model):
    scores = copying_scores(model).numpy()
    W_E = model.W_E.detach().double().numpy()
    W_U = model.W_U.detach().double().numpy()
    for layer in range(model.cfg.n_layers):
        attn = model.blocks[layer].attn
        for head in range(model.cfg.n_heads):
            W_V = attn.W_V[head].detach().double().numpy()
            W_O = attn.W_O[head].detach().double().numpy()
            eig = np.linalg.eigvals(W_E @ W_V @ W_O @ W_U)  # materialised [d_vocab, d_vocab]
            expected = eig.real.sum() / np.abs(eig).sum()
            assert scores[layer, head] == pytest.approx(expected, abs=1e-7)


# -------------------------------------------------------- hand-set heads (hooks)


def test_hand_set_previous_token_head_ranks_first(build):
    model = build(seed=4)

    def previous_token_bias(scores, hook):
        scores = scores.clone()
        rows = torch.arange(1, scores.shape[-1])
        scores[:, 2, rows, rows - 1] += 30.0
        return scores

    model.add_hook("blocks.0.attn.hook_attn_scores", previous_token_bias, is_permanent=True)
    try:
        df = score_heads(model, n_sequences=4)
    finally:
        model.reset_hooks(including_permanent=True)
    top = rank_heads(df, by="previous_token", top=2)
    assert (top.loc[0, "layer"], top.loc[0, "head"]) == (0, 2)
    assert top.loc[0, "previous_token"] > 0.99 and top.loc[1, "previous_token"] < 0.5


def test_hand_set_induction_head_ranks_first(build):
    """Layer 1 head 1 attends to keys whose previous token equals the query's (read off the
    embeddings: identical rows of hook_embed are identical tokens)."""
    model = build(seed=5, d_vocab=500)  # few accidental repeats
    seen = {}

    def remember_embeddings(embed, hook):
        seen["embed"] = embed.detach()

    def induction_bias(scores, hook):
        embed = seen["embed"]
        same = (embed[:, :, None, :] == embed[:, None, :, :]).all(-1)  # [b, t, s]
        n_pos = same.shape[-1]
        prefix = torch.zeros_like(same)
        prefix[:, :, 1:] = same[:, :, :-1] & torch.ones(n_pos, n_pos - 1, dtype=torch.bool).tril(-1)
        scores = scores.clone()
        scores[:, 1] += 30.0 * prefix
        return scores

    model.add_hook("hook_embed", remember_embeddings, is_permanent=True)
    model.add_hook("blocks.1.attn.hook_attn_scores", induction_bias, is_permanent=True)
    try:
        df = score_heads(model, n_sequences=4)
    finally:
        model.reset_hooks(including_permanent=True)
    for column in ("induction", "prefix_matching"):
        top = rank_heads(df, by=column, top=2)
        assert (top.loc[0, "layer"], top.loc[0, "head"]) == (1, 1), column
        assert top.loc[0, column] > 0.9 and top.loc[1, column] < 0.5


# ----------------------------------------------------------------------- ICL


class PerfectInductionModel(torch.nn.Module):
    """Knows the repeat: predicts token t − n + 1 in the repeat, uniform before it."""

    def __init__(self, d_vocab: int, half_len: int):
        super().__init__()
        self.cfg = MomentumConfig(**{**BASE, "d_vocab": d_vocab, "n_ctx": 2 * half_len})
        self.W_E = torch.zeros(d_vocab, 4)
        self.half_len = half_len

    def forward(self, tokens):
        logits = torch.zeros(*tokens.shape, self.cfg.d_vocab)
        n = self.half_len
        logits[:, n - 1 : -1].scatter_(-1, tokens[:, :n, None], 20.0)
        return logits


def test_icl_sign_and_value():
    fake = PerfectInductionModel(d_vocab=40, half_len=16)
    score = in_context_learning_score(fake, n_sequences=5)
    assert score < -0.9 * math.log(40)
    tokens = repeated_random_tokens(40, 16, 5, seed=0)
    expected = reference_icl(fake(tokens), tokens, early_j=[2, 3, 4], late_j=[29, 30, 31])
    assert score == pytest.approx(expected, abs=1e-6)


def test_icl_on_given_tokens_matches_score_heads(model):
    df = score_heads(model, n_sequences=6, seed=2)
    tokens = repeated_random_tokens(40, 16, 6, seed=2)
    direct = in_context_learning_score(model, tokens, batch_size=4)
    assert df.attrs["in_context_learning"] == pytest.approx(direct, abs=1e-6)
    from momentum_interp.data import TaskBatch

    batch = TaskBatch(tokens=tokens, loss_mask=torch.zeros_like(tokens, dtype=torch.bool))
    assert in_context_learning_score(model, batch) == pytest.approx(direct, abs=1e-6)


# ---------------------------------------------------------- presentation & errors


def test_heatmaps_and_ranking(model):
    df = score_heads(model, n_sequences=2)
    figures = score_heatmaps(df)
    assert list(figures) == list(SCORE_COLUMNS)
    for column, fig in figures.items():
        assert isinstance(fig, go.Figure) and len(fig.data) == 1
        trace = fig.data[0]
        np.testing.assert_allclose(np.asarray(trace.z), df[column].to_numpy().reshape(2, 4))
        values = df[column].to_numpy()
        if column == "copying":  # signed: symmetric about 0, as wide as the data
            limit = np.abs(values).max()
            assert (trace.zmin, trace.zmax) == pytest.approx((-limit, limit))
        else:  # the data's own range, so close scores differ in colour
            assert (trace.zmin, trace.zmax) == pytest.approx((values.min(), values.max()))
        assert trace.texttemplate
    fixed = score_heatmaps(df, zrange=(0, 1))
    assert all((f.data[0].zmin, f.data[0].zmax) == (0, 1) for f in fixed.values())
    with pytest.raises(ValueError, match="low < high"):
        score_heatmaps(df, zrange=(1, 0))
    ranked = rank_heads(df, by="duplicate_token", top=3)
    assert len(ranked) == 3
    assert ranked["duplicate_token"].tolist() == sorted(df["duplicate_token"], reverse=True)[:3]
    with pytest.raises(ValueError, match="Unknown score"):
        rank_heads(df, by="nonsense")


def test_overflowing_activations_are_refused_naming_the_heads(build):
    huge = build(gamma=1e30)  # finite weights, but q·k of ~1e58 overflows float32 scores
    with pytest.raises(
        ValueError,
        match=r"attention patterns of L0H0, L0H1, L0H2, L0H3, L1H0, "
        r"L1H1, L1H2, L1H3 are not finite.*overflow float32",
    ):
        score_heads(huge, n_sequences=4)


def test_invalid_arguments(model):
    with pytest.raises(ValueError, match="exceed n_ctx"):
        score_heads(model, half_len=17)
    with pytest.raises(ValueError, match="half_len must be >= 2"):
        score_heads(model, half_len=1)
    with pytest.raises(ValueError, match="n_sequences"):
        score_heads(model, n_sequences=0)
    with pytest.raises(ValueError, match="batch_size"):
        score_heads(model, n_sequences=2, batch_size=0)


def test_a_new_score_is_one_registry_entry(monkeypatch, capsys):
    """A toy score reading another hook (`hook_z`: the mean norm of each head's output per
    position) is one `SCORES` entry, and `score_heads`, `rank_heads_ci` and `momentum-interp score
    --by` all use it."""
    from momentum_interp.analysis.heads import rank_heads_ci
    from momentum_interp.analysis.scoring import SCORES, HeadScore
    from momentum_interp.cli import main

    hook = "attn.hook_z"  # [batch, pos, head, d_head]
    toy = HeadScore(
        "z_norm",
        hooks=(hook,),
        rows=lambda b: torch.full((b.tokens.shape[0],), b.tokens.shape[1]),
        mass=lambda b, acts: acts[hook].double().norm(dim=-1).sum(1),
    )
    monkeypatch.setitem(SCORES, toy.name, toy)
    model = HookedMomentumTransformer.from_pretrained("induction-1l-momentum")
    df = score_heads(model, n_sequences=4, seed=0)
    tokens = repeated_random_tokens(model.cfg.d_vocab, model.cfg.n_ctx // 2, 4, seed=0)
    _, cache = model.run_with_cache(tokens)
    expected = cache["blocks.0.attn.hook_z"].double().norm(dim=-1).mean((0, 1))  # [head]
    np.testing.assert_allclose(df["z_norm"].to_numpy(), expected.numpy(), rtol=1e-5)
    ranking = rank_heads_ci(model, by="z_norm", n_sequences=4, seed=0)
    assert ranking.heads[0] == (0, int(expected.argmax()))
    assert ranking.estimates[0].low < ranking.estimates[0].value < ranking.estimates[0].high
    assert main(["score", "induction-1l-momentum", "--by", "z_norm", "--sequences", "4"]) == 0
    out = capsys.readouterr().out
    assert "Heads by z_norm score" in out and f"L0H{int(expected.argmax())}" in out.splitlines()[-2]
    monkeypatch.delitem(SCORES, toy.name)
    assert main(["score", "induction-1l-momentum", "--by", "z_norm"]) == 2
    assert "Unknown score 'z_norm'" in capsys.readouterr().err


def test_a_score_is_either_read_from_hooks_or_from_weights():
    from momentum_interp.analysis.scoring import HeadScore

    with pytest.raises(ValueError, match="either hooks, rows and mass, or weights"):
        HeadScore("half", hooks=("attn.hook_z",))
