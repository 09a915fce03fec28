"""The select stage's outcome: each arm's best value of the searched field, and the whole search.

Rows are a sweep's results (`runner.read_results`); the criterion is higher-is-better, and a run
whose criterion is missing or not finite (a diverged run) ranks below every finite one. Exact
ties go to the first value in the protocol's order. An arm whose best value sits at either end
of the searched values is flagged: its best may lie outside the grid.
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
    values: list[Any]
    criterion: list[float | None]  # per value, None where no finite result
    chosen: Any
    at_grid_end: bool

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
        means = []
        for value in protocol.values:
            scores = arm["scores"].get(repr(value), [])
            if not scores:
                means.append(None)
                continue
            # a diverged seed makes the value's mean non-finite: that value cannot be chosen
            means.append(None if None in scores else sum(scores) / len(scores))
        ranked = [(m if m is not None else -math.inf, -i) for i, m in enumerate(means)]
        best = max(range(len(means)), key=lambda i: ranked[i])
        flat = flatten(arm["config"])
        flat.pop(protocol.search, None)
        flat.pop("train.seed", None)
        arms.append(
            ArmSelection(
                arm=key,
                variant=arm["variant"],
                config=flat,
                values=list(protocol.values),
                criterion=means,
                chosen=protocol.values[best],
                at_grid_end=best in (0, len(protocol.values) - 1),
            )
        )
    return Selection(
        protocol.search, protocol.criterion, list(protocol.selection_seeds), arms, missing
    )
