"""The law γ* = a N^b across the fair study's depths: which depths' γ* may enter a fit, whether
the paper's form (a > 0) can pass through them at all, and the fit against the paper's a and b.

Reads the depths of the committed `study.json` files (`DepthStudy.to_dict()`), one shear family
at a time. Returns numbers and short codes; sentences live in the narrative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from momentum_interp.analysis.gamma_study import family_of
from momentum_interp.analysis.scaling import (
    PAPER_A,
    PAPER_B,
    PowerLawFit,
    finite_interval,
    fit_power_law,
    inside,
)
from momentum_interp.io import json_safe

MIN_DEPTHS = 3  # two points fit any two-parameter law exactly: no interval to test against
NO_GAMMA_STAR = ("no_effect", "floor", "missing")  # a depth's reasons for deciding no γ*


@dataclass(frozen=True)
class LawAcrossDepths:
    """What the decided depths of one shear family say about γ* = a N^b.

    `verdict`: "excluded" (at some depth every γ not distinguishable from the best is ≤ 0, so no
    law with a > 0 passes there), "not_rejected" / "rejected" (the fit's intervals hold / miss
    the paper's a or b), or "undecided", with `reason` "tied_sign" (γ* ≤ 0 but positive γ tie
    with it), "grid_end" (a γ* at the grid's end), "too_few" (fewer than `MIN_DEPTHS`).
    """

    family: str
    decided: list[int]  # depths whose γ* the rules decide
    undecided: list[int]  # depths without a γ* (no effect of the shear, at the floor)
    nonpositive: list[int]  # every γ tied with the best is ≤ 0
    tied_sign: list[int]  # γ* ≤ 0, but a positive γ is not distinguishable from it
    at_grid_end: list[int]
    verdict: str
    reason: str
    fit: PowerLawFit | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def law_across_depths(depths: list[dict[str, Any]], family: str) -> LawAcrossDepths:
    """The law's verdict for `family` over `depths` (each a `study.json` depth), by the rule
    above: a sign that rules the paper's form out first, then the grid, then the fit."""
    decided, undecided = [], []
    for depth in sorted(depths, key=lambda d: d["n_layers"]):
        found = family_of(depth, family)
        if found is None or found["paper_reason"] in NO_GAMMA_STAR:
            undecided.append(depth["n_layers"])
        else:
            decided.append((depth["n_layers"], found))
    nonpositive = [n for n, f in decided if max(f["not_distinguishable"]) <= 0]
    tied_sign = [n for n, f in decided if f["gamma_star"] <= 0 and n not in nonpositive]
    at_end = [n for n, f in decided if f["gamma_star_flag"] == "grid_end"]
    law: dict[str, Any] = {
        "family": family,
        "decided": [n for n, _ in decided],
        "undecided": undecided,
        "nonpositive": nonpositive,
        "tied_sign": tied_sign,
        "at_grid_end": at_end,
    }
    if nonpositive:
        return LawAcrossDepths(**law, verdict="excluded", reason="nonpositive")
    for reason, depths_hit in (("tied_sign", tied_sign), ("grid_end", at_end)):
        if depths_hit:
            return LawAcrossDepths(**law, verdict="undecided", reason=reason)
    if len(decided) < MIN_DEPTHS:
        return LawAcrossDepths(**law, verdict="undecided", reason="too_few")
    fit = fit_power_law([n for n, _ in decided], [f["gamma_star"] for _, f in decided])
    if not (finite_interval(fit.a_interval) and finite_interval(fit.b_interval)):
        return LawAcrossDepths(**law, verdict="undecided", reason="too_few", fit=fit)
    holds = inside(PAPER_A, fit.a_interval) and inside(PAPER_B, fit.b_interval)
    return LawAcrossDepths(
        **law, verdict="not_rejected" if holds else "rejected", reason="fit", fit=fit
    )
