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
    if args.seed is not None:
        run.train = dataclasses.replace(run.train, seed=args.seed)
    out = Path(args.out) if args.out else Path("runs") / run.name
    final = train(run, out, overwrite=args.overwrite, progress=not args.quiet)
    if Distributed.from_env().is_main:
        print(f"Model written to {final}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from momentum_interp.demo import run_demo

    paths = run_demo(Path(args.out), n_sequences=args.sequences, seed=args.seed)
    for label, path in paths.items():
        print(f"{label}: {path}")


def _cmd_score(args: argparse.Namespace) -> None:
    from momentum_interp.analysis import rank_heads, score_heads
    from momentum_interp.report import load_model

    scores = score_heads(load_model(args.model), n_sequences=args.sequences, seed=args.seed)
    print(rank_heads(scores, by=args.by, top=args.top).to_string(index=False, float_format="%.3f"))
    print(f"in-context-learning score: {scores.attrs['in_context_learning']:+.3f}")
    if args.csv:
        from momentum_interp.io import atomic_write_text

        atomic_write_text(Path(args.csv), scores.to_csv(index=False))
        print(f"scores: {args.csv}")


def _cmd_trace(args: argparse.Namespace) -> None:
    from momentum_interp.analysis import score_heads, trace_single_layer_induction
    from momentum_interp.report import load_model, top_induction_head

    layer, head = args.layer, args.head
    if (layer is None) != (head is None):
        raise ValueError(
            "--layer and --head go together: give both to trace one head, or neither to trace "
            "the top induction head."
        )
    model = load_model(args.model)
    if layer is None:
        layer, head = top_induction_head(score_heads(model, n_sequences=100, seed=args.seed))
    trace = trace_single_layer_induction(
        model, layer, head, n_sequences=args.sequences, seed=args.seed
    )
    print(trace.summary())
    _write_pair(Path(args.out), "trace", trace.to_html(), trace.to_dict())


def _cmd_spectrum(args: argparse.Namespace) -> None:
    from momentum_interp.analysis import spectral_report
    from momentum_interp.report import example_tokens, load_model

    model = load_model(args.model)
    result = spectral_report(model, example_tokens(model, args.seed, batch=args.sequences))
    print(result.verdict)
    _write_pair(Path(args.out), "spectrum", result.to_html(), result.to_dict())


def _write_pair(out: Path, stem: str, html: str, numbers: dict) -> None:
    from momentum_interp.io import atomic_write_json, atomic_write_text

    atomic_write_text(out / f"{stem}.html", html)
    atomic_write_json(out / f"{stem}.json", numbers)
    print(f"report: {out / f'{stem}.html'}\nnumbers: {out / f'{stem}.json'}")


def _cmd_report(args: argparse.Namespace) -> None:
    from momentum_interp.analysis.scaling import bundled_results
    from momentum_interp.report import write_model_report

    scaling = None if args.no_scaling else (args.scaling or bundled_results())
    paths = write_model_report(
        args.model, Path(args.out), n_sequences=args.sequences, seed=args.seed, scaling=scaling
    )
    for label, path in paths.items():
        print(f"{label}: {path}")


def _cmd_lm_compare(args: argparse.Namespace) -> None:
    from momentum_interp.analysis.lm import write_comparison

    for label, path in write_comparison(args.runs, args.reference, Path(args.out)).items():
        print(f"{label}: {path}")


def _model_command(sub, name: str, help: str, func, sequences: int, out: str | None = None):
    parser = sub.add_parser(name, help=help)
    parser.add_argument(
        "model", help="bundled checkpoint name (see `models`) or checkpoint directory"
    )
    parser.add_argument("--sequences", type=int, default=sequences, help="number of sequences")
    parser.add_argument("--seed", type=int, default=0, help="seed of the analysis data")
    if out is not None:
        parser.add_argument("--out", default=out, help="output directory")
    parser.set_defaults(func=func)
    return parser


def _cmd_sweep(args: argparse.Namespace) -> None:
    from momentum_interp.sweeps import SweepError, load_sweep, run_sweep

    spec = load_sweep(args.spec)
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / spec.name
    try:
        table = run_sweep(
            spec,
            out,
            backend=args.backend,
            workers=args.workers,
            progress=not args.quiet,
            runs_dir=args.runs_dir,
            address=args.address,
            batch_runs=args.batch_runs,
        )
    except SweepError as e:
        print(f"momentum-interp sweep: {e}", file=sys.stderr)
        raise SystemExit(1) from e
    print(f"{len(table)} runs in {out / 'results.csv'}")


def _cmd_scaling(args: argparse.Namespace) -> None:
    from momentum_interp.viz.scaling import write_scaling_report

    paths = write_scaling_report(
        args.results,
        args.out,
        n_boot=args.boot,
        level=args.level,
        figures=args.figures,
        metric=args.metric,
        shear=args.shear,
    )
    print(paths["statement"])
    for label, path in paths.items():
        if label != "statement":
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
    train.add_argument("--seed", type=int, help="override [train] seed (initialisation and data)")
    train.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    score = _model_command(sub, "score", "score every head for induction & co.", _cmd_score, 100)
    score.add_argument("--by", default="induction", help="column to rank heads by")
    score.add_argument("--top", type=int, default=10, help="rows to print")
    score.add_argument("--csv", help="also write the full table to this CSV file")
    trace = _model_command(
        sub, "trace", "four-term trace and ablations of one head", _cmd_trace, 256, "momentum_trace"
    )
    trace.add_argument("--layer", type=int, help="layer (default: top induction head)")
    trace.add_argument("--head", type=int, help="head (default: top induction head)")
    _model_command(
        sub,
        "spectrum",
        "Bode plots, q/k spectra, band orthogonality",
        _cmd_spectrum,
        32,
        "momentum_spectrum",
    )
    report = _model_command(
        sub, "report", "the full report for one model", _cmd_report, 256, "momentum_model_report"
    )
    report.add_argument(
        "--scaling",
        help="a γ × depth sweep's results table for the γ*(N) section "
        "(default: the committed results/scaling/results.csv, when present)",
    )
    report.add_argument("--no-scaling", action="store_true", help="leave out the γ*(N) section")

    sweep = sub.add_parser("sweep", help="run a TOML sweep spec ([grid], [[variants]]) resumably")
    sweep.add_argument("spec", help="TOML sweep spec (see configs/sweeps/)")
    sweep.add_argument("--out", help="results directory (default runs/sweeps/<name>)")
    sweep.add_argument("--runs-dir", help="where run directories go (default <out>/runs)")
    sweep.add_argument("--backend", choices=["local", "ray"], default="local")
    sweep.add_argument(
        "--workers", type=int, help="parallel runs (default: CPU cores or GPUs; 0: in this process)"
    )
    sweep.add_argument(
        "--batch-runs",
        type=int,
        default=1,
        help="train up to this many runs that differ only in model.gamma together (vmap)",
    )
    sweep.add_argument("--address", help="Ray cluster address (default: start a local one)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(func=_cmd_sweep)

    scaling = sub.add_parser("scaling", help="fit γ* = a N^b to a sweep's results table")
    scaling.add_argument("results", help="results.csv (or .jsonl) of a γ × depth sweep")
    scaling.add_argument("--out", help="directory for fit.json (default: beside the results)")
    scaling.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    scaling.add_argument("--level", type=float, default=0.95, help="interval level")
    scaling.add_argument("--figures", action="store_true", help="also write the HTML figures")
    scaling.add_argument(
        "--metric",
        default="final_accuracy",
        choices=["final_accuracy", "auc_accuracy", "best_accuracy"],
        help="criterion γ* maximises (auc_accuracy: area under the held-out accuracy curve)",
    )
    scaling.add_argument(
        "--shear", default="qk", choices=["qk", "k"], help="which shear mode's rows to fit"
    )
    scaling.set_defaults(func=_cmd_scaling)

    lm = sub.add_parser("lm-compare", help="compare trained language models' validation losses")
    lm.add_argument("runs", nargs="+", help="run directories written by `train` on one text task")
    lm.add_argument("--reference", required=True, help="run name the gaps are relative to")
    lm.add_argument("--out", default="results/lm", help="output directory")
    lm.set_defaults(func=_cmd_lm_compare)

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
