"""Sweeps: grid expansion, stable run ids, resume after SIGKILL, torn JSONL lines, Ray, fits."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentum_interp.analysis.scaling import (
    PAPER_A,
    PAPER_B,
    fit_power_law,
    fit_scaling,
    grid_log_sigma,
)
from momentum_interp.narrative.scaling import consistency_statement
from momentum_interp.narrative.scaling_blocks import probe_block, sweep_block
from momentum_interp.sweeps import (
    RESULTS_CSV,
    RESULTS_JSONL,
    SweepSpec,
    load_sweep,
    read_results,
    run_sweep,
)
from momentum_interp.viz.scaling import accuracy_vs_gamma

BASE = """
name = "tiny"
[model]
d_model = 16
d_head = 8
n_heads = 2
n_layers = 1
attn_only = true
positional_embedding_type = "rotary"
[task]
name = "associative_recall"
d_vocab = 16
n_pairs = 3
n_queries = 2
[train]
steps = {steps}
batch_size = 8
warmup_steps = 2
eval_every = {steps}
eval_batches = 1
checkpoint_every = 50
device = "cpu"
"""


def tiny_spec(grid: str, steps: int = 10, variants: str = "") -> SweepSpec:
    import tomllib

    text = BASE.format(steps=steps) + textwrap.dedent(grid) + textwrap.dedent(variants)
    return SweepSpec.from_dict(tomllib.loads(text))


GRID = """
[grid]
"model.gamma" = [0, 0.5, 1]
"train.seed" = [0, 1]
"""
VARIANTS = """
[[variants]]
label = "momentum"
[[variants]]
label = "smeared_key"
"model.smeared_key" = true
"model.shear" = "none"
"""


def test_grid_expansion_counts_and_overrides():
    spec = tiny_spec(GRID, variants=VARIANTS)
    runs = spec.expand()
    assert len(runs) == 3 * 2 * 2  # product × variants
    assert len({r.run_id for r in runs}) == len(runs)
    combos = {(r.variant, r.config["model"]["gamma"], r.config["train"]["seed"]) for r in runs}
    assert combos == {
        (v, g, s) for v in ("momentum", "smeared_key") for g in (0, 0.5, 1) for s in (0, 1)
    }
    for run in runs:
        smeared = run.variant == "smeared_key"
        assert run.config["model"].get("smeared_key", False) is smeared
        assert run.config["model"].get("shear", "qk") == ("none" if smeared else "qk")
        assert run.config["model"]["d_model"] == 16  # the base survives
        assert run.run_config().train.seed == run.overrides["train.seed"]
    assert spec.varying_paths() == ["model.gamma", "model.shear", "model.smeared_key", "train.seed"]


def test_variant_fixing_a_grid_axis_collapses_it():
    variants = VARIANTS.replace(
        '"model.shear" = "none"', '"model.shear" = "none"\n"model.gamma" = 0'
    )
    runs = tiny_spec(GRID, variants=variants).expand()
    assert len(runs) == 3 * 2 + 2  # the control runs once per seed, not once per γ


@pytest.mark.parametrize(
    "grid, bad",
    [
        ('"model.n_layerz" = [1, 2]', "model.n_layerz"),
        ('"optim.lr" = [0.1]', "optim.lr"),
        ('"train.sead" = [0]', "train.sead"),
        ('"task.n_pair" = [2]', "task.n_pair"),
        ('"gamma" = [1]', "gamma"),
    ],
)
def test_unknown_path_is_rejected_by_name(grid, bad):
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        tiny_spec("[grid]\n" + grid)


def test_unknown_variant_path_and_invalid_value(tmp_path):
    with pytest.raises(ValueError, match=r"model\.smeared"):
        tiny_spec(GRID, variants='[[variants]]\n"model.smeared" = true\n')
    with pytest.raises(ValueError, match="smeared_key"):  # valid path, invalid combination
        tiny_spec(GRID, variants='[[variants]]\n"model.smeared_key" = true\n').expand()
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.format(steps=10) + '[grid]\n"model.gama" = [1]\n')
    with pytest.raises(ValueError, match=r"bad\.toml.*model\.gama"):
        load_sweep(bad)


def test_run_ids_are_stable_and_distinct():
    a = tiny_spec('[grid]\n"model.gamma" = [0, 1]\n"train.seed" = [0, 1]\n')
    b = tiny_spec('[grid]\n"train.seed" = [1, 0]\n"model.gamma" = [1.0, 0.0]\n')
    key = lambda r: (float(r.config["model"]["gamma"]), r.config["train"]["seed"])
    ids_a = {key(r): r.run_id for r in a.expand()}
    ids_b = {key(r): r.run_id for r in b.expand()}
    assert ids_a == ids_b  # grid order and 1 vs 1.0 do not matter
    assert len(set(ids_a.values())) == 4
    # Writing out a default does not change the id; changing any value does.
    spelled = tiny_spec('[grid]\n"model.shear" = ["qk"]\n"model.gamma" = [1]\n"train.seed" = [0]\n')
    assert spelled.expand()[0].run_id == ids_a[(1.0, 0)]
    other = tiny_spec('[grid]\n"model.gamma" = [1]\n"train.seed" = [0]\n"train.lr" = [0.002]\n')
    assert other.expand()[0].run_id not in ids_a.values()


def _ids(out: Path) -> list[str]:
    return [row["run_id"] for row in read_results(out / RESULTS_JSONL)]


RESUME_GRID = '[grid]\n"model.gamma" = [0, 1]\n"train.seed" = [0, 1]\n'


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes via /proc")
def test_resume_after_sigkill(tmp_path):
    """SIGKILL the sweep (worker pool) after its first row; a rerun completes it exactly once."""
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(BASE.format(steps=300) + RESUME_GRID)
    out = tmp_path / "out"
    script = (
        "from momentum_interp.sweeps import run_sweep; "
        f"run_sweep({str(spec_path)!r}, {str(out)!r}, workers=1, progress=False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 120
    try:
        while not (out / RESULTS_JSONL).is_file() or not _ids(out):
            assert proc.poll() is None, "the sweep exited before recording a run"
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert workers, "the sweep runs its runs in worker processes"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    first = read_results(out / RESULTS_JSONL)
    assert 1 <= len(first) < 4, "the kill must land mid-sweep"
    # Orphaned workers stop by themselves rather than finish (and write) their runs.
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers):
        assert time.monotonic() < deadline, "a worker outlived the killed sweep"
        time.sleep(0.1)

    frame = run_sweep(spec_path, out, workers=0, progress=False)
    ids = _ids(out)
    expected = {r.run_id for r in load_sweep(spec_path).expand()}
    assert sorted(ids) == sorted(expected)  # every run exactly once
    assert read_results(out / RESULTS_JSONL)[: len(first)] == first  # old rows untouched
    csv = pd.read_csv(out / RESULTS_CSV)
    assert len(csv) == 4 and sorted(csv["run_id"]) == sorted(expected)
    assert len(frame) == 4
    assert {"model.gamma", "train.seed", "final_accuracy", "wall_time_s", "hostname"} <= set(csv)
    assert csv["final_accuracy"].between(0, 1).all()


def test_torn_trailing_line_is_ignored_and_the_run_redone(tmp_path):
    spec = tiny_spec('[grid]\n"train.seed" = [0, 1]\n')
    out = tmp_path / "out"
    run_sweep(spec, out, workers=0, progress=False)
    path = out / RESULTS_JSONL
    lines = path.read_text().splitlines(keepends=True)
    torn_id = json.loads(lines[-1])["run_id"]
    path.write_text(lines[0] + lines[1][: len(lines[1]) // 2])  # died mid-write
    assert _ids(out) == [json.loads(lines[0])["run_id"]]
    (out / "runs" / torn_id / "metrics.json").unlink()  # and the run itself is to be redone
    run_sweep(spec, out, workers=0, progress=False)
    ids = _ids(out)
    assert sorted(ids) == sorted(r.run_id for r in spec.expand()) and ids[-1] == torn_id
    assert path.read_text().endswith("\n")
    assert len(pd.read_csv(out / RESULTS_CSV)) == 2


def test_cli_sweep(tmp_path, capsys, monkeypatch):
    from momentum_interp.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(BASE.format(steps=10) + '[grid]\n"train.seed" = [0, 1]\n')
    out = tmp_path / "out"
    argv = ["sweep", str(spec), "--out", str(out), "--workers", "0", "--quiet"]
    assert main(argv) == 0
    assert "2 runs" in capsys.readouterr().out
    assert main(argv) == 0  # nothing left to do: still 2 rows
    assert len(pd.read_csv(out / RESULTS_CSV)) == 2 and len(_ids(out)) == 2
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    # --time-limit: minutes to the runner's limit; refused, before any work, off the local backend
    import momentum_interp.sweeps as sweeps

    seen = {}
    monkeypatch.setattr(sweeps, "run_sweep", lambda *a, **k: seen.update(k) or pd.DataFrame())
    assert main([*argv, "--time-limit", "90"]) == 0 and seen["time_limit_s"] == 5400.0
    assert main([*argv, "--time-limit", "90", "--backend", "ray"]) == 2
    assert "--time-limit needs the local backend" in capsys.readouterr().err
    assert main([*argv, "--time-limit", "0"]) == 2


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / RESULTS_JSONL
    path.write_text('{"run_id": "a"}\n{"run_id": \n{"run_id": "b"}\n')
    with pytest.raises(ValueError, match=":2 "):
        read_results(path)


def test_ray_backend_on_a_local_cluster(tmp_path):
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed (pip install 'momentum_interp[ray]')"
    )
    spec = tiny_spec('[grid]\n"model.gamma" = [0, 1]\n')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        frame = run_sweep(spec, tmp_path / "out", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert sorted(frame["run_id"]) == sorted(r.run_id for r in spec.expand())
    assert sorted(_ids(tmp_path / "out")) == sorted(frame["run_id"])
    assert frame["device"].eq("cpu").all()


def test_power_law_fit_recovers_known_values():
    n = np.array([1, 2, 3, 4, 6])
    exact = fit_power_law(n, 3.0 * n**-0.6)
    assert exact.a == pytest.approx(3.0, rel=1e-9) and exact.b == pytest.approx(-0.6, abs=1e-9)
    assert exact.a_interval == pytest.approx((3.0, 3.0), rel=1e-6)

    rng = np.random.default_rng(0)
    n = np.array([1, 2, 3, 4, 6, 8, 12, 16])
    noisy = fit_power_law(n, 3.0 * n**-0.6 * np.exp(rng.normal(0, 0.1, n.size)))
    assert noisy.a_interval[0] < 3.0 < noisy.a_interval[1]
    assert noisy.b_interval[0] < -0.6 < noisy.b_interval[1]
    assert noisy.a_interval[1] - noisy.a_interval[0] < 1.0  # and the interval is informative
    with pytest.raises(ValueError, match="γ\\* > 0"):
        fit_power_law([1, 2], [1.0, 0.0])


def synthetic_table(best: dict[int, float], grid=(0, 0.25, 0.5, 1, 2, 4, 8), seeds=3, noise=0.0):
    """Accuracy peaks (in log γ) at `best[N]`; the smeared-key control sits at 0.5."""
    rng = np.random.default_rng(1)
    rows = []
    for depth, peak in best.items():
        for seed in range(seeds):
            for g in grid:
                distance = abs(np.log2(max(g, 1 / 64)) - np.log2(peak))
                acc = 0.9 - 0.1 * distance + noise * rng.normal()
                rows.append(
                    {
                        "model.n_layers": depth,
                        "model.gamma": float(g),
                        "model.smeared_key": False,
                        "model.shear": "qk",
                        "train.seed": seed,
                        "final_accuracy": acc,
                        "final_loss": 1 - acc,
                    }
                )
            rows.append(
                {
                    "model.n_layers": depth,
                    "model.gamma": 0.0,
                    "model.smeared_key": True,
                    "model.shear": "none",
                    "train.seed": seed,
                    "final_accuracy": 0.5,
                    "final_loss": 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_fit_scaling_recovers_gamma_star_and_the_law():
    best = {1: 4.0, 2: 2.0, 4: 1.0, 8: 0.5}  # exactly γ* = 4 N^-1
    result = fit_scaling(synthetic_table(best), n_boot=200)
    assert [d.gamma_star for d in result.depths] == list(best.values())
    assert all(d.interval == (d.gamma_star, d.gamma_star) for d in result.depths)
    assert result.depths[0].smeared_key_criterion == pytest.approx(0.5)
    assert result.fit.a == pytest.approx(4.0) and result.fit.b == pytest.approx(-1.0)
    # γ* is only known to the grid's resolution (factor 2): the interval is not zero-width.
    assert grid_log_sigma((0, 0.5, 1, 2, 4), 1.0) == pytest.approx(np.log(2) / np.sqrt(12))
    assert result.fit.b_interval[0] < -1.2 and result.fit.b_interval[1] > -0.8

    rising = fit_scaling(synthetic_table({1: 0.25, 2: 0.5, 4: 1.0, 8: 2.0}), n_boot=200)
    assert rising.fit.b == pytest.approx(1.0)
    statement = consistency_statement(rising)
    assert "outside" in statement and "inconsistent" in statement

    # A depth whose best γ is 0 is reported and left out of the fit.
    zero = fit_scaling(synthetic_table({**best, 16: 1 / 64}), n_boot=200)
    assert zero.excluded == [16] and zero.fit.n_points == 4
    assert "At N = 16 γ* ≤ 0" in consistency_statement(zero)

    # The paper's own law, on a fine grid, is judged consistent.
    grid = tuple(np.round(2.0 ** np.arange(-3, 3.01, 0.125), 6))
    paper = {
        n: float(grid[np.argmin(abs(np.log(grid) - np.log(PAPER_A * n**PAPER_B)))])
        for n in (1, 2, 3, 4, 6)
    }
    consistent = fit_scaling(synthetic_table(paper, grid=(0, *grid)), n_boot=200)
    assert "is consistent" in consistency_statement(consistent)
    assert "consistency" not in consistent.to_dict()  # the numbers only; the words are narrative's


def test_saturated_accuracy_ties_go_to_the_lower_loss():
    table = synthetic_table({1: 1.0, 2: 0.5})
    table.loc[table["model.gamma"].isin([0.5, 1.0]), "final_accuracy"] = 1.0
    table.loc[table["model.gamma"].eq(0.5), "final_accuracy"] = 0.999  # within the tolerance
    table.loc[table["model.gamma"].eq(0.5), "final_loss"] = 0.01
    table.loc[table["model.gamma"].eq(1.0), "final_loss"] = 0.02
    depths = fit_scaling(table, n_boot=50).depths
    assert [d.gamma_star for d in depths] == [0.5, 0.5] and depths[0].n_tied == 2


def test_bootstrap_interval_widens_with_seed_noise():
    result = fit_scaling(synthetic_table({1: 2.0, 2: 1.0, 4: 0.5}, noise=0.08, seeds=4), n_boot=300)
    assert any(d.interval[0] < d.interval[1] for d in result.depths)
    for d in result.depths:
        assert d.interval[0] <= d.gamma_star <= d.interval[1]
        assert d.interval[0] in d.grid and d.interval[1] in d.grid
    assert result.bootstrap["n_valid"] > 0


def test_figures_and_cli_scaling(tmp_path):
    from momentum_interp.cli import main
    from momentum_interp.viz.scaling import accuracy_vs_gamma, gamma_star_vs_depth

    table = synthetic_table({1: 4.0, 2: 2.0, 4: 1.0})
    result = fit_scaling(table, n_boot=100)
    assert len(accuracy_vs_gamma(result, table).data) >= 6
    assert gamma_star_vs_depth(result).layout.xaxis.type == "log"
    csv = tmp_path / "results.csv"
    table.to_csv(csv, index=False)
    args = ["scaling", str(csv), "--out", str(tmp_path / "fit"), "--boot", "100", "--figures"]
    assert main(args) == 0
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["fit"]["a"] == pytest.approx(4.0) and "consistency" in fit
    page = (tmp_path / "fit" / "scaling.html").read_text()
    assert html.escape(fit["consistency"]) in page and page.count("Plotly.newPlot") == 2
    assert "<script src=" not in page
    summary = (tmp_path / "fit" / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3  # header + one row per depth


def test_model_report_gains_a_scaling_section_read_from_the_table(tmp_path):
    from momentum_interp import HookedMomentumTransformer, MomentumConfig
    from momentum_interp.cli import main

    cfg = MomentumConfig(
        d_model=16, d_head=8, n_layers=1, n_ctx=24, d_vocab=24, attn_only=True, seed=0
    )
    HookedMomentumTransformer(cfg).save_pretrained(tmp_path / "tiny")
    csv = tmp_path / "results.csv"
    synthetic_table({1: 0.5, 2: 1.0, 4: 2.0}).to_csv(csv, index=False)
    out = tmp_path / "report"
    args = ["report", str(tmp_path / "tiny"), "--sequences", "16", "--out", str(out)]
    assert main([*args, "--scaling", str(csv)]) == 0
    numbers = json.loads((out / "report.json").read_text())["scaling"]
    assert numbers["source"] == str(csv)
    assert [d["gamma_star"] for d in numbers["depths"]] == [0.5, 1.0, 2.0]
    assert numbers["fit"]["a"] == pytest.approx(0.5) and numbers["fit"]["b"] == pytest.approx(1.0)
    page = (out / "report.html").read_text()
    assert "the best momentum against depth" in page
    assert html.escape(numbers["consistency"]) in page
    assert "decided with each arm&#x27;s learning rate" in page  # the fair study's, by default too
    assert main([*args, "--no-scaling"]) == 0
    numbers = json.loads((out / "report.json").read_text())
    assert "scaling" not in numbers and "gamma_studies" not in numbers


def _two_sided_table() -> pd.DataFrame:
    """Depth 1: γ = 1 beats γ = 0.5 by far more than the seed noise (separated); depth 2: the top
    two non-zero γ are equal up to noise (not separated); depth 3: a smoothing γ = −0.5 wins.
    Keys-only rows hold the inverted criterion."""
    rows = []
    for depth, top in ((1, 1.0), (2, 0.5), (3, -0.5)):
        for seed in range(4):
            for g in (-0.5, 0.0, 0.5, 1.0):
                auc = {top: 0.8}.get(g, 0.4 + 0.05 * g) + 0.01 * (seed - 1.5)
                if depth == 2 and g == 1.0:
                    auc = 0.8 - 0.02 * (seed - 1.5)
                for shear in ("qk", "k"):
                    rows.append(
                        {
                            "model.n_layers": depth,
                            "model.gamma": g,
                            "model.smeared_key": False,
                            "model.shear": shear,
                            "train.seed": seed,
                            "auc_accuracy": auc if shear == "qk" else 1 - auc,
                            "final_loss": 0.0,
                        }
                    )
    return pd.DataFrame(rows)


def test_separation_shapes_and_keys_only_rows():
    table = _two_sided_table()
    result = fit_scaling(table, metric="auc_accuracy", tie_tol=0.0, n_boot=100)
    d1, d2, d3 = result.depths
    assert (d1.gamma_star, d1.runner_up, d1.separated) == (1.0, 0.5, True)
    assert d2.separated is False and {d2.gamma_star, d2.runner_up} == {0.5, 1.0}
    assert d3.gamma_star == -0.5 and result.excluded == [3]
    # The t interval of the mean by hand: depth 1, γ = 1 holds 0.8 + 0.01·(−1.5, −0.5, 0.5, 1.5).
    half = 3.182446 * 0.01 * np.std([-1.5, -0.5, 0.5, 1.5], ddof=1) / 2
    lo, hi = d1.mean_interval[d1.grid.index(1.0)]
    assert (lo, hi) == pytest.approx((0.8 - half, 0.8 + half), abs=1e-5)
    # The line through (1, 1), (2, 0.5 or 1), (3, −0.5) and the statement naming it.
    line = result.shapes["line"]
    expected = np.polyfit([1, 2, 3], [d.gamma_star for d in result.depths], 1)
    assert (line["d"], line["c"]) == pytest.approx(tuple(expected))
    statement = consistency_statement(result)
    assert "At N = 2 the criterion cannot separate" in statement and "A line" in statement
    # Keys-only rows are fitted separately: there the criterion is inverted, so γ* is not 1.
    keys = fit_scaling(table, metric="auc_accuracy", tie_tol=0.0, n_boot=50, shear="k")
    assert keys.depths[0].gamma_star != 1.0
    # Its figure's per-seed dots are the fit's own rows (q/k), not the keys-only ones beside them.
    dots = [t for t in accuracy_vs_gamma(result, table).data if t.name.endswith("seeds")]
    qk_auc = table[table["model.shear"] == "qk"].groupby("model.n_layers")["auc_accuracy"]
    for trace, (_, expected) in zip(dots, qk_auc, strict=True):
        assert sorted(trace.y) == sorted(expected)


def _floor_table() -> pd.DataFrame:
    """Depths 1 and 2 learn (γ* = 1 and 0.5, far above the rest); at depth 3 every γ sits at the
    floor, 0.05 plus seed noise, γ = 1 ahead by 0.002: far less than the noise."""
    top = {1: {1.0: 0.8}, 2: {0.5: 0.8}}
    return _table(
        {
            depth: {
                g: [
                    (0.05 + 0.002 * (g == 1.0) if depth == 3 else top[depth].get(g, 0.3))
                    + 0.01 * (seed - 1)
                    for seed in range(3)
                ]
                for g in (-0.5, 0.0, 0.5, 1.0, 4.0)
            }
            for depth in (1, 2, 3)
        }
    )


def test_a_depth_at_the_floor_has_no_best_gamma():
    result = fit_scaling(_floor_table(), metric="auc_accuracy", n_boot=100)
    d1, d2, d3 = result.depths
    # Intervals by hand: every γ holds mean ± t(0.975, 2)·0.01/√3 = ± 0.0248, so at depths 1–2
    # only γ* itself overlaps γ*, and at depth 3 every γ does.
    assert d1.plausible == [1.0] and d2.plausible == [0.5]
    assert d3.gamma_star == 1.0 and d3.plausible == [-0.5, 0.0, 0.5, 1.0, 4.0]
    assert (d1.beats_no_shear, d2.beats_no_shear, d3.beats_no_shear) == (True, True, False)
    # The floor depth enters neither the power law nor the line; the statement names it.
    assert result.no_effect == [3] and result.excluded == []
    assert result.fit.n_points == 2 and result.shapes["n_points"] == 2
    assert result.fit.a == pytest.approx(1.0) and result.fit.b == pytest.approx(-1.0)
    assert "At N = 3 the 95 % intervals of γ* > 0 and of γ = 0 overlap" in consistency_statement(
        result
    )
    # The paper's γ*(N): 4.17 at N = 1 lies past the grid's end, γ = 4, which scores 0.3 against
    # 0.8; 4.17·2^−0.74 = 2.49 lies between γ = 1 and 4, both at 0.3: measurably below γ* = 0.5.
    assert [d.paper_verdict for d in result.depths] == ["outside", "outside", "no_effect"]
    one_seed = fit_scaling(_floor_table().query("`train.seed` == 0"), metric="auc_accuracy")
    assert {d.paper_verdict for d in one_seed.depths} == {"untested"}
    assert all(d.plausible == [] and d.beats_no_shear is None for d in one_seed.depths)


def _table(values: dict[int, dict[float, list[float]]], metric: str = "auc_accuracy"):
    """Rows from {depth: {γ: [criterion per seed]}} (a shorter list: fewer seeds at that γ)."""
    return pd.DataFrame(
        {
            "model.n_layers": depth,
            "model.gamma": g,
            "model.smeared_key": False,
            "model.shear": "qk",
            "train.seed": seed,
            metric: value,
            "final_loss": -value,  # ties (final accuracy) go to the higher criterion
        }
        for depth, by_gamma in values.items()
        for g, per_seed in by_gamma.items()
        for seed, value in enumerate(per_seed)
    )


def test_the_papers_gamma_is_judged_by_its_grid_neighbours():
    low, top, near = [0.29, 0.30, 0.31], [0.79, 0.80, 0.81], [0.78, 0.79, 0.80]
    grid = (0.0, 0.5, 1.0, 2.0, 2.828, 4.0)

    def verdict(by_gamma: dict[float, list[float]], depth: int = 2) -> str:
        table = _table({depth: {g: by_gamma.get(g, low) for g in grid}})
        return fit_scaling(table, metric="auc_accuracy", n_boot=20).depths[0].paper_verdict

    # N = 2: the paper's 2.49 lies between γ = 2 and 2.828.
    assert verdict({2.0: top, 2.828: near}) == "inside"  # both neighbours as good as γ*
    assert verdict({2.0: top}) == "inside"  # γ* itself is a neighbour
    assert verdict({0.5: top, 1.0: near}) == "outside"  # both neighbours measurably below
    assert verdict({0.5: top, 2.828: near}) == "inside"  # one neighbour as good: not excluded
    # N = 1: the paper's 4.17 lies past the grid's end, 4.
    assert verdict({4.0: top}, depth=1) == "beyond_grid"
    assert verdict({1.0: top}, depth=1) == "outside"
    # γ* measured once while the rest have three seeds: no interval, nothing judged.
    assert verdict({2.0: [0.9], 2.828: near}) == "untested"
    # γ = 0 measured once: whether γ* beats it is untested, so the depth still counts.
    table = _table({2: {g: [0.3] if g == 0 else ({2.0: top}.get(g, low)) for g in grid}})
    result = fit_scaling(table, metric="auc_accuracy", n_boot=20)
    (depth,) = result.depths
    assert depth.beats_no_shear is None and result.no_effect == [] and depth.has_interval
    assert depth.plausible == [2.0] and depth.paper_verdict == "inside"
    # γ* at the bottom of the grid is at its edge too (the optimum may lie below it).
    bottom = fit_scaling(_table({1: {-0.75: top, 0.0: low, 1.0: low}}), metric="auc_accuracy")
    assert bottom.depths[0].at_grid_edge and "At N = 1 γ* is at an end" in consistency_statement(
        bottom
    )


def test_final_accuracy_ties_count_as_not_distinguishable():
    # Seeds pinned at the ceiling give zero-width intervals; γ = 0.5 and 1 tie within 0.5 points,
    # so neither is measurably below the other, whichever the loss picks.
    table = _table(
        {1: {0.0: [0.1] * 3, 0.5: [0.998] * 3, 1.0: [1.0] * 3, 2.0: [0.9] * 3}},
        metric="final_accuracy",
    )
    (depth,) = fit_scaling(table, n_boot=20).depths
    assert depth.gamma_star == 1.0 and depth.plausible == [0.5, 1.0]
    assert depth.below_gamma_star(2.0) is True and depth.beats_no_shear is True


def test_time_guard_estimates_each_unit_from_units_of_its_size(monkeypatch, tmp_path):
    # A stacked unit takes 20 ms per layer-run, a single run 100 ms (5× slower per run, as an
    # unbatched run on a GPU). Units: 2 × 1 layer (40 ms), 1 × 1 layer (100 ms), 2 × 1 layer, then
    # 2 × 8 layers (320 ms), with 100 ms to spare after the first three. The third starts only
    # because it is judged by the first (40 ms), not by the single run's rate (200 ms); the deep
    # one is judged per layer (320 ms), not by the longest unit so far (100 ms), and does not.
    from types import SimpleNamespace

    from momentum_interp.sweeps import backends

    def fake_unit(configs, names, dirs, one_thread):
        per_layer = 0.02 if len(configs) > 1 else 0.1
        time.sleep(per_layer * sum(c["model"]["n_layers"] for c in configs))
        return [{"auc_accuracy": 0.5} for _ in configs]

    monkeypatch.setattr(backends, "execute_unit", fake_unit)
    shapes = ((2, 1), (1, 1), (2, 1), (2, 8))  # (runs, layers)
    units = [
        [
            SimpleNamespace(
                run_id=f"{i}-{j}", config={"model": {"n_layers": n}, "train": {"steps": 100}}
            )
            for j in range(runs)
        ]
        for i, (runs, n) in enumerate(shapes)
    ]
    deadline = time.monotonic() + 0.04 + 0.1 + 0.04 + 0.1
    outcomes = list(backends.run_local(units, tmp_path, lambda r: r.run_id, 0, deadline))
    assert [run.run_id for run, _, _ in outcomes] == ["0-0", "0-1", "1-0", "2-0", "2-1"]
    assert time.monotonic() < deadline  # it stopped before the deadline, not after it
    assert backends.unit_cost(units[3]) == 8 * backends.unit_cost(units[0])


def test_batched_sweep_matches_one_run_at_a_time(tmp_path):
    from momentum_interp.sweeps.backends import plan_units

    spec = tiny_spec(GRID, steps=12, variants=VARIANTS)
    units = plan_units(spec.expand(), batch_runs=2)
    # Per seed and variant, 3 γ → units of 2 + 1 (VARIANTS leaves γ on the smeared-key runs).
    assert sorted(len(u) for u in units) == [1] * 4 + [2] * 4
    assert all(len({r.config["train"]["seed"] for r in u}) == 1 for u in units)
    one = run_sweep(spec, tmp_path / "one", workers=0, progress=False)
    together = run_sweep(spec, tmp_path / "together", workers=0, progress=False, batch_runs=3)
    one, together = (t.set_index("run_id").sort_index() for t in (one, together))
    assert list(one.index) == list(together.index)
    np.testing.assert_allclose(together["final_loss"], one["final_loss"], rtol=1e-5)
    assert (together["final_accuracy"] == one["final_accuracy"]).all()
    assert set(together["batched_with"].dropna()) == {3.0}
    with pytest.raises(ValueError, match="batch_runs"):
        plan_units(spec.expand(), batch_runs=0)


def test_a_diverged_run_is_a_result_with_no_criterion_alone_or_batched(tmp_path):
    spec = tiny_spec('[grid]\n"model.gamma" = [0, 1e30, 1]\n', steps=6)
    one = run_sweep(spec, tmp_path / "one", workers=0, progress=False)  # no SweepError
    together = run_sweep(spec, tmp_path / "together", workers=0, progress=False, batch_runs=3)
    for table in (one, together):
        table = table.set_index("model.gamma")
        assert table["diverged"].tolist() == [False, True, False]
        assert table.loc[1e30, "diverged_step"] == 1
        assert table.loc[1e30, ["final_accuracy", "auc_accuracy", "final_loss"]].isna().all()
        assert table.loc[[0, 1], "final_accuracy"].between(0, 1).all()
    rows = {
        r["config"]["model"]["gamma"]: r for r in read_results(tmp_path / "one" / RESULTS_JSONL)
    }
    assert rows[1e30]["diverged"] is True and rows[1e30]["final_accuracy"] is None
    assert rows[1e30]["steps_trained"] == 0 and rows[0]["diverged"] is False


def test_sweep_block_reads_the_fits():
    # The README block of the two-sided sweep: its rows carry the per-depth means (computed here
    # by hand from the table), the separation verdicts and the paper's γ*(N) beside ours.
    table = _two_sided_table()
    qk = fit_scaling(table, metric="auc_accuracy", tie_tol=0.0, n_boot=100)
    keys = fit_scaling(table, metric="auc_accuracy", tie_tol=0.0, n_boot=100, shear="k")
    table["final_accuracy"] = np.where(table["model.gamma"] == 1.0, 1.0, 0.5)
    # the learned smeared key: far above γ* at N = 1 (intervals apart), above it by the mean
    # only at N = 3 (its seeds spread widely), below it at N = 2
    smeared = [
        {
            "model.n_layers": depth,
            "model.gamma": 0.0,
            "model.smeared_key": True,
            "model.shear": "none",
            "train.seed": seed,
            "auc_accuracy": auc + spread * (seed - 1.5),
            "final_loss": 0.0,
            "final_accuracy": 0.5,
        }
        for depth, auc, spread in ((1, 0.95, 0.001), (2, 0.1, 0.001), (3, 0.85, 0.2))
        for seed in range(4)
    ]
    with_control = pd.concat([table, pd.DataFrame(smeared)], ignore_index=True)
    qk = fit_scaling(with_control, metric="auc_accuracy", tie_tol=0.0, n_boot=100)
    block = sweep_block(qk, keys, {"n_runs": 100}, table.iloc[:96])
    rows = [line.split(" | ") for line in block.splitlines() if line.startswith("| q/k")]
    assert [r[1] for r in rows] == ["1", "2", "3"]
    qk_rows = table[table["model.shear"] == "qk"]
    for row, depth in zip(rows, (1, 2, 3), strict=True):
        at = qk_rows[qk_rows["model.n_layers"] == depth].groupby("model.gamma")["auc_accuracy"]
        gamma_star = float(row[3])
        assert float(row[4].split()[0]) == pytest.approx(at.mean()[gamma_star], abs=5e-4)
        assert float(row[8].split()[0]) == pytest.approx(at.mean()[0.0], abs=5e-4)
    assert [r[7] for r in rows] == ["yes", "no", "yes"]
    assert sum(line.startswith("| keys only") for line in block.splitlines()) == 3
    prose = " ".join(block.split())
    assert "Partial sweep: 96 of 100 runs" in prose
    assert "smoothing (γ < 0) ranks first at N = 3; sharpening (γ > 0) at N = 1, 2" in prose
    # N = 3: γ* = −0.5 is alone; the paper's 1.85 lies past the grid's end, 1, which scores
    # measurably below it. At N = 1, 2 that end is γ* (or ties with it): undecided.
    assert "below γ* at N = 3 (paper 1.85; not distinguishable from γ*: γ ∈ {-0.5})" in prose
    assert "undecided at N = 1, 2 (the paper's γ lies past the grid's end" in prose
    assert "1 γ at N = 1 (best 100.0 %)" in prose and "reached at 3 of 3 depths" in prose
    assert "beats the q/k shear's best γ at N = 1 (intervals apart)" in prose
    assert "mean AUC is above the q/k shear's best γ's at N = 3 (0.85 against 0.80)" in prose


def test_committed_two_sided_sweep_rows_keep_their_run_ids():
    # The γ* sweep runs over several sessions and resumes by run id, a hash of the full config
    # with every default filled in. A new config field or a changed default changes every id, and
    # the sweep would silently start again: this fails first, so the change can be reconsidered
    # (or the committed rows rerun on purpose).
    root = Path(__file__).resolve().parents[1]
    rows = read_results(root / "results" / "scaling_mqar" / "sweep" / RESULTS_JSONL)
    ids = {
        run.run_id
        for run in load_sweep(root / "configs" / "sweeps" / "gamma_star_mqar.toml").expand()
    }
    assert len(ids) == 288
    lost = [row["run_id"] for row in rows if row["run_id"] not in ids]
    assert not lost, f"{len(lost)} committed runs no longer match the spec's run ids"


PROBE_CONFIG, PROBE_OUT = "configs/sweeps/probe.toml", "results/probe/"


def test_probe_block_reads_the_probe_beside_the_sweep():
    # A 2,000-step probe at N = 2 against the 600-step sweep's N = 2, seed 0: γ = 0.5 and 1 end
    # above 50 % (0.5 with the higher AUC), the rest stay at the floor.
    def rows(steps, final, auc, seed=0):
        out = [
            {
                "model.n_layers": 2,
                "model.gamma": g,
                "model.smeared_key": False,
                "model.shear": "qk",
                "train.seed": seed,
                "train.steps": steps,
                "final_accuracy": final.get(g, 0.08),
                "auc_accuracy": auc.get(g, 0.06),
            }
            for g in (-0.5, 0.0, 0.5, 1.0, 2.0)
        ]
        smeared = {**out[0], "model.gamma": 0.0, "model.smeared_key": True}
        return pd.DataFrame([*out, smeared | {"model.shear": "none", "final_accuracy": 0.9}])

    probe = rows(2000, {0.5: 0.95, 1.0: 0.6}, {0.5: 0.5, 1.0: 0.3})
    sweep = pd.concat([rows(600, {0.5: 0.26}, {}), rows(600, {0.5: 0.99}, {}, seed=1)])
    block = " ".join(probe_block(probe, sweep, PROBE_CONFIG, PROBE_OUT).split())
    assert "trained 2000 steps instead of 600" in block
    assert "2 of 5 q/k γ reach 50 % final accuracy (γ ∈ {0.5, 1})" in block
    assert "highest AUC is at γ = 0.5 (0.500, against 0.060 at γ = 0 and 0.060 for" in block
    assert "| 0.5 | 95.0 % | 0.500 | 26.0 % |" in probe_block(
        probe, sweep, PROBE_CONFIG, PROBE_OUT
    )  # seed 0 only


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parents[1] / "configs").glob("s*/*.toml")),  # sweeps/, studies/
    ids=lambda p: p.stem,
)
def test_every_committed_sweep_spec_expands(path):
    spec = load_sweep(path)
    runs = spec.expand("select" if spec.protocol else None)
    assert runs and len({r.run_id for r in runs}) == len(runs)
