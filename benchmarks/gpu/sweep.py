"""GPU suite part `sweep`: the CPU sweep's two-sided γ*(N) study, wider and trained longer.

`python -m benchmarks.gpu.sweep OUT_DIR [--smoke]`. The same recall task as the CPU sweep
(`configs/sweeps/gamma_star_mqar.toml`: 8 pairs, T = 128, 256 tokens) and the same 13 γ, at
twice the width (d_model 64, 4 heads), twice the batch (64) and 5× the steps (3,000): on CPU,
600 steps left every momentum γ near the floor from N = 2 on while the smeared key learned, so
the question at depth is whether a longer budget lifts them. Order: seed by seed (so a part cut
short holds whole replicates); within a seed, depth by depth (N = 2, 3, 4, 6, 8, then 1, which
the CPU sweep already decides), each depth's smeared-key control (and, at N ≤ 2, keys-only
units) right after its q/k units. Every γ of one (shear, depth,
seed) trains together, stacked and vmap-ed (`training.batched`). Not yet timed on a GPU: no unit
starts unless it is expected to end within the time limit, judged from the units before it per
layer-run-step (`sweeps.backends.unit_cost`), and a rerun into the same OUT_DIR continues where
it stopped. OUT_DIR gets, flat and as it goes: results.jsonl (one line per finished run),
sweep_spec.json, sweep_sessions.jsonl, and at the end results.csv, fit.json and summary.md (γ* on
the accuracy-curve AUC, q/k shear). `--smoke` runs a tiny version in seconds on CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from momentum_interp.sweeps import SweepSpec, run_sweep

GAMMAS = [-0.75, -0.5, -0.25, 0.0, 0.25, 0.354, 0.5, 0.707, 1.0, 1.414, 2.0, 2.828, 4.0]
TIME_LIMIT_S = 330  # training; start-up, imports and the fit take the rest of the 7 minutes


DEPTHS = [2, 3, 4, 6, 8, 1]  # where the CPU sweep could not decide first; N = 1 last


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
    """The GPU-sized grid, or (smoke) a 2-depth, 3-γ, 10-step version for CPU."""
    depths = [2, 1] if smoke else DEPTHS
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
            else {"name": "mqar", "d_vocab": 256, "n_pairs": 8, "seq_len": 128},
            "train": {
                "steps": 10 if smoke else 3000,
                "batch_size": 8 if smoke else 64,
                "lr": 3e-3,
                "warmup_steps": 2 if smoke else 150,
                "eval_every": 5 if smoke else 150,
                "eval_batches": 1 if smoke else 4,
                "checkpoint_every": 10 if smoke else 3000,
                "device": "auto",
            },
            "grid": {
                "model.n_layers": depths,  # each variant pins one depth (see `_variants`)
                "train.seed": [0] if smoke else [0, 1, 2],
                "model.gamma": [-0.5, 0.0, 1.0] if smoke else GAMMAS,
            },
            "variants": _variants(depths),
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
