"""`momentum-interp` command line: thin subcommands over the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_models(args: argparse.Namespace) -> None:
    from momentum_interp import HookedMomentumTransformer, bundled_names

    for name in bundled_names():
        cfg = HookedMomentumTransformer.from_pretrained(name, device="cpu").cfg
        print(
            f"{name:32s} layers={cfg.n_layers} heads={cfg.n_heads} d_model={cfg.d_model} "
            f"shear={cfg.shear} gamma={cfg.gamma} learnable={cfg.gamma_learnable} "
            f"smeared_key={cfg.smeared_key}"
        )


def _cmd_train(args: argparse.Namespace) -> None:
    from momentum_interp.training.config import load_run_config
    from momentum_interp.training.loop import Distributed, train

    run = load_run_config(args.config)
    if args.steps is not None:  # replace() re-runs the [train] checks (steps > 0, warmup <= steps)
        run.train = dataclasses.replace(run.train, steps=args.steps)
    out = Path(args.out) if args.out else Path("runs") / run.name
    final = train(run, out, overwrite=args.overwrite, progress=not args.quiet)
    if Distributed.from_env().is_main:
        print(f"Model written to {final}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from momentum_interp.demo import run_demo

    paths = run_demo(Path(args.out), n_sequences=args.sequences, seed=args.seed)
    for label, path in paths.items():
        print(f"{label}: {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momentum-interp",
        description="Mechanistic interpretability of Momentum Attention (arXiv 2602.04902).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="evaluate and score the bundled zoo; write an HTML report")
    demo.add_argument("--out", default="momentum_report", help="output directory")
    demo.add_argument("--sequences", type=int, default=512, help="held-out sequences per model")
    demo.add_argument("--seed", type=int, default=1234, help="seed of the fresh evaluation data")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train a model from a TOML run config")
    train.add_argument("--config", required=True, help="TOML run config (see configs/)")
    train.add_argument("--out", help="run directory (default runs/<name>)")
    train.add_argument("--steps", type=int, help="override [train] steps")
    train.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    models = sub.add_parser("models", help="list the bundled checkpoints")
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `momentum-interp` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"momentum-interp {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
