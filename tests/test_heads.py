"""Head rankings: bootstrap intervals over sequences, and the tied set named instead of one head."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from momentum_interp.analysis.heads import rank_from_samples, rank_heads_ci
from momentum_interp.analysis.scoring import (
    HeadScoreSamples,
    head_score_samples,
    repeated_random_tokens,
    score_heads,
    score_heads_on_tokens,
)
from momentum_interp.analysis.statistics import pooled_ratio_ci, pooled_ratio_cis
from momentum_interp.narrative.rankings import data_statement, ranking_data


def test_pooled_ratio_cis_match_scipy_bootstrap():
    rng = np.random.default_rng(0)
    den = rng.integers(5, 15, size=200).astype(float)
    num = rng.binomial(den.astype(int), 0.3).astype(float)
    ours = pooled_ratio_ci(num, den, seed=1)
    ref = stats.bootstrap(
        (num, den),
        lambda a, b, axis=-1: a.sum(axis) / b.sum(axis),
        paired=True,
        vectorized=True,
        n_resamples=4000,
        method="percentile",
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert ours.value == pytest.approx(num.sum() / den.sum())
    # two Monte-Carlo estimates of the same percentiles: equal up to resampling noise
    assert ours.low == pytest.approx(ref.low, abs=0.006)
    assert ours.high == pytest.approx(ref.high, abs=0.006)


def test_pooled_ratio_cis_columns_are_independent_ratios():
    rng = np.random.default_rng(3)
    num = rng.random((50, 3))
    den = np.ones(50)
    together = pooled_ratio_cis(num, den, seed=4)
    for column, estimate in enumerate(together):
        alone = pooled_ratio_cis(num[:, [column]], den, seed=4)[0]
        # the same resamples, so the same interval (up to the matrix product's rounding)
        assert (estimate.low, estimate.high) == pytest.approx((alone.low, alone.high), rel=1e-12)
    constant = pooled_ratio_cis(np.full((10, 1), 2.0), np.full(10, 4.0))[0]
    assert (constant.low, constant.value, constant.high) == (0.5, 0.5, 0.5)


def _samples(per_seq: np.ndarray) -> HeadScoreSamples:
    """Samples of a 1-layer model with given per-sequence induction scores `[seq, head]`."""
    n_seq, n_heads = per_seq.shape
    rows = np.full(n_seq, 10)
    numerators = {"induction": (per_seq * 10)[:, None, :]}
    return HeadScoreSamples(numerators, {"induction": rows}, None, 20, 10)


def _table(per_seq: np.ndarray) -> pd.DataFrame:
    n_heads = per_seq.shape[1]
    return pd.DataFrame(
        {"layer": [0] * n_heads, "head": range(n_heads), "induction": per_seq.mean(0)}
    )


def test_ties_are_heads_whose_interval_overlaps_the_top():
    rng = np.random.default_rng(5)
    means = np.array([0.50, 0.20, 0.505, 0.30])
    per_seq = means + 0.02 * rng.standard_normal((400, 4))
    ranking = rank_from_samples(_table(per_seq), _samples(per_seq), "induction", 0)
    assert ranking.heads[:2] in ([(0, 2), (0, 0)], [(0, 0), (0, 2)])
    assert set(ranking.tied) == {(0, 0), (0, 2)}
    assert ranking.tied_label().startswith("tied: ")
    top = ranking.estimate(ranking.top)
    for head, estimate in zip(ranking.heads, ranking.estimates, strict=True):
        assert (head in ranking.tied) == (estimate.high >= top.low)
    # separated heads: one leader, named alone
    per_seq[:, 2] -= 0.2
    alone = rank_from_samples(_table(per_seq), _samples(per_seq), "induction", 0)
    assert alone.tied == [(0, 0)] and alone.tied_label() == "L0H0"


def test_samples_add_up_to_score_heads(make_model):
    model = make_model(n_layers=2, n_heads=3, d_vocab=40, n_ctx=32)
    df = score_heads(model, n_sequences=7, seed=2)
    tokens = repeated_random_tokens(40, 16, 7, seed=2)
    samples = head_score_samples(model, tokens, half_len=16, batch_size=3)
    for name in ("induction", "prefix_matching", "previous_token", "duplicate_token"):
        pooled = samples.numerators[name].sum(0) / samples.rows[name].sum()
        np.testing.assert_allclose(df[name].to_numpy(), pooled.ravel(), rtol=1e-6)
    # per sequence: a sequence's sums are that sequence's own scores, scored alone
    alone = score_heads_on_tokens(model, tokens[3:4], half_len=16)
    for name in ("induction", "duplicate_token"):
        per_seq = samples.numerators[name][3].ravel() / samples.rows[name][3]
        np.testing.assert_allclose(per_seq, alone[name].to_numpy(), rtol=1e-5)


def test_rank_heads_ci_is_score_heads_with_intervals(make_model):
    model = make_model(n_layers=1, n_heads=4, d_vocab=40, n_ctx=32)
    ranking = rank_heads_ci(model, n_sequences=12, seed=3)
    df = score_heads(model, n_sequences=12, seed=3)
    table = ranking.table().sort_values(["layer", "head"]).reset_index(drop=True)
    np.testing.assert_allclose(table["induction"], df["induction"], rtol=1e-9)
    assert (table["low"] <= table["induction"]).all() and (
        table["induction"] <= table["high"]
    ).all()
    assert ranking.to_dict()["n_sequences"] == 12 and ranking.seed == 3
    assert ranking.to_dict()["half_len"] == 16
    assert data_statement(ranking.to_dict()) == (
        "repeated random tokens (16 uniform ids, then the same ids again); 12 sequences of 32 "
        "tokens, seed 3"
    )
    # a record written before rankings kept half_len (results/zoo/zoo.json): no BOS, 2·half_len
    assert ranking_data({"seq_len": 64}) == ranking_data({"seq_len": 65, "half_len": 32})
    with pytest.raises(ValueError, match="Unknown score"):
        rank_heads_ci(model, by="nope", n_sequences=2)
