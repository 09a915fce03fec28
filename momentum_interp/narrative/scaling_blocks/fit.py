"""The README block of a γ*(N) sweep fitted to a power law: the sweep, the per-depth table, the
measured law against the paper's and the tie windows, from its `fit.json` and `results.csv`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from momentum_interp.analysis.scaling import ScalingFit, format_interval
from momentum_interp.narrative.scaling import at_depths, by_depth, caveats, only_value
from momentum_interp.prose import bullets, span, wrap
from momentum_interp.tables import markdown_table
from momentum_interp.viz.scaling import depth_table


def readme_block(
    result: ScalingFit, provenance: dict[str, Any], table: pd.DataFrame, config: str, out: str
) -> str:
    """The README's γ*(N) section: the sweep, the per-depth table and its bullets, from the
    committed `fit.json` (`result`, its `provenance`) and the sweep's `results.csv` (`table`);
    `config` and `out` are the sweep's spec and results folder, as the prose names them."""
    depths = result.depths
    grid = depths[0].grid
    ratios = {round(b / a, 6) for a, b in zip(grid[1:], grid[2:], strict=False)}
    step = f"a factor-{ratios.pop():g} grid" if len(ratios) == 1 else "an uneven grid"
    level = f"{100 * result.level:g} %"
    (seeds,) = {d.n_seeds for d in depths}
    (session,) = provenance["sessions"]
    smeared = all(d.smeared_key_criterion is not None for d in depths)
    sweep = (
        f"We swept multi-query associative recall (`{config}`): depths "
        f"N ∈ {{{', '.join(str(d.n_layers) for d in depths)}}}, γ ∈ "
        f"{{{', '.join(f'{g:g}' for g in grid)}}}, {seeds} seeds"
        + (", and the smeared-key control at every depth" if smeared else "")
        + f". That is {provenance['n_runs']} runs, {provenance['sweep_wall_time_s'] / 60:.0f} min "
        f"wall on {session['cpu_count']} CPU cores ({session['started'][:10]}). The table and "
        f"fit are in `{out}` (`summary.md`, `fit.json`; "
        "`notebooks/04_scaling_law.ipynb` draws the figures); "
        f"criterion: {result.metric.replace('_', ' ')}, γ values within "
        f"{100 * result.tie_tol:g} points of the best count as tied (the last column); "
        f"the column “not distinguishable from γ*” lists the γ whose {level} t intervals "
        "overlap γ*'s, or tied."
    )
    fit, boot, paper = result.fit, result.bootstrap, result.paper
    inside = lambda v, i: "inside" if i[0] <= v <= i[1] else "outside"  # noqa: E731
    a_in, b_in = inside(paper["a"], fit.a_interval), inside(paper["b"], fit.b_interval)
    lows, highs = zip(*(d.window for d in depths), strict=True)
    largest = {d.n_layers: d.window[1] for d in depths}
    falls = all(x >= y for x, y in zip(highs, highs[1:], strict=False)) and highs[0] > highs[-1]
    items = [
        ("**Fit through the argmaxes" if result.law_verdict == "undecided" else "**Measured law")
        + f": γ* = {fit.a:.3g} N^{fit.b:.3g}**, with {level} intervals a ∈ "
        f"{format_interval(fit.a_interval)} and b ∈ {format_interval(fit.b_interval)} (fit "
        f"covariance plus the γ grid's resolution). The seed bootstrap gives a ∈ "
        f"{format_interval(boot['a_interval'])} and b ∈ {format_interval(boot['b_interval'])}.",
        (
            ""  # an undecided fit is not read against the paper's a and b (the verdict says why)
            if result.law_verdict == "undecided"
            else f"**Against the paper's law:** a = {paper['a']} lies {a_in} the fit's interval. "
            f"b = {paper['b']} lies {b_in} the covariance interval and "
            f"{inside(paper['b'], boot['b_interval'])} the seed-bootstrap one. "
        )
        + _law_verdict_sentence(result)
        + f" Every γ in [{max(lows):g}, {min(highs):g}] is tied at the top at every depth, so "
        f"γ* stays at {span([d.gamma_star for d in depths], 'g')}.",
        f"**What {'does fall' if falls else 'does not fall'} with depth** is the largest γ still "
        f"tied at the top: {by_depth(largest)} (a tie window, not a best γ).",
        " ".join(caveats(result, level)),
        f"The caveats (d_model {only_value(table, 'model.d_model')}, {only_value(table, 'train.steps')} "
        f"steps, {step}) are in `results/scaling/README.md`. `notebooks/04_scaling_law.ipynb` "
        "recomputes all of this from the table.",
    ]
    return f"{wrap(sweep)}\n\n{markdown_table(*depth_table(result))}\n\n{bullets(items)}"


def _law_verdict_sentence(result: ScalingFit) -> str:
    """The README's bold verdict on the paper's law, from `ScalingFit.law_verdict`."""
    verdict = result.law_verdict
    if verdict == "consistent":
        return "**The law is consistent with our measurement.**"
    if verdict == "inconsistent":
        return "**We do not reproduce the law.**"
    tied = [d.n_layers for d in result.depths if d.paper_verdict != "outside"]
    return (
        f"**Against the paper's law: no verdict.** At {at_depths(tied)} the paper's γ*(N) cannot "
        "be shown worse than our "
        "γ*, since a grid γ beside it is not distinguishable from γ* (a flat top: the criterion "
        "saturates), so the fit through the argmaxes decides nothing and its intervals are not "
        f"read against the paper's a = {result.paper['a']} and b = {result.paper['b']}; this "
        "sweep neither confirms nor excludes the law."
    )


def scaling_block(fit: dict, table: pd.DataFrame, config: str, out: str) -> str:
    """`readme_block` of a committed `fit.json` (with its provenance) and its results table."""
    return readme_block(ScalingFit.from_dict(fit), fit["provenance"], table, config, out)
