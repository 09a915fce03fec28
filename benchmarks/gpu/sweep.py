"""GPU suite part `sweep`: the two-sided γ*(N) study on the harder recall task at GPU size.

`python -m benchmarks.gpu.sweep OUT_DIR [--smoke]`. Depths up to 8, a wider model (d_model 64,
32 pairs, T = 256, 512 tokens) and a longer step budget (1000) than the CPU sweep
(`configs/sweeps/gamma_star_mqar.toml`); not yet timed on a GPU: a first unit (13 runs at N = 8)
is estimated at 1–3 minutes on an H200, so one run covers the first seed's deeper units and a
rerun into the same OUT_DIR continues where it stopped. Every γ of one (shear,
depth, seed) trains together, stacked and vmap-ed (`training.batched`). Units run seed by seed,
deepest first, and none starts unless it is expected to end within the time limit, so the part
ends inside its 7 minutes with whole units done. OUT_DIR gets, flat and as it goes:
results.jsonl (one line per finished run), sweep_spec.json, sweep_sessions.jsonl, and at the end
results.csv, fit.json and summary.md (γ* on the accuracy-curve AUC, q/k shear). `--smoke` runs a
tiny version in seconds on CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from momentum_interp.sweeps import SweepSpec, run_sweep

GAMMAS = [-0.75, -0.5, -0.25, 0.0, 0.25, 0.354, 0.5, 0.707, 1.0, 1.414, 2.0, 2.828, 4.0]
TIME_LIMIT_S = 330  # training; start-up, imports and the fit take the rest of the 7 minutes


def spec(smoke: bool) -> SweepSpec:
    """The GPU-sized grid, or (smoke) a 2-depth, 3-γ, 10-step version for CPU."""
    depths = [2, 1] if smoke else [8, 6, 4, 3, 2, 1]
    return SweepSpec.from_dict(
        {
            "name": "gamma_star_mqar_gpu" + ("_smoke" if smoke else ""),
            "model": {
                "d_model": 16 if smoke else 64,
                "d_head": 8 if smoke else 16,
                "n_heads": 2 if smoke else 4,
                "n_layers": 1,
                "attn_only": True,
                "normalization_type": "LN",
                "positional_embedding_type": "rotary",
                "shear": "qk",
                "shear_placement": "post_rope",
            },
            "task": {"name": "mqar", "d_vocab": 32, "n_pairs": 4, "seq_len": 16}
            if smoke
            else {"name": "mqar", "d_vocab": 512, "n_pairs": 32, "seq_len": 256},
            "train": {
                "steps": 10 if smoke else 1000,
                "batch_size": 8 if smoke else 64,
                "lr": 3e-3,
                "warmup_steps": 2 if smoke else 100,
                "eval_every": 5 if smoke else 50,
                "eval_batches": 1 if smoke else 4,
                "checkpoint_every": 10 if smoke else 1000,
                "device": "auto",
            },
            "grid": {
                "train.seed": [0] if smoke else [0, 1, 2],
                "model.n_layers": depths,
                "model.gamma": [-0.5, 0.0, 1.0] if smoke else GAMMAS,
            },
            "variants": [
                {"label": "momentum"},
                *({"label": "keys_only", "model.shear": "k", "model.n_layers": n} for n in (1, 2)),
                {
                    "label": "smeared_key",
                    "model.smeared_key": True,
                    "model.shear": "none",
                    "model.gamma": 0.0,
                },
            ],
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.sweep", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny version, seconds on CPU")
    args = parser.parse_args(argv)
    from momentum_interp.viz.scaling import write_scaling_report

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
