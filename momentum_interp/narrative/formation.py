"""Induction over training in words: the zoo's formation table, its findings (worded no stronger
than three seeds allow) and the report section, from the tables `momentum-interp formation`
writes for a sweep (`summary.json` and one table per run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from momentum_interp.narrative.mechanism import TERM_LABELS
from momentum_interp.prose import bullets, wrap
from momentum_interp.tables import markdown_table
from momentum_interp.viz.formation import formation_curves, pattern_multiples, term_margins
from momentum_interp.viz.report import Report

TERM_MATHS = {
    "current_current": "⟨qₜ, kₛ⟩",
    "current_prev_key": "⟨qₜ, kₛ₋₁⟩",
    "prev_query_current": "⟨qₜ₋₁, kₛ⟩",
    "prev_prev": "⟨qₜ₋₁, kₛ₋₁⟩",
}
ROLE_PROSE = {
    "baseline_1l": "1-layer baseline",
    "baseline_deeper": "2-layer baseline",
    "smeared_key": "smeared key",
    "momentum": "momentum",
}
SIGN_TEST_NOTE = (
    "three seeds cannot make a difference significant (a two-sided sign test's smallest p with "
    "three seeds is 0.25), so these are counts, not tests"
)


def _windows(arm: dict[str, Any]) -> str:
    shown = [f"{r['window'][0]}–{r['window'][1]}" for r in arm["runs"] if r["detected"]]
    return ", ".join(shown) or "—"


def _half(arm: dict[str, Any]) -> str:
    if arm["half_step_median"] is None:
        return "never"
    low, high = arm["half_step_range"]
    return f"{arm['half_step_median']:.0f} [{low}, {high}]"


def _terms(arm: dict[str, Any]) -> str:
    counts = arm["leading_terms"]
    shown = [f"{TERM_LABELS[term]} ({n}/{arm['n_seeds']})" for term, n in counts.items()]
    return ", ".join(shown) or "—"


def _lowest(arm: dict[str, Any]) -> str:
    runs = arm["runs"]
    steps = sorted(r["lowest_loss_step"] for r in runs)
    where = f"step {steps[0]}" if steps[0] == steps[-1] else f"steps {steps[0]}–{steps[-1]}"
    return f"{_mean([r['lowest_loss_repeat'] for r in runs]):.3f} ({where})"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def formation_rows(summary: dict[str, Any], code: str = "`") -> tuple[list[str], list[list[str]]]:
    """One row per arm: phase changes over seeds, their windows, when half the fall was done,
    the leading term, and where the runs end (`code` quotes the configuration's name)."""
    rows = [
        [
            f"{code}{arm['variant']}{code}",
            f"{arm['n_detected']}/{arm['n_seeds']}",
            _windows(arm),
            _half(arm),
            _terms(arm),
            f"{_mean([r['final_induction'] for r in arm['runs']]):.3f}",
            _lowest(arm),
        ]
        for arm in summary["arms"]
    ]
    header = [
        "configuration",
        "phase change (seeds)",
        "windows (steps)",
        "half the fall by step: median [range]",
        "leading term (seeds)",
        "final induction score",
        "lowest repeated-token loss (at steps)",
    ]
    return header, rows


def formation_table(summary: dict[str, Any]) -> str:
    """`formation_rows` as a Markdown table."""
    return markdown_table(*formation_rows(summary), align="lllllrl")


def _count(k: int, n: int) -> str:
    return f"all {n}" if k == n else "none" if k == 0 else f"{k} of {n}"


def findings(summary: dict[str, Any], code: str = "`") -> list[str]:
    """The claims the table supports, each with its seed count (module doc); `code` quotes
    configuration names."""
    out = []
    clean = summary["baseline_clean"]
    if clean is not None:
        out.append(
            "The test's control: "
            + (
                "no 1-layer-baseline run passes it, so a pass is not what any 1-layer model "
                "shows while learning this task."
                if clean
                else "a 1-layer-baseline run passes it, so the test does not single out "
                "induction here; the phase-change counts below are undecided."
            )
        )
    deeper = next((a for a in summary["arms"] if a["role"] == "baseline_deeper"), None)
    for arm in summary["arms"]:
        if arm["role"] in ("baseline_1l", "baseline_deeper") and arm is not deeper:
            continue
        k, n = arm["n_detected"], arm["n_seeds"]
        shape = (
            "by a phase change"
            if k == n
            else "gradually (no phase change)"
            if k == 0
            else "by a phase change in some seeds only (undecided)"
        )
        sentence = (
            f"{code}{arm['variant']}{code} ({ROLE_PROSE[arm['role']]}) forms {shape}: {_count(k, n)} seeds "
            f"pass; half its repeated-token loss fall is done by step {_half(arm)}"
        )
        paired = summary["against_deeper"].get(arm["variant"])
        if deeper is not None and arm is not deeper and paired is not None:
            sentence += (
                f"; against the 2-layer baseline (median {_half(deeper)}), paired by seed: "
                f"earlier in {paired['earlier']}, at the same kept step in {paired['same']}, "
                f"later in {paired['later']}"
            )
        if arm["leading_terms"]:
            term, count = max(arm["leading_terms"].items(), key=lambda item: item[1])
            sentence += (
                f"; the term whose margin rose most across the window is {TERM_LABELS[term]} "
                f"{TERM_MATHS[term]} in {count} of {n} seeds"
            )
        out.append(sentence + ".")
    baseline = next((a for a in summary["arms"] if a["role"] == "baseline_1l"), None)
    if baseline is not None and baseline["half_step_median"] is not None:
        fall = _mean([r["total_drop"] for r in baseline["runs"]])
        out.append(
            f"The timing's control: the 1-layer baseline's smaller fall ({fall:.2f} nats, no "
            f"induction) is also half done by step {_half(baseline)}, so the half-way step "
            "follows the shared learning-rate schedule as much as the mechanism; the paired "
            "counts compare only runs that pass the test."
        )
    out.append(
        f"Each count is over training seeds; {SIGN_TEST_NOTE}. Steps are kept checkpoints, so "
        "a step is known to the history schedule's spacing, and every arm trained at the zoo's "
        'one learning rate and warm-up: "earlier" holds at that rate, not for each arm\'s own '
        "best rate."
    )
    return out


def rule_text(summary: dict[str, Any]) -> str:
    """The phase-change rule as the study states it (thresholds from `summary.json`)."""
    test = summary["rule"]
    return (
        "A run passes the phase-change test when its repeated-token loss falls by at least "
        f"{test['min_total_drop']:g} nats and the largest fall within one doubling of the step "
        f"(s to {test['window_factor']:g}s) is at least {test['threshold']:.0%} of its total fall "
        "(fixed before the zoo was measured). The head followed is each run's final top "
        "induction head; the leading term is the score term whose margin on the induction key "
        "over the mean of the other keys rose most across the phase window (a smeared key's "
        "score has two of the four terms, the baselines' none). Every checkpoint "
        f"is scored on {summary['n_sequences']} repeated random sequences (seed "
        f"{summary['seed']}), which are not the training distribution (copied segments of "
        "distinct tokens): late in training the loss on them can rise again, so the table "
        "gives its lowest point."
    )


def readme_block(summary: dict[str, Any]) -> str:
    """The README's block: the rule, the zoo's formation table and its findings."""
    made = summary["provenance"]
    return "\n\n".join(
        [
            wrap(
                rule_text(summary) + f" Written by `{made['command']}` at commit "
                f"`{made['git_commit'][:12]}` on {made['date'][:10]} (torch {made['torch']})."
            ),
            formation_table(summary),
            bullets(findings(summary)),
        ]
    )


def add_formation_section(
    report: Report, summary: dict[str, Any], arms: Sequence[tuple[str, Sequence[dict]]]
) -> Report:
    """The report's section on induction over training: rule, table, findings, curves, the
    score terms over training and each arm's pattern at a few checkpoints (training seed 0)."""
    report.heading("Induction over training")
    report.paragraph(rule_text(summary))
    report.table(*formation_rows(summary, code=""))
    for sentence in findings(summary, code=""):
        report.paragraph(sentence, note=True)
    report.figure(formation_curves(arms))
    if any(tables[0]["rows"][0]["term_margins"] for _, tables in arms):
        report.figure(term_margins(arms))
    report.paragraph(
        "Each run's followed head on one sequence of random tokens and its repeat, at a few "
        "checkpoints (training seed 0): induction is the stripe from each repeated token to the "
        "token after its first occurrence."
    )
    for label, tables in arms:
        report.figure(pattern_multiples(tables[0], f"{label}, seed {tables[0]['train_seed']}"))
    return report
