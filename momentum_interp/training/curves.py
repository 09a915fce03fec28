"""Criteria on a held-out accuracy curve that do not saturate when every run ends at 100 %:
the normalised area under the curve, and the steps taken to reach a target accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TARGET_ACCURACY = 0.5  # `steps_to_target`: first (interpolated) step at this held-out accuracy


def _curve(steps: Sequence[float], accuracy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    s, a = np.asarray(steps, dtype=float), np.asarray(accuracy, dtype=float)
    if s.ndim != 1 or s.shape != a.shape or len(s) < 2:
        raise ValueError(
            f"A curve needs >= 2 (step, accuracy) points of equal length, got {len(s)} steps "
            f"and {len(a)} accuracies."
        )
    if np.any(np.diff(s) <= 0):
        raise ValueError(f"Curve steps must increase strictly, got {s.tolist()}.")
    return s, a


def accuracy_auc(steps: Sequence[float], accuracy: Sequence[float]) -> float:
    """Mean accuracy over training, `∫ acc ds / (s_last − s_first)` by the trapezoid rule over the
    evaluated steps: in [0, 1] for accuracies in [0, 1]; a run that learns sooner scores higher
    even when every run ends at 100 %."""
    s, a = _curve(steps, accuracy)
    return float(np.trapezoid(a, s) / (s[-1] - s[0]))


def steps_to_accuracy(
    steps: Sequence[float], accuracy: Sequence[float], target: float = TARGET_ACCURACY
) -> float:
    """The first step at which the curve reaches `target`, interpolated linearly between the two
    evaluations around the crossing; NaN if it never does (the first point counts as reached)."""
    s, a = _curve(steps, accuracy)
    above = np.flatnonzero(a >= target)
    if len(above) == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(s[0])
    frac = (target - a[i - 1]) / (a[i] - a[i - 1])
    return float(s[i - 1] + frac * (s[i] - s[i - 1]))
