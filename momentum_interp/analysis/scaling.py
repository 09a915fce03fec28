"""The γ*(N) scaling law as data: best shear strength per depth and a power-law fit `γ* = a N^b`.

The paper (arXiv 2602.04902) reports `γ* = 4.17 N^−0.74` for associative recall. From a sweep's
results table this module estimates, per depth N (`model.n_layers`) and one shear mode (`"qk"`,
the paper's, or `"k"`, keys only):

- γ*(N) = the γ on the grid with the highest mean of the criterion across seeds: final accuracy,
  or (when that saturates) `auc_accuracy`, the normalised area under the held-out accuracy curve
  (`training.curves`). Ties (final accuracy only: γ values within `TIE_TOL` = 0.5 points of the
  best, e.g. several γ at ~100 %) go to the lowest mean loss; the AUC takes no tolerance
  (`default_tie_tol`). With it: a bootstrap interval over seeds (seeds resampled with
  replacement, argmax recomputed; percentile interval, so its ends are grid values); whether γ*
  is *separated* from the next-best non-zero γ (their Student-t intervals of the mean over seeds
  do not overlap); and the *plausible* γ, not distinguishable from γ* (intervals overlap, or
  tied), by which γ = 0 (`beats_no_shear`) and the paper's γ*(N) (`paper_verdict`) are judged;
- the power law, fitted with `scipy.optimize.curve_fit` in log space (`log γ* = log a + b log N`)
  on the depths with γ* > 0, leaving out those where γ = 0 is not measurably worse than γ* (near
  the floor, where γ* is noise; reported as `no_effect`). Intervals on a and b come from the
  fit's covariance (Student t with n−2 degrees of freedom; the primary interval): the residual
  covariance plus that of the grid's
  resolution (γ* is an argmax on a grid, so each log γ* carries a rounding error of sd
  h/√12 for local log spacing h; without it, γ* values that fall exactly on a line would give
  a zero-width interval). Alongside, a bootstrap over seeds (each replicate resamples every
  depth's seeds, recomputes γ*(N) and refits) shows the training-noise part alone.

Rows with `model.smeared_key` true are the smeared-key control; rows with a learnable γ are
ignored (γ is then not a grid value). A momentum row with `shear = "none"` counts as γ = 0.
γ* ≤ 0 (a smear, or no shear, is best) cannot enter the log fit; `shape_fits` then says what
fits the depths with an effect instead: a constant, and a line `γ* = c + d N` with an interval
on its slope.
Figures and pages live in `viz.scaling`; the sentences in `narrative.scaling`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentum_interp.io import json_safe
from momentum_interp.paths import REPO_ROOT

PAPER_A = 4.17
PAPER_B = -0.74
DEPTH, GAMMA, SEED = "model.n_layers", "model.gamma", "train.seed"
# Mean accuracies within this of the best count as tied (then the lowest mean loss wins): at the
# ceiling, γ values differ by a position or two out of thousands, which is noise, not a ranking.
TIE_TOL = 0.005


def default_tie_tol(metric: str) -> float:
    """`TIE_TOL` for final accuracy, whose runs pile up at the 100 % ceiling; 0 for a curve's
    AUC, which does not tie there, and where a tolerance would hide differences near the floor."""
    return TIE_TOL if metric == "final_accuracy" else 0.0


def paper_gamma_star(n_layers: Any) -> Any:
    """The paper's law, `4.17 N^−0.74`."""
    return PAPER_A * np.asarray(n_layers, dtype=float) ** PAPER_B


def _log_line(log_n: np.ndarray, log_a: float, b: float) -> np.ndarray:
    return log_a + b * log_n


@dataclass
class PowerLawFit:
    """`γ* = a N^b` fitted in log space; intervals at `level` from the fit covariance."""

    a: float
    b: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    level: float
    n_points: int
    covariance: list[list[float]]  # of (log a, b)
    method: str = "covariance"  # or "covariance_with_grid": the grid's rounding error added

    def predict(self, n_layers: Any) -> np.ndarray:
        return self.a * np.asarray(n_layers, dtype=float) ** self.b

    def band(self, n_layers: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise interval of the fitted line (delta method in log space, Student t)."""
        log_n = np.log(np.asarray(n_layers, dtype=float))
        cov = np.asarray(self.covariance)
        var = cov[0, 0] + 2 * log_n * cov[0, 1] + log_n**2 * cov[1, 1]
        t = _t_quantile(self.level, self.n_points - 2)
        centre = math.log(self.a) + self.b * log_n
        half = t * np.sqrt(np.maximum(var, 0.0))
        return np.exp(centre - half), np.exp(centre + half)


def _t_quantile(level: float, dof: int) -> float:
    from scipy import stats  # imported where used: 0.7 s that the analysis commands need not pay

    return float(stats.t.ppf((1 + level) / 2, dof)) if dof > 0 else math.inf


def fit_power_law(
    n_layers: Any, gamma_star: Any, level: float = 0.95, log_sigma: Any = None
) -> PowerLawFit:
    """Fit `γ* = a N^b` by least squares on `log γ*` (needs ≥ 2 points, all γ* > 0).

    The covariance is the usual one scaled by the residuals. `log_sigma` (a number or one per
    point) adds a known error of each `log γ*`, e.g. the rounding of a grid argmax: its
    covariance (`absolute_sigma=True`) is added, so points that happen to fall exactly on a
    line still get honest intervals. With two points the intervals are infinite.
    """
    from scipy import optimize  # imported where used, as in `_t_quantile`

    n = np.asarray(n_layers, dtype=float)
    g = np.asarray(gamma_star, dtype=float)
    if n.shape != g.shape or n.ndim != 1:
        raise ValueError("n_layers and gamma_star must be 1-D arrays of equal length.")
    if len(n) < 2 or len(np.unique(n)) < 2:
        raise ValueError(f"A power-law fit needs at least 2 distinct depths, got {n.tolist()}.")
    if np.any(g <= 0) or np.any(n <= 0):
        raise ValueError("A log-space fit needs N > 0 and γ* > 0; exclude depths with γ* = 0.")
    log_n, log_g = np.log(n), np.log(g)
    slope, intercept = np.polyfit(log_n, log_g, 1)  # starting point; curve_fit does the fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)  # inf covariance at 2 points
        popt, pcov = optimize.curve_fit(_log_line, log_n, log_g, p0=(intercept, slope))
    log_a, b = (float(x) for x in popt)
    dof = len(n) - 2
    method = "covariance"
    if dof <= 0 or not np.all(np.isfinite(pcov)):
        pcov = np.full((2, 2), np.inf)
    elif log_sigma is not None:
        sigma = np.broadcast_to(np.asarray(log_sigma, dtype=float), n.shape)
        _, pcov_known = optimize.curve_fit(
            _log_line, log_n, log_g, p0=popt, sigma=sigma, absolute_sigma=True
        )
        pcov = pcov + pcov_known
        method = "covariance_with_grid"
    t = _t_quantile(level, dof)
    se_log_a, se_b = (float(math.sqrt(pcov[i, i])) for i in range(2))
    return PowerLawFit(
        a=math.exp(log_a),
        b=b,
        a_interval=(math.exp(log_a - t * se_log_a), math.exp(log_a + t * se_log_a)),
        b_interval=(b - t * se_b, b + t * se_b),
        level=level,
        n_points=len(n),
        covariance=pcov.tolist(),
        method=method,
    )


def grid_log_sigma(grid: Any, value: float) -> float:
    """Rounding error (sd, in log) of an argmax that landed on `value` of a γ grid.

    The optimum lies somewhere between the neighbouring grid values; taken as uniform over the
    local log spacing h (the mean of the gaps to the positive neighbours), its sd is h / √12.
    """
    positive = np.unique(np.asarray([g for g in grid if g > 0], dtype=float))
    if value <= 0 or len(positive) < 2:
        return 0.0
    logs = np.log(positive)
    i = int(np.argmin(abs(logs - math.log(value))))
    gaps = [logs[j + 1] - logs[j] for j in (i - 1, i) if 0 <= j < len(logs) - 1]
    return float(np.mean(gaps) / math.sqrt(12))


def _momentum_rows(df: pd.DataFrame, shear: str) -> pd.DataFrame:
    """Fixed-γ rows of one shear mode; a `shear = "none"` row (no filter at all) counts as γ = 0."""
    smeared = df.get("model.smeared_key", pd.Series(False, index=df.index)).astype(bool)
    learnable = df.get("model.gamma_learnable", pd.Series(False, index=df.index)).astype(bool)
    modes = df.get("model.shear", pd.Series("qk", index=df.index))
    out = df[~smeared & ~learnable & modes.isin([shear, "none"])].copy()
    out.loc[modes[out.index] == "none", GAMMA] = 0.0
    return out


def _choose(acc: np.ndarray, loss: np.ndarray, tol: float) -> np.ndarray:
    """Index of the best γ along the last axis: highest criterion, ties (within `tol` of the
    highest) to the lowest loss."""
    best = np.nanmax(acc, axis=-1, keepdims=True)
    tied = acc >= best - tol
    return np.argmin(np.where(tied, np.nan_to_num(loss, nan=np.inf), np.inf), axis=-1)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo = np.quantile(samples, (1 - level) / 2, method="inverted_cdf")
    hi = np.quantile(samples, (1 + level) / 2, method="inverted_cdf")
    return float(lo), float(hi)


def mean_intervals(values: np.ndarray, level: float) -> list[tuple[float, float]]:
    """Student-t interval of the mean over seeds (rows), per column; NaNs are left out."""
    out = []
    for column in values.T:
        x = column[np.isfinite(column)]
        if len(x) < 2:
            out.append((math.nan, math.nan))
            continue
        half = _t_quantile(level, len(x) - 1) * float(np.std(x, ddof=1)) / math.sqrt(len(x))
        out.append((float(x.mean()) - half, float(x.mean()) + half))
    return out


@dataclass
class DepthResult:
    """γ*(N) at one depth, its seed-bootstrap interval and the rows beside it."""

    n_layers: int
    gamma_star: float
    interval: tuple[float, float]
    criterion_at_gamma_star: float  # the criterion's mean at γ* (accuracy or its curve's AUC)
    criterion_at_gamma0: float | None
    smeared_key_criterion: float | None
    n_seeds: int
    n_tied: int  # γ values within the tie tolerance of the top mean (decided by loss when > 1)
    at_grid_edge: bool  # γ* is the smallest or largest γ of the grid: the optimum may lie beyond
    paper_gamma_star: float
    grid: list[float]
    criterion_mean: list[float]  # the criterion's mean over seeds per γ
    criterion_std: list[float]
    tiebreak_mean: list[float]  # mean loss per γ (decides ties at the ceiling)
    window: tuple[float, float] | None  # smallest and largest γ within the tie tolerance
    mean_interval: list[tuple[float, float]] = field(default_factory=list)  # t interval per γ
    runner_up: float | None = None  # the next-best non-zero γ
    separated: bool | None = None  # γ*'s interval lies above the runner-up's (None: no runner-up)
    smeared_key_interval: tuple[float, float] | None = None
    # Grid γ not distinguishable from γ*: their t interval of the mean overlaps γ*'s, or (final
    # accuracy) they tie with it; γ* included, empty when γ* has no interval (one seed).
    plausible: list[float] = field(default_factory=list)

    @property
    def best(self) -> int:
        """γ*'s index on the grid."""
        return self.grid.index(self.gamma_star)

    @property
    def has_interval(self) -> bool:
        """γ*'s criterion has an interval over seeds (two seeds or more at γ*)."""
        return bool(self.mean_interval) and finite_interval(self.mean_interval[self.best])

    def below_gamma_star(self, gamma: float) -> bool | None:
        """Whether grid γ `gamma` scores measurably below γ* (intervals apart and not tied); None
        when it or γ* has no interval."""
        if gamma in self.plausible:
            return False
        tested = self.has_interval and finite_interval(self.mean_interval[self.grid.index(gamma)])
        return True if tested else None

    @property
    def beats_no_shear(self) -> bool | None:
        """γ* scores measurably above γ = 0; False near the floor, where no γ does anything
        measurable; None when untested (one seed, or no γ = 0 on the grid)."""
        return self.below_gamma_star(0.0) if 0.0 in self.grid else None

    @property
    def paper_verdict(self) -> str:
        """The paper's γ*(N) against ours, judged by the grid γ on both sides of it: `"outside"`
        (each scores measurably below γ*), `"inside"` (one is not distinguishable from γ*),
        `"beyond_grid"` (it lies past the grid's end, which is not distinguishable from γ*),
        `"no_effect"` (γ = 0 does as well as γ*: no best γ to compare) or `"untested"`."""
        if not self.has_interval:
            return "untested"
        if self.beats_no_shear is False:
            return "no_effect"
        paper = self.paper_gamma_star
        lower = [g for g in self.grid if g <= paper]
        upper = [g for g in self.grid if g >= paper]
        neighbours = {max(lower)} if lower else set()
        neighbours |= {min(upper)} if upper else set()
        standing = [self.below_gamma_star(g) for g in neighbours]
        if False in standing:
            return "inside" if lower and upper else "beyond_grid"
        return "untested" if None in standing else "outside"


@dataclass
class ScalingFit:
    """Per-depth γ* and the power law fitted to them, with the paper's values beside ours."""

    depths: list[DepthResult]
    fit: PowerLawFit | None
    excluded: list[int]  # depths with γ* <= 0, left out of the log-space fit
    bootstrap: dict[str, Any]  # seed-bootstrap intervals of a and b
    metric: str
    level: float
    n_boot: int
    tie_tol: float = TIE_TOL
    shear: str = "qk"
    # depths with γ* > 0 no better than γ = 0 (within the intervals), left out of the fit too
    no_effect: list[int] = field(default_factory=list)
    shapes: dict[str, Any] = field(default_factory=dict)  # see `shape_fits`
    paper: dict[str, float] = field(default_factory=lambda: {"a": PAPER_A, "b": PAPER_B})
    boot_ab: np.ndarray | None = field(default=None, repr=False)  # [replicate, (a, b)]
    table: pd.DataFrame | None = field(default=None, repr=False)  # the rows it was fitted to

    @property
    def law_verdict(self) -> str:
        """The paper's law against this sweep: "consistent" (the fit's intervals hold 4.17 and
        −0.74 and no depth scores the paper's γ*(N) measurably below γ*), "inconsistent" (the fit
        excludes it and some depth does too), or "undecided": no fit with intervals, or the fit and
        the depths disagree, as when the fit runs through the argmaxes of a flat top."""
        fit = self.fit
        if fit is None or not all(finite_interval(i) for i in (fit.a_interval, fit.b_interval)):
            return "undecided"
        if any(not d.has_interval for d in self.depths):
            return "undecided"
        fit_holds = inside(PAPER_A, fit.a_interval) and inside(PAPER_B, fit.b_interval)
        depths_exclude = any(d.paper_verdict == "outside" for d in self.depths)
        if fit_holds and not depths_exclude:
            return "consistent"
        if not fit_holds and depths_exclude:
            return "inconsistent"
        return "undecided"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, boot_ab=None, table=None))  # asdict would deep-copy them
        out.pop("boot_ab")
        out.pop("table")
        return json_safe(out)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ScalingFit:
        """The fit `to_dict` wrote (e.g. `fit.json`), without the bootstrap replicates or table."""
        names = {f.name for f in fields(cls)} - {"boot_ab", "table"}
        out = cls(**{k: v for k, v in record.items() if k in names})
        known = {f.name for f in fields(DepthResult)}  # older records hold retired fields
        out.depths = [
            DepthResult(**{k: v for k, v in d.items() if k in known}) for d in record["depths"]
        ]
        out.fit = None if record["fit"] is None else PowerLawFit(**record["fit"])
        return out


def _gamma_star_by_depth(
    df: pd.DataFrame,
    metric: str,
    tiebreak: str,
    n_boot: int,
    level: float,
    seed: int,
    tie_tol: float,
    shear: str,
) -> tuple[list[DepthResult], dict[int, np.ndarray]]:
    """γ*(N) per depth with its bootstrap interval; also each depth's bootstrap γ* samples
    (the arguments are `fit_scaling`'s, resolved)."""
    for column in (metric, tiebreak, DEPTH, GAMMA, SEED):
        if column not in df:
            raise ValueError(f"The results table has no {column!r} column.")
    rows = _momentum_rows(df, shear)
    if rows.empty:
        raise ValueError(
            f"The table holds no fixed-γ rows with shear {shear!r} (model.smeared_key false)."
        )
    smeared = df[df.get("model.smeared_key", pd.Series(False, index=df.index)).astype(bool)]
    rng = np.random.default_rng(seed)
    results, samples = [], {}
    for depth, group in rows.groupby(DEPTH, sort=True):
        acc = group.pivot_table(index=SEED, columns=GAMMA, values=metric, aggfunc="mean")
        loss = group.pivot_table(index=SEED, columns=GAMMA, values=tiebreak, aggfunc="mean")
        loss = loss.reindex(index=acc.index, columns=acc.columns)
        grid = acc.columns.to_numpy(dtype=float)
        a, l_ = acc.to_numpy(dtype=float), loss.to_numpy(dtype=float)
        mean_acc, mean_loss = np.nanmean(a, axis=0), np.nanmean(l_, axis=0)
        best = int(_choose(mean_acc, mean_loss, tie_tol))
        tied = grid[mean_acc >= np.nanmax(mean_acc) - tie_tol]  # the γ values _choose tied
        idx = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN or one-value columns
            boot = grid[_choose(np.nanmean(a[idx], axis=1), np.nanmean(l_[idx], axis=1), tie_tol)]
            std = np.nanstd(a, axis=0, ddof=1 if a.shape[0] > 1 else 0)  # NaN for one seed at a γ
        samples[int(depth)] = boot
        interval = _interval(boot, level)
        paper = float(paper_gamma_star(depth))
        control = smeared[smeared[DEPTH] == depth][metric].to_numpy(dtype=float)
        intervals = mean_intervals(a, level)
        others = [i for i in range(len(grid)) if i != best and grid[i] != 0]
        runner = max(others, key=lambda i: mean_acc[i]) if others else None
        plausible = [
            float(g)
            for g, (lo, hi) in zip(grid, intervals, strict=True)
            if finite_interval(intervals[best])
            and ((hi >= intervals[best][0] and lo <= intervals[best][1]) or g in tied)
        ]
        results.append(
            DepthResult(
                n_layers=int(depth),
                gamma_star=float(grid[best]),
                interval=interval,
                criterion_at_gamma_star=float(mean_acc[best]),
                criterion_at_gamma0=float(mean_acc[grid == 0][0]) if np.any(grid == 0) else None,
                smeared_key_criterion=float(control.mean()) if len(control) else None,
                n_seeds=int(a.shape[0]),
                n_tied=len(tied),
                at_grid_edge=bool(best in (0, len(grid) - 1) and len(grid) > 1),
                paper_gamma_star=paper,
                grid=grid.tolist(),
                criterion_mean=mean_acc.tolist(),
                criterion_std=std.tolist(),
                tiebreak_mean=mean_loss.tolist(),
                window=(float(tied.min()), float(tied.max())),
                mean_interval=intervals,
                runner_up=None if runner is None else float(grid[runner]),
                separated=None
                if runner is None or not np.all(np.isfinite([*intervals[best], *intervals[runner]]))
                else bool(intervals[best][0] > intervals[runner][1]),
                smeared_key_interval=mean_intervals(control[:, None], level)[0]
                if len(control)
                else None,
                plausible=plausible,
            )
        )
    return results, samples


def shape_fits(n_layers: Any, gamma_star: Any, level: float = 0.95) -> dict[str, Any]:
    """Shapes fitted to γ*(N) at the depths given, γ* ≤ 0 included: a constant (the mean, with its t
    interval) and a least-squares line `γ* = c + d N` with a t interval on the slope d (an
    interval containing 0: no trend in N is resolved)."""
    n = np.asarray(n_layers, dtype=float)
    g = np.asarray(gamma_star, dtype=float)
    out: dict[str, Any] = {"n_points": len(n)}
    if len(n) >= 2:
        out["constant"] = {
            "value": float(g.mean()),
            "interval": mean_intervals(g[:, None], level)[0],
        }
    if len(n) >= 3 and len(np.unique(n)) >= 2:
        (d, c), cov = np.polyfit(n, g, 1, cov="unscaled")
        residual = g - (c + d * n)
        dof = len(n) - 2
        sigma2 = float(residual @ residual) / dof
        half = _t_quantile(level, dof) * math.sqrt(max(cov[0, 0] * sigma2, 0.0))
        out["line"] = {"c": float(c), "d": float(d), "d_interval": (d - half, d + half)}
    return out


def fit_scaling(
    df: pd.DataFrame,
    metric: str = "final_accuracy",
    tiebreak: str = "final_loss",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    tie_tol: float | None = None,
    shear: str = "qk",
) -> ScalingFit:
    """γ*(N) per depth and the power law `γ* = a N^b`, with intervals (see the module doc)."""
    tie_tol = default_tie_tol(metric) if tie_tol is None else tie_tol
    depths, samples = _gamma_star_by_depth(
        df, metric, tiebreak, n_boot, level, seed, tie_tol, shear
    )
    measured = [d for d in depths if d.beats_no_shear is not False]  # γ = 0 not as good as γ*
    used = [d for d in measured if d.gamma_star > 0]
    excluded = [d.n_layers for d in depths if d.gamma_star <= 0]
    no_effect = [d.n_layers for d in depths if d.gamma_star > 0 and d.beats_no_shear is False]
    fit = None
    if len(used) >= 2:
        fit = fit_power_law(
            [d.n_layers for d in used],
            [d.gamma_star for d in used],
            level,
            log_sigma=[grid_log_sigma(d.grid, d.gamma_star) for d in used],
        )
    # Bootstrap over seeds: replicate k takes each depth's k-th resampled γ*, refits on the
    # depths of the main fit whose γ* stays > 0 (at least 2 of them).
    replicates: list[tuple[float, float]] = []
    if fit is not None:
        ns = np.array([d.n_layers for d in used], dtype=float)
        gs = np.stack([samples[d.n_layers] for d in used], axis=1)  # [replicate, depth]
        for row in gs:
            keep = row > 0
            if keep.sum() >= 2 and len(np.unique(ns[keep])) >= 2:
                slope, intercept = np.polyfit(np.log(ns[keep]), np.log(row[keep]), 1)
                replicates.append((math.exp(intercept), slope))  # the same least-squares line
    boot_ab = np.array(replicates).reshape(-1, 2)
    bootstrap: dict[str, Any] = {"n_valid": len(boot_ab), "n_boot": n_boot}
    if len(boot_ab):
        bootstrap["a_interval"] = list(
            np.quantile(boot_ab[:, 0], [(1 - level) / 2, (1 + level) / 2])
        )
        bootstrap["b_interval"] = list(
            np.quantile(boot_ab[:, 1], [(1 - level) / 2, (1 + level) / 2])
        )
    return ScalingFit(
        depths=depths,
        fit=fit,
        excluded=excluded,
        no_effect=no_effect,
        bootstrap=bootstrap,
        metric=metric,
        level=level,
        n_boot=n_boot,
        tie_tol=tie_tol,
        shear=shear,
        shapes=shape_fits([d.n_layers for d in measured], [d.gamma_star for d in measured], level),
        boot_ab=boot_ab,
        table=df,
    )


def finite_interval(interval: Any) -> bool:
    """Both ends of an interval finite (NaN, stored as null in `fit.json`, when undefined)."""
    return interval is not None and all(v is not None and math.isfinite(v) for v in interval)


def inside(value: float, interval: Any) -> bool:
    return interval is not None and interval[0] <= value <= interval[1]


def format_interval(interval: Any) -> str:
    return f"[{interval[0]:.3g}, {interval[1]:.3g}]"


def bundled_results() -> Path | None:
    """The committed γ*(N) sweep's table (`results/scaling/results.csv`), if this checkout has it."""
    path = REPO_ROOT / "results" / "scaling" / "results.csv"
    return path if path.is_file() else None
