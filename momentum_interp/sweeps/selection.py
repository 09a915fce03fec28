"""The select stage's outcome: each arm's best value of the searched field, and the whole search.

Rows are a sweep's results (`runner.read_results`); the criterion is higher-is-better, and a run
whose criterion is missing or not finite (a diverged run) ranks below every finite one. Exact
ties go to the first value in the protocol's order. An arm whose best value sits at either end
of its searched values is flagged (`at_grid_end`: its best may lie outside them), and so is the
case where that end is the study grid's own (`at_study_grid_end`: nothing beyond it was tried).
An arm with no finite criterion at any value (every value diverged on some selection seed) has
no pick (`chosen` None): the fresh stage refuses to start until the spec says what to do with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from momentum_interp.sweeps.spec import SweepSpec, flatten


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

    @property
    def complete(self) -> bool:
        return self.missing_runs == 0

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
            "arms": [a.to_dict() for a in self.arms],
        }


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def select(spec: SweepSpec, rows: list[dict[str, Any]]) -> Selection:
    """Each arm's best searched value on the selection seeds of `spec.protocol`."""
    protocol = spec.protocol
    if protocol is None:
        raise ValueError("select needs a spec with a [protocol] table.")
    by_id = {row["run_id"]: row for row in rows}
    runs = spec.expand("select")
    missing = sum(run.run_id not in by_id for run in runs)
    grouped: dict[str, dict[str, Any]] = {}
    for run in runs:
        key = protocol.arm_key(run.config)
        arm = grouped.setdefault(key, {"variant": run.variant, "config": run.config, "scores": {}})
        row = by_id.get(run.run_id)
        value = flatten(run.config)[protocol.search]
        scores = arm["scores"].setdefault(repr(value), [])
        if row is not None:
            scores.append(_finite(row.get(protocol.criterion)))
    arms = []
    for key, arm in grouped.items():
        values = protocol.arm_values(arm["variant"], arm["config"])
        means = []
        for value in values:
            scores = arm["scores"].get(repr(value), [])
            # a diverged seed makes the value's mean non-finite: that value cannot be chosen
            means.append(None if not scores or None in scores else sum(scores) / len(scores))
        finite = [i for i, m in enumerate(means) if m is not None]
        best = max(finite, key=lambda i: (means[i], -i)) if finite else None
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
    return Selection(
        protocol.search, protocol.criterion, list(protocol.selection_seeds), arms, missing
    )
