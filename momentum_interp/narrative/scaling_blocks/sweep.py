"""The README block of a two-sided γ sweep: per shear and depth, γ* against the next-best γ,
γ = 0 and the smeared key; the best γ's sign by depth, the paper's γ*(N) depth by depth and
whether the task saturates."""

from __future__ import annotations

from typing import Any

import pandas as pd

from momentum_interp.analysis.scaling import (
    GAMMA,
    PAPER_A,
    PAPER_B,
    ScalingFit,
    finite_interval,
)
from momentum_interp.narrative.scaling import FLOOR, at_depths, by_depth, consistency_statement
from momentum_interp.prose import bullets, pct, wrap
from momentum_interp.tables import markdown_table
from momentum_interp.viz.scaling import gamma_set


def _auc(value: float | None, interval: Any = None) -> str:
    """`0.473 [0.41, 0.53]`, the interval left out when missing (one seed)."""
    if value is None:
        return "—"
    if not finite_interval(interval):
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def sweep_depth_rows(result: ScalingFit, shear_label: str) -> list[list[str]]:
    """Rows of the two-sided sweep's table for one shear: γ*, the runner-up, the controls."""
    rows = []
    for d in result.depths:
        best = d.best
        runner = None if d.runner_up is None else d.grid.index(d.runner_up)
        zero = d.grid.index(0.0) if 0.0 in d.grid else None
        rows.append(
            [
                shear_label,
                str(d.n_layers),
                str(d.n_seeds),
                f"{d.gamma_star:g}",
                _auc(d.criterion_mean[best], d.mean_interval[best]),
                "—" if runner is None else f"{d.runner_up:g}",
                "—" if runner is None else _auc(d.criterion_mean[runner], d.mean_interval[runner]),
                {True: "yes", False: "no", None: "—"}[d.separated],
                "—" if zero is None else _auc(d.criterion_mean[zero], d.mean_interval[zero]),
                _auc(d.smeared_key_criterion, d.smeared_key_interval),
            ]
        )
    return rows


def _paper_per_depth(result: ScalingFit, level: str, table: pd.DataFrame) -> str:
    """Depth by depth: does the paper's γ*(N) score measurably below our γ* (`paper_verdict`)?"""
    by_verdict: dict[str, list] = {}
    for d in result.depths:
        by_verdict.setdefault(d.paper_verdict, []).append(d)

    def depths(verdict: str) -> str:
        return at_depths([d.n_layers for d in by_verdict.get(verdict, [])])

    parts = []
    if "outside" in by_verdict:
        parts.append(
            "scores measurably below γ* at "
            + ", ".join(
                f"N = {d.n_layers} (paper {d.paper_gamma_star:.2f}; not distinguishable from γ*: "
                f"{gamma_set(d.plausible)})"
                for d in by_verdict["outside"]
            )
        )
    if "inside" in by_verdict:
        parts.append(f"not excluded at {depths('inside')}")
    if "beyond_grid" in by_verdict:
        parts.append(
            f"undecided at {depths('beyond_grid')} (the paper's γ lies past the grid's "
            "end, which is not distinguishable from γ*)"
        )
    if "no_effect" in by_verdict:
        parts.append(
            f"undecided at {depths('no_effect')} (no γ scores measurably above γ = 0 there, "
            "so there is no best γ to compare)"
        )
    if "untested" in by_verdict:
        parts.append(f"undecided at {depths('untested')} (one seed, no interval)")
    return (
        f"**Against the paper's γ*(N) = {PAPER_A} N^{PAPER_B}, depth by depth** (judged by the "
        "grid γ on both sides of the paper's value, or the grid's end when it lies past it: it "
        f"*scores measurably below* γ* when each of them has a {level} t interval wholly below "
        "γ*'s): " + "; ".join(parts) + "." + _one_rate_caveat(table)
    )


def _one_rate_caveat(table: pd.DataFrame) -> str:
    """Where every run of `table` trained at one learning rate, say that the per-depth judgment
    compares untuned arms (the raw shear also scales the logits): no verdict on the paper."""
    if "train.lr" not in table or table["train.lr"].nunique() != 1:
        return ""
    return (
        f" Every arm trained at one learning rate ({table['train.lr'].iloc[0]:g}), untuned, and "
        "the raw shear multiplies the initial logits by up to (1 + 2γ)², so these judgments "
        "compare untuned arms: they are not a verdict on the paper's value (the fair study, "
        "`results/fair_gamma_star/`, tunes each arm's rate)."
    )


def saturation_sentence(table: pd.DataFrame, ceiling: float = 0.99) -> str:
    """Issue 14's check that the task does not saturate: per depth, how many q/k γ values end
    (mean over seeds) at or above `ceiling` final accuracy."""
    rows = table[(table["model.shear"] == "qk") & ~table["model.smeared_key"].astype(bool)]
    means = rows.groupby(["model.n_layers", GAMMA])["final_accuracy"].mean()
    counts = {
        int(n): int((group >= ceiling).sum()) for n, group in means.groupby(level="model.n_layers")
    }
    best = {int(n): float(g.max()) for n, g in means.groupby(level="model.n_layers")}
    saturated = [n for n, c in counts.items() if c]
    return (
        f"**Saturation check** (mean final accuracy ≥ {pct(ceiling, 0)}, q/k shear): "
        + ", ".join(f"{counts[n]} γ at N = {n} (best {pct(best[n])})" for n in sorted(counts))
        + (
            f". The ceiling is reached at {len(saturated)} of {len(counts)} depths"
            + (": final accuracy cannot rank γ there, the AUC has to." if saturated else ".")
        )
        + (
            f" At {at_depths(floor)} no γ reaches {pct(FLOOR, 0)}: near the floor, "
            "where the criterion separates little."
            if (floor := [n for n in sorted(best) if best[n] < FLOOR])
            else ""
        )
    )


def _keys_only_sentence(keys_only: ScalingFit) -> str:
    """The keys-only shear per depth: γ*, whether it is separated, and the smeared key beside it."""
    return (
        "**Keys-only shear:** "
        + "; ".join(
            f"γ* = {d.gamma_star:g} at N = {d.n_layers}"
            + (" (the grid's end)" if d.at_grid_edge else "")
            + {True: ", separated from", False: ", not separated from", None: ", beside"}[
                d.separated
            ]
            + (f" the next-best non-zero γ = {d.runner_up:g}" if d.runner_up is not None else "")
            + f", AUC {d.criterion_at_gamma_star:.2f}"
            + (
                f" against the learned smeared key's {d.smeared_key_criterion:.2f}"
                if d.smeared_key_criterion is not None
                else ""
            )
            for d in keys_only.depths
        )
        + (
            ". With a keys-only shear, γ ∈ (−1, 0) makes each key (1 + γ) k_t − γ k_(t−1): a "
            "smeared key with a fixed weight −γ (mixed after RoPE, where the shear sits here)."
            if any(-1 < d.gamma_star < 0 for d in keys_only.depths)
            else "."
        )
    )


def sweep_block(
    qk: ScalingFit, keys_only: ScalingFit | None, spec: dict, table: pd.DataFrame
) -> str:
    """The README's results of the two-sided γ sweep on `mqar`, from the fits of its q/k and
    keys-only rows (`fit.json`, `keys_only/fit.json`) and the finished runs (`table`)."""
    n_done = len(table)
    level = f"{100 * qk.level:g} %"
    header = [
        "shear",
        "N",
        "seeds",
        "γ*",
        f"AUC at γ* [{level}]",
        "next-best γ ≠ 0",
        "its AUC",
        "separated",
        "AUC at γ = 0",
        "smeared key AUC",
    ]
    rows = sweep_depth_rows(qk, "q/k")
    if keys_only is not None:
        rows += sweep_depth_rows(keys_only, "keys only")
    partial = n_done < spec["n_runs"]
    signs = {d.n_layers: d.gamma_star for d in qk.depths if d.beats_no_shear is not False}
    effect = {d.n_layers: d.beats_no_shear for d in qk.depths}
    smoothing = [n for n, g in signs.items() if g < 0 and effect[n]]
    sharpening = [n for n, g in signs.items() if g > 0 and effect[n]]
    flat = [n for n, e in effect.items() if e is False]
    untested = [n for n, e in effect.items() if e is None]
    beaten = [
        d.n_layers
        for d in qk.depths
        if finite_interval(d.smeared_key_interval)
        and finite_interval(d.mean_interval[d.best])
        and d.smeared_key_interval[0] > d.mean_interval[d.best][1]
    ]
    intro = (
        f"**{'Partial' if partial else 'Complete'} sweep: {n_done} of {spec['n_runs']} runs.** "
        "Criterion: the area under the held-out accuracy curve (`auc_accuracy`, the mean accuracy "
        "over training); γ* is the grid γ with the highest mean over seeds"
        + (
            f" (means within {qk.tie_tol:g} of the best are tied, and the tied γ with the lowest "
            "mean final loss wins)"
            if qk.tie_tol
            else ""
        )
        + f", *separated* when its {level} t interval lies wholly above that of the next-best "
        "non-zero γ; γ values whose intervals overlap γ*'s are *not distinguishable* from it "
        "(intervals are wide with few seeds). Rendered from "
        "`results/scaling_mqar/sweep/fit.json` and `results/scaling_mqar/sweep/keys_only/fit.json`, "
        "written by the "
        "`momentum-interp scaling` commands in `results/scaling_mqar/README.md`; "
        "`notebooks/06_gamma_star_two_sided.ipynb` draws the figures."
    )
    sides = [
        f"smoothing (γ < 0) ranks first at {at_depths(smoothing)}" if smoothing else "",
        f"sharpening (γ > 0) at {at_depths(sharpening)}" if sharpening else "",
        f"no γ measurably above γ = 0 at {at_depths(flat)}" if flat else "",
        f"not yet tested against γ = 0 (one seed) at {at_depths(untested)}" if untested else "",
    ]
    items = [
        "**Best γ by depth (q/k shear):** "
        + "; ".join(side for side in [by_depth(signs), *sides] if side)
        + ".",
        consistency_statement(qk),
        _paper_per_depth(qk, level, table),
        saturation_sentence(table),
    ]
    if keys_only is not None:
        items.insert(1, _keys_only_sentence(keys_only))
    ahead = [  # by the means alone (where intervals are missing or overlap)
        d.n_layers
        for d in qk.depths
        if d.n_layers not in beaten
        and d.smeared_key_criterion is not None
        and d.smeared_key_criterion > d.criterion_at_gamma_star
    ]
    if beaten:
        items.append(
            "The learned smeared key (no momentum) beats the q/k shear's best γ at "
            f"{at_depths(beaten)} "
            "(intervals apart)."
        )
    if ahead:
        items.append(
            "The learned smeared key's mean AUC is above the q/k shear's best γ's at N = "
            + ", ".join(
                f"{d.n_layers} ({d.smeared_key_criterion:.2f} against {d.criterion_at_gamma_star:.2f})"
                for d in qk.depths
                if d.n_layers in ahead
            )
            + (" (means only: no interval separates them yet)." if partial else " (means only).")
        )
    if partial:
        items.append(
            "Partial: depths with one seed have no intervals and no separation verdict; the "
            "numbers will move as the remaining runs land."
        )
    return f"{wrap(intro)}\n\n{markdown_table(header, rows)}\n\n{bullets(items)}"


def mqar_sweep_block(
    qk: dict | None,
    keys_only: dict | None,
    spec: dict,
    table: pd.DataFrame | None,
    fit_command: str,
) -> str:
    """`sweep_block` of the sweep's fits, or how far the sweep got while it has no fit."""
    if qk is None:
        done = 0 if table is None else len(table)
        return (
            f"No fit of the sweep exists yet ({done} of {spec['n_runs']} runs finished); write "
            f"it with `{fit_command}`."
        )
    return sweep_block(
        ScalingFit.from_dict(qk),
        None if keys_only is None else ScalingFit.from_dict(keys_only),
        spec,
        table,
    )
