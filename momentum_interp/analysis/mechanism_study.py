"""The mechanism and orthogonality study over training seeds (numbers only).

The input is one `MechanismMeasurement` table per run of a sweep, labelled by the sweep variant
and training seed; the output, per configuration ("arm"), is every measured number with its
per-seed values, their mean and a Student-t interval over the seeds (`t_interval`: with three
seeds, 2 degrees of freedom, the interval is wide), and the configuration facts the narrative
names its controls by (depth, shear, γ, positions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from momentum_interp.analysis.statistics import t_interval
from momentum_interp.defaults import CONFIDENCE
from momentum_interp.zoo import arm_role

SUMMARY_FILE = "summary.json"
MODEL_FACTS = (
    "n_layers",
    "shear",
    "gamma",
    "shear_placement",
    "positional_embedding_type",
    "smeared_key",
)


def flat_numbers(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of nested dicts under dotted keys (`shares.strongest.prev_prev`);
    lists, strings and booleans are left out."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_numbers(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


@dataclass
class ArmMechanism:
    """One configuration's runs: `(seed, run_id, measurement dict)` by seed."""

    variant: str
    role: str
    model: dict[str, Any]
    runs: list[tuple[int, str, dict[str, Any]]]
    confidence: float = CONFIDENCE

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per number measured in every run: the per-seed values, mean and t interval (the
        heads themselves are listed by `to_dict`)."""
        numbers = [flat_numbers(measurement) for _, _, measurement in self.runs]
        keys = [
            k for k in numbers[0] if k not in ("layer", "head") and all(k in n for n in numbers)
        ]
        out = {}
        for key in keys:
            values = [n[key] for n in numbers]
            out[key] = {"values": values, **t_interval(values, self.confidence).to_dict()}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "role": self.role,
            "model": self.model,
            "seeds": [seed for seed, _, _ in self.runs],
            "run_ids": [run_id for _, run_id, _ in self.runs],
            "heads": [[m["layer"], m["head"]] for _, _, m in self.runs],
            "summary": self.summary(),
        }


@dataclass
class MechanismStudy:
    """Every arm, with the data the runs were measured on."""

    arms: list[ArmMechanism]
    measured_on: dict[str, Any] = field(default_factory=dict)  # sequences, seed, confidence

    def to_dict(self) -> dict[str, Any]:
        return {**self.measured_on, "arms": [a.to_dict() for a in self.arms]}


def mechanism_study(
    runs: Sequence[tuple[str, Mapping[str, Any], int, str, Mapping[str, Any]]],
    confidence: float = CONFIDENCE,
) -> MechanismStudy:
    """Group `(variant, model_config, seed, run_id, table)` by variant, in the order variants
    first appear, runs by seed; `table["measurement"]` is a `MechanismMeasurement.to_dict()`."""
    arms: dict[str, ArmMechanism] = {}
    for variant, config, seed, run_id, table in runs:
        if variant not in arms:
            facts = {name: config.get(name) for name in MODEL_FACTS}
            arms[variant] = ArmMechanism(variant, arm_role(config), facts, [], confidence)
        arms[variant].runs.append((seed, run_id, table["measurement"]))
    for arm in arms.values():
        arm.runs.sort(key=lambda run: run[0])
    first = runs[0][4] if runs else {}
    measured_on = {
        "n_sequences": first.get("n_sequences"),
        "seed": first.get("seed"),
        "confidence": confidence,
    }
    return MechanismStudy(list(arms.values()), measured_on)
