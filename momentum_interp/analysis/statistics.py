"""Confidence intervals for metrics measured over i.i.d. held-out sequences."""

from __future__ import annotations

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


def pooled_ratio_ci(
    numerators: np.ndarray, denominators: np.ndarray, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """`Σ num / Σ den` with a bootstrap interval that resamples whole sequences (percentile method)."""
    from scipy import stats  # imported where used: 0.7 s that scoring and spectra need not pay

    numerators = np.asarray(numerators, dtype=float)
    denominators = np.asarray(denominators, dtype=float)
    value = numerators.sum() / denominators.sum()
    if len(numerators) < 2 or np.all(numerators / np.maximum(denominators, 1) == value):
        return Estimate(value, value, value, confidence)
    result = stats.bootstrap(
        (numerators, denominators),
        lambda num, den, axis=-1: num.sum(axis) / den.sum(axis),
        paired=True,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(float(value), float(interval.low), float(interval.high), confidence)
