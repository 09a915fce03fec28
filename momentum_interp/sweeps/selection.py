"""The select stage's outcome: each arm's best value of the searched field, and the whole search.

Rows are a sweep's results (`runner.read_results`); the criterion is higher-is-better, and a run
whose criterion is missing or not finite (a diverged run) ranks below every finite one. Exact
ties go to the first value in the protocol's order. An arm whose best value sits at either end
of its searched values is flagged (`at_grid_end`: its best may lie outside them), and so is the
case where that end is the study grid's own (`at_study_grid_end`: nothing beyond it was tried).
An arm with no finite criterion at any value (every value diverged on some selection seed) has
no pick (`chosen` None): the fresh stage refuses to start until the spec says what to do with it.

With `[protocol] floor`, the select stage is also a floor check (`floor_check`): if no selection
run ends above that final accuracy, the study is at the floor (`at_floor`) and the fresh stage
does not run; its runs would measure noise around chance.

With `[protocol] detect_difference` δ, the fresh stage runs only the first n of the fresh seeds:
n = ⌈(z₀.₉₇₅ + z₀.₈)² σ_d² / δ²⌉ (a two-sided paired test at α = 0.05 with power 0.8), clipped
to [`min_fresh_seeds`, number of fresh seeds listed], where σ_d² is the variance over selection
seeds of the criterion's difference between grid-neighbour arms (same variant, adjacent
`model.gamma`, each at its pick), averaged over neighbour pairs; where no pair has two seeds
with finite scores, every listed fresh seed runs. (The normal approximation overstates a paired
t-test's power at these n: at n = 5 the t-test's power is about 0.56, not 0.8.)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import norm

from momentum_interp.sweeps.spec import (
    AROUND_MATCH,
    RunSpec,
    SweepSpec,
    finite,
    flatten,
    selection_means,
    selection_scores,
)

ALPHA, POWER = 0.05, 0.8  # the sized fresh stage's paired test: two-sided level and power


@dataclass
class ArmSelection:
    """One arm's search: the criterion at each value (mean over selection seeds) and the pick."""

    arm: str  # SearchProtocol.arm_key
    variant: str | None
    config: dict[str, Any]  # the arm's flat config (no searched field, no seed)
    values: list[Any]  # the values this arm searched (`SearchProtocol.arm_values`)
    criterion: list[float | None]  # per value, None where no finite result
    chosen: Any  # None: no value has a finite criterion
    at_grid_end: bool  # the pick is the first or last of `values`
    at_study_grid_end: bool  # ... and of the protocol's whole grid: nothing beyond was searched

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Selection:
    """Every arm's pick; `complete` is False while some selection run has no result yet."""

    search: str
    criterion: str
    selection_seeds: list[int]
    arms: list[ArmSelection]
    missing_runs: int
    fresh_seeds: list[int]  # the seeds the fresh stage runs (all listed, or the sized first n)
    sizing: dict[str, Any] | None = None  # with detect_difference: σ_d², its pairs, raw and final n
    floor_check: dict[str, Any] | None = None  # with floor: the best final accuracy, its run

    @property
    def complete(self) -> bool:
        return self.missing_runs == 0

    @property
    def at_floor(self) -> bool:
        """Every selection run is done and none ended above the protocol's floor."""
        return self.complete and self.floor_check is not None and not self.floor_check["passed"]

    @property
    def chosen(self) -> dict[str, Any]:
        return {a.arm: a.chosen for a in self.arms}

    @property
    def unpicked(self) -> list[ArmSelection]:
        """Arms with no pick: every searched value has a non-finite criterion."""
        return [a for a in self.arms if a.chosen is None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "search": self.search,
            "criterion": self.criterion,
            "selection_seeds": self.selection_seeds,
            "missing_runs": self.missing_runs,
            "fresh_seeds": self.fresh_seeds,
            "sizing": self.sizing,
            "floor_check": self.floor_check,
            "arms": [a.to_dict() for a in self.arms],
        }


def select(spec: SweepSpec, rows: list[dict[str, Any]]) -> Selection:
    """Each arm's best searched value on the selection seeds of `spec.protocol`."""
    protocol = spec.protocol
    if protocol is None:
        raise ValueError("select needs a spec with a [protocol] table.")
    by_id = {row["run_id"]: row for row in rows}
    runs = spec.expand("select", rows)  # with `widen`, the values the results call for
    missing = sum(run.run_id not in by_id for run in runs)
    grouped: dict[str, dict[str, Any]] = {}
    for run in runs:
        grouped.setdefault(
            protocol.arm_key(run.config), {"variant": run.variant, "config": run.config}
        )
    by_seed = selection_scores(protocol, runs, rows)  # (arm, value) -> seed -> score
    arms = []
    complete_mean = selection_means(protocol, by_seed)  # what widening goes by
    for key, arm in grouped.items():
        values = protocol.arm_values(
            arm["variant"], arm["config"], lambda v, k=key: complete_mean(k, v)
        )
        means = []
        for value in values:  # over the seeds done so far (all of them once the stage is done)
            scores = list(by_seed.get((key, repr(value)), {}).values())
            # a diverged seed makes the value's mean non-finite: that value cannot be chosen
            means.append(None if not scores or None in scores else sum(scores) / len(scores))
        best = protocol.pick(means)
        flat = flatten(arm["config"])
        flat.pop(protocol.search, None)
        flat.pop("train.seed", None)
        chosen = None if best is None else values[best]
        arms.append(
            ArmSelection(
                arm=key,
                variant=arm["variant"],
                config=flat,
                values=values,
                criterion=means,
                chosen=chosen,
                at_grid_end=best in (0, len(values) - 1),
                at_study_grid_end=best is not None
                and chosen in (protocol.values[0], protocol.values[-1]),
            )
        )
    fresh, sizing = list(protocol.fresh_seeds), None
    if protocol.detect_difference is not None and missing == 0:
        variance, pairs = neighbour_difference_variance(arms, by_seed)
        needed = (
            None if variance is None else paired_sample_size(variance, protocol.detect_difference)
        )
        n = fresh_seed_count(needed, protocol.min_fresh_seeds, len(fresh))
        fresh = fresh[:n]
        sizing = {
            "detect_difference": protocol.detect_difference,
            "alpha": ALPHA,
            "power": POWER,
            "difference_variance": variance,
            "neighbour_pairs": pairs,
            "n_needed": needed,
            "n_fresh_seeds": n,
        }
    return Selection(
        protocol.search,
        protocol.criterion,
        list(protocol.selection_seeds),
        arms,
        missing,
        fresh,
        sizing,
        None if protocol.floor is None else floor_check(protocol.floor, runs, by_id),
    )


def floor_check(
    floor: float, runs: list[RunSpec], by_id: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The best final accuracy over the selection runs done so far, its run, and whether it is
    above `floor` (a diverged run's missing accuracy counts as no accuracy)."""
    finals = [
        (accuracy, run.run_id)
        for run in runs
        if run.run_id in by_id
        and (accuracy := finite(by_id[run.run_id].get("final_accuracy"))) is not None
    ]
    best, run_id = max(finals, default=(None, None))
    return {
        "floor": floor,
        "best_final_accuracy": best,
        "best_run": run_id,
        "passed": best is not None and best > floor,
    }


def paired_sample_size(
    variance: float, difference: float, alpha: float = ALPHA, power: float = POWER
) -> int:
    """Seeds for a two-sided paired test at level `alpha` with `power` to detect a mean
    difference `difference` when the paired differences have variance `variance` (the normal
    approximation: ⌈(z₁₋α/₂ + z_power)² σ² / δ²⌉)."""
    z = _z(alpha, power)
    return max(1, math.ceil(z * z * variance / difference**2))


def detectable_difference(
    variance: float, n_seeds: int, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The mean difference `n_seeds` paired seeds detect at `alpha` with `power`: the inverse of
    `paired_sample_size` (the same normal approximation, δ = (z₁₋α/₂ + z_power) σ / √n)."""
    return _z(alpha, power) * math.sqrt(variance / n_seeds)


def _z(alpha: float, power: float) -> float:
    """z₁₋α/₂ + z_power: a two-sided test's critical value plus the power's normal quantile."""
    return norm.ppf(1 - alpha / 2) + norm.ppf(power)


def fresh_seed_count(needed: int | None, least: int, listed: int) -> int:
    """`needed` clipped to [`least`, `listed`]; all `listed` when the spread, hence `needed`,
    is unknown (None)."""
    return listed if needed is None else min(max(needed, least), listed)


def neighbour_difference_variance(
    arms: list[ArmSelection], by_seed: dict[tuple[str, str], dict[int, float | None]]
) -> tuple[float | None, int]:
    """σ_d² and the number of pairs behind it: for each variant's arms in `model.gamma` order,
    each adjacent pair's difference in the criterion per selection seed (each arm at its pick),
    its sample variance over seeds, averaged over pairs. A pair with a non-finite score or fewer
    than 2 shared seeds adds nothing; with no usable pair at all, σ_d² is None."""
    variances = []
    families: dict[str | None, list[ArmSelection]] = {}
    for arm in arms:
        if arm.chosen is not None and arm.config.get(AROUND_MATCH) is not None:
            families.setdefault(arm.variant, []).append(arm)
    for family in families.values():
        family.sort(key=lambda a: a.config[AROUND_MATCH])
        for low, high in zip(family, family[1:], strict=False):
            a = by_seed.get((low.arm, repr(low.chosen)), {})
            b = by_seed.get((high.arm, repr(high.chosen)), {})
            diffs = [a[s] - b[s] for s in sorted(set(a) & set(b)) if None not in (a[s], b[s])]
            if len(diffs) >= 2:
                variances.append(statistics.variance(diffs))
    if not variances:
        return None, 0
    return sum(variances) / len(variances), len(variances)
