"""The fair γ*(N) study read across depths, in words: one row per depth (each q/k shear's γ*
against the paper's value, fungibility) and what `analysis.gamma_law` says of γ* = a N^b."""

from __future__ import annotations

from typing import Any

from momentum_interp.analysis.gamma_law import MIN_DEPTHS, LawAcrossDepths, law_across_depths
from momentum_interp.analysis.gamma_study import family_of
from momentum_interp.analysis.scaling import PAPER_A, PAPER_B
from momentum_interp.narrative.gamma_study import (
    FAMILY_NAMES,
    add_study_section,
    family_ends,
    fungibility_kind,
    gamma_star_cell,
    plain_text,
    plain_under_tuned,
    search_caveat,
    search_ends,
    verdict_text,
)
from momentum_interp.prose import bullets, wrap
from momentum_interp.tables import markdown_table
from momentum_interp.viz.report import Report

LAW_FAMILIES = ("qk_raw", "qk_norm")  # the q/k shears trained at every depth


def _depths(studies: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Every depth of the committed studies, shallowest first."""
    depths = [d for s in studies if s is not None for d in s["depths"]]
    return sorted(depths, key=lambda d: d["n_layers"])


def _fungibility(depth: dict[str, Any]) -> str:
    """The fungibility test in a table cell: difference, p and what it decides."""
    kind, fung, n = fungibility_kind(depth), depth["fungibility"], depth["n_layers"]
    if kind is None:
        return "—"
    decides = {
        "at_floor": f"undecided ({n + 1}-layer plain below the floor)",
        "no_difference": "no difference detected",
        "momentum": f"{n} momentum beat {n + 1} plain layers in this budget",
        "plain": f"{n + 1} plain beat {n} momentum layers in this budget",
    }[kind]
    if plain_under_tuned(depth):
        decides += f" ({n + 1}-layer plain below {n}-layer plain: may be under-tuned)"
    return f"{fung['mean_difference']:+.3f} AUC, p = {fung['p_value']:.2g}: {decides}"


def depths_rows(depths: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per depth: the paper's γ*(N), each q/k shear's γ* and where the paper's value lies, and
    the fungibility decision (N momentum layers against N + 1 plain)."""
    header = ["N", "paper's γ*(N)"]
    for name in LAW_FAMILIES:
        label = FAMILY_NAMES[name]
        header += [f"{label}: γ* [95 % bootstrap]", f"paper's value ({label})"]
    header.append("fungibility (N momentum vs N + 1 plain)")
    rows = []
    for depth in depths:
        row = [str(depth["n_layers"]), f"{depth['paper_gamma_star']:.3g}"]
        for name in LAW_FAMILIES:
            family = family_of(depth, name)
            row += ["—", "—"] if family is None else [gamma_star_cell(family), verdict_text(family)]
        row.append(_fungibility(depth))
        rows.append(row)
    return header, rows


def _at(depths: list[int]) -> str:
    return "N = " + ", ".join(map(str, depths))


def rate_caveats(studies: list[dict[str, Any] | None], family: str) -> dict[int, str]:
    """Per depth, where the family's arms chose an end of their rate search (`conditional on
    the rate search: γ = -0.75 chose the highest rate it tried`); depths with none are left out."""
    caveats = {}
    for study in filter(None, studies):
        ends = search_ends(study["selection"])
        for depth in study["depths"]:
            arms = family_of(depth, family)
            if arms is not None and (said := search_caveat(family_ends(arms, ends), "γ = ")):
                caveats[depth["n_layers"]] = said
    return caveats


def law_statement(law: LawAcrossDepths, caveats: dict[int, str] | None = None) -> str:
    """One shear family's `LawAcrossDepths` in a sentence: the verdict and why, with the rate
    searches (`rate_caveats`) of the depths that exclude the law."""
    label = f"**{FAMILY_NAMES[law.family]}**"
    skipped = f" ({_at(law.undecided)} decide no γ*)" if law.undecided else ""
    if law.verdict == "excluded":
        resting = [f"at N = {n}, {caveats[n]}" for n in law.nonpositive if n in (caveats or {})]
        return (
            f"{label}: no law a·N^b with a > 0, as the paper's, passes through our γ*{skipped}: "
            f"at {_at(law.nonpositive)} every γ not distinguishable from the best is ≤ 0"
            + (f" ({'; '.join(resting)})." if resting else ".")
        )
    if law.reason == "tied_sign":
        return (
            f"{label}: undecided{skipped}: γ* ≤ 0 at {_at(law.tied_sign)}, but positive γ are "
            "not distinguishable from it, so even the law's sign is open."
        )
    if law.reason == "grid_end":
        return (
            f"{label}: undecided{skipped}: γ* sits at the grid's end at {_at(law.at_grid_end)}, "
            "so the optimum there may lie past the grid and no law is fitted."
        )
    if law.fit is None or law.reason == "too_few":
        return (
            f"{label}: undecided{skipped}: {len(law.decided)} depth(s) decide γ*, and a fit "
            f"needs {MIN_DEPTHS} (two points fit any a and b exactly)."
        )
    fit = law.fit
    (a_low, a_high), (b_low, b_high) = fit.a_interval, fit.b_interval
    dof = fit.n_points - 2
    result = (
        "not rejected: inside both intervals"
        if law.verdict == "not_rejected"
        else "rejected: outside at least one interval"
    )
    return (
        f"{label}: through the vertex γ* at {_at(law.decided)}{skipped}, γ* = {fit.a:.3g} "
        f"N^{fit.b:.3g} (a in [{a_low:.3g}, {a_high:.3g}], b in [{b_low:.3g}, {b_high:.3g}]: "
        f"{round(fit.level * 100)} % t intervals on {dof} degree{'s' if dof != 1 else ''} of "
        "freedom, from the γ* alone, not their own intervals, and a and b are correlated); the "
        f"paper's a = {PAPER_A} and b = {PAPER_B} are {result}."
    )


def across_depths_block(**studies: dict[str, Any] | None) -> str:
    """The README's reading of the fair study across depths, from every committed `study.json`
    (one keyword per depth; a depth still running is None)."""
    listed = list(studies.values())
    depths = _depths(listed)
    return "\n\n".join(
        [
            wrap(
                f"Depths with a study so far: {_at([d['n_layers'] for d in depths])}. Each row "
                "repeats its depth's block above (its caveats on rate-search ends and ties are "
                "there); the paper's value is judged on each depth's own interval, which covers "
                "seed noise only, not the γ grid's spacing."
            ),
            markdown_table(*depths_rows(depths)),
            bullets(
                [
                    law_statement(law_across_depths(depths, name), rate_caveats(listed, name))
                    for name in LAW_FAMILIES
                ]
            ),
        ]
    )


def add_gamma_star_section(report: Report, studies: list[dict[str, Any]]) -> Report:
    """The report's γ*(N) section: each committed depth (`gamma_study.add_study_section`), then,
    with two depths or more, the depths side by side and the law's verdict."""
    add_study_section(report, studies)
    depths = _depths(studies)
    if len(depths) < 2:
        return report
    report.paragraph("Across depths: the depths with a study, side by side.")
    report.table(*depths_rows(depths))
    for name in LAW_FAMILIES:
        law = law_statement(law_across_depths(depths, name), rate_caveats(studies, name))
        report.paragraph(plain_text(law), note=True)
    return report
