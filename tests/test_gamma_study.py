"""The fair γ*(N) study's tools: the gain-normalised shear, the select-then-fresh protocol, the
paired tests with Holm correction, the quadratic-vertex γ* and the seed-count sizing, each
checked against a hand-computed case or scipy."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import interpolate, optimize, stats
from test_sweeps import BASE as SWEEP_BASE

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.analysis.gamma_study import (
    analyse_depth,
    bootstrap_vertex,
    check_fresh_rates,
    holm,
    paired_comparison,
    paper_verdict,
    quadratic_vertex,
)
from momentum_interp.model.shear import TERM_NAMES, rms_gain, score_terms
from momentum_interp.sweeps import SweepSpec, load_sweep, read_results, run_sweep
from momentum_interp.sweeps.selection import select

# ----------------------------------------------------------------- the normalised shear


def _model(gamma: float, seed: int, **options) -> HookedMomentumTransformer:
    cfg = MomentumConfig(
        d_model=32,
        d_head=16,
        n_heads=2,
        n_layers=1,
        attn_only=True,
        normalization_type="LN",
        positional_embedding_type="rotary",
        n_ctx=64,
        d_vocab=64,
        gamma=gamma,
        seed=seed,
        **{"shear": "qk", **options},
    )
    return HookedMomentumTransformer(cfg)


def _score_std(gamma: float, **options) -> float:
    stds = []
    for seed in range(3):
        model = _model(gamma, seed, **options)
        tokens = torch.randint(0, 64, (8, 64), generator=torch.Generator().manual_seed(seed))
        _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_attn_scores")
        scores = cache["blocks.0.attn.hook_attn_scores"]
        stds.append(scores[torch.isfinite(scores)].std().item())
    return float(np.mean(stds))


def test_rms_gain_is_the_mean_squared_frequency_response():
    omega = np.linspace(-np.pi, np.pi, 200001)
    for gamma in (-1.0, -0.5, 0.0, 1.0, 4.0):
        h = 1 + gamma * (1 - np.exp(-1j * omega))
        expected = math.sqrt(np.trapezoid(np.abs(h) ** 2, omega) / (2 * np.pi))
        assert rms_gain(torch.tensor(gamma)).item() == pytest.approx(expected, rel=1e-6)


def test_normalised_shear_keeps_the_initial_score_scale_flat_in_gamma():
    gammas = (-0.5, 0.0, 1.0, 2.0, 4.0)
    normalised = [_score_std(g, shear_norm=True) for g in gammas]
    assert max(normalised) / min(normalised) < 1.2
    raw = [_score_std(g) for g in gammas]
    assert raw[-1] / raw[1] > 20  # the raw shear's logits grow about (1 + 2γ)-fold per side


@pytest.mark.parametrize(
    "options",
    [
        {"shear_norm": True},
        {"shear": "k", "shear_norm": True},
        {"shear": "none", "learned_temperature": True},
        {"shear_norm": True, "learned_temperature": True, "gamma_learnable": True},
    ],
)
def test_four_term_identity_is_exact_with_the_scales(options):
    model = _model(0.7, 0, **options)
    attn = model.blocks[0].attn
    with torch.no_grad():
        if options.get("learned_temperature"):
            attn.log_temperature.copy_(torch.tensor([0.3, -0.2]))
    tokens = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    _, cache = model.run_with_cache(tokens)
    q, k = cache["blocks.0.attn.hook_rot_q"], cache["blocks.0.attn.hook_rot_k"]
    terms = score_terms(q, k, attn.gamma_q(), attn.gamma_k(), attn.scale_q(), attn.scale_k())
    total = sum(terms[name] for name in TERM_NAMES) / math.sqrt(16)
    scores = cache["blocks.0.attn.hook_attn_scores"]
    causal = torch.isfinite(scores)
    torch.testing.assert_close(total[causal], scores[causal], rtol=1e-5, atol=1e-5)


def test_shear_norm_needs_a_shear():
    with pytest.raises(ValueError, match="shear_norm"):
        _model(1.0, 0, shear="none", shear_norm=True)


# ----------------------------------------------------------------- statistics


def test_holm_matches_a_hand_computed_case():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_paired_comparison_matches_the_t_formula():
    x = np.array([0.61, 0.55, 0.70, 0.64, 0.58])
    y = np.array([0.52, 0.54, 0.61, 0.60, 0.49])
    d = x - y
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p = 2 * stats.t.sf(abs(t), len(d) - 1)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    result = paired_comparison("x", "y", x, y)
    assert result.mean_difference == pytest.approx(d.mean())
    assert result.p_value == pytest.approx(p)
    assert (result.ci_low, result.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    same = paired_comparison("x", "x", x, x)
    assert same.p_value == 1.0 and not same.significant


def test_quadratic_vertex_agrees_with_scipy():
    gammas = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    means = 1 - (gammas - 0.3) ** 2
    vertex, flag = quadratic_vertex(gammas, means)
    assert flag is None and vertex == pytest.approx(0.3)
    # scipy: maximise the Lagrange polynomial through the best point and its neighbours
    noisy = means + np.array([0.0, 0.01, -0.02, 0.015, 0.0])
    poly = interpolate.lagrange(gammas[1:4], noisy[1:4])
    expected = optimize.minimize_scalar(lambda g: -poly(g), bounds=(0.0, 1.0), method="bounded")
    assert quadratic_vertex(gammas, noisy)[0] == pytest.approx(expected.x, abs=1e-5)


def test_quadratic_vertex_flags_grid_ends():
    gammas = np.array([0.0, 1.0, 2.0, 3.0])
    assert quadratic_vertex(gammas, np.array([0.1, 0.2, 0.3, 0.4])) == (3.0, "grid_end")
    assert quadratic_vertex(gammas, np.array([0.5, 0.2, 0.3, 0.1])) == (0.0, "grid_end")
    # a tie with one neighbour: the vertex lies half-way between them
    vertex, flag = quadratic_vertex(gammas, np.array([0.1, 0.5, 0.5, 0.2]))
    assert flag is None and vertex == pytest.approx(1.5)


def test_bootstrap_interval_collapses_without_noise_and_covers_with_it():
    gammas = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    clean = np.tile(1 - (gammas - 0.3) ** 2, (5, 1))
    assert bootstrap_vertex(gammas, clean, 200) == pytest.approx((0.3, 0.3))
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(0, 0.02, clean.shape)
    low, high = bootstrap_vertex(gammas, noisy, 500)
    assert low < quadratic_vertex(gammas, noisy.mean(0))[0] < high


def test_seed_count_sizing_by_hand():
    from momentum_interp.sweeps.selection import (
        ArmSelection,
        fresh_seed_count,
        neighbour_difference_variance,
        paired_sample_size,
    )

    def seeds_needed(sd):  # the rules' n for a σ_d, clipped to [5, 10]
        return fresh_seed_count(paired_sample_size(sd**2, 0.02), 5, 10)

    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)  # 2.8016
    assert seeds_needed(0.02) == math.ceil(z**2) == 8
    assert seeds_needed(0.005) == 5  # clipped below
    assert seeds_needed(0.05) == 10  # clipped above
    assert fresh_seed_count(None, 5, 10) == 10  # spread unknown: every listed seed
    scores = {100: np.array([0.1, 0.3, 0.2]), 101: np.array([0.2, 0.3, 0.4])}
    arms = [
        ArmSelection(f"arm{g}", "qk", {"model.gamma": g}, [1e-3], [0.0], 1e-3, False, False)
        for g in (0, 1, 2)
    ]
    by_seed = {(f"arm{g}", repr(1e-3)): {s: scores[s][g] for s in scores} for g in (0, 1, 2)}
    # d100 = (0.2, -0.1), d101 = (0.1, 0.1): mean of (0.01/2, 0.04/2) = 0.0125
    variance, pairs = neighbour_difference_variance(arms, by_seed)
    assert variance == pytest.approx(0.0125) and pairs == 2


# ----------------------------------------------------------------- the protocol

# test_sweeps' tiny recall run, evaluated twice (an AUC needs two points), plus a protocol
BASE = (
    SWEEP_BASE.format(steps=6).replace("eval_every = 6", "eval_every = 3")
    + """
[grid]
"model.gamma" = [0.0, 1.0]
[[variants]]
label = "qk_raw"
[[variants]]
label = "smeared_key"
"model.smeared_key" = true
"model.shear" = "none"
"model.gamma" = 0.0
[protocol]
search = "train.lr"
values = [1e-3, 1e-2]
selection_seeds = [100]
fresh_seeds = [0, 1]
"""
)


def _spec(text: str = BASE) -> SweepSpec:
    return SweepSpec.from_dict(tomllib.loads(text))


def test_protocol_expands_selection_and_refuses_shared_seeds():
    spec = _spec()
    runs = spec.expand("select")
    assert len(runs) == (2 + 1) * 2  # (2 γ + smeared key) × 2 rates, one selection seed
    assert {r.config["train"]["seed"] for r in runs} == {100}
    with pytest.raises(ValueError, match="protocol"):
        spec.expand()
    with pytest.raises(ValueError, match="both selection and fresh"):
        _spec(BASE.replace("fresh_seeds = [0, 1]", "fresh_seeds = [0, 100]"))
    with pytest.raises(ValueError, match="chooses"):
        _spec(
            BASE.replace('"model.gamma" = [0.0, 1.0]', '"model.gamma" = [0.0]\n"train.seed" = [1]')
        )


def _rows(spec: SweepSpec, auc_of) -> list[dict]:
    return [
        {"run_id": r.run_id, "auc_accuracy": auc_of(r.config), "config": r.config}
        for r in spec.expand("select")
    ]


def test_selection_takes_each_arms_best_and_ranks_diverged_runs_last():
    spec = _spec()

    def auc(config):
        lr, gamma = config["train"]["lr"], config["model"]["gamma"]
        if config["model"].get("smeared_key"):
            return None if lr == 1e-2 else 0.2  # diverged at the high rate
        return 0.5 + (0.1 if (lr == 1e-2) == (gamma == 1.0) else 0.0)

    selection = select(spec, _rows(spec, auc))
    assert selection.complete
    picks = {
        (a.variant, a.config["model.gamma"]): (a.chosen, a.at_grid_end) for a in selection.arms
    }
    assert picks == {
        ("qk_raw", 0.0): (1e-3, True),
        ("qk_raw", 1.0): (1e-2, True),
        ("smeared_key", 0.0): (1e-3, True),
    }
    fresh = spec.expand_fresh(selection.chosen)
    assert len(fresh) == 3 * 2
    assert {r.config["train"]["seed"] for r in fresh} == {0, 1}
    assert {
        (r.config["model"]["gamma"], r.config["train"]["lr"])
        for r in fresh
        if r.variant == "qk_raw"
    } == {
        (0.0, 1e-3),
        (1.0, 1e-2),
    }
    partial = select(spec, _rows(spec, auc)[:-1])
    assert partial.missing_runs == 1 and not partial.complete
    with pytest.raises(ValueError, match="no chosen"):
        spec.expand_fresh({})


def test_run_sweep_selects_then_reports_on_fresh_seeds(tmp_path):
    spec = _spec()
    out = tmp_path / "out"
    run_sweep(spec, out, workers=0, progress=False, stage="select")
    assert len(read_results(out / "results.jsonl")) == 6
    chosen = json.loads((out / "selection.json").read_text())
    assert len(chosen["arms"]) == 3 and chosen["missing_runs"] == 0
    run_sweep(spec, out, workers=0, progress=False)  # select (nothing left), then fresh
    rows = read_results(out / "results.jsonl")
    fresh = [r for r in rows if r["config"]["train"]["seed"] in (0, 1)]
    assert len(rows) == 12 and len(fresh) == 6
    picked = {a["arm"]: a["chosen"] for a in chosen["arms"]}
    for row in fresh:
        assert row["config"]["train"]["lr"] == picked[spec.protocol.arm_key(row["config"])]


def test_selection_json_follows_every_finished_selection_run(tmp_path, monkeypatch):
    """A select session cut off mid-way (here by Ctrl-C after two runs) still leaves a
    `selection.json` that counts the runs it finished."""
    from momentum_interp.sweeps import backends

    finished = []

    def fake_unit(configs, names, dirs, one_thread):
        if len(finished) == 2:
            raise KeyboardInterrupt
        finished.extend(names)
        return [{"auc_accuracy": 0.5, "final_accuracy": 0.6} for _ in configs]

    monkeypatch.setattr(backends, "execute_unit", fake_unit)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_spec(BASE + "floor = 0.5\n"), out, workers=0, progress=False, stage="select")
    selection = json.loads((out / "selection.json").read_text())
    assert selection["missing_runs"] == 6 - 2 and len(read_results(out / "results.jsonl")) == 2
    assert selection["floor_check"]["best_final_accuracy"] == 0.6


def test_fresh_stage_refuses_an_unfinished_selection(tmp_path):
    from momentum_interp.sweeps import SweepError

    with pytest.raises(SweepError, match="select stage"):
        run_sweep(_spec(), tmp_path / "out", workers=0, progress=False, stage="fresh")


# A pruned search: values 1e-3, 1e-2, 1e-1; each arm searches ± one step around its pick in an
# earlier selection (qk_raw γ=0 picked the bottom, so it searches two values).
EARLIER_PICKS = {("qk_raw", 0.0): 1e-3, ("qk_raw", 1.0): 1e-2, ("smeared_key", 0.0): 1e-1}


def _earlier_selection(tmp_path, picks=EARLIER_PICKS) -> str:
    arms = [
        {"variant": v, "config": {"model.gamma": g, "model.n_layers": 1}, "chosen": c}
        for (v, g), c in picks.items()
    ]
    arms.append({"variant": "k_raw", "config": {"model.gamma": 0.0}, "chosen": 1e-2})  # unused
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"search": "train.lr", "arms": arms}))
    return str(path)


def _pruned(around: str, neighbours: str = "neighbours = 1") -> SweepSpec:
    return _spec(
        BASE.replace("values = [1e-3, 1e-2]", "values = [1e-3, 1e-2, 1e-1]").replace(
            "fresh_seeds = [0, 1]", f"fresh_seeds = [0, 1]\naround = {around!r}\n{neighbours}"
        )
    )


def test_pruned_search_takes_each_arms_neighbours_of_its_earlier_pick(tmp_path):
    spec = _pruned(_earlier_selection(tmp_path))
    runs = spec.expand("select")
    searched = {}
    for r in runs:
        key = (r.variant, r.config["model"]["gamma"])
        searched.setdefault(key, []).append(r.config["train"]["lr"])
    assert searched == {
        ("qk_raw", 0.0): [1e-3, 1e-2],  # the earlier pick was the grid's bottom: one neighbour
        ("qk_raw", 1.0): [1e-3, 1e-2, 1e-1],
        ("smeared_key", 0.0): [1e-2, 1e-1],
    }
    best = {("qk_raw", 0.0): 1e-2, ("qk_raw", 1.0): 1e-2, ("smeared_key", 0.0): 1e-1}

    def auc(config):
        key = (
            "smeared_key" if config["model"].get("smeared_key") else "qk_raw",
            config["model"]["gamma"],
        )
        return 0.6 if config["train"]["lr"] == best[key] else 0.4

    selection = select(spec, _rows(spec, auc))
    assert selection.complete
    flags = {
        (a.variant, a.config["model.gamma"]): (
            a.values,
            a.chosen,
            a.at_grid_end,
            a.at_study_grid_end,
        )
        for a in selection.arms
    }
    assert flags == {
        # the end of its own two values, not of the study grid
        ("qk_raw", 0.0): ([1e-3, 1e-2], 1e-2, True, False),
        ("qk_raw", 1.0): ([1e-3, 1e-2, 1e-1], 1e-2, False, False),
        ("smeared_key", 0.0): ([1e-2, 1e-1], 1e-1, True, True),
    }
    fresh = spec.expand_fresh(selection.chosen)
    assert {(r.variant, r.config["model"]["gamma"], r.config["train"]["lr"]) for r in fresh} == {
        (v, g, lr) for (v, g), lr in best.items()
    }
    assert {r.config["train"]["seed"] for r in fresh} == {0, 1}


def test_pruned_search_refuses_what_it_cannot_match(tmp_path):
    with pytest.raises(ValueError, match="go together"):
        _pruned(_earlier_selection(tmp_path), neighbours="")
    with pytest.raises(ValueError, match="cannot read .*nowhere.json .*No such file"):
        _pruned(str(tmp_path / "nowhere.json"))
    with pytest.raises(ValueError, match=r"0 arms .* match variant 'qk_raw' at model.gamma = 1.0"):
        picks = {k: v for k, v in EARLIER_PICKS.items() if k != ("qk_raw", 1.0)}
        _pruned(_earlier_selection(tmp_path, picks)).expand("select")
    with pytest.raises(ValueError, match="not in \\[protocol\\] values"):
        _pruned(_earlier_selection(tmp_path, {**EARLIER_PICKS, ("qk_raw", 1.0): 3e-2})).expand(
            "select"
        )


def test_widening_extends_an_end_that_is_best_until_interior_or_the_grid_ends(tmp_path):
    """`widen`: an arm whose best is an end of its values searches the next grid value beyond,
    one round at a time, only once every selection seed has a result; a diverged value ranks
    last; the pick ends interior or at the study grid's end."""
    earlier = _earlier_selection(
        tmp_path, {("qk_raw", 0.0): 1e-2, ("qk_raw", 1.0): 1e-2, ("smeared_key", 0.0): 1e-1}
    )
    spec = _spec(
        BASE.replace("values = [1e-3, 1e-2]", "values = [1e-4, 1e-3, 1e-2, 1e-1]").replace(
            "fresh_seeds = [0, 1]",
            f"fresh_seeds = [0, 1]\naround = {earlier!r}\nneighbours = 1\nwiden = true",
        )
    )
    # qk_raw γ=0's AUC falls with the rate (best: the grid's bottom, below its window); γ=1
    # peaks inside its window; the smeared key diverges above 1e-2 and otherwise likes it high
    peak = {0.0: 1e-4, 1.0: 1e-2}

    def auc(config):
        lr = config["train"]["lr"]
        if config["model"].get("smeared_key"):
            return None if lr > 1e-2 else 0.5 + lr
        return 0.9 - 0.1 * abs(math.log10(lr) - math.log10(peak[config["model"]["gamma"]]))

    def searched(rows):
        out: dict[tuple, list] = {}
        for r in spec.expand("select", rows):
            out.setdefault((r.variant, r.config["model"]["gamma"]), []).append(
                r.config["train"]["lr"]
            )
        return out

    def rows_for(runs):
        return [
            {"run_id": r.run_id, "auc_accuracy": auc(r.config), "config": r.config} for r in runs
        ]

    assert searched([]) == {
        ("qk_raw", 0.0): [1e-3, 1e-2, 1e-1],
        ("qk_raw", 1.0): [1e-3, 1e-2, 1e-1],
        ("smeared_key", 0.0): [1e-2, 1e-1],
    }
    rows = rows_for(spec.expand("select", []))
    pending = [
        r
        for r in rows
        if r["config"]["model"]["gamma"] == 0.0 and r["config"]["train"]["lr"] == 0.1
    ]
    partial = [r for r in rows if r not in pending[:1]]
    assert searched(partial)[("qk_raw", 0.0)] == [1e-3, 1e-2, 1e-1]  # a result missing: wait
    assert searched(rows) == {
        ("qk_raw", 0.0): [1e-4, 1e-3, 1e-2, 1e-1],  # best was its window's bottom: one step down
        ("qk_raw", 1.0): [1e-3, 1e-2, 1e-1],  # interior: unchanged
        ("smeared_key", 0.0): [1e-3, 1e-2, 1e-1],  # 1e-1 diverged, so 1e-2 (its bottom) is best
    }
    done = {row["run_id"] for row in rows}
    rows += rows_for([r for r in spec.expand("select", rows) if r.run_id not in done])
    assert select(spec, rows).complete  # 1e-4 is best and the grid's end; 1e-2 is interior
    picks = {
        (a.variant, a.config["model.gamma"]): (a.chosen, a.at_grid_end, a.at_study_grid_end)
        for a in select(spec, rows).arms
    }
    assert picks == {
        ("qk_raw", 0.0): (1e-4, True, True),
        ("qk_raw", 1.0): (1e-2, False, False),
        ("smeared_key", 0.0): (1e-2, False, False),
    }
    with pytest.raises(ValueError, match="widen must be true or false"):
        _spec(BASE.replace("fresh_seeds = [0, 1]", 'fresh_seeds = [0, 1]\nwiden = "yes"'))


def test_run_sweep_widens_in_rounds_until_the_selection_is_complete(tmp_path):
    """The select stage runs again while its results call for more values: with a window of
    one value (`neighbours = 0`) every arm needs a second round."""
    picks = {("qk_raw", 0.0): 1e-2, ("qk_raw", 1.0): 1e-2, ("smeared_key", 0.0): 1e-2}
    spec = _spec(
        BASE.replace(
            "fresh_seeds = [0, 1]",
            f"fresh_seeds = [0, 1]\naround = {_earlier_selection(tmp_path, picks)!r}\n"
            "neighbours = 0\nwiden = true",
        )
    )
    assert len(spec.expand("select")) == 3  # one value per arm before any result
    out = tmp_path / "out"
    run_sweep(spec, out, workers=0, progress=False, stage="select")
    selection = json.loads((out / "selection.json").read_text())
    assert selection["missing_runs"] == 0
    assert all(a["values"] == [1e-3, 1e-2] for a in selection["arms"])
    assert len(read_results(out / "results.jsonl")) == 6
    lines = (out / "sweep_sessions.jsonl").read_text().splitlines()
    sessions = [json.loads(line) for line in lines]
    assert [s["n_new"] for s in sessions] == [3, 3]


def test_n2_study_searches_the_n1_picks_and_their_neighbours():
    root = Path(__file__).resolve().parents[1]
    n1 = json.loads((root / "results/fair_gamma_star/n1/selection.json").read_text())
    n1_picks = {(a["variant"], a["config"]["model.gamma"]): a["chosen"] for a in n1["arms"]}
    spec = load_sweep(root / "configs/studies/fair_gamma_star_n2.toml")
    runs = spec.expand("select")
    assert len(runs) == 18 * 3 * 2  # (2 shears × 8 γ + 2 controls) × 3 rates × 2 seeds
    grid = spec.protocol.values
    for r in runs:
        key = (r.variant, r.config["model"]["gamma"])
        at = grid.index(n1_picks[key])
        assert abs(grid.index(r.config["train"]["lr"]) - at) <= 1
    deeper = {r.config["model"]["n_layers"] for r in runs if r.variant == "plain_deeper"}
    assert deeper == {3} and n1_picks[("plain_deeper", 0.0)] == 1e-2
    assert {r.config["train"]["lr"] for r in runs if r.variant == "smeared_key"} == {
        1e-2,
        3.162e-2,
        1e-1,  # above N = 1's grid: the amendment's extra step
    }


def test_n3_study_searches_the_n2_picks_and_widens():
    """N = 3 (amended before its run): each arm around its N = 2 pick, widened past a best end."""
    root = Path(__file__).resolve().parents[1]
    n2 = json.loads((root / "results/fair_gamma_star/n2/selection.json").read_text())
    n2_picks = {(a["variant"], a["config"]["model.gamma"]): a["chosen"] for a in n2["arms"]}
    spec = load_sweep(root / "configs/studies/fair_gamma_star_n3.toml")
    assert spec.protocol.widen and spec.protocol.detect_difference == 0.02
    runs = spec.expand("select")
    assert len(runs) == 18 * 3 * 2
    grid = spec.protocol.values
    for r in runs:
        at = grid.index(n2_picks[(r.variant, r.config["model"]["gamma"])])
        assert abs(grid.index(r.config["train"]["lr"]) - at) <= 1
    assert {r.config["model"]["n_layers"] for r in runs if r.variant == "plain_deeper"} == {4}


def test_an_arm_that_diverged_everywhere_has_no_pick_and_blocks_the_fresh_stage(tmp_path):
    from momentum_interp.sweeps import SweepError

    spec = _spec()

    def auc(config):
        return None if config["model"].get("smeared_key") else 0.5

    selection = select(spec, _rows(spec, auc))
    (unpicked,) = selection.unpicked
    assert unpicked.variant == "smeared_key" and unpicked.chosen is None
    assert unpicked.criterion == [None, None] and not unpicked.at_grid_end
    out = tmp_path / "out"
    out.mkdir()
    rows = "".join(json.dumps(row) + "\n" for row in _rows(spec, auc))
    (out / "results.jsonl").write_text(rows)
    with pytest.raises(SweepError, match="no finite auc_accuracy .* smeared_key 0.0"):
        run_sweep(spec, out, workers=0, progress=False, stage="fresh")
    assert not (out / "runs").exists()  # refused before any training


@pytest.mark.parametrize("best, at_floor", [(0.5, True), (0.52, False)])
def test_the_floor_check_blocks_the_fresh_stage_only_when_no_run_ends_above_it(
    tmp_path, best, at_floor
):
    """The rules' floor check: some selection run must end above `floor` (0.5 itself is not)."""
    from momentum_interp.sweeps import SweepError

    spec = _spec(BASE + "floor = 0.5\n")
    rows = _rows(spec, lambda config: 0.3)
    for i, row in enumerate(rows):  # the last run is the best; one diverged run has no accuracy
        row["final_accuracy"] = best if i == len(rows) - 1 else (None if i == 0 else 0.1 * i)
    check = select(spec, rows).floor_check
    assert check == {
        "floor": 0.5,
        "best_final_accuracy": best,
        "best_run": rows[-1]["run_id"],
        "passed": not at_floor,
    }
    assert select(spec, rows).at_floor is at_floor
    assert not select(spec, rows[1:]).at_floor  # a run still missing: not decided yet
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if at_floor:
        with pytest.raises(SweepError, match="at the floor"):
            run_sweep(spec, out, workers=0, progress=False, stage="fresh")
        assert not (out / "runs").exists()  # refused before any training
    else:
        run_sweep(spec, out, workers=0, progress=False, stage="fresh")
        assert len(read_results(out / "results.jsonl")) == len(rows) + 3 * 2
    assert json.loads((out / "selection.json").read_text())["floor_check"] == check
    with pytest.raises(ValueError, match="floor must be a final accuracy"):
        _spec(BASE + "floor = 50\n")
    assert select(_spec(), rows).floor_check is None  # no floor in the protocol: no check


def test_fresh_rows_at_another_rate_than_the_pick_are_refused():
    rows = _study_rows(range(3))
    check_fresh_rates(rows, [0, 1, 2], lambda config: 1e-3)
    rows[7]["config"]["train"]["lr"] = 1e-2  # seed 1
    with pytest.raises(
        ValueError, match=r"1 fresh-seed run\(s\) .* seed 1\): lr 0.01, chosen 0.001"
    ):
        check_fresh_rates(rows, [0, 1, 2], lambda config: 1e-3)
    check_fresh_rates(rows, [0, 2], lambda config: 1e-3)  # a selection seed's row: not checked


def test_diverged_fresh_runs_are_counted_and_shown():
    from momentum_interp.narrative.gamma_study import arms_table

    rows = _study_rows(range(5), best=0.5, noise=0.002)
    diverged = next(r for r in rows if r["config"]["model"]["gamma"] == 2.0)
    diverged["auc_accuracy"] = None
    study = analyse_depth(rows, 1, list(range(5)), n_resamples=50)
    arm = next(a for a in study.families[0].arms if a.gamma == 2.0)
    assert arm.diverged == 1 and arm.auc.count(0.0) == 1
    assert all(a.diverged == 0 for a in study.families[0].arms if a.gamma != 2.0)
    table = arms_table(study.to_dict(), {"arms": []})
    assert "(1/5 diverged: AUC 0)" in table and table.count("diverged") == 1


# ----------------------------------------------------------------- one depth, decided


def _study_rows(seeds, best=0.5, noise=0.0, effect=0.2):
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        offset = rng.normal(0, 0.05)  # seed effect shared by every arm: pairing removes it
        for gamma in (-0.5, 0.0, 0.25, 0.5, 1.0, 2.0):
            auc = 0.3 + offset + effect * (1 - (gamma - best) ** 2) + rng.normal(0, noise)
            rows.append(
                {
                    "variant": "qk_raw",
                    "auc_accuracy": auc,
                    "final_accuracy": 0.9,
                    "steps_to_target": 100.0 if auc > 0.3 else None,
                    "config": {
                        "model": {"n_layers": 1, "gamma": gamma},
                        "train": {"seed": seed, "lr": 1e-3},
                    },
                }
            )
    return rows


def test_analyse_depth_decides_inside_below_and_undecided():
    rows = _study_rows(range(5), best=0.5, noise=0.002)
    study = analyse_depth(rows, 1, list(range(5)), n_resamples=300)
    family = study.families[0]
    assert family.best_gamma == 0.5 and family.shear_has_effect
    assert family.gamma_star == pytest.approx(0.5, abs=0.05)
    assert study.paper_verdict == "above"  # 4.17 lies above the interval around 0.5
    flat = analyse_depth(
        _study_rows(range(5), effect=0.0, noise=0.01), 1, list(range(5)), n_resamples=100
    )
    assert flat.paper_verdict == "undecided" and flat.paper_reason == "no_effect"
    # N = 10: the paper's γ* = 4.17 · 10^−0.74 = 0.76 lies inside a grid whose best is near it
    inside = _study_rows(range(5), best=4.17 * 10**-0.74, noise=0.001)
    for row in inside:
        row["config"]["model"]["n_layers"] = 10
    assert analyse_depth(inside, 10, list(range(5)), n_resamples=300).paper_verdict == "inside"
    # ... and below an interior interval around 1.2
    below = _study_rows(range(5), best=1.2, noise=0.001)
    for row in below:
        row["config"]["model"]["n_layers"] = 10
    assert analyse_depth(below, 10, list(range(5)), n_resamples=300).paper_verdict == "below"
    # N = 2: the paper's 2.50 lies past the grid's top (2), where the best also sits: undecided
    beyond = _study_rows(range(5), best=4.17 * 2**-0.74, noise=0.001)
    for row in beyond:
        row["config"]["model"]["n_layers"] = 2
    decided = analyse_depth(beyond, 2, list(range(5)), n_resamples=100)
    assert (decided.paper_verdict, decided.paper_reason) == ("undecided", "grid_end")
    assert paper_verdict(decided.families[0], 2, at_floor=True) == ("undecided", "floor")
    # selection-seed rows never enter
    assert analyse_depth(rows, 1, [0, 1, 2], n_resamples=50).families[0].arms[0].seeds == [0, 1, 2]


@pytest.mark.parametrize("placement", ["post_rope", "pre_rope"])
def test_traced_terms_sum_to_the_scores_of_a_normalised_model(placement):
    from momentum_interp.analysis.tracing import head_score_terms

    model = _model(1.5, 0, shear_norm=True, learned_temperature=True, shear_placement=placement)
    with torch.no_grad():
        model.blocks[0].attn.log_temperature.copy_(torch.tensor([0.4, -0.1]))
    tokens = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(2))
    _, cache = model.run_with_cache(tokens)
    terms = head_score_terms(model, cache, 0)
    total = sum(terms[name] for name in TERM_NAMES)
    scores = cache["blocks.0.attn.hook_attn_scores"].double()
    causal = torch.isfinite(scores)
    torch.testing.assert_close(total[causal], scores[causal], rtol=1e-5, atol=1e-5)


def test_study_command_writes_the_decisions(tmp_path, capsys):
    from momentum_interp.cli import main

    spec_path = tmp_path / "study.toml"
    spec_path.write_text(
        BASE.replace('"model.gamma" = [0.0, 1.0]', '"model.gamma" = [0.0, 0.5, 1.0]')
    )
    out = tmp_path / "out"
    assert main(["study", str(spec_path), "--results", str(out)]) == 2  # nothing run yet
    assert "fresh stage" in capsys.readouterr().err
    run_sweep(str(spec_path), out, workers=0, progress=False)
    assert main(["study", str(spec_path), "--results", str(out)]) == 0
    study = json.loads((out / "study.json").read_text())
    (depth,) = study["depths"]
    (family,) = depth["families"]
    assert [a["gamma"] for a in family["arms"]] == [0.0, 0.5, 1.0]
    assert all(a["seeds"] == [0, 1] for a in family["arms"])
    assert depth["paper_verdict"] in ("inside", "above", "below", "undecided")
    summary = (out / "summary.md").read_text()
    assert "| q/k raw | 0.5 |" in summary and "smeared key" in summary
    from momentum_interp.narrative.gamma_study import readme_block

    block = readme_block(study)
    assert "paper's γ*(1) = 4.17" in block and "| q/k raw |" in block
    # a fresh row whose rate is not its arm's pick: the study refuses, one line, status 2
    rows = read_results(out / "results.jsonl")
    fresh = next(r for r in rows if r["config"]["train"]["seed"] == 0)
    fresh["config"]["train"]["lr"] = 0.5
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["study", str(spec_path), "--results", str(out)]) == 2
    assert "trained at another rate than their arm's pick" in capsys.readouterr().err


def test_each_family_gets_its_own_verdict_and_the_papers_shear_decides():
    rows = _study_rows(range(5), best=0.5, noise=0.002)
    flat = _study_rows(range(5), effect=0.0, noise=0.01)
    for row in flat:
        row["variant"] = "qk_norm"
    study = analyse_depth(rows + flat, 1, list(range(5)), n_resamples=100)
    verdicts = {f.family: (f.paper_verdict, f.paper_reason) for f in study.families}
    assert verdicts == {"qk_raw": ("above", None), "qk_norm": ("undecided", "no_effect")}
    assert (study.paper_verdict, study.paper_reason) == verdicts["qk_raw"]


def test_fungibility_against_a_deeper_model_at_the_floor_is_undecided():
    from momentum_interp.narrative.gamma_study import depth_decisions

    rows = _study_rows(range(5), best=0.5, noise=0.002)
    for seed in range(5):  # the 2-layer plain model never learns: final accuracy 0.1
        rows.append(
            {
                "variant": "plain_deeper",
                "auc_accuracy": 0.08 + 0.001 * seed,
                "final_accuracy": 0.1,
                "steps_to_target": None,
                "config": {
                    "model": {"n_layers": 2, "gamma": 0.0},
                    "train": {"seed": seed, "lr": 1e-2},
                },
            }
        )
    study = analyse_depth(rows, 1, list(range(5)), n_resamples=50)
    assert study.fungibility.significant and study.deeper_plain_at_floor
    (line,) = [b for b in depth_decisions(study.to_dict(), {"arms": []}) if "Fungibility" in b]
    assert "undecided" in line and "rate search" not in line
    # the floor in numbers: no seed ever reached 50 %; momentum (AUC ≈ 0.5) higher on every seed
    assert "mean final accuracy 0.100, with 0 of 5 seeds ever reaching 50 %" in " ".join(
        line.split()
    )
    assert "higher on 5 of 5 seeds" in " ".join(line.split())

    # arms that chose an end of the rates they searched: every decision resting on them says so
    def arm(variant, gamma, chosen, values):
        end = chosen in (min(values), max(values))
        return {"variant": variant, "config": {"model.gamma": gamma}, "chosen": chosen,
                "values": values, "at_grid_end": end}  # fmt: skip

    best = study.families[0].best_gamma
    selection = {
        "arms": [
            arm("plain_deeper", 0.0, 1e-3, [1e-3, 1e-2, 1e-1]),
            arm("qk_raw", best, 1e-1, [1e-3, 1e-2, 1e-1]),
            arm("qk_raw", 0.0, 1e-3, [1e-3, 1e-2, 1e-1]),
            arm("qk_raw", 1.0, 1e-2, [1e-3, 1e-2, 1e-1]),  # interior: not named
        ]
    }
    lines = depth_decisions(study.to_dict(), selection)
    (fung,) = [b for b in lines if "Fungibility" in b]
    assert fung.endswith(
        f"rate search: qk_raw γ={best:g} chose the highest rate it tried; plain N=2 chose the "
        "lowest rate it tried)."
    )
    (raw,) = [b for b in lines if b.startswith("**q/k raw**")]
    assert raw.endswith(
        f"conditional on the rate search: γ = {best:g} chose the highest rate it tried; γ = 0 "
        "chose the lowest rate it tried."
    )


def test_rate_search_is_said_from_the_selection_one_seed_or_two_full_or_pruned():
    """The study's sentence on the rate search follows `selection.json`: N = 1's one seed and
    six rates, and N = 2's two seeds and pruned search (its spec's select stage, per arm)."""
    from momentum_interp.narrative.gamma_study import rate_search

    root = Path(__file__).resolve().parents[1]
    n1 = json.loads((root / "results/fair_gamma_star/n1/selection.json").read_text())
    assert rate_search(n1) == "selection seed 100 from six rates (1e-4 to 3.162e-2)"
    spec = load_sweep(root / "configs/studies/fair_gamma_star_n2.toml")
    values: dict[tuple, set] = {}
    for r in spec.expand("select"):
        values.setdefault((r.variant, r.config["model"]["gamma"]), set()).add(
            r.config["train"]["lr"]
        )
    n2 = {
        "selection_seeds": spec.protocol.selection_seeds,
        "arms": [{"values": sorted(v)} for v in values.values()],
    }
    assert rate_search(n2) == (
        "selection seeds 100, 101 from four rates (3.162e-3 to 1e-1), three of them per arm"
    )
    n2["arms"][0]["values"] = n2["arms"][0]["values"][:2]  # a pick at the grid's end: two
    assert rate_search(n2).endswith("two to three of them per arm")


def test_paired_sample_size_matches_the_normal_formula_by_hand():
    from momentum_interp.sweeps.selection import paired_sample_size

    # (1.959964 + 0.841621)² = 7.84888: σ² = δ² needs 8 seeds; σ² = 4 δ² needs ⌈31.40⌉ = 32
    assert paired_sample_size(0.02**2, 0.02) == 8
    assert paired_sample_size(4 * 0.02**2, 0.02) == 32
    assert paired_sample_size(0.0, 0.02) == 1


def test_the_detectable_difference_inverts_the_sample_size():
    """σ² = δ² asks for 7.85 seeds, so 7.85 seeds detect δ; N = 3's committed sizing (σ_d² =
    0.00283, capped at 10 seeds) detects (1.96 + 0.842) √(0.00283 / 10) ≈ 0.047 AUC."""
    from momentum_interp.narrative.gamma_study import seed_sizing
    from momentum_interp.sweeps.selection import detectable_difference, paired_sample_size

    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert detectable_difference(0.02**2, z * z) == pytest.approx(0.02)
    for variance in (1e-4, 2.8e-3, 1e-2):
        n = paired_sample_size(variance, 0.02)  # rounded up: detects 0.02 or a little less
        assert detectable_difference(variance, n) <= 0.02 < detectable_difference(variance, n - 1)
    sizing = {
        "alpha": 0.05,
        "power": 0.8,
        "detect_difference": 0.02,
        "difference_variance": 0.00283,
        "neighbour_pairs": 14,
        "n_needed": 56,
        "n_fresh_seeds": 10,
    }
    said = " ".join(seed_sizing({"sizing": sizing}).split())
    assert "asks for 56 seeds to detect 0.02 AUC" in said and "capped at 10" in said
    assert "detects about 0.047 AUC" in said and seed_sizing({"sizing": None}) == ""


def test_sized_fresh_stage_takes_the_first_n_seeds_from_the_neighbour_spread():
    text = BASE.replace("selection_seeds = [100]", "selection_seeds = [100, 101]").replace(
        "fresh_seeds = [0, 1]",
        "fresh_seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\ndetect_difference = 0.02\n"
        "min_fresh_seeds = 2",
    )
    spec = _spec(text)

    def auc(config, spread):
        # γ = 1 beats γ = 0 by 0.1 at lr 1e-2 (both arms pick it); the difference is
        # 0.1 + spread on seed 100 and 0.1 − spread on seed 101: its variance over the two
        # seeds is (2 spread)² / 2 = 2 spread² (the smeared key has no γ neighbour)
        lr, gamma, seed = config["train"]["lr"], config["model"]["gamma"], config["train"]["seed"]
        base = 0.5 if lr == 1e-2 else 0.3
        if config["model"].get("smeared_key") or gamma == 0.0:
            return base
        return base + 0.1 + (spread if seed == 100 else -spread)

    small = select(spec, _rows(spec, lambda c: auc(c, 0.005)))  # σ² = 5e-5: ⌈0.98⌉ = 1 → min 2
    assert small.sizing["difference_variance"] == pytest.approx(2 * 0.005**2)
    assert small.sizing["neighbour_pairs"] == 1 and small.sizing["n_needed"] == 1
    assert small.fresh_seeds == [0, 1]
    large = select(spec, _rows(spec, lambda c: auc(c, 0.02)))  # σ² = 8e-4: ⌈15.7⌉ = 16 → cap 10
    assert large.sizing["n_needed"] == 16 and large.fresh_seeds == list(range(10))
    middle = select(spec, _rows(spec, lambda c: auc(c, 0.01)))  # σ² = 2e-4: ⌈3.92⌉ = 4
    assert middle.fresh_seeds == [0, 1, 2, 3]
    fresh = spec.expand_fresh(middle.chosen, middle.fresh_seeds)
    assert {r.config["train"]["seed"] for r in fresh} == {0, 1, 2, 3} and len(fresh) == 3 * 4
    # no γ neighbour with two finite seeds: the spread is unknown, so every listed seed runs
    unknown = select(spec, _rows(spec, lambda c: None if c["model"]["gamma"] else 0.5))
    assert unknown.sizing["difference_variance"] is None and unknown.fresh_seeds == list(range(10))
    for bad in ("-1", "0", "true", "nan", "inf", '"0.02"'):
        with pytest.raises(ValueError, match="detect_difference"):
            _spec(text.replace("detect_difference = 0.02", f"detect_difference = {bad}"))
    with pytest.raises(ValueError, match="min_fresh_seeds"):
        _spec(text.replace("min_fresh_seeds = 2", "min_fresh_seeds = 11"))


def test_a_pending_depth_says_how_far_its_select_stage_is_and_what_the_floor_check_says():
    from momentum_interp.narrative.gamma_study import pending_depth_block

    def selection(missing, best, passed):
        arms = [{"values": [1e-3, 1e-2, 1e-1]}, {"values": [1e-3, 1e-2]}]  # 5 values × 2 seeds
        check = {"floor": 0.5, "best_final_accuracy": best, "best_run": "r", "passed": passed}
        return {
            "arms": arms,
            "selection_seeds": [100, 101],
            "missing_runs": missing,
            "fresh_seeds": [0, 1, 2, 3, 4, 5],
            "floor_check": check,
        }

    def text(*args, runs=None):
        return " ".join(pending_depth_block(*args, n_layers=3, command="CMD", runs=runs).split())

    assert "Not started" in text(None, None)
    running = text(None, selection(4, 0.312, False))
    assert "6 of the 10 selection runs" in running and "31.2 %" in running
    assert "needs one above 50 %" in running
    off = text(None, selection(0, 0.875, True))
    assert "Select stage complete (10 runs)" in off and "6 fresh seeds" in off
    assert "ends at 87.5 %" in off and "so far" not in off and "off the floor" in off
    # fresh progress counts finished runs on fresh seeds only (2 arms × 6 seeds listed)
    runs = pd.DataFrame({"train.seed": [100, 101, 0, 1, 1, 5, 7]})
    assert "4 of its 12 runs have results" in text(None, selection(0, 0.875, True), runs=runs)
    assert "0 of its 12 runs" in text(None, selection(0, 0.875, True), runs=runs.iloc[:0])
    floor = text(None, selection(0, 0.25, False))
    assert floor.startswith("At the floor") and "undecided" in floor and "25.0 %" in floor
    diverged = text(None, selection(0, None, False))  # every selection run diverged
    assert diverged.startswith("At the floor") and "no run has a final accuracy" in diverged
    older = selection(0, 0.9, True)
    del older["fresh_seeds"], older["floor_check"]  # a selection.json written before either
    assert text(None, older).startswith("Select stage complete (10 runs)")


def test_fungibility_says_when_more_depth_hurt_the_plain_model():
    """At N = 2 the 3-layer plain model scores below the 2-layer one (γ = 0): a sign it is
    under-tuned, said beside the fungibility decision, with the numbers from the study."""
    from momentum_interp.narrative.gamma_study import depth_decisions

    root = Path(__file__).resolve().parents[1]
    study = json.loads((root / "results/fair_gamma_star/n2/study.json").read_text())
    (depth,) = study["depths"]
    rows = [r for r in read_results(root / "results/fair_gamma_star/n2/results.jsonl")]
    fresh = set(depth["fresh_seeds"])

    def mean_auc(variant, n_layers, gamma):
        aucs = [
            r["auc_accuracy"]
            for r in rows
            if r["variant"] == variant
            and r["config"]["train"]["seed"] in fresh
            and r["config"]["model"]["n_layers"] == n_layers
            and r["config"]["model"]["gamma"] == gamma
        ]
        assert len(aucs) == len(fresh)
        return sum(aucs) / len(aucs)

    deeper, shallow = mean_auc("plain_deeper", 3, 0.0), mean_auc("qk_raw", 2, 0.0)
    assert deeper < shallow
    (bullet,) = [b for b in depth_decisions(depth, study["selection"]) if "Fungibility" in b]
    said = " ".join(bullet.split())
    assert f"(AUC {deeper:.3f} against {shallow:.3f} at γ = 0)" in said
    assert "under-tuned" in said
    # intervals that overlap: no flag, however the means compare
    shallow_ci = next(
        a["auc_ci"]
        for f in depth["families"]
        if f["family"] == "qk_raw"
        for a in f["arms"]
        if a["gamma"] == 0.0
    )
    depth["deeper_plain"] = {**depth["deeper_plain"], "auc_ci": [0.0, shallow_ci[0] + 1e-3]}
    (bullet,) = [b for b in depth_decisions(depth, study["selection"]) if "Fungibility" in b]
    assert "under-tuned" not in bullet


def test_the_rate_search_table_shows_every_searched_rate_and_bolds_the_pick():
    from momentum_interp.narrative.gamma_study import rate_search_table

    root = Path(__file__).resolve().parents[1]
    selection = json.loads((root / "results/fair_gamma_star/n2/selection.json").read_text())
    lines = rate_search_table(selection).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rates = [float(c) for c in header[3:]]
    assert rates == sorted({v for a in selection["arms"] for v in a["values"]})
    for arm, line in zip(selection["arms"], lines[2:], strict=True):
        cells = dict(zip(rates, [c.strip() for c in line.strip("|").split("|")][3:], strict=True))
        for rate, cell in cells.items():
            if rate not in arm["values"]:
                assert cell == "—"
                continue
            value = arm["criterion"][arm["values"].index(rate)]
            shown = f"{value:.3f}"
            assert cell == (f"**{shown}**" if rate == arm["chosen"] else shown)


def test_the_paper_verdict_says_whether_the_whole_tie_set_lies_on_one_side():
    """The interval covers seed noise only: the verdict bullet also says where the γ not
    distinguishable from the best lie, and weakens the verdict when one lies past the paper."""
    from momentum_interp.narrative.gamma_study import _tie_set_side

    def side(tied, paper, verdict):
        return _tie_set_side({"not_distinguishable": tied}, paper, verdict)

    assert side([-0.75, 0.25, 0.5], 2.5, "above") == (
        " and above every γ not distinguishable from the best (γ ≤ 0.5)"
    )
    assert side([1.0, 2.0], 0.5, "below") == (
        " and below every γ not distinguishable from the best (γ ≥ 1)"
    )
    past = side([-0.75, 0.5, 3.0], 2.5, "above")
    assert past.startswith(", but γ = 3, not distinguishable") and "does not rule" in past
    assert side([-0.75], 2.5, "above") == "" and side([1.0, 2.0], 1.5, "inside") == ""


def test_an_inside_verdict_says_when_its_interval_also_holds_no_shear():
    """An interval over the whole grid, or one that holds γ ≤ 0, holds the paper's 1.85 without
    singling it out: the verdict says so, and says nothing more where it is wholly positive."""
    from momentum_interp.narrative.gamma_study import verdict_text

    def text(interval, verdict="inside"):
        grid = [{"gamma": g} for g in (-0.75, -0.5, 0.0, 1.0, 2.0)]
        return verdict_text(
            {
                "paper_verdict": verdict,
                "paper_reason": None,
                "gamma_star_interval": interval,
                "arms": grid,
            }
        )

    whole = "inside the interval, which spans the whole γ grid: no evidence either way"
    assert text([-0.75, 2.0]) == whole
    assert text([-0.5, 2.0]) == "inside the interval, which holds γ ≤ 0 too"
    assert text([0.0, 2.0]) == "inside the interval, which holds γ ≤ 0 too"
    assert text([1.48, 2.0]) == "inside the interval"
    assert text([-0.75, -0.75], "above") == "above the interval"


def _law_depth(n_layers, gamma_star, tied=None, flag=None, reason=None):
    """A depth of study.json with only what the law across depths reads (q/k raw)."""
    family = {
        "family": "qk_raw",
        "gamma_star": gamma_star,
        "gamma_star_interval": [gamma_star, gamma_star],
        "gamma_star_flag": flag,
        "not_distinguishable": tied if tied is not None else [gamma_star],
        "paper_verdict": "undecided" if reason else "above",
        "paper_reason": reason,
    }
    return {"n_layers": n_layers, "families": [family]}


def test_the_law_across_depths_is_fitted_only_through_positive_interior_gamma_stars():
    from momentum_interp.analysis.gamma_law import law_across_depths

    def law(*depths):
        return law_across_depths(list(depths), "qk_raw")

    # every γ tied with the best ≤ 0 at N = 1: no law with a > 0 passes, whatever else
    excluded = law(_law_depth(1, -0.6, tied=[-0.6, -0.5]), _law_depth(2, 4.0, flag="grid_end"))
    assert (excluded.verdict, excluded.nonpositive, excluded.fit) == ("excluded", [1], None)
    # γ* < 0 with a positive γ tied (N = 2's raw shear): even the sign is open
    tied = law(_law_depth(1, 3.0), _law_depth(2, -0.75, tied=[-0.75, 0.25, 0.5]))
    assert (tied.verdict, tied.reason, tied.tied_sign) == ("undecided", "tied_sign", [2])
    end = law(_law_depth(1, 4.0, flag="grid_end"), _law_depth(2, 2.0), _law_depth(3, 1.5))
    assert (end.verdict, end.reason, end.at_grid_end) == ("undecided", "grid_end", [1])
    # two decided depths fit any a, b exactly: too few, and a depth without γ* is set aside
    two = law(_law_depth(1, 3.0), _law_depth(2, 2.0), _law_depth(3, 0.0, reason="no_effect"))
    assert (two.verdict, two.reason, two.undecided, two.fit) == ("undecided", "too_few", [3], None)
    # three positive interior points: log-log least squares, against numpy and t by hand
    n, gamma = np.array([1.0, 2.0, 3.0]), np.array([4.0, 2.7, 1.8])
    fitted = law(*(_law_depth(int(k), float(g)) for k, g in zip(n, gamma, strict=True)))
    b, log_a = np.polyfit(np.log(n), np.log(gamma), 1)
    x = np.log(n)
    residual = np.log(gamma) - (log_a + b * x)
    variance, sxx = residual @ residual / 1, ((x - x.mean()) ** 2).sum()
    se_b, se_log_a = math.sqrt(variance / sxx), math.sqrt(variance * (1 / 3 + x.mean() ** 2 / sxx))
    t = stats.t.ppf(0.975, 1)
    fit = fitted.fit
    assert math.isclose(fit.a, math.exp(log_a), rel_tol=1e-6) and math.isclose(
        fit.b, b, rel_tol=1e-6
    )
    assert np.allclose(fit.b_interval, [b - t * se_b, b + t * se_b], rtol=1e-5)
    a_interval = [math.exp(log_a - t * se_log_a), math.exp(log_a + t * se_log_a)]
    assert np.allclose(fit.a_interval, a_interval, rtol=1e-5)
    holds = a_interval[0] <= 4.17 <= a_interval[1] and b - t * se_b <= -0.74 <= b + t * se_b
    assert holds and fitted.verdict == "not_rejected"  # wide on one degree of freedom
    off = law(_law_depth(1, 1.0), _law_depth(2, 0.52), _law_depth(3, 0.33))  # a ≈ 1: far off
    assert off.verdict == "rejected" and off.fit.a_interval[1] < 4.17


def test_the_law_statement_says_each_verdict_and_why():
    from momentum_interp.analysis.gamma_law import law_across_depths
    from momentum_interp.narrative.gamma_depths import law_statement

    def said(*depths):
        return " ".join(law_statement(law_across_depths(list(depths), "qk_raw")).split())

    excluded = said(_law_depth(1, -0.6), _law_depth(2, -0.7, tied=[-0.7, 0.3]))
    assert "no law a·N^b with a > 0" in excluded and "at N = 1 every γ" in excluded
    assert excluded.endswith("≤ 0.")
    # the depth that excludes the law says where its rate search ended
    caveats = {1: "conditional on the rate search: γ = -0.6 chose the highest rate it tried"}
    law = law_across_depths([_law_depth(1, -0.6), _law_depth(2, -0.7, tied=[-0.7, 0.3])], "qk_raw")
    assert law_statement(law, caveats).endswith("≤ 0 (at N = 1, " + caveats[1] + ").")
    assert law_statement(law, {2: "conditional on …"}).endswith("≤ 0.")  # N = 2 does not exclude
    assert "even the law's sign is open" in said(_law_depth(1, 1.0), _law_depth(2, -0.5, [0.5]))
    assert "grid's end at N = 2" in said(_law_depth(1, 1.0), _law_depth(2, 2.0, flag="grid_end"))
    few = said(_law_depth(1, 3.0), _law_depth(2, 0.0, reason="floor"))
    assert "1 depth(s) decide γ*, and a fit needs 3" in few and "(N = 2 decide no γ*)" in few
    fitted = said(_law_depth(1, 4.0), _law_depth(2, 2.7), _law_depth(3, 1.8))
    assert "on 1 degree of freedom" in fitted and "are not rejected: inside both" in fitted


def test_the_across_depths_table_repeats_each_committed_depth():
    """One row per committed depth; its cells are the depth's own: both q/k shears' γ* and
    verdict as the depth's table shows them, the paper's γ*(N), the fungibility test's numbers."""
    from momentum_interp.narrative.gamma_depths import across_depths_block
    from momentum_interp.narrative.gamma_study import families_rows

    root = Path(__file__).resolve().parents[1]
    studies = {
        f"n{n}": json.loads(p.read_text()) if p.is_file() else None
        for n in (1, 2, 3)
        for p in [root / f"results/fair_gamma_star/n{n}/study.json"]
    }
    block = across_depths_block(**studies)
    rows = [line for line in block.splitlines() if line.startswith("| ") and line[2].isdigit()]
    present = [s for s in studies.values() if s is not None]
    assert len(rows) == len(present) >= 2
    for row, study in zip(rows, present, strict=True):
        (depth,) = study["depths"]
        _, own = families_rows(depth, study["selection"])  # the depth's own table
        by_shear = {r[0]: r for r in own}
        cells = [c.strip() for c in row.strip("|").split("|")]
        paper = 4.17 * depth["n_layers"] ** -0.74  # the paper's law, by hand
        assert cells[0] == str(depth["n_layers"]) and cells[1] == f"{paper:.3g}"
        for (vertex, verdict), shear in zip(
            [(cells[2], cells[3]), (cells[4], cells[5])], ["q/k raw", "q/k normalised"], strict=True
        ):
            assert (vertex, verdict) == (by_shear[shear][4], by_shear[shear][6])
        fung = depth["fungibility"]
        assert cells[6].startswith(f"{fung['mean_difference']:+.3f} AUC, p = {fung['p_value']:.2g}")
        assert ("undecided" in cells[6]) == depth["deeper_plain_at_floor"]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_each_committed_study_recomputes_from_its_rows(depth, tmp_path, monkeypatch):
    """`momentum-interp study` on a committed depth's own results.jsonl writes its committed
    study.json again (all but the provenance), from which the README and summary.md render."""
    from momentum_interp.cli import main

    root = Path(__file__).resolve().parents[1]
    committed = root / f"results/fair_gamma_star/n{depth}"
    (tmp_path / "results.jsonl").write_bytes((committed / "results.jsonl").read_bytes())
    monkeypatch.chdir(root)  # the spec path as the committed command gave it
    spec = f"configs/studies/fair_gamma_star_n{depth}.toml"
    assert main(["study", spec, "--results", str(tmp_path)]) == 0
    fresh, kept = (json.loads((d / "study.json").read_text()) for d in (tmp_path, committed))
    assert {k: v for k, v in fresh.items() if k != "provenance"} == {
        k: v for k, v in kept.items() if k != "provenance"
    }
