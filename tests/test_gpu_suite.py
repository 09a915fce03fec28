"""`scripts/gpu_suite.sh PART OUT --smoke` for every part: it runs, and its output is flat, at most
8 files, each under 16 MiB and valid JSON where it says so."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from momentum_interp import HookedMomentumTransformer
from momentum_interp.narrative.lm import gpu_lm_block

ROOT = Path(__file__).resolve().parents[1]
PARTS = sorted(p.stem for p in (ROOT / "benchmarks" / "gpu").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("part", PARTS)
def test_smoke_run_writes_the_promised_layout(part, tmp_path):
    out = tmp_path / "out"
    env = os.environ | {"PYTHON": sys.executable, "WHEELHOUSE": ""}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_suite.sh"), part, str(out), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = list(out.iterdir())
    assert 1 <= len(files) <= 8
    assert all(f.is_file() for f in files)  # flat
    assert all(f.stat().st_size < 16 * 2**20 for f in files)
    results = {f.name: json.loads(f.read_text()) for f in files if f.suffix == ".json"}
    if part == "bench":  # a number for every variant in both modes, and the interpretability calls
        bench = results["bench.json"]
        for mode in ("compiled", "eager"):
            for name, record in bench[mode]["variants"].items():
                assert record["tokens_per_s"] > 0, (mode, name)
            assert len(bench[mode]["variants"]) == 5
        assert bench["interpretability"]["run_with_cache_every_hook"]["over_forward"] > 0
        assert bench["interpretability"]["score_heads_100_sequences"]["first_s"] > 0
    if part == "lm":
        check_lm(out, results["lm.json"])
    if part == "sweep":
        check_sweep(out, results["fit.json"])


def check_sweep(out: Path, fit: dict) -> None:
    """2 depths × 3 γ (q/k, trained together), keys-only at N = 1 and 2 (3 γ each), the smeared
    key at both depths; fitted on the accuracy curve's AUC."""
    assert {"results.jsonl", "results.csv", "fit.json", "summary.md"} <= {
        p.name for p in out.iterdir()
    }
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 6 + 6 + 2
    assert table["auc_accuracy"].between(0, 1).all()
    assert set(table.loc[table["variant"] == "momentum", "batched_with"]) == {3}
    assert fit["metric"] == "auc_accuracy" and len(fit["depths"]) == 2


def check_lm(out: Path, lm: dict) -> None:
    """Five runs, in order (the reference second), on one token budget with finite metrics and
    gaps to baseline-3S; the S checkpoints, one file each, load back and reproduce their model's
    recorded logits."""
    runs = lm["runs"]
    assert list(runs) == ["baseline-S", "baseline-3S", "momentum-S", "smeared-key-S", "keys-only-S"]
    for name, run in runs.items():
        assert run["status"] == "done" and run["tokens"] == lm["token_budget"]["tokens_per_model"]
        assert run["tokens_per_s"] > 0 and run["wall_s"] > 0
        metrics = [run["metrics"][m] for m in ("val_loss", "induction_loss", "icl_score")]
        assert all(math.isfinite(x) for x in metrics), name
        ref = runs["baseline-3S"]["metrics"]["val_loss"]
        assert lm["gaps"][name]["val_loss"] == pytest.approx(run["metrics"]["val_loss"] / ref - 1)
        assert set(lm["gaps"][name]) == {"val_loss", "induction_loss", "icl_score_diff"}
        assert 0 < run["n_params_non_embedding"] < run["n_params"]
    assert "no_gaps" not in lm
    assert runs["baseline-3S"]["n_params"] > 1.5 * runs["baseline-S"]["n_params"]
    assert lm["params_ratio_3S_S"] == {
        k: runs["baseline-3S"][k] / runs["baseline-S"][k]
        for k in ("n_params", "n_params_non_embedding")
    }
    assert lm["eval"]["icl_windows"] == [[3, 9], [57, 63]]  # fractions of T = 64, as in scoring
    assert lm["corpus"]["corpus_matches_manifest"] is None  # the smoke has no manifest corpus
    assert lm["corpus"]["tokens_match_manifest"] is None
    models = {name: run["config"]["model"] for name, run in runs.items()}
    assert models["momentum-S"]["shear"] == "qk" and models["keys-only-S"]["shear"] == "k"
    assert models["smeared-key-S"]["smeared_key"] and models["baseline-S"]["shear"] == "none"
    packed = sorted(p.name for p in out.glob("*.safetensors"))
    assert packed == sorted(f"code-{name}.safetensors" for name in runs if name.endswith("-S"))
    for name in packed:
        model = HookedMomentumTransformer.from_pretrained(out / name, device="cpu")
        probe = runs[name.removeprefix("code-").removesuffix(".safetensors")]["probe"]
        with torch.no_grad():
            logits = model(torch.tensor([probe["tokens"]]))[0, -1, :8]
        assert torch.allclose(logits, torch.tensor(probe["logits_last_8"]), atol=1e-5), name
        assert model.tokenizer is not None
    summary = (out / "summary.md").read_text()
    assert all(f"| {name} |" in summary for name in runs)
    log = [json.loads(line) for line in (out / "lm_log.jsonl").read_text().splitlines()]
    assert [e["run"] for e in log if e["event"] == "end"] == list(runs)
    # The README block a committed GPU run would get: every run's numbers, as lm.json has them.
    manifest = json.loads((ROOT / "assets" / "code_corpus" / "manifest.json").read_text())
    block = gpu_lm_block(manifest, lm)
    table = {r.split(" | ")[0]: r.split(" | ") for r in block.splitlines() if r.startswith("| `")}
    for name, run in runs.items():
        row = table[f"| `{name}`"]
        assert float(row[4]) == pytest.approx(run["metrics"]["val_loss"], abs=5e-4)
        assert float(row[8]) == pytest.approx(run["metrics"]["icl_score"], abs=5e-4)
    assert "Not run on a GPU yet" in gpu_lm_block(manifest, None)


def test_unknown_part_exits_2(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_suite.sh"), "nope", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "bench" in done.stderr


def test_repository_corpus_and_wheelhouse_fit_the_suites_60_mib():
    # What travels to the GPU machine: the repository (as `git archive` packs it), the code corpus
    # (its manifest's size) and the wheelhouse (17.6 MiB measured, scripts/README.md; 18 allowed).
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    manifest = json.loads((ROOT / "assets" / "code_corpus" / "manifest.json").read_text())
    total = len(archive.stdout) + manifest["corpus"]["bytes"] + 18 * 2**20
    assert total <= 60 * 2**20, f"{total / 2**20:.1f} MiB: trim the repository or the corpus"


def test_the_gpu_sweep_is_the_cpu_sweep_wider_and_longer():
    # Two sizes of one experiment: the same task and γ grid as the committed CPU sweep, a wider
    # model, more steps; seed by seed, and within a seed N = 2 first (where the CPU sweep sat at
    # the floor), each depth's smeared-key control right after its q/k units.
    from benchmarks.gpu.sweep import spec
    from momentum_interp.sweeps import load_sweep
    from momentum_interp.sweeps.backends import plan_units

    cpu, gpu = load_sweep(ROOT / "configs" / "sweeps" / "gamma_star_mqar.toml"), spec(False)
    assert gpu.base["task"] == cpu.base["task"]
    assert gpu.grid["model.gamma"] == cpu.grid["model.gamma"]
    assert gpu.base["model"]["d_model"] == 2 * cpu.base["model"]["d_model"]
    assert gpu.base["train"]["steps"] == 5 * cpu.base["train"]["steps"]
    units = plan_units(gpu.expand(), batch_runs=13)
    first_seed = [u for u in units if u[0].config["train"]["seed"] == 0]
    assert len(first_seed) == len(units) // 3
    order = [
        (u[0].config["model"]["n_layers"], u[0].config["model"]["shear"], len(u))
        for u in first_seed
    ]
    assert order[:3] == [(2, "qk", 13), (2, "none", 1), (2, "k", 13)]
    assert [n for n, shear, _ in order if shear == "qk"] == [2, 3, 4, 6, 8, 1]
    assert [n for n, shear, _ in order if shear == "k"] == [2, 1]
