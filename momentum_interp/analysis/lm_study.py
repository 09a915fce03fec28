"""The fair LM comparison's statistics: every S arm against the 3×S baseline and the S baseline.

Rows are the fresh-seed runs of `benchmarks/lm_study.py` (one per arm and seed, each at its arm's
chosen rate). Per seed, each arm's relative gap to the reference (`value / baseline-3S − 1`) and
the fraction of the S baseline's gap it closes (`(baseline-S − arm) / (baseline-S − baseline-3S)`
in validation loss: 0 is no better than the S baseline, 1 is as good as 3×S); means with Student-t
intervals over seeds (runs of one seed share their data stream and evaluation windows, so the
per-seed ratios are paired). Each S arm against the S baseline: a paired t-test on validation loss,
Holm-corrected over the arms. The fraction closed is the mean of per-seed ratios (undefined, NaN,
when 3×S is not better than the S baseline on some seed). Numbers and short codes only; the
sentences live in the narrative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from momentum_interp.analysis.gamma_study import PairedComparison, paired_comparison, with_holm
from momentum_interp.analysis.lm import PAPER_GAP, relative_gap
from momentum_interp.analysis.statistics import Estimate, t_interval

REFERENCE, SMALL = "baseline-3S", "baseline-S"
GAP_METRICS = ("val_loss", "induction_loss")
METRICS = (*GAP_METRICS, "icl_score")


def left_out(row: dict[str, Any], rate: float) -> tuple[str, Any] | None:
    """Why a fresh run enters no comparison, as `(code, detail)` (None when it does):
    `other_rate` (its rate, not its arm's pick), `status` (not done: its status),
    `short_budget` (tokens trained, short of the plan) or `not_finite` (the metrics)."""
    if row["lr"] != rate:
        return "other_rate", row["lr"]
    if row.get("status") != "done":
        return "status", row.get("status")
    if row.get("tokens") != row.get("tokens_planned"):
        return "short_budget", row.get("tokens")
    metrics = row.get("metrics") or {}
    bad = [
        m for m in METRICS if not (isinstance(metrics.get(m), float) and math.isfinite(metrics[m]))
    ]
    return ("not_finite", bad) if bad else None


def complete_seeds(rows: list[dict[str, Any]], rates: dict[str, float]) -> list[int]:
    """The seeds on which every arm of `rates` has a run that enters the comparisons."""
    seeds: dict[str, set[int]] = {arm: set() for arm in rates}
    for row in rows:
        if row["arm"] in rates and left_out(row, rates[row["arm"]]) is None:
            seeds[row["arm"]].add(row["seed"])
    return sorted(set.intersection(*seeds.values())) if seeds else []


@dataclass
class LMArm:
    """One arm on the fresh seeds: its rate, per-seed metrics, and its comparisons."""

    arm: str
    lr: float
    seeds: list[int]
    metrics: dict[str, list[float]]  # metric -> one value per seed, in `seeds` order
    mean: dict[str, Estimate]  # metric -> mean with a t interval over seeds
    gap: dict[str, Estimate] = field(default_factory=dict)  # metric -> gap to the reference
    fraction_closed: Estimate | None = None  # of the S baseline's validation-loss gap
    vs_small: PairedComparison | None = None  # validation loss: arm − S baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "lr": self.lr,
            "seeds": self.seeds,
            "metrics": self.metrics,
            "mean": {k: v.to_dict() for k, v in self.mean.items()},
            "gap": {k: v.to_dict() for k, v in self.gap.items()},
            "fraction_closed": None
            if self.fraction_closed is None
            else self.fraction_closed.to_dict(),
            "vs_small": None if self.vs_small is None else self.vs_small.to_dict(),
        }


@dataclass
class LMStudy:
    """Every arm on the seeds all of them finished; `not_compared` lists the rest."""

    seeds: list[int]
    arms: list[LMArm]
    not_compared: list[dict[str, Any]]  # runs left out: arm, seed, why (a code), detail
    paper_gap: float = PAPER_GAP

    def arm(self, name: str) -> LMArm:
        return next(a for a in self.arms if a.arm == name)

    def gap_verdict(self, arm: str) -> str:
        """An arm's validation-loss gap to 3×S against the paper's 2.9 %: `within` when its whole
        interval lies below, `not_within` when wholly above, else `undecided`."""
        gap = self.arm(arm).gap["val_loss"]
        if not (math.isfinite(gap.low) and math.isfinite(gap.high)):
            return "undecided"
        if gap.high < self.paper_gap:
            return "within"
        return "not_within" if gap.low > self.paper_gap else "undecided"

    def momentum_verdict(self, arm: str = "momentum-S") -> str:
        """The paper's claim at our scale: the momentum arm's `gap_verdict`, but `uninformative`
        unless the S baseline itself is `not_within` (where plain S already lies within 2.9 %
        of 3×S, or may, being within says nothing about momentum)."""
        if self.gap_verdict(SMALL) != "not_within":
            return "uninformative"
        return self.gap_verdict(arm)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": REFERENCE,
            "small": SMALL,
            "seeds": self.seeds,
            "paper_gap": self.paper_gap,
            "small_verdict": self.gap_verdict(SMALL),
            "momentum_verdict": self.momentum_verdict(),
            "arms": [a.to_dict() for a in self.arms],
            "not_compared": self.not_compared,
        }


def analyse_lm_study(rows: list[dict[str, Any]], rates: dict[str, float]) -> LMStudy:
    """The study over the fresh-seed `rows` of every arm in `rates` (arm -> its chosen rate, in
    display order, which must include the reference and the S baseline): only the seeds on which
    every arm finished enter, so every comparison is paired."""
    for needed in (REFERENCE, SMALL):
        if needed not in rates:
            raise ValueError(f"The LM study needs the arm {needed!r}; arms: {sorted(rates)}.")
    by_arm: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in rates}
    not_compared = []
    for row in rows:
        arm, seed = row["arm"], row["seed"]
        if arm not in rates:
            continue
        if (why := left_out(row, rates[arm])) is None:
            by_arm[arm][seed] = row["metrics"]
        else:
            not_compared.append({"arm": arm, "seed": seed, "why": why[0], "detail": why[1]})
    seeds = complete_seeds(rows, rates)
    if len(seeds) < 2:
        raise ValueError(
            f"The LM study needs at least 2 seeds on which every arm finished; it has {seeds}."
        )
    values = {
        arm: {m: np.array([by_arm[arm][s][m] for s in seeds]) for m in METRICS} for arm in rates
    }
    ref, small = values[REFERENCE], values[SMALL]
    arms = []
    for arm, lr in rates.items():
        mine = values[arm]
        result = LMArm(
            arm,
            lr,
            seeds,
            {m: mine[m].tolist() for m in METRICS},
            {m: t_interval(mine[m]) for m in METRICS},
        )
        if arm != REFERENCE:
            result.gap = {
                m: t_interval([relative_gap(a, r) for a, r in zip(mine[m], ref[m], strict=True)])
                for m in GAP_METRICS
            }
        if arm not in (REFERENCE, SMALL):
            span = small["val_loss"] - ref["val_loss"]
            closed = (small["val_loss"] - mine["val_loss"]) / np.where(span > 0, span, np.nan)
            result.fraction_closed = t_interval(closed)
            result.vs_small = paired_comparison(arm, SMALL, mine["val_loss"], small["val_loss"])
        arms.append(result)
    with_holm([a.vs_small for a in arms if a.vs_small is not None])
    return LMStudy(seeds, arms, not_compared)
