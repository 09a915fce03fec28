"""Confidence intervals: over i.i.d. held-out sequences (bootstrap), and over training seeds (t)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Estimate:
    """A point estimate with a confidence interval."""

    value: float
    low: float
    high: float
    confidence: float = 0.95

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def pooled_ratio_cis(
    numerators: np.ndarray,
    denominators: np.ndarray,
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 2000,
) -> list[Estimate]:
    """`Σ num / Σ den` per column of `numerators` `[seq, k]`, each with a percentile bootstrap
    interval; all columns share the same resamples of whole sequences (rows), drawn as
    multinomial counts so that one matrix product evaluates every resample. The interval is
    widened, if need be, to contain the point estimate (a constant column gives a zero width)."""
    numerators = np.asarray(numerators, dtype=float).reshape(len(numerators), -1)
    denominators = np.asarray(denominators, dtype=float)
    n = len(denominators)
    values = numerators.sum(0) / denominators.sum()
    if n < 2:
        return [Estimate(float(v), float(v), float(v), confidence) for v in values]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample with no scored rows: NaN
        resampled = (counts @ numerators) / (counts @ denominators)[:, None]  # [resample, k]
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(resampled, [tail, 100 - tail], axis=0)
    return [
        Estimate(float(v), float(min(lo, v)), float(max(hi, v)), confidence)
        for v, lo, hi in zip(values, low, high, strict=True)
    ]


def pooled_ratio_ci(
    numerators: np.ndarray, denominators: np.ndarray, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """`Σ num / Σ den` with a bootstrap interval that resamples whole sequences (percentile method)."""
    return pooled_ratio_cis(np.asarray(numerators)[:, None], denominators, confidence, seed)[0]


def t_interval(values, confidence: float = 0.95) -> Estimate:
    """The mean of `values` (one per training seed, say) with a Student-t interval on n − 1
    degrees of freedom. Few values give a wide interval (3 values: 2 df, t = 4.30 at 95 %);
    NaN bounds with fewer than 2 values or a NaN among them, no width when all are equal."""
    from scipy import stats  # imported where used: 0.7 s the other analyses need not pay

    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2 or not np.isfinite(values).all():
        return Estimate(mean, math.nan, math.nan, confidence)
    sem = float(stats.sem(values))
    if sem == 0:
        return Estimate(mean, mean, mean, confidence)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=sem)
    return Estimate(mean, float(low), float(high), confidence)
