"""The fair γ*(N) study read across depths: one row per depth (each shear's γ* and the paper's
value, fungibility) and whether a law γ* = a N^b can be fitted through the decided depths."""

from __future__ import annotations

from typing import Any

from momentum_interp.analysis.scaling import fit_power_law, inside
from momentum_interp.narrative.gamma_study import (
    FAMILY_NAMES,
    fungibility_decision,
    plain_text,
    plain_under_tuned,
)
from momentum_interp.prose import bullets, wrap
from momentum_interp.tables import markdown_table
from momentum_interp.viz.report import Report

PAPER_A, PAPER_B = 4.17, -0.74
LAW_FAMILIES = ("qk_raw", "qk_norm")  # the q/k shears trained at every depth
REASONS = {"grid_end": "γ* at the grid's end", "no_effect": "no effect", "floor": "at the floor"}


def _depths(studies: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Every depth of the committed studies, shallowest first."""
    depths = [d for s in studies if s is not None for d in s["depths"]]
    return sorted(depths, key=lambda d: d["n_layers"])


def _family(depth: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((f for f in depth["families"] if f["family"] == name), None)


def _gamma_star(family: dict[str, Any] | None) -> str:
    if family is None:
        return "—"
    low, high = family["gamma_star_interval"]
    flag = " (grid end)" if family["gamma_star_flag"] == "grid_end" else ""
    return f"{family['gamma_star']:.3g}{flag} [{low:.3g}, {high:.3g}]"


def _verdict(family: dict[str, Any] | None) -> str:
    if family is None:
        return "—"
    verdict, reason = family["paper_verdict"], family["paper_reason"]
    if verdict == "undecided":
        return f"undecided ({REASONS.get(reason, reason)})"
    return f"{verdict} the interval"


def _fungibility(depth: dict[str, Any]) -> str:
    """The fungibility decision in a table cell: difference, p and what it decides."""
    decision, fung, n = fungibility_decision(depth), depth["fungibility"], depth["n_layers"]
    if decision is None:
        return "—"
    if depth["deeper_plain_at_floor"]:
        short = f"undecided ({n + 1}-layer plain at the floor)"
    else:
        short = decision.removeprefix("decided: ").removesuffix(" in this budget")
    if plain_under_tuned(depth):
        short += f" ({n + 1}-layer plain below {n}-layer plain: likely under-tuned)"
    return f"{fung['mean_difference']:+.3f} AUC, p = {fung['p_value']:.2g}: {short}"


def depths_rows(depths: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per depth: the paper's γ*(N), each q/k shear's γ* and where the paper's value lies, and
    the fungibility decision (N momentum layers against N + 1 plain)."""
    header = ["N", "paper's γ*(N)"]
    for name in LAW_FAMILIES:
        header += [
            f"{FAMILY_NAMES[name]}: γ* [95 % bootstrap]",
            f"paper's value ({FAMILY_NAMES[name]})",
        ]
    header.append("fungibility (N momentum vs N + 1 plain)")
    rows = []
    for depth in depths:
        row = [str(depth["n_layers"]), f"{depth['paper_gamma_star']:.3g}"]
        for name in LAW_FAMILIES:
            family = _family(depth, name)
            row += [_gamma_star(family), _verdict(family)]
        row.append(_fungibility(depth))
        rows.append(row)
    return header, rows


def law_statement(depths: list[dict[str, Any]], name: str) -> str:
    """Whether `γ* = a N^b` can be fitted through one shear's γ* over the decided depths, and
    if so the fit against the paper's a and b; otherwise why not."""
    label = FAMILY_NAMES[name]
    decided, undecided = [], []
    for depth in depths:
        family = _family(depth, name)
        reason = None if family is None else family["paper_reason"]
        if family is None or reason in ("no_effect", "floor", "missing"):
            undecided.append(depth["n_layers"])
        else:
            decided.append((depth["n_layers"], family))
    skipped = f" (N = {', '.join(map(str, undecided))} decide no γ*)" if undecided else ""
    nonpositive = [n for n, f in decided if f["gamma_star"] <= 0]
    at_end = [n for n, f in decided if f["gamma_star_flag"] == "grid_end"]
    if nonpositive:
        return (
            f"**{label}**: no law a·N^b with a > 0, as the paper's, can be fitted{skipped}: "
            f"γ* ≤ 0 at N = {', '.join(map(str, nonpositive))}."
        )
    if at_end:
        return (
            f"**{label}**: no law is fitted{skipped}: γ* sits at the grid's end at N = "
            f"{', '.join(map(str, at_end))}, so the optimum there may lie past the grid."
        )
    if len(decided) < 2:
        return f"**{label}**: no law is fitted{skipped}: fewer than two depths decide γ*."
    fit = fit_power_law([n for n, _ in decided], [f["gamma_star"] for _, f in decided])
    a_low, a_high = fit.a_interval
    b_low, b_high = fit.b_interval
    against = (
        "inside both intervals"
        if inside(PAPER_A, fit.a_interval) and inside(PAPER_B, fit.b_interval)
        else "outside at least one interval"
    )
    return (
        f"**{label}**: through the vertex γ* at N = {', '.join(str(n) for n, _ in decided)}"
        f"{skipped}, γ* = {fit.a:.3g} N^{fit.b:.3g} (a in [{a_low:.3g}, {a_high:.3g}], b in "
        f"[{b_low:.3g}, {b_high:.3g}], {round(fit.level * 100)} % t on {fit.n_points - 2} degree"
        f"{'s' if fit.n_points != 3 else ''} of freedom, from the γ* alone, not their own "
        f"intervals); the paper's a = {PAPER_A} and b = {PAPER_B} lie {against}."
    )


def across_depths_block(**studies: dict[str, Any] | None) -> str:
    """The README's reading of the fair study across depths, from every committed `study.json`
    (keyword per depth; a depth still running is None)."""
    depths = _depths(list(studies.values()))
    done = ", ".join(str(d["n_layers"]) for d in depths)
    return "\n\n".join(
        [
            wrap(
                f"Depths decided so far: N = {done}. Each row repeats its depth's block above; "
                "the paper's value is judged on each depth's own interval, so the law is tested "
                "depth by depth even where no law can be fitted through our γ*."
            ),
            markdown_table(*depths_rows(depths)),
            bullets([law_statement(depths, name) for name in LAW_FAMILIES]),
        ]
    )


def add_across_depths(report: Report, studies: list[dict[str, Any]]) -> Report:
    """The report's γ*(N) section closes with the depths side by side and the law's fit."""
    depths = _depths(studies)
    if len(depths) < 2:
        return report
    report.paragraph("Across depths: the decided depths side by side.")
    report.table(*depths_rows(depths))
    for name in LAW_FAMILIES:
        report.paragraph(plain_text(law_statement(depths, name)), note=True)
    return report
