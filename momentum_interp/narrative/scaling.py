"""The γ*(N) fit in words: the consistency statement and its caveats, the fit's one-line summary,
`summary.md`, and `write_scaling_report`, which fits a sweep's table and writes `fit.json`,
`summary.md` and the page; and what the README's γ*(N) blocks (`scaling_blocks`) share: depths
in words (`at_depths`, `by_depth`), a table's one value (`only_value`), the learning `FLOOR`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from momentum_interp.analysis.scaling import (
    PAPER_A,
    PAPER_B,
    ScalingFit,
    finite_interval,
    fit_scaling,
    format_interval,
    inside,
)
from momentum_interp.io import atomic_write_json, atomic_write_text
from momentum_interp.sweeps.tables import load_table, table_provenance
from momentum_interp.tables import markdown_table
from momentum_interp.viz.scaling import ScalingSection, depth_table

# The fit's interval methods (`PowerLawFit.method`) as the prose names them; an older `fit.json`
# holds the words themselves.
METHODS = {"covariance_with_grid": "covariance (residuals + grid resolution)"}


def at_depths(depths: list[int]) -> str:
    """`N = 2, 3, 4`: depths as the prose writes them."""
    return "N = " + ", ".join(map(str, depths))


def by_depth(values: dict[int, float]) -> str:
    """`4 at N = 1, 2 at N = 2, 1 from N = 3 on`: runs of equal values over the depths."""
    depths, groups = sorted(values), []
    for n in depths:
        if groups and values[groups[-1][-1]] == values[n]:
            groups[-1].append(n)
        else:
            groups.append([n])
    parts = []
    for group in groups:
        v = f"{values[group[0]]:g}"
        if len(group) == 1:
            parts.append(f"{v} at N = {group[0]}")
        elif group[-1] == depths[-1]:
            parts.append(f"{v} from N = {group[0]} on")
        else:
            parts.append(f"{v} at N = {group[0]}–{group[-1]}")
    return ", ".join(parts)


def only_value(table: pd.DataFrame, column: str) -> Any:
    """The one value `column` takes in every row of a sweep's table."""
    (value,) = set(table[column])
    return value


FLOOR = 0.5  # below this best final accuracy a depth counts as not (yet) learning the task


def _pronoun(depths: list[int]) -> str:
    return "it" if len(depths) == 1 else "them"


def caveats(result: ScalingFit, pct: str) -> list[str]:
    """Sentences on what the criterion could not separate, and on a line through the depths."""
    parts = []
    unseparated = [d.n_layers for d in result.depths if d.separated is False]
    if unseparated:
        parts.append(
            f"At {at_depths(unseparated)} the criterion cannot separate γ* from the next-best "
            f"non-zero γ (their {pct} intervals over seeds overlap)."
        )
    if (line := result.shapes.get("line")) is not None:
        flat = line["d_interval"][0] <= 0 <= line["d_interval"][1]
        left_out = [d.n_layers for d in result.depths if d.beats_no_shear is False]
        parts.append(
            "A line through "
            + (
                f"{result.shapes['n_points']} depths (leaving out {at_depths(left_out)}, where "
                "γ = 0 is not measurably worse)"
                if left_out
                else "every depth"
            )
            + f" gives γ* = {line['c']:.3g} "
            f"{'−' if line['d'] < 0 else '+'} {abs(line['d']):.3g} N "
            f"(slope {pct} interval {format_interval(line['d_interval'])}"
            + ("; no trend in N is resolved)." if flat else ").")
        )
    return parts


def consistency_statement(result: ScalingFit) -> str:
    """A plain sentence or three: do the paper's 4.17 and −0.74 lie inside our intervals? (The
    verdict is the last sentence.)"""
    pct = f"{100 * result.level:g} %"
    parts = []
    if result.excluded:
        parts.append(
            f"At {at_depths(result.excluded)} γ* ≤ 0 (no shear, or a smear, was best): the "
            f"log-space fit leaves {_pronoun(result.excluded)} out."
        )
    if result.no_effect:
        parts.append(
            f"At {at_depths(result.no_effect)} the {pct} intervals of γ* > 0 and of γ = 0 "
            "overlap (no shear is not measurably worse), so there is no best γ to fit: the fit "
            f"leaves {_pronoun(result.no_effect)} out too."
        )
    edge = [d.n_layers for d in result.depths if d.at_grid_edge]
    if edge:
        parts.append(f"At {at_depths(edge)} γ* is at an end of the grid (it may lie beyond).")
    fit = result.fit
    if fit is None:
        parts += caveats(result, pct)
        parts.append(
            "Fewer than 2 depths have a γ* > 0 that beats γ = 0, so no power law can be fitted: "
            f"the paper's law γ* = {PAPER_A} N^{PAPER_B} can be neither confirmed nor excluded by "
            "this sweep."
        )
        return " ".join(parts)
    one_seed = [d.n_layers for d in result.depths if not d.has_interval]
    if one_seed:
        parts += caveats(result, pct)
        parts.append(
            f"The fit γ* = {fit.a:.3g} N^{fit.b:.2f} through {fit.n_points} depths rests on one "
            f"seed at {at_depths(one_seed)}, where no interval over seeds exists, "
            f"so the paper's law γ* = {PAPER_A} N^{PAPER_B} can be neither confirmed nor "
            "excluded yet."
        )
        return " ".join(parts)
    if not all(finite_interval(i) for i in (fit.a_interval, fit.b_interval)):
        parts += caveats(result, pct)
        parts.append(
            f"The fit γ* = {fit.a:.3g} N^{fit.b:.2f} through {fit.n_points} depths has no "
            "interval (too few depths or seeds), so the paper's law "
            f"γ* = {PAPER_A} N^{PAPER_B} can be neither confirmed nor excluded yet."
        )
        return " ".join(parts)
    a_in, b_in = inside(PAPER_A, fit.a_interval), inside(PAPER_B, fit.b_interval)
    boot = result.bootstrap
    verdict = result.law_verdict
    parts.append(
        f"We measure γ* = {fit.a:.3g} N^{fit.b:.3g} from {fit.n_points} depths, with {pct} "
        f"intervals from the fit {METHODS.get(fit.method, fit.method)} a ∈ {format_interval(fit.a_interval)}, "
        f"b ∈ {format_interval(fit.b_interval)}"
        + (
            f" (seed bootstrap: a ∈ {format_interval(boot['a_interval'])}, b ∈ {format_interval(boot['b_interval'])})."
            if "a_interval" in boot
            else "."
        )
    )
    if verdict != "undecided":  # an undecided fit is not read against the paper's a, b
        parts.append(
            f"The paper's a = {PAPER_A} lies {'inside' if a_in else 'outside'} our covariance "
            f"interval and its b = {PAPER_B} lies {'inside' if b_in else 'outside'} it"
            + (
                f"; against the seed-bootstrap intervals: a {'inside' if inside(PAPER_A, boot['a_interval']) else 'outside'}, "
                f"b {'inside' if inside(PAPER_B, boot['b_interval']) else 'outside'}."
                if "a_interval" in boot
                else "."
            )
        )
    parts += caveats(result, pct)
    if verdict == "consistent":
        parts.append("Our measurement is consistent with the paper's law.")
    elif verdict == "inconsistent":
        which = " and ".join(n for n, ok in (("a", a_in), ("b", b_in)) if not ok)
        outside = [d.n_layers for d in result.depths if d.paper_verdict == "outside"]
        parts.append(
            f"Our measurement is inconsistent with the paper's law: its {which} lies outside our "
            f"interval, and at {at_depths(outside)} the paper's γ*(N) scores measurably below γ*."
        )
    else:
        tied = [d.n_layers for d in result.depths if d.paper_verdict != "outside"]
        parts.append(
            f"No verdict: at {at_depths(tied)} the paper's γ*(N) cannot be shown worse than our "
            "γ* (a grid γ beside it is not distinguishable from γ*, or untested), so the "
            "fit through the per-depth argmaxes decides nothing and its intervals are not read "
            f"against the paper's a = {PAPER_A} and b = {PAPER_B}; this sweep neither confirms "
            "nor excludes the paper's law."
        )
    return " ".join(parts)


def write_scaling_report(
    results: str | Path,
    out_dir: str | Path | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    figures: bool = False,
    metric: str = "final_accuracy",
    shear: str = "qk",
) -> dict[str, Any]:
    """Fit the table at `results` on `metric` for one shear mode; write `fit.json`, `summary.md`
    (and, with `figures`, the self-contained page `scaling.html`)."""
    results = Path(results)
    out_dir = Path(out_dir) if out_dir is not None else results.parent
    table = load_table(results)
    result = fit_scaling(table, metric=metric, n_boot=n_boot, level=level, shear=shear)
    report = {
        **fit_record(result),
        "source": str(results),
        "provenance": table_provenance(table, results.parent),
    }
    atomic_write_json(out_dir / "fit.json", report)
    atomic_write_text(out_dir / "summary.md", summary_markdown(result))
    paths: dict[str, Any] = {
        "statement": report["consistency"],
        "fit": out_dir / "fit.json",
        "summary": out_dir / "summary.md",
    }
    if figures:
        paths["page"] = out_dir / "scaling.html"
        atomic_write_text(paths["page"], ScalingSection(result, scaling_notes(result)).to_html())
    return paths


def fit_line(result: ScalingFit) -> str | None:
    """One sentence with the fitted a and b and both kinds of interval (None without a fit)."""
    if result.fit is None:
        return None
    fit, boot = result.fit, result.bootstrap
    return (
        f"Fit (curve_fit in log space, {fit.n_points} depths): a = {fit.a:.3g} "
        f"{format_interval(fit.a_interval)}, b = {fit.b:.3g} {format_interval(fit.b_interval)} "
        f"({100 * result.level:g} %, covariance)"
        + (
            f"; seed bootstrap ({boot['n_valid']} replicates): a {format_interval(boot['a_interval'])}, "
            f"b {format_interval(boot['b_interval'])}."
            if "a_interval" in boot
            else "."
        )
    )


def summary_markdown(result: ScalingFit) -> str:
    """Per-depth γ*, intervals and controls as a Markdown table, then the fit and the statement."""
    lines = [markdown_table(*depth_table(result)), ""]
    if (line := fit_line(result)) is not None:
        lines += [line, ""]
    lines.append(consistency_statement(result))
    return "\n".join(lines) + "\n"


def scaling_notes(result: ScalingFit) -> list[str]:
    """The sentences a γ*(N) report section opens with: the statement, then the fit's line."""
    line = fit_line(result)
    return [consistency_statement(result), *([line] if line is not None else [])]


def fit_record(result: ScalingFit) -> dict[str, Any]:
    """A fit's numbers (`ScalingFit.to_dict()`) with its statement beside them, as `fit.json`,
    `report.json` and the demo's `results.json` hold it."""
    return {**result.to_dict(), "consistency": consistency_statement(result)}
