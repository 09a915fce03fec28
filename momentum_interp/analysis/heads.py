"""Which heads lead a score: per-head bootstrap intervals over sequences, and the set of heads
tied with the top one. The one place that answers "which is the top induction head"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from momentum_interp.analysis.protocol import TLModel
from momentum_interp.analysis.scoring import (
    HeadScoreSamples,
    check_score_name,
    head_score_samples,
    repeated_tokens_for,
    scores_table,
)
from momentum_interp.analysis.statistics import Estimate, pooled_ratio_cis
from momentum_interp.defaults import CONFIDENCE, DEFAULT_SEED, SCORE_SEQUENCES
from momentum_interp.naming import head_label

HeadId = tuple[int, int]


@dataclass
class HeadRanking:
    """Heads ranked by one score, each with a bootstrap interval over sequences.

    Rule: a head is *tied* with the top head when its interval overlaps the top head's; the
    tied set (top head included) is what every output names, never one of its members alone.
    """

    by: str
    heads: list[HeadId]  # best first
    estimates: list[Estimate]  # same order
    tied: list[HeadId]  # best first; the top head is tied with itself
    scores: pd.DataFrame  # the full pooled score table (`score_heads`' columns)
    seed: int
    n_sequences: int
    seq_len: int
    half_len: int | None  # the data: `half_len` uniform random ids, then the same ids again

    @property
    def top(self) -> HeadId:
        """The head with the highest point estimate (one member of `tied`)."""
        return self.heads[0]

    def estimate(self, head: HeadId) -> Estimate:
        return self.estimates[self.heads.index(head)]

    def tied_label(self) -> str:
        """`L0H3` when one head leads, else `tied: L0H0, L0H3` (best point estimate first)."""
        names = ", ".join(head_label(*h) for h in self.tied)
        return names if len(self.tied) == 1 else f"tied: {names}"

    def table(self) -> pd.DataFrame:
        """One row per head, best first: the score with its interval, whether it is tied with
        the top head, and every other score column."""
        indexed = self.scores.set_index(["layer", "head"])
        rows = []
        for head, est in zip(self.heads, self.estimates, strict=True):
            rows.append(
                {
                    "layer": head[0],
                    "head": head[1],
                    self.by: est.value,
                    "low": est.low,
                    "high": est.high,
                    "tied_top": head in self.tied,
                    **{c: indexed.loc[head, c] for c in indexed.columns if c != self.by},
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return {
            "by": self.by,
            "tied": [list(h) for h in self.tied],
            "heads": [
                {"layer": h[0], "head": h[1], **est.to_dict(), "tied_top": h in self.tied}
                for h, est in zip(self.heads, self.estimates, strict=True)
            ],
            "seed": self.seed,
            "n_sequences": self.n_sequences,
            "seq_len": self.seq_len,
            "half_len": self.half_len,
            "in_context_learning": self.scores.attrs.get("in_context_learning"),
        }


def rank_from_samples(
    scores: pd.DataFrame,
    samples: HeadScoreSamples,
    by: str,
    seed: int,
    confidence: float = CONFIDENCE,
) -> HeadRanking:
    """Rank the heads of a score table by column `by`, with intervals from its per-sequence sums
    (a weight score, such as copying, is a property of the weights: its interval is the point)."""
    check_score_name(by)
    heads = [
        (int(layer), int(head)) for layer, head in zip(scores["layer"], scores["head"], strict=True)
    ]
    if by in samples.numerators and samples.rows[by].sum() > 0:
        per_seq = samples.numerators[by][:, scores["layer"], scores["head"]]  # [seq, row]
        intervals = pooled_ratio_cis(per_seq, samples.rows[by], confidence, seed)
    else:
        intervals = [Estimate(v, v, v, confidence) for v in scores[by].astype(float)]
    estimates = dict(zip(heads, intervals, strict=True))
    order = sorted(estimates, key=lambda h: (np.isnan(estimates[h].value), -estimates[h].value))
    best = estimates[order[0]]
    tied = [h for h in order if estimates[h].high >= best.low]
    return HeadRanking(
        by=by,
        heads=order,
        estimates=[estimates[h] for h in order],
        tied=tied,
        scores=scores,
        seed=seed,
        n_sequences=samples.n_sequences,
        seq_len=samples.seq_len,
        half_len=samples.half_len,
    )


def rank_heads_ci(
    model: TLModel,
    by: str = "induction",
    n_sequences: int = SCORE_SEQUENCES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
    half_len: int | None = None,
    bos_token: int | None = None,
    progress: bool | None = None,
) -> HeadRanking:
    """Score every head on `score_heads`' repeated random tokens and rank them by `by`, with
    bootstrap intervals over sequences and the set of heads tied with the top one."""
    tokens, half_len, offset = repeated_tokens_for(model, n_sequences, half_len, seed, bos_token)
    samples = head_score_samples(model, tokens, half_len=half_len, offset=offset, progress=progress)
    scores = scores_table(model, samples)
    scores.attrs["seed"] = seed
    return rank_from_samples(scores, samples, by, seed, confidence)


def induction_heads_to_trace(model) -> HeadRanking:
    """The rule every trace uses to choose heads: all heads tied for the top induction score on
    the fixed ranking set (`score`'s defaults: seed `DEFAULT_SEED`, `SCORE_SEQUENCES`
    sequences), whatever seed the trace's own data uses; so the choice cannot flip with it."""
    return rank_heads_ci(model, "induction", SCORE_SEQUENCES, DEFAULT_SEED)
