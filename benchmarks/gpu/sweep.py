"""GPU suite part `sweep`: the CPU sweep's two-sided γ*(N) study, wider and trained longer.

`python -m benchmarks.gpu.sweep OUT_DIR [--smoke]`. The CPU sweep's spec, read from
`configs/sweeps/gamma_star_mqar.toml` (the same recall task: 8 pairs, T = 128, 256 tokens; the
same 13 γ and 3 seeds), with `GPU_SIZE` laid over it: twice the width (d_model 64, 4 heads),
twice the batch (64) and 5× the steps (3,000). On CPU, 600 steps left every momentum γ near the
floor from N = 2 on while the smeared key learned; a one-seed probe at N = 2 with 2,000 steps
lifted most of them (`results/scaling_mqar/depth2_long/`), so the longer budget should let γ
values separate at depth. Order: seed by seed (so a part cut short holds whole replicates); within a
seed, depth by depth (N = 2, 3, 4, 6, 8, then 1, which the CPU sweep already decides), each
depth's smeared-key control (and, at N ≤ 2, keys-only units) right after its q/k units. Every
γ of one (shear, depth, seed) trains together, stacked and vmap-ed (`training.batched`).

Not yet timed on a GPU. After the first unit, none starts unless it is expected to end within
the time limit (`sweeps.backends.run_local`: per layer-run-step, from units of its size), and a
rerun into the same OUT_DIR continues where it stopped. OUT_DIR gets, flat and as it goes:
results.jsonl (one line per finished run), sweep_spec.json, sweep_sessions.jsonl, and at the end
results.csv, fit.json and summary.md (γ* on the accuracy-curve AUC, q/k shear). `--smoke` runs
a tiny version in seconds on CPU.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from momentum_interp.paths import REPO_ROOT
from momentum_interp.sweeps import SweepSpec, load_sweep, run_sweep

CPU_SPEC = REPO_ROOT / "configs" / "sweeps" / "gamma_star_mqar.toml"  # the experiment it widens
DEPTHS = [2, 3, 4, 6, 8, 1]  # where the CPU sweep could not decide first; N = 1 last
TIME_LIMIT_S = 330  # training; start-up, imports and the fit take the rest of the 7 minutes
GPU_SIZE = {  # what changes from the CPU sweep
    "model": {"d_model": 64, "d_head": 16, "n_heads": 4},
    "train": {
        "steps": 3000,
        "batch_size": 64,
        "warmup_steps": 150,
        "eval_every": 150,
        "checkpoint_every": 3000,
        "device": "auto",
    },
}
SMOKE_SIZE = {  # seconds on CPU
    "model": {"d_model": 16, "d_head": 8, "n_heads": 2},
    "task": {"d_vocab": 32, "n_pairs": 4, "seq_len": 16},
    "train": {
        "steps": 10,
        "batch_size": 8,
        "warmup_steps": 2,
        "eval_every": 5,
        "eval_batches": 1,
        "checkpoint_every": 10,
        "device": "auto",
    },
}


def _variants(depths: list[int]) -> list[dict]:
    """Per depth in order: its q/k units, the smeared-key control and (N ≤ 2) keys-only units."""
    out = []
    for n in depths:
        out.append({"label": "momentum", "model.n_layers": n})
        out.append(
            {
                "label": "smeared_key",
                "model.n_layers": n,
                "model.smeared_key": True,
                "model.shear": "none",
                "model.gamma": 0.0,
            }
        )
        if n <= 2:
            out.append({"label": "keys_only", "model.n_layers": n, "model.shear": "k"})
    return out


def spec(smoke: bool) -> SweepSpec:
    """The CPU sweep's spec at GPU size (or, smoke, a 2-depth, 3-γ, 10-step version for CPU):
    its base config and γ grid with `GPU_SIZE` laid over them, depth by depth (`_variants`)."""
    cpu = load_sweep(CPU_SPEC)
    base = copy.deepcopy(cpu.base)
    for table, values in (SMOKE_SIZE if smoke else GPU_SIZE).items():
        base[table].update(values)
    return SweepSpec(
        name=cpu.name + ("_gpu_smoke" if smoke else "_gpu"),
        base=base,
        grid={  # the depth is each variant's (see `_variants`)
            "train.seed": [0] if smoke else cpu.grid["train.seed"],
            "model.gamma": [-0.5, 0.0, 1.0] if smoke else cpu.grid["model.gamma"],
        },
        variants=_variants([2, 1] if smoke else DEPTHS),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.sweep", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny version, seconds on CPU")
    args = parser.parse_args(argv)
    from momentum_interp.narrative.scaling import write_scaling_report

    started = time.monotonic()
    sweep = spec(args.smoke)
    n_gammas = len(sweep.grid["model.gamma"])
    with tempfile.TemporaryDirectory() as runs_dir:  # run directories stay out of OUT_DIR
        run_sweep(
            sweep,
            args.out_dir,
            workers=0,
            progress=False,
            runs_dir=runs_dir,
            batch_runs=n_gammas,
            time_limit_s=None if args.smoke else TIME_LIMIT_S,
        )
    paths = write_scaling_report(
        args.out_dir / "results.csv", args.out_dir, n_boot=500, metric="auc_accuracy"
    )
    print(paths["statement"])
    print(f"sweep part done in {time.monotonic() - started:.0f} s: {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
