"""The fair γ*(N) study in Markdown: its summary table and per-depth decisions, from the
`study.json` that `momentum-interp study` writes (`analysis.gamma_study.DepthStudy.to_dict()`
per depth, plus the select stage's `selection.json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from momentum_interp.analysis.gamma_study import FLOOR_ACCURACY, family_of
from momentum_interp.prose import bullets, count, p_label, pct, sci, wrap
from momentum_interp.sweeps.selection import detectable_difference
from momentum_interp.tables import markdown_table
from momentum_interp.viz.gamma_study import auc_by_gamma
from momentum_interp.viz.report import Report

if TYPE_CHECKING:
    import pandas as pd

VERDICT_REASONS = {
    "no_effect": "no γ of the paper's shear scores significantly above γ = 0 (paired, Holm)",
    "floor": "no arm reaches 50 % mean final accuracy: the depth is at the floor",
    "grid_end": "γ* sits at the grid's end on the paper's side",
    "missing": "the paper's shear has no fresh-seed results yet",
}
FAMILY_NAMES = {
    "qk_raw": "q/k raw",
    "qk_norm": "q/k normalised",
    "k_raw": "keys-only raw",
    "k_norm": "keys-only normalised",
}


def _ci(arm: dict[str, Any]) -> str:
    low, high = arm["auc_ci"]
    text = f"{arm['auc_mean']:.3f} [{low:.3f}, {high:.3f}]"
    diverged = arm.get("diverged", 0)  # study.json files written before the count: none
    return f"{text} ({diverged}/{len(arm['seeds'])} diverged: AUC 0)" if diverged else text


def _steps(arm: dict[str, Any]) -> str:
    median = arm["steps_to_50_median"]
    text = "never" if median is None or median == float("inf") else f"{median:.0f}"
    if median is not None and median == arm.get("first_eval_step"):
        text = f"≤ {text}"  # at 50 % on the first evaluation: it crossed at or before it
    n = len(arm["seeds"])
    return f"{text} ({arm['never_reached_50']}/{n} never)" if arm["never_reached_50"] else text


def _rate(arm: dict[str, Any], grid_end: dict[tuple, str]) -> str:
    if arm["gamma"] is None:  # a control: one arm per variant, whatever its config's γ
        flags = [flag for (variant, _), flag in grid_end.items() if variant == arm["family"]]
        flag = next((f for f in flags if f), "")
    else:
        flag = grid_end.get((arm["family"], arm["gamma"]), "")
    return f"{arm['lr']:.3g}{flag}"


def grid_end_flags(selection: dict[str, Any]) -> dict[tuple, str]:
    """`(variant, γ) →` " (grid end)" where its chosen rate sat at the study grid's end,
    " (searched end)" where only at the end of the rates it searched (a pruned search), else ""."""
    flags = {}
    for arm in selection["arms"]:
        # selection files written before pruned searches: the searched grid is the study's
        at_study_end = arm.get("at_study_grid_end", arm["at_grid_end"])
        flag = " (grid end)" if at_study_end else (" (searched end)" if arm["at_grid_end"] else "")
        flags[(arm["variant"], arm["config"].get("model.gamma"))] = flag
    return flags


def search_ends(selection: dict[str, Any]) -> dict[tuple, str]:
    """`(variant, γ) →` "lowest" or "highest" for each arm whose chosen rate is an end of the
    rates it searched (its score may be limited by the search), from `selection.json`."""
    ends = {}
    for arm in selection["arms"]:
        if arm["at_grid_end"]:
            lowest = arm["chosen"] == min(arm["values"])
            ends[(arm["variant"], arm["config"].get("model.gamma"))] = (
                "lowest" if lowest else "highest"
            )
    return ends


def _and(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def search_caveat(ends: dict[str, list[str]], prefix: str = "") -> str:
    """`conditional on the rate search: γ = 0, 1 and 2 chose the lowest rate they tried` from
    the names (`0`, `plain N=3`) at each end, each group led by `prefix`; "" when none is."""
    parts = [
        f"{prefix}{_and(names)} chose the {end} rate {'they' if len(names) > 1 else 'it'} tried"
        for end, names in sorted(ends.items())
    ]
    return f"conditional on the rate search: {'; '.join(parts)}" if parts else ""


def family_ends(family: dict[str, Any], ends: dict[tuple, str]) -> dict[str, list[str]]:
    """The γ of the family's arms at an end of their rate search, by end."""
    by_end: dict[str, list[str]] = {}
    for arm in family["arms"]:
        if end := ends.get((family["family"], arm["gamma"])):
            by_end.setdefault(end, []).append(f"{arm['gamma']:g}")
    return by_end


def arms_table(depth: dict[str, Any], selection: dict[str, Any]) -> str:
    """Every arm of one depth: family, γ, chosen rate, seeds, AUC with its interval, median
    steps to 50 %, and whether it is distinguishable from its family's best."""
    ends = grid_end_flags(selection)
    rows = []
    for family in depth["families"]:
        tied = set(family["not_distinguishable"])
        for arm in family["arms"]:
            mark = (
                "best"
                if arm["gamma"] == family["best_gamma"]
                else ("≈ best" if arm["gamma"] in tied else "")
            )
            rows.append(
                [
                    FAMILY_NAMES.get(family["family"], family["family"]),
                    f"{arm['gamma']:g}",
                    _rate(arm, ends),
                    len(arm["seeds"]),
                    _ci(arm),
                    _steps(arm),
                    mark,
                ]
            )
    controls = [*depth["controls"], *([depth["deeper_plain"]] if depth["deeper_plain"] else [])]
    for control in controls:
        rows.append(
            [
                control["family"].replace("_", " "),
                "—",
                _rate(control, ends),
                len(control["seeds"]),
                _ci(control),
                _steps(control),
                "",
            ]
        )
    header = [
        "shear",
        "γ",
        "lr (chosen)",
        "seeds",
        "AUC [95 % t]",
        "steps to 50 %",
        "vs family best",
    ]
    return markdown_table(header, rows)


def verdict_text(result: dict[str, Any]) -> str:
    """`inside` / `above` / `below` the interval, or `undecided` with its reason; an `inside`
    whose interval does not single out the paper's value says so (`_inside_caveat`)."""
    verdict, reason = result["paper_verdict"], result["paper_reason"]
    if verdict == "undecided":
        return f"undecided ({VERDICT_REASONS[reason]})"
    return f"{verdict} the interval{_inside_caveat(result, verdict)}"


def _inside_caveat(family: dict[str, Any], verdict: str) -> str:
    """The caveat for an `inside` verdict whose interval spans the whole γ grid (its ends tie
    across resamples) or holds γ ≤ 0: it does not single out the paper's positive γ*."""
    if verdict != "inside":
        return ""
    low, high = family["gamma_star_interval"]
    grid = [arm["gamma"] for arm in family["arms"]]
    if low <= min(grid) and high >= max(grid):
        return ", which spans the whole γ grid: no evidence either way"
    return ", which holds γ ≤ 0 too" if low <= 0 else ""


def _tie_set_side(family: dict[str, Any], paper: float, verdict: str) -> str:
    """Whether every γ not distinguishable from the family's best lies on the same side of the
    paper's value as the interval: the interval covers seed noise only, the tie set the grid."""
    if verdict not in ("above", "below"):
        return ""
    tied = family["not_distinguishable"]
    beyond = [g for g in tied if (g >= paper if verdict == "above" else g <= paper)]
    if beyond:
        listed = ", ".join(f"{g:g}" for g in beyond)
        return (
            f", but γ = {listed}, not distinguishable from the best, lies past it, so the grid "
            "does not rule the paper's value out"
        )
    if len(tied) == 1:
        return ""
    edge = f"≤ {max(tied):g}" if verdict == "above" else f"≥ {min(tied):g}"
    return f" and {verdict} every γ not distinguishable from the best (γ {edge})"


def fungibility_kind(depth: dict[str, Any]) -> str | None:
    """What the fungibility test decides at this depth (N momentum layers against N + 1 plain),
    by the rules and their amendment for a deeper model at the floor: "at_floor" (undecided),
    "no_difference", "momentum" or "plain" (the winner); None where not run."""
    fung = depth["fungibility"]
    if fung is None:
        return None
    if depth["deeper_plain_at_floor"]:
        return "at_floor"
    if not fung["significant"]:
        return "no_difference"
    return "momentum" if fung["mean_difference"] > 0 else "plain"


def fungibility_decision(depth: dict[str, Any]) -> str | None:
    """`fungibility_kind` in words, for the depth's bullet."""
    kind, n = fungibility_kind(depth), depth["n_layers"]
    layers = f"{n} momentum layer{'s' if n > 1 else ''}"
    if kind == "at_floor":
        plain, fung = depth["deeper_plain"], depth["fungibility"]
        momentum = next(a for f in depth["families"] for a in f["arms"] if a["arm"] == fung["a"])
        seeds = len(plain["seeds"])
        by_seed = dict(zip(momentum["seeds"], momentum["auc"], strict=True))
        higher = sum(
            by_seed[seed] > auc for seed, auc in zip(plain["seeds"], plain["auc"], strict=True)
        )
        return (
            f"undecided: the {n + 1}-layer plain model ends below the {FLOOR_ACCURACY * 100:g} % "
            "floor in this budget, "
            f"mean final accuracy {plain['final_accuracy_mean']:.3f}, with "
            f"{seeds - plain['never_reached_50']} of {seeds} seeds ever reaching 50 %; the "
            f"floor amendment makes this no verdict, though {fung['a']} scores higher on "
            f"{higher} of {seeds} seeds"
        )
    if kind == "no_difference":
        return "no difference detected; not a claim of equivalence"
    if kind == "momentum":
        return f"decided: {layers} beat {n + 1} plain layers in this budget"
    if kind == "plain":
        return f"decided: {n + 1} plain layers beat {layers} in this budget"
    return None


def plain_under_tuned(depth: dict[str, Any]) -> dict[str, Any] | None:
    """The N-layer plain arm (the paper's shear at γ = 0) where the N + 1-layer plain model
    scores below it, 95 % intervals apart (a flag, not a paired test), else None."""
    plain = depth["deeper_plain"]
    if plain is None or depth["deeper_plain_at_floor"]:
        return None
    raw = family_of(depth, "qk_raw")
    shallow = None if raw is None else next((a for a in raw["arms"] if a["gamma"] == 0.0), None)
    return shallow if shallow and plain["auc_ci"][1] < shallow["auc_ci"][0] else None


def depth_decisions(depth: dict[str, Any], selection: dict[str, Any]) -> list[str]:
    """One bullet per decision at this depth: γ* per family, the paper's value, the controls,
    fungibility; each says where it rests on arms that chose an end of their rate search."""
    n = depth["n_layers"]
    ends = search_ends(selection)
    items = []
    for family in depth["families"]:
        low, high = family["gamma_star_interval"]
        flag = {"grid_end": " (at the grid's end)"}.get(family["gamma_star_flag"], "")
        effect = family["best_versus_zero"]
        against_zero = "the best γ is γ = 0"
        if effect is not None:
            against_zero = (
                f"best − γ=0: {effect['mean_difference']:+.3f} AUC, {p_label(effect, '.2g')} "
                f"({'significant' if effect['significant'] else 'not significant'})"
            )
        items.append(
            f"**{FAMILY_NAMES.get(family['family'], family['family'])}**: γ* = "
            f"{family['gamma_star']:.3g}{flag}, 95 % seed-bootstrap interval [{low:.3g}, "
            f"{high:.3g}]; grid best γ = {family['best_gamma']:g}; not distinguishable from it "
            f"(paired t, Holm): γ ∈ {{{', '.join(f'{g:g}' for g in family['not_distinguishable'])}}}; "
            f"{against_zero}; the paper's γ*({n}): {verdict_text(family)}"
            + (f"; {c}." if (c := search_caveat(family_ends(family, ends), "γ = ")) else ".")
        )
    verdict, reason = depth["paper_verdict"], depth["paper_reason"]
    paper = depth["paper_gamma_star"]
    if verdict == "undecided":
        items.append(
            f"**The paper's γ*({n}) = {paper:.3g}: undecided** — {VERDICT_REASONS[reason]}."
        )
    else:
        where = {"inside": "inside", "above": "above", "below": "below"}[verdict]
        raw = family_of(depth, "qk_raw")
        conditional = search_caveat(family_ends(raw, ends), "γ = ")
        items.append(
            f"**The paper's γ*({n}) = {paper:.3g} lies {where} the interval of the paper's "
            f"shear (q/k raw)**{_inside_caveat(raw, verdict)}{_tie_set_side(raw, paper, verdict)}"
            + (f", {conditional}." if conditional else ".")
        )
    for comparison in depth["controls_versus_best"]:
        items.append(
            f"{comparison['a']} − {comparison['b']}: {comparison['mean_difference']:+.3f} AUC "
            f"[{comparison['ci_low']:+.3f}, {comparison['ci_high']:+.3f}], Holm p = "
            f"{comparison['p_holm']:.2g} ({'significant' if comparison['significant'] else 'not significant'})."
        )
    fung = depth["fungibility"]
    if fung is not None:
        plain = depth["deeper_plain"]
        decided = fungibility_decision(depth)
        compared: dict[str, list[str]] = {}
        for family in depth["families"]:  # the momentum arm (`qk_raw γ=-0.75`), then the plain
            for arm in family["arms"]:
                if arm["arm"] == fung["a"] and (end := ends.get((family["family"], arm["gamma"]))):
                    compared.setdefault(end, []).append(arm["arm"])
        if end := ends.get((plain["family"], plain["gamma"])):
            compared.setdefault(end, []).append(plain["arm"])
        conditional = search_caveat(compared)
        if shallow := plain_under_tuned(depth):
            conditional += (
                f"{'; ' if conditional else ''}the {n + 1}-layer plain model scores below the "
                f"{n}-layer one, 95 % intervals apart (AUC {plain['auc_mean']:.3f} against "
                f"{shallow['auc_mean']:.3f} at γ = 0): more depth hurt the plain model here, so "
                "it may be under-tuned, or this budget may favour shallower plain models"
            )
        items.append(
            f"**Fungibility** ({n} momentum layer{'s' if n > 1 else ''} against {n + 1} plain, "
            f"each at its own rate): {fung['mean_difference']:+.3f} AUC [{fung['ci_low']:+.3f}, "
            f"{fung['ci_high']:+.3f}], p = {fung['p_value']:.2g} ({decided}"
            + (f"; {conditional}" if conditional else "")
            + ")."
        )
    return items


def summary_markdown(study: dict[str, Any]) -> str:
    """`summary.md` of the study: per depth, the arms table and the decisions."""
    parts = [
        "# Fair γ*(N) study: results",
        wrap(
            "Rendered from `study.json` (written by `"
            + study["provenance"]["command"]
            + "`). Decision rules: `results/fair_gamma_star/README.md`. Only fresh seeds enter "
            f"these numbers; the rate of each arm was chosen on {rate_search(study['selection'])} "
            "(the search in `selection.json`). A run that "
            "diverged on a fresh seed counts as AUC 0; the AUC column says how many did."
            + seed_sizing(study["selection"])
        ),
    ]
    for depth in study["depths"]:
        parts.append(f"## N = {depth['n_layers']} (fresh seeds {depth['fresh_seeds']})")
        parts.append(arms_table(depth, study["selection"]))
        parts.append(bullets(depth_decisions(depth, study["selection"])))
    parts += [
        "## The rate search (selection seeds)",
        wrap(
            f"Each arm's mean AUC over selection seeds {study['selection']['selection_seeds']} at "
            "every rate it trained (— : not trained; ✕ : diverged on a seed); the chosen rate in "
            "bold. These numbers chose the rates and are not reported as results."
        ),
        rate_search_table(study["selection"]),
    ]
    return "\n\n".join(parts) + "\n"


def rate_search_table(selection: dict[str, Any]) -> str:
    """Every arm's selection-seed criterion at each rate it searched, the pick in bold."""
    rates = sorted({value for arm in selection["arms"] for value in arm["values"]})
    rows = []
    for arm in selection["arms"]:
        got = dict(zip(arm["values"], arm["criterion"], strict=True))
        cells = []
        for rate in rates:
            if rate not in got:
                cells.append("—")
                continue
            cell = "✕" if got[rate] is None else f"{got[rate]:.3f}"
            cells.append(f"**{cell}**" if rate == arm["chosen"] else cell)
        gamma = arm["config"]["model.gamma"]
        name = FAMILY_NAMES.get(arm["variant"], (arm["variant"] or "").replace("_", " "))
        layers = arm["config"].get("model.n_layers")
        shown = f"{gamma:g}" if arm["variant"] in FAMILY_NAMES else "—"  # a control: no γ
        rows.append([name, shown, str(layers), *cells])
    return markdown_table(["shear", "γ", "layers", *(sci(rate) for rate in rates)], rows)


def gamma_star_cell(family: dict[str, Any]) -> str:
    """A family's vertex γ*, flagged at the grid's end, with its bootstrap interval."""
    low, high = family["gamma_star_interval"]
    flag = " (grid end)" if family["gamma_star_flag"] == "grid_end" else ""
    return f"{family['gamma_star']:.3g}{flag} [{low:.3g}, {high:.3g}]"


def families_rows(
    depth: dict[str, Any], selection: dict[str, Any]
) -> tuple[list[str], list[list[str]]]:
    """One row per shear family at one depth: its best grid γ and AUC, the vertex γ* with its
    interval, the best γ against γ = 0, and the paper's γ*(N) against it."""
    rows = []
    for family in depth["families"]:
        best = next(a for a in family["arms"] if a["gamma"] == family["best_gamma"])
        zero = family["best_versus_zero"]
        rows.append(
            [
                FAMILY_NAMES.get(family["family"], family["family"]),
                f"{family['best_gamma']:g}",
                _rate(best, grid_end_flags(selection)),
                _ci(best),
                gamma_star_cell(family),
                "—" if zero is None else f"{zero['mean_difference']:+.3f} ({p_label(zero, '.2g')})",
                verdict_text(family),
            ]
        )
    header = [
        "shear",
        "best γ",
        "its lr",
        "AUC [95 % t]",
        "γ* (vertex) [95 % bootstrap]",
        "best − γ=0",
        f"paper's γ*({depth['n_layers']}) = {depth['paper_gamma_star']:.3g}",
    ]
    return header, rows


def families_table(depth: dict[str, Any], selection: dict[str, Any]) -> str:
    """`families_rows` as a Markdown table."""
    return markdown_table(*families_rows(depth, selection))


def plain_text(markdown: str) -> str:
    """A sentence of this module's Markdown as plain text (no bold or code marks)."""
    return markdown.replace("**", "").replace("`", "")


def rate_search(selection: dict[str, Any]) -> str:
    """Where each arm's rate came from, from `selection.json`: the selection seed(s) and the
    rates searched (their count and range over every arm; how many per arm where a pruned
    search gave each arm only some)."""
    seeds, arms = selection["selection_seeds"], selection["arms"]
    rates = sorted({rate for arm in arms for rate in arm["values"]})
    fewest, most = (f(len(arm["values"]) for arm in arms) for f in (min, max))
    each = (
        ""
        if fewest == most == len(rates)
        else f", {count(fewest)}{'' if fewest == most else f' to {count(most)}'} of them per arm"
    )
    return (
        f"selection seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} from "
        f"{count(len(rates))} rates ({sci(rates[0])} to {sci(rates[-1])}){each}"
    )


def seed_sizing(selection: dict[str, Any]) -> str:
    """How the fresh seeds were sized from the selection seeds' spread, and the difference the
    seeds run detect (`selection.json`'s `sizing`); "" where the count was fixed in advance."""
    sizing = selection.get("sizing")
    if sizing is None or sizing["difference_variance"] is None:
        return ""
    n, variance = sizing["n_fresh_seeds"], sizing["difference_variance"]
    power, alpha = sizing["power"], sizing["alpha"]
    reach = detectable_difference(variance, n, alpha, power)
    capped = sizing["n_needed"] > n
    return (
        f" The fresh seeds were sized on the selection seeds: neighbouring γ differ in AUC with "
        f"variance σ_d² = {variance:.3g} ({sizing['neighbour_pairs']} pairs), which asks for "
        f"{sizing['n_needed']} seeds to detect {sizing['detect_difference']:g} AUC (paired, "
        f"α = {alpha:g}, power {power:g}); "
        + (f"capped at {n}, " if capped else f"with {n}, ")
        + f"the study detects about {reach:.2g} AUC at that power"
        + (", so smaller differences may pass as ties." if capped else ".")
    )


def add_study_section(report: Report, studies: list[dict[str, Any]]) -> Report:
    """The report's γ*(N) section: per depth of each committed study, the families table, the
    decisions and AUC against γ (replacing the first sweep's, which decides nothing)."""
    report.heading("γ*(N), decided with each arm's learning rate tuned")
    for study in studies:
        report.paragraph(
            f"Each arm's learning rate was chosen on {rate_search(study['selection'])}; the "
            "numbers come from fresh seeds only; rules fixed before the first run in "
            f"results/fair_gamma_star/README.md (written by {study['provenance']['command']})."
            + seed_sizing(study["selection"])
        )
        for depth in study["depths"]:
            report.table(*families_rows(depth, study["selection"]))
            for decision in depth_decisions(depth, study["selection"]):
                report.paragraph(plain_text(decision), note=True)
            report.figure(auc_by_gamma(depth, FAMILY_NAMES))
    return report


def readme_block(study: dict[str, Any]) -> str:
    """The README's block on the fair study: per depth, the families table and the decisions
    (the paper's shear decides; the others stand beside it), from `study.json`."""
    parts = [
        wrap(
            f"Each arm's learning rate was chosen on {rate_search(study['selection'])}; "
            "the numbers below come from fresh seeds only. γ* is the vertex of the parabola "
            "through the mean AUC at the best grid γ and its two grid neighbours; its bootstrap "
            "interval covers seed noise only, not the γ grid's spacing. Rules fixed before "
            "the first run: `results/fair_gamma_star/README.md`; every arm with its rate, AUC and "
            "steps to 50 %: `summary.md` beside `study.json` (written by `"
            + study["provenance"]["command"]
            + "`)."
            + seed_sizing(study["selection"])
        )
    ]
    for depth in study["depths"]:
        parts.append(f"**N = {depth['n_layers']}**, fresh seeds {depth['fresh_seeds']}:")
        parts.append(families_table(depth, study["selection"]))
        parts.append(bullets(depth_decisions(depth, study["selection"])))
    return "\n\n".join(parts)


def pending_depth_block(
    study: dict[str, Any] | None,
    selection: dict[str, Any] | None,
    n_layers: int,
    command: str,
    runs: pd.DataFrame | None = None,
) -> str:
    """A depth's block while its study runs: how far its select and fresh stages are (from
    `selection.json` and the finished `runs`), what the floor check says, and, once `study.json`
    exists, the study itself."""
    if study is not None:
        return readme_block(study)
    if selection is None:
        return wrap(f"Not started. Run: `{command} --stage select`, then `--stage fresh`.")
    listed = sum(len(arm["values"]) for arm in selection["arms"]) * len(
        selection["selection_seeds"]
    )
    done = listed - selection["missing_runs"]
    check = selection.get("floor_check")
    best = None if check is None else check["best_final_accuracy"]
    floor = ""
    if best is not None:
        so_far = " so far" if selection["missing_runs"] else ""
        floor = f" The best selection run{so_far} ends at {pct(best)} final accuracy" + (
            f", above the {pct(check['floor'], 0)} floor, so N = {n_layers} is off the floor."
            if check["passed"]
            else f"; the floor check needs one above {pct(check['floor'], 0)}."
        )
    if selection["missing_runs"]:
        state = (
            f"Select stage running: {done} of the {listed} selection runs listed so far have "
            "results (widening may list more)."
        )
    elif check is not None and not check["passed"]:
        ended = "no run has a final accuracy" if best is None else f"best {pct(best)}"
        return wrap(
            f"At the floor: no selection run of the {listed} ended above {pct(check['floor'], 0)} "
            f"final accuracy ({ended}), so by the rules N = {n_layers} is undecided at this "
            "budget and its fresh stage does not run."
        )
    else:
        seeds = selection.get("fresh_seeds", [])
        state = (
            f"Select stage complete ({listed} runs); the fresh stage trains each arm"
            + (f" on {len(seeds)} fresh seeds" if seeds else "")
            + f" (`{command} --stage fresh`)"
        )
        if seeds and runs is not None:
            fresh = int(runs["train.seed"].isin(seeds).sum()) if len(runs) else 0
            state += f": {fresh} of its {len(selection['arms']) * len(seeds)} runs have results"
        state += "."
    return wrap(
        f"{state}{floor} Nothing is decided until the fresh stage ends and `momentum-interp "
        "study` writes `study.json`."
    )
