"""Formation compared across configurations: each run's phase-change test summarised by arm.

The input is one formation table per run (`analysis.formation`), labelled by the sweep variant
and training seed; the output is numbers only: per arm, how many seeds show a phase change, the
windows, the step where half the repeated-token loss fall is done, the leading score term, and
the arm's role (the zoo's controls are recognised from their configs, not their names), so the
narrative layer can say whether the momentum head forms by a phase change, when against the
2-layer baseline, and which term leads, no more strongly than the seeds allow.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from momentum_interp.naming import study_table_name
from momentum_interp.zoo import arm_role

SUMMARY_FILE = "summary.json"
RULE_FIELDS = ("threshold", "min_total_drop", "window_factor")


@dataclass
class RunFormation:
    """One run's phase-change summary."""

    variant: str
    seed: int
    run_id: str
    head: str
    detected: bool
    abruptness: float | None
    total_drop: float
    window: list[int] | None
    half_step: int | None
    leading_term: str | None
    final_induction: float
    lowest_loss_repeat: float  # the scoring set is off the training distribution: its loss can
    lowest_loss_step: int  # rise again late in training, so the lowest point, not the last

    @classmethod
    def from_table(cls, variant: str, seed: int, run_id: str, table: Mapping[str, Any]):
        test, last = table["phase_change"], table["rows"][-1]
        lowest = min(table["rows"], key=lambda row: row["loss_repeat"])
        return cls(
            variant=variant,
            seed=seed,
            run_id=run_id,
            head=table["head"],
            detected=bool(test["detected"]),
            abruptness=test["abruptness"],
            total_drop=float(test["total_drop"]),
            window=test["window"],
            half_step=test["half_step"],
            leading_term=table["leading_term"],
            final_induction=float(last["induction"]),
            lowest_loss_repeat=float(lowest["loss_repeat"]),
            lowest_loss_step=int(lowest["step"]),
        )


@dataclass
class ArmFormation:
    """One configuration's runs over training seeds."""

    variant: str
    role: str
    runs: list[RunFormation]

    @property
    def n_detected(self) -> int:
        return sum(r.detected for r in self.runs)

    @property
    def half_steps(self) -> list[int]:
        return [r.half_step for r in self.runs if r.half_step is not None]

    @property
    def leading_terms(self) -> dict[str, int]:
        return dict(Counter(r.leading_term for r in self.runs if r.leading_term is not None))

    def to_dict(self) -> dict[str, Any]:
        steps = self.half_steps
        return {
            "variant": self.variant,
            "role": self.role,
            "n_seeds": len(self.runs),
            "n_detected": self.n_detected,
            "half_step_median": float(np.median(steps)) if steps else None,
            "half_step_range": [min(steps), max(steps)] if steps else None,
            "leading_terms": self.leading_terms,
            "runs": [asdict(r) for r in self.runs],
        }


@dataclass
class FormationStudy:
    """Every arm, and the comparisons the README states."""

    arms: list[ArmFormation]
    measured_on: dict[str, Any] = field(default_factory=dict)  # the rule, sequences and seed

    def arm(self, role: str) -> list[ArmFormation]:
        return [a for a in self.arms if a.role == role]

    def baseline_clean(self) -> bool | None:
        """Whether no 1-layer baseline run passed the phase-change test (the test's control)."""
        runs = [r for a in self.arm("baseline_1l") for r in a.runs]
        return None if not runs else not any(r.detected for r in runs)

    def against_deeper(self, variant: str) -> dict[str, int] | None:
        """Paired by training seed, among seeds where both `variant`'s run and the deeper
        baseline's passed the phase-change test: how often `variant` passed half its fall
        before, at the same kept step as, or after the deeper baseline; None without one."""
        if not self.arm("baseline_deeper"):
            return None
        deeper = {
            r.seed: r.half_step
            for a in self.arm("baseline_deeper")
            for r in a.runs
            if r.detected and r.half_step is not None
        }
        arm = next(a for a in self.arms if a.variant == variant)
        pairs = [
            (r.half_step, deeper[r.seed])
            for r in arm.runs
            if r.detected and r.half_step is not None and r.seed in deeper
        ]
        return {
            "earlier": sum(mine < theirs for mine, theirs in pairs),
            "same": sum(mine == theirs for mine, theirs in pairs),
            "later": sum(mine > theirs for mine, theirs in pairs),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.measured_on,
            "arms": [a.to_dict() for a in self.arms],
            "baseline_clean": self.baseline_clean(),
            "against_deeper": {
                a.variant: self.against_deeper(a.variant)
                for a in self.arms
                if a.role != "baseline_deeper"
            },
        }


def formation_study(
    runs: Sequence[tuple[str, Mapping[str, Any], int, str, Mapping[str, Any]]],
) -> FormationStudy:
    """Group `(variant, model_config, seed, run_id, formation_table)` by variant, in the order
    variants first appear, runs by seed."""
    arms: dict[str, ArmFormation] = {}
    for variant, model_config, seed, run_id, table in runs:
        arm = arms.setdefault(variant, ArmFormation(variant, arm_role(model_config), []))
        arm.runs.append(RunFormation.from_table(variant, seed, run_id, table))
    for arm in arms.values():
        arm.runs.sort(key=lambda r: r.seed)
    settings = [
        {
            "rule": {name: table["phase_change"][name] for name in RULE_FIELDS},
            "n_sequences": table["n_sequences"],
            "seed": table["seed"],
        }
        for *_, table in runs
    ]
    if any(other != settings[0] for other in settings[1:]):
        raise ValueError(
            "The runs' formation tables were measured under different rules, sequence counts "
            "or seeds; measure them again with one command (delete the stale tables)."
        )
    measured_on = settings[0] if settings else {}
    return FormationStudy(list(arms.values()), measured_on)


def load_formation(directory: str | Path) -> tuple[dict[str, Any], list[tuple[str, list[dict]]]]:
    """A study folder's `summary.json` and, per arm in its order, the runs' tables by seed."""
    directory = Path(directory)
    path = directory / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `momentum-interp formation SWEEP_OUT --runs-dir RUNS` first."
        )
    summary = json.loads(path.read_text())
    arms = [
        (
            arm["variant"],
            [
                json.loads((directory / study_table_name(arm["variant"], r["seed"])).read_text())
                for r in arm["runs"]
            ],
        )
        for arm in summary["arms"]
    ]
    return summary, arms
