"""The decided γ*(N) study's statistics: paired tests with Holm correction, the quadratic-vertex
γ*, its seed bootstrap, and the per-depth verdict codes (the fresh seed count is sized where
the runs are planned, `sweeps.selection`).

The rules these implement are fixed in `results/fair_gamma_star/README.md`. Rows are a sweep's
results (`sweeps.runner.read_results`) for one depth; only fresh seeds enter (the selection seeds
chose the rates). Everything returned is numbers and short codes; sentences live in the narrative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from momentum_interp.analysis.scaling import paper_gamma_star

ALPHA = 0.05
FLOOR_ACCURACY = 0.5  # a depth where no arm reaches this mean final accuracy is at the floor
GAMMA_FAMILIES = ("qk_raw", "qk_norm", "k_raw", "k_norm")
CONTROLS = ("smeared_key", "learned_gamma", "learned_temperature")
PAPER_FAMILY = "qk_raw"
DEEPER_CONTROL = "plain_deeper"


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass
class PairedComparison:
    """`a − b` over shared seeds: mean, 95 % t interval, two-sided paired t-test (Holm-adjusted
    within its family)."""

    a: str
    b: str
    n_seeds: int
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float | None = None

    @property
    def significant(self) -> bool:
        p = self.p_holm if self.p_holm is not None else self.p_value
        return bool(p < ALPHA)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def paired_comparison(a: str, b: str, x: np.ndarray, y: np.ndarray) -> PairedComparison:
    """Paired t-test of `x − y` (same seeds, same order); identical samples give p = 1."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    diff = x - y
    if len(diff) < 2:
        raise ValueError(f"A paired test needs >= 2 shared seeds, got {len(diff)} ({a} vs {b}).")
    if np.all(diff == diff[0]):  # no spread: the t statistic is undefined
        mean = float(diff[0])
        return PairedComparison(a, b, len(diff), mean, mean, mean, 1.0 if mean == 0 else 0.0)
    result = stats.ttest_rel(x, y)
    ci = result.confidence_interval(1 - ALPHA)
    return PairedComparison(
        a, b, len(diff), float(diff.mean()), float(ci.low), float(ci.high), float(result.pvalue)
    )


def with_holm(comparisons: list[PairedComparison]) -> list[PairedComparison]:
    """The same comparisons with `p_holm` set over the family."""
    for comparison, p in zip(comparisons, holm([c.p_value for c in comparisons]), strict=True):
        comparison.p_holm = p
    return comparisons


def quadratic_vertex(gammas: np.ndarray, means: np.ndarray) -> tuple[float, str | None]:
    """γ* as the vertex of the parabola through the best grid point and its two neighbours.

    Returns (γ*, flag): flag "grid_end" when the best point is the grid's first or last (γ* is
    then that point), else None. The best point is the first maximum, so its left neighbour is
    strictly lower and its right one no higher: the parabola always opens downward.
    """
    gammas, means = np.asarray(gammas, dtype=float), np.asarray(means, dtype=float)
    best = int(np.argmax(means))
    if best in (0, len(gammas) - 1):
        return float(gammas[best]), "grid_end"
    window = slice(best - 1, best + 2)
    a, b, _ = np.polyfit(gammas[window], means[window], 2)
    return float(-b / (2 * a)), None


def bootstrap_vertex(
    gammas: np.ndarray, scores: np.ndarray, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of `quadratic_vertex` over seeds resampled with replacement.

    `scores: [seed, gamma]`; the best point and its neighbours are re-chosen in each resample."""
    scores = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, scores.shape[0], size=(n_resamples, scores.shape[0]))
    vertices = [quadratic_vertex(gammas, scores[p].mean(axis=0))[0] for p in picks]
    low, high = np.percentile(vertices, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class ArmSummary:
    """One arm on the fresh seeds: AUC (mean, 95 % t interval), steps to 50 %, its chosen rate."""

    arm: str  # family label and γ, e.g. "qk_raw γ=0.5", or a control's label
    family: str
    gamma: float | None
    lr: float
    seeds: list[int]
    auc: list[float]
    auc_mean: float
    auc_ci: tuple[float, float]
    final_accuracy_mean: float
    steps_to_50_median: float  # never-reached runs count as +inf (ranked last)
    never_reached_50: int
    diverged: int  # runs with no finite AUC (they diverged): counted as AUC 0 in `auc`
    # the runs' first held-out evaluation: a run at 50 % there crossed at or before it (a bound)
    first_eval_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["auc_ci"] = list(self.auc_ci)
        return out


@dataclass
class FamilyResult:
    """One shear family at one depth: every γ's summary, the paired tests, γ* and the verdict."""

    family: str
    arms: list[ArmSummary]
    best_gamma: float
    versus_best: list[PairedComparison]  # every other γ − best, Holm-adjusted together
    best_versus_zero: PairedComparison | None
    gamma_star: float
    gamma_star_interval: tuple[float, float]
    gamma_star_flag: str | None
    not_distinguishable: list[float]
    shear_has_effect: bool | None
    paper_verdict: str = "undecided"  # the paper's γ*(N) against this family (`paper_verdict`)
    paper_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "arms": [a.to_dict() for a in self.arms],
            "best_gamma": self.best_gamma,
            "versus_best": [c.to_dict() for c in self.versus_best],
            "best_versus_zero": None
            if self.best_versus_zero is None
            else self.best_versus_zero.to_dict(),
            "gamma_star": self.gamma_star,
            "gamma_star_interval": list(self.gamma_star_interval),
            "gamma_star_flag": self.gamma_star_flag,
            "not_distinguishable": self.not_distinguishable,
            "shear_has_effect": self.shear_has_effect,
            "paper_verdict": self.paper_verdict,
            "paper_reason": self.paper_reason,
        }


@dataclass
class DepthStudy:
    """The fair study at one depth: families, controls, fungibility, the paper's verdict."""

    n_layers: int
    fresh_seeds: list[int]
    families: list[FamilyResult]
    controls: list[ArmSummary]
    controls_versus_best: list[PairedComparison]  # control − best paper-family arm, Holm
    fungibility: PairedComparison | None  # N momentum layers − (N + 1) plain layers
    deeper_plain: ArmSummary | None  # the N + 1-layer plain arm the fungibility test uses
    at_floor: bool
    paper_gamma_star: float
    paper_verdict: str  # "inside", "above", "below" or "undecided"
    paper_reason: str | None  # why undecided: "no_effect", "floor", "grid_end", "missing"

    @property
    def deeper_plain_at_floor(self) -> bool | None:
        """The N + 1-layer plain model ends below the floor on average in this budget (mean
        final accuracy below `FLOOR_ACCURACY`): then a fungibility difference compares a model
        with one that mostly did not learn, and is no verdict on fungibility."""
        if self.deeper_plain is None:
            return None
        return self.deeper_plain.final_accuracy_mean < FLOOR_ACCURACY

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_layers": self.n_layers,
            "fresh_seeds": self.fresh_seeds,
            "families": [f.to_dict() for f in self.families],
            "controls": [c.to_dict() for c in self.controls],
            "controls_versus_best": [c.to_dict() for c in self.controls_versus_best],
            "fungibility": None if self.fungibility is None else self.fungibility.to_dict(),
            "deeper_plain": None if self.deeper_plain is None else self.deeper_plain.to_dict(),
            "deeper_plain_at_floor": self.deeper_plain_at_floor,
            "at_floor": self.at_floor,
            "paper_gamma_star": self.paper_gamma_star,
            "paper_verdict": self.paper_verdict,
            "paper_reason": self.paper_reason,
        }


def family_of(depth: dict[str, Any], name: str) -> dict[str, Any] | None:
    """One shear family of a `study.json` depth (`DepthStudy.to_dict()`) by name, or None
    where that depth did not train it."""
    return next((f for f in depth["families"] if f["family"] == name), None)


def _by_seed(rows: list[dict[str, Any]], seeds: list[int]) -> dict[int, dict[str, Any]]:
    out = {}
    for row in rows:
        seed = row["config"]["train"]["seed"]
        if seed in seeds:
            out[seed] = row  # rows are de-duplicated by run id upstream; one per seed per arm
    return out


def _auc(row: dict[str, Any]) -> float | None:
    value = row.get("auc_accuracy")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def check_fresh_rates(
    rows: list[dict[str, Any]], fresh_seeds: list[int], chosen_rate: Callable[[dict], Any]
) -> None:
    """Refuse a study whose fresh-seed runs did not train at their arm's chosen rate.

    `chosen_rate(config)`: the rate the select stage chose for the arm of a run's config (the
    command passes the selection's pick). ValueError listing the runs that disagree."""
    wrong = []  # (run, variant, γ, seed, lr, chosen rate) of each run off its arm's rate
    for row in rows:
        config = row["config"]
        if config["train"]["seed"] not in fresh_seeds:
            continue
        lr, chosen = config["train"]["lr"], chosen_rate(config)
        if lr != chosen:
            model, seed = config["model"], config["train"]["seed"]
            wrong.append((row.get("run_id"), row.get("variant"), model["gamma"], seed, lr, chosen))
    if wrong:
        raise ValueError(
            f"{len(wrong)} fresh-seed run(s) trained at another rate than their arm's pick on the "
            "selection seeds: "
            + "; ".join(
                f"{run} ({variant} γ={gamma:g}, seed {seed}): lr {lr}, chosen {chosen}"
                for run, variant, gamma, seed, lr, chosen in wrong[:5]
            )
            + ". The selection changed after they ran: "
            "find out why, then study a results directory whose fresh stage ran from the current "
            "selection (`momentum-interp sweep SPEC --stage fresh`)."
        )


def summarise_arm(
    label: str, family: str, gamma: float | None, rows: dict[int, dict[str, Any]]
) -> ArmSummary:
    """An arm's fresh-seed summary; a diverged run (no finite AUC) counts as AUC 0, and the
    count of such runs is kept (`diverged`) so the summary can say so."""
    seeds = sorted(rows)
    aucs = [_auc(rows[s]) for s in seeds]
    auc = np.array([0.0 if a is None else a for a in aucs])
    mean = float(auc.mean())
    if len(auc) > 1 and auc.std(ddof=1) > 0:
        ci = stats.t.interval(1 - ALPHA, len(auc) - 1, loc=mean, scale=stats.sem(auc))
        ci = (float(ci[0]), float(ci[1]))
    else:
        ci = (mean, mean)
    reached = [rows[s].get("steps_to_target") for s in seeds]
    steps = [
        float(v) if isinstance(v, int | float) and math.isfinite(v) else math.inf for v in reached
    ]
    finals = [rows[s].get("final_accuracy") or 0.0 for s in seeds]
    return ArmSummary(
        arm=label,
        family=family,
        gamma=gamma,
        lr=float(rows[seeds[0]]["config"]["train"]["lr"]),
        seeds=seeds,
        auc=auc.tolist(),
        auc_mean=mean,
        auc_ci=ci,
        final_accuracy_mean=float(np.mean(finals)),
        steps_to_50_median=float(np.median(steps)),
        never_reached_50=sum(math.isinf(s) for s in steps),
        diverged=aucs.count(None),
        first_eval_step=min(
            (rows[s]["eval_steps"][0] for s in seeds if rows[s].get("eval_steps")), default=None
        ),
    )


def analyse_family(
    family: str, by_gamma: dict[float, dict[int, dict[str, Any]]], n_resamples: int = 2000
) -> FamilyResult:
    """Paired tests against the grid-best γ (Holm), best against γ = 0, and the vertex γ*."""
    gammas = sorted(by_gamma)
    seeds = sorted(set.intersection(*(set(by_gamma[g]) for g in gammas)))
    arms = [
        summarise_arm(f"{family} γ={g:g}", family, g, {s: by_gamma[g][s] for s in seeds})
        for g in gammas
    ]
    scores = np.array([a.auc for a in arms]).T  # [seed, gamma]
    means = scores.mean(axis=0)
    best = int(np.argmax(means))
    versus_best = with_holm(
        [
            paired_comparison(arms[i].arm, arms[best].arm, scores[:, i], scores[:, best])
            for i in range(len(gammas))
            if i != best
        ]
    )
    others = [g for i, g in enumerate(gammas) if i != best]
    tied = [g for g, c in zip(others, versus_best, strict=True) if not c.significant]
    zero = gammas.index(0.0) if 0.0 in gammas else None
    versus_zero = None
    if zero is not None and zero != best:
        versus_zero = paired_comparison(
            arms[best].arm, arms[zero].arm, scores[:, best], scores[:, zero]
        )
    vertex, flag = quadratic_vertex(np.array(gammas), means)
    interval = bootstrap_vertex(np.array(gammas), scores, n_resamples)
    return FamilyResult(
        family=family,
        arms=arms,
        best_gamma=gammas[best],
        versus_best=versus_best,
        best_versus_zero=versus_zero,
        gamma_star=vertex,
        gamma_star_interval=interval,
        gamma_star_flag=flag,
        not_distinguishable=sorted([gammas[best], *tied]),
        shear_has_effect=None if versus_zero is None else versus_zero.significant,
    )


def paper_verdict(result: FamilyResult, n_layers: int, at_floor: bool) -> tuple[str, str | None]:
    """Where the paper's γ*(N) lies against the family's interval, or why that is undecided."""
    paper = float(paper_gamma_star(n_layers))
    if at_floor:
        return "undecided", "floor"
    if not result.shear_has_effect:
        return "undecided", "no_effect"
    low, high = result.gamma_star_interval
    gammas = [a.gamma for a in result.arms if a.gamma is not None]  # a family's arms all have one
    if result.gamma_star_flag == "grid_end":
        at_top = result.best_gamma == max(gammas)
        if (at_top and paper >= result.best_gamma) or (not at_top and paper <= result.best_gamma):
            return "undecided", "grid_end"
    if low <= paper <= high:
        return "inside", None
    return ("above", None) if paper > high else ("below", None)


def analyse_depth(
    rows: list[dict[str, Any]],
    n_layers: int,
    fresh_seeds: list[int],
    deeper_rows: list[dict[str, Any]] | None = None,
    n_resamples: int = 2000,
) -> DepthStudy:
    """The study at one depth from its result rows (selection rows are ignored by seed).

    `deeper_rows`: rows holding the N + 1-layer plain arm (`variant == "plain_deeper"`) when it
    lives in another table; by default it is looked for in `rows`."""
    here = [r for r in rows if r["config"]["model"]["n_layers"] == n_layers]
    families = []
    for name in GAMMA_FAMILIES:
        listed: dict[float, list[dict[str, Any]]] = {}
        for row in here:
            if row.get("variant") == name:
                listed.setdefault(float(row["config"]["model"]["gamma"]), []).append(row)
        by_gamma = {g: _by_seed(rs, fresh_seeds) for g, rs in listed.items()}
        by_gamma = {g: rs for g, rs in by_gamma.items() if rs}
        if len(by_gamma) >= 3:
            families.append(analyse_family(name, by_gamma, n_resamples))
    paper_family = next((f for f in families if f.family == PAPER_FAMILY), None)
    controls = []
    for label in CONTROLS:
        rows_of = _by_seed([r for r in here if r.get("variant") == label], fresh_seeds)
        if rows_of:
            controls.append(summarise_arm(label, label, None, rows_of))
    controls_versus_best, fungibility, plain = [], None, None
    if paper_family is not None:
        best = next(a for a in paper_family.arms if a.gamma == paper_family.best_gamma)
        best_auc = dict(zip(best.seeds, best.auc, strict=True))

        def versus(arm: ArmSummary, flip: bool = False) -> PairedComparison:
            seeds = [s for s in arm.seeds if s in best_auc]
            own = np.array([arm.auc[arm.seeds.index(s)] for s in seeds])
            ref = np.array([best_auc[s] for s in seeds])
            if flip:
                return paired_comparison(best.arm, arm.arm, ref, own)
            return paired_comparison(arm.arm, best.arm, own, ref)

        controls_versus_best = with_holm([versus(c) for c in controls])
        deeper = _by_seed(
            [r for r in (deeper_rows or rows) if r.get("variant") == DEEPER_CONTROL],
            fresh_seeds,
        )
        if deeper:
            plain = summarise_arm(f"plain N={n_layers + 1}", DEEPER_CONTROL, 0.0, deeper)
            fungibility = versus(plain, flip=True)
    finals = [a.final_accuracy_mean for f in families for a in f.arms]
    finals += [c.final_accuracy_mean for c in controls]
    at_floor = bool(finals) and max(finals) < FLOOR_ACCURACY
    # best − γ=0 of every family, Holm-adjusted together (the rules' "adjusted p")
    with_holm([f.best_versus_zero for f in families if f.best_versus_zero is not None])
    for family in families:
        if family.best_versus_zero is not None:
            family.shear_has_effect = family.best_versus_zero.significant
    for family in families:  # every family's own verdict; the paper's shear decides the depth
        family.paper_verdict, family.paper_reason = paper_verdict(family, n_layers, at_floor)
    reason: str | None
    if paper_family is None:
        verdict, reason = "undecided", "missing"
    else:
        verdict, reason = paper_family.paper_verdict, paper_family.paper_reason
    return DepthStudy(
        n_layers=n_layers,
        fresh_seeds=list(fresh_seeds),
        families=families,
        controls=controls,
        controls_versus_best=controls_versus_best,
        fungibility=fungibility,
        deeper_plain=plain,
        at_floor=at_floor,
        paper_gamma_star=float(paper_gamma_star(n_layers)),
        paper_verdict=verdict,
        paper_reason=reason,
    )
