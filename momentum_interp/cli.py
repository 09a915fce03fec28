"""`momentum-interp` command line: thin subcommands over the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from momentum_interp.arguments import (
    ROOM,
    announce,
    checkpoint_name,
    command_text,
    input_file,
    one_writer_with_room,
    output_dir,
    output_file,
    positive_int,
    toml_name,
)
from momentum_interp.corpus_command import add_corpus_parser
from momentum_interp.defaults import DEFAULT_SEED, EVAL_SEQUENCES, SCORE_SEQUENCES, TRACE_SEQUENCES
from momentum_interp.formation_command import add_formation_parser
from momentum_interp.io import WriteError, check_writable
from momentum_interp.mechanism_command import add_mechanism_parser

DEBUG_HELP = "on an error, show the traceback instead of one line"

# What to do about the file-system errors a command can meet; others print errno's text alone.
OS_ERROR_FIXES = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EACCES: "choose a location you may use, or change its permissions",
    errno.EPERM: "choose a location you may use, or change its permissions",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.ENOTDIR: "part of the path is a file, not a directory; choose another path",
    errno.EISDIR: "a directory stands where a file goes; move it or choose another path",
}


class _Parser(argparse.ArgumentParser):
    """Errors as one line and exit status 2, before any model is loaded."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _cmd_models(args: argparse.Namespace) -> None:
    from momentum_interp import HookedMomentumTransformer, bundled_names

    for name in bundled_names():
        cfg = HookedMomentumTransformer.from_pretrained(name, device="cpu").cfg
        # γ means something only where a shear is on: a model with shear=none has no γ.
        gamma = "" if cfg.shear == "none" else f" gamma={cfg.gamma} learnable={cfg.gamma_learnable}"
        print(
            f"{name:32s} layers={cfg.n_layers} heads={cfg.n_heads} d_model={cfg.d_model} "
            f"shear={cfg.shear}{gamma} smeared_key={cfg.smeared_key}"
        )


def _cmd_train(args: argparse.Namespace) -> int | None:
    """Train; a run that diverges (NaN or inf loss or gradient norm) is one line and status 1."""
    out = Path(args.out) if args.out else Path("runs") / toml_name(args.config, "run")
    with one_writer_with_room(out, "train"):
        from momentum_interp.training.config import load_run_config
        from momentum_interp.training.loop import Distributed, TrainingDiverged, train

        run = load_run_config(args.config)
        if args.steps is not None:  # replace() re-runs the [train] checks (steps, warmup <= steps)
            run.train = dataclasses.replace(run.train, steps=args.steps)
        if args.seed is not None:
            run.train = dataclasses.replace(run.train, seed=args.seed)
        try:
            final = train(run, out, overwrite=args.overwrite, progress=not args.quiet)
        except TrainingDiverged as e:
            if Distributed.from_env().is_main:
                print(f"momentum-interp train: {e}", file=sys.stderr)
            return 1
    if Distributed.from_env().is_main:
        print(f"Model written to {final}")
    return None


def _cmd_demo(args: argparse.Namespace) -> None:
    announce(
        args,
        f"measuring the bundled zoo ({args.sequences} sequences per model, seed {args.seed}) "
        f"into {args.out}",
    )
    with one_writer_with_room(Path(args.out), "demo"):
        from momentum_interp.demo import run_demo

        paths = run_demo(
            Path(args.out),
            n_sequences=args.sequences,
            seed=args.seed,
            results_dir=Path(args.results) if args.results else None,
            command=command_text(args),
            progress=not args.quiet,
        )
    for label, path in paths.items():
        print(f"{label}: {path}")


def _cmd_score(args: argparse.Namespace) -> None:
    for out in (args.csv and args.csv.parent, args.out):
        if out is not None:
            check_writable(out, ROOM["score"])
    from momentum_interp import HookedMomentumTransformer
    from momentum_interp.analysis.heads import rank_heads_ci
    from momentum_interp.analysis.scoring import check_score_name
    from momentum_interp.model.checkpoint import check_finite
    from momentum_interp.narrative.rankings import data_statement
    from momentum_interp.provenance import provenance
    from momentum_interp.tables import frame_rows, markdown_table

    check_score_name(args.by)  # before the model loads
    model = HookedMomentumTransformer.from_pretrained(args.model, device="cpu")
    check_finite(model, args.model)
    ranking = rank_heads_ci(model, by=args.by, n_sequences=args.sequences, seed=args.seed)
    table = ranking.table()
    shown = table.head(args.top).assign(tied_top=table["tied_top"].map({True: "*", False: ""}))
    print(
        f"Heads by {args.by} score, 95 % bootstrap interval over sequences; * = tied with the top"
    )
    print(f"({data_statement(ranking.to_dict())}):")
    print(markdown_table(list(shown.columns), frame_rows(shown)))
    print(f"top {args.by} head(s): {ranking.tied_label()}")
    print(f"in-context-learning score: {ranking.scores.attrs['in_context_learning']:+.3f}")
    if args.csv:
        from momentum_interp.io import atomic_write_text

        atomic_write_text(Path(args.csv), table.to_csv(index=False))
        print(f"scores: {args.csv}")
    if args.out:
        from momentum_interp.io import atomic_write_json

        path = Path(args.out) / "score.json"
        numbers = {"provenance": provenance(command_text(args), args.seed), **ranking.to_dict()}
        atomic_write_json(path, {**numbers, "scores": table.to_dict(orient="records")})
        print(f"numbers: {path}")


def _cmd_trace(args: argparse.Namespace) -> None:
    announce(args, f"tracing the top induction head(s) of {args.model} into {args.out}")
    from momentum_interp.analysis import trace_single_layer_induction
    from momentum_interp.analysis.heads import induction_heads_to_trace
    from momentum_interp.narrative.zoo import TRACE_RULE, trace_headline
    from momentum_interp.provenance import provenance
    from momentum_interp.report import load_model
    from momentum_interp.viz.captions import trace_summary
    from momentum_interp.viz.report import Report
    from momentum_interp.viz.sections import add_section

    if (args.layer is None) != (args.head is None):
        raise ValueError(
            "--layer and --head go together: give both to trace one head, or neither to trace "
            "every head tied for the top induction score."
        )
    model = load_model(args.model)
    if args.layer is None:
        ranking = induction_heads_to_trace(model)
        heads = ranking.tied
        rule = TRACE_RULE.format(seed=DEFAULT_SEED, n=SCORE_SEQUENCES)
        print(f"Tracing {ranking.tied_label()}: {rule}.")
    else:
        heads, ranking, rule = [(args.layer, args.head)], None, "--layer/--head given"
    traces = [
        trace_single_layer_induction(model, layer, head, n_sequences=args.sequences, seed=args.seed)
        for layer, head in heads
    ]
    print(f"Held-out induction data: seed {args.seed}, {args.sequences} sequences requested.")
    print("\n\n".join(trace_summary(trace) for trace in traces))
    report = Report(f"Single-layer induction trace: {args.model}")
    report.paragraph(f"Heads traced: {rule}. Data seed {args.seed}.", note=True)
    for trace in traces:
        add_section(report, trace)
    numbers = {
        "provenance": provenance(command_text(args), args.seed),
        "rule": rule,
        "ranking": None if ranking is None else ranking.to_dict(),
        "headlines": [trace_headline(trace.to_dict()) for trace in traces],
        "traces": [trace.to_dict() for trace in traces],
    }
    _write_pair(Path(args.out), "trace", report.to_html(), numbers)


def _cmd_spectrum(args: argparse.Namespace) -> None:
    from momentum_interp.analysis import spectral_report
    from momentum_interp.provenance import provenance
    from momentum_interp.report import example_tokens, load_model
    from momentum_interp.viz.captions import orthogonality_verdict
    from momentum_interp.viz.sections import page_html

    model = load_model(args.model)
    tokens = example_tokens(model, args.seed, batch=args.sequences)
    result = spectral_report(model, tokens)
    print(
        f"{tokens.shape[0]} induction-task sequences of {tokens.shape[1]} tokens, seed {args.seed}"
    )
    print(orthogonality_verdict(result.separation))
    numbers = {"provenance": provenance(command_text(args), args.seed), **result.to_dict()}
    _write_pair(Path(args.out), "spectrum", page_html(result), numbers)


def _write_pair(out: Path, stem: str, html: str, numbers: dict) -> None:
    from momentum_interp.io import atomic_write_json, atomic_write_text

    atomic_write_text(out / f"{stem}.html", html)
    atomic_write_json(out / f"{stem}.json", numbers)
    print(f"report: {out / f'{stem}.html'}\nnumbers: {out / f'{stem}.json'}")


def _cmd_report(args: argparse.Namespace) -> None:
    announce(args, f"writing the full report of {args.model} into {args.out}")
    with one_writer_with_room(Path(args.out), "report"):
        from momentum_interp.report import write_model_report
        from momentum_interp.zoo import bundled_gamma_studies

        paths = write_model_report(
            args.model,
            Path(args.out),
            n_sequences=args.sequences,
            seed=args.seed,
            scaling=None if args.no_scaling else args.scaling,
            command=command_text(args),
            gamma_studies=None if args.no_scaling else bundled_gamma_studies(),
        )
    for label, path in paths.items():
        print(f"{label}: {path}")


def _cmd_explore(args: argparse.Namespace) -> None:
    check_writable(args.out, ROOM["explore"])
    from momentum_interp.analysis.explorer import explorer_data
    from momentum_interp.model.inputs import parse_token_ids
    from momentum_interp.report import load_model
    from momentum_interp.viz.explorer import Explorer

    if args.text is not None and args.tokens is not None:
        raise ValueError("give --text or --tokens, not both.")
    models = {str(name): load_model(name) for name in args.models}
    tokens = args.text
    if args.tokens is not None:
        import torch

        tokens = torch.tensor([parse_token_ids(args.tokens)])
    path = Explorer(explorer_data(models, tokens)).save(Path(args.out) / "index.html")
    print(f"explorer: {path}")


def _cmd_lm_compare(args: argparse.Namespace) -> None:
    from momentum_interp.viz.lm import write_comparison

    for label, path in write_comparison(args.runs, args.reference, Path(args.out)).items():
        print(f"{label}: {path}")


def _model_command(sub, name: str, help: str, func, sequences: int, out: str | None = None):
    parser = sub.add_parser(name, help=help)
    parser.add_argument(
        "model",
        type=checkpoint_name,
        help="bundled checkpoint name (see `models`) or checkpoint directory",
    )
    parser.add_argument(
        "--sequences",
        type=positive_int,
        default=sequences,
        help=f"number of sequences ({sequences})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"seed of the analysis data ({DEFAULT_SEED})"
    )
    if out is not None:
        parser.add_argument("--out", type=output_dir, default=out, help="output directory")
    parser.set_defaults(func=func)
    return parser


def _cmd_sweep(args: argparse.Namespace) -> None:
    if args.time_limit is not None and args.backend != "local":
        raise ValueError("--time-limit needs the local backend; leave it out with --backend ray.")
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / toml_name(args.spec, "sweep")
    announce(args, f"running the sweep {args.spec} into {out}")
    with one_writer_with_room(out, "sweep"):
        from momentum_interp.sweeps import SweepError, load_sweep, run_sweep

        spec = load_sweep(args.spec)
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
                stage=args.stage,
                time_limit_s=None if args.time_limit is None else 60.0 * args.time_limit,
            )
        except SweepError as e:
            print(f"momentum-interp sweep: {e}", file=sys.stderr)
            raise SystemExit(1) from e
    print(f"{len(table)} runs in {out / 'results.csv'}")


def _cmd_study(args: argparse.Namespace) -> None:
    from momentum_interp.analysis.gamma_study import (
        DEEPER_CONTROL,
        analyse_depth,
        check_fresh_rates,
    )
    from momentum_interp.io import atomic_write_json, atomic_write_text
    from momentum_interp.narrative.gamma_study import summary_markdown
    from momentum_interp.provenance import provenance
    from momentum_interp.sweeps import load_sweep, read_results
    from momentum_interp.sweeps.selection import select

    spec = load_sweep(args.spec)
    if spec.protocol is None:
        raise ValueError(f"{args.spec} has no [protocol]: `study` reads a select-then-fresh study.")
    rows = read_results(args.results / "results.jsonl")
    selection = select(spec, rows)
    fresh = selection.fresh_seeds
    fresh_rows = [r for r in rows if r["config"]["train"]["seed"] in fresh]
    depths = sorted(
        {r["config"]["model"]["n_layers"] for r in fresh_rows if r.get("variant") != DEEPER_CONTROL}
    )
    if not depths:
        raise ValueError(
            f"{args.results} holds no fresh-seed results (seeds {fresh}) yet; run the fresh stage: "
            f"momentum-interp sweep {args.spec} --out {args.results} --stage fresh"
        )
    chosen = selection.chosen
    check_fresh_rates(rows, fresh, lambda config: chosen.get(spec.protocol.arm_key(config)))
    studies = [analyse_depth(rows, n, fresh) for n in depths]
    study = {
        "provenance": provenance(command_text(args), None),
        "spec": str(args.spec),
        "selection": selection.to_dict(),
        "depths": [s.to_dict() for s in studies],
    }
    atomic_write_json(args.results / "study.json", study)
    atomic_write_text(args.results / "summary.md", summary_markdown(study))
    for s in studies:
        reason = f" ({s.paper_reason})" if s.paper_reason else ""
        print(f"N = {s.n_layers}: paper's γ* = {s.paper_gamma_star:.3g}: {s.paper_verdict}{reason}")
    print(f"study: {args.results / 'study.json'}, {args.results / 'summary.md'}")


def _cmd_scaling(args: argparse.Namespace) -> None:
    from momentum_interp.narrative.scaling import write_scaling_report

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
    parser = _Parser(
        prog="momentum-interp",
        description="Mechanistic interpretability of Momentum Attention (arXiv 2602.04902).",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="evaluate and score the bundled zoo; write an HTML report")
    demo.add_argument("--out", type=output_dir, default="momentum_report", help="output directory")
    demo.add_argument(
        "--sequences",
        type=positive_int,
        default=EVAL_SEQUENCES,
        help="held-out sequences per model",
    )
    demo.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the fresh evaluation data"
    )
    demo.add_argument(
        "--results",
        type=output_dir,
        help="also write the headline record zoo.json here (results/zoo: the README's source)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser(
        "train",
        help="train a model from a TOML run config",
        description="Train a model from a TOML run config. Exit status 1: the run diverged (a "
        "NaN or inf loss or gradient norm); 2: bad input.",
    )
    train.add_argument(
        "--config", type=input_file, required=True, help="TOML run config (see configs/)"
    )
    train.add_argument("--out", type=output_dir, help="run directory (default runs/<name>)")
    train.add_argument("--steps", type=int, help="override [train] steps")
    train.add_argument("--seed", type=int, help="override [train] seed (initialisation and data)")
    train.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    score = _model_command(
        sub, "score", "score every head for induction & co.", _cmd_score, SCORE_SEQUENCES
    )
    score.add_argument(
        "--by", default="induction", help="score to rank heads by (analysis.scoring.SCORES)"
    )
    score.add_argument("--top", type=int, default=10, help="rows to print")
    score.add_argument("--csv", type=output_file, help="also write the full table to this CSV file")
    score.add_argument(
        "--out", type=output_dir, help="also write score.json (with provenance) to this directory"
    )
    trace = _model_command(
        sub,
        "trace",
        "four-term trace and ablations of the top induction head(s)",
        _cmd_trace,
        TRACE_SEQUENCES,
        "momentum_trace",
    )
    trace.add_argument("--quiet", action="store_true", help="no progress lines")
    every_tied = "every head tied for the top induction score on `score`'s defaults"
    trace.add_argument("--layer", type=int, help=f"layer (default: {every_tied})")
    trace.add_argument("--head", type=int, help=f"head (default: {every_tied})")
    _model_command(
        sub,
        "spectrum",
        "Bode plots, q/k spectra, band orthogonality",
        _cmd_spectrum,
        32,
        "momentum_spectrum",
    )
    report = _model_command(
        sub,
        "report",
        "the full report for one model",
        _cmd_report,
        TRACE_SEQUENCES,
        "momentum_model_report",
    )
    report.add_argument(
        "--scaling",
        type=input_file,
        help="a γ × depth sweep's results table to fit a γ*(N) section to (besides the "
        "committed fair study's section, shown by default)",
    )
    report.add_argument("--no-scaling", action="store_true", help="leave out the γ*(N) sections")
    report.add_argument("--quiet", action="store_true", help="no progress lines")

    sweep = sub.add_parser("sweep", help="run a TOML sweep spec ([grid], [[variants]]) resumably")
    sweep.add_argument("spec", type=input_file, help="TOML sweep spec (see configs/sweeps/)")
    sweep.add_argument(
        "--out", type=output_dir, help="results directory (default runs/sweeps/<name>)"
    )
    sweep.add_argument(
        "--runs-dir", type=output_dir, help="where run directories go (default <out>/runs)"
    )
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
    sweep.add_argument(
        "--stage",
        choices=["select", "fresh"],
        help="a [protocol] spec's stage (default: select, then fresh): the searched value "
        "per arm on the selection seeds, or each arm at its pick on the fresh seeds",
    )
    sweep.add_argument(
        "--time-limit",
        type=positive_int,
        metavar="MINUTES",
        help="local backend: start no run after this many minutes (runs under way finish; the "
        "same command continues with the rest), to stop cleanly before a machine is taken away",
    )
    sweep.add_argument("--address", help="Ray cluster address (default: start a local one)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(func=_cmd_sweep)

    study = sub.add_parser(
        "study", help="decide a select-then-fresh γ* study: paired tests, vertex γ*, verdicts"
    )
    study.add_argument("spec", type=input_file, help="the study's TOML spec (with [protocol])")
    study.add_argument(
        "--results", type=Path, required=True, help="the study's results directory (its --out)"
    )
    study.set_defaults(func=_cmd_study)

    scaling = sub.add_parser("scaling", help="fit γ* = a N^b to a sweep's results table")
    scaling.add_argument(
        "results", type=input_file, help="results.csv (or .jsonl) of a γ × depth sweep"
    )
    scaling.add_argument(
        "--out", type=output_dir, help="directory for fit.json (default: beside the results)"
    )
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
    lm.add_argument("--out", type=output_dir, default="results/lm", help="output directory")
    lm.set_defaults(func=_cmd_lm_compare)

    explore = sub.add_parser(
        "explore", help="interactive circuit explorer: one head, one sequence, a live γ slider"
    )
    explore.add_argument(
        "models",
        nargs="+",
        type=checkpoint_name,
        help="bundled checkpoint names or checkpoint directories (same vocabulary)",
    )
    explore.add_argument("--text", help="the sequence as text (or space-separated ids)")
    explore.add_argument("--tokens", help="the sequence as space-separated token ids")
    explore.add_argument(
        "--out", type=output_dir, default="momentum_explorer", help="output directory"
    )
    explore.set_defaults(func=_cmd_explore)

    corpus_sub = add_corpus_parser(sub)

    add_formation_parser(sub)
    add_mechanism_parser(sub)

    models = sub.add_parser("models", help="list the bundled checkpoints")
    models.set_defaults(func=_cmd_models)
    for command in [*sub.choices.values(), *corpus_sub.choices.values()]:  # also after the command
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP
        )
    return parser


def expected_error(error: Exception) -> str | None:
    """The one-line message of a failure of input or environment, or None for a bug.

    Expected: ValueError (bad values, and so json.JSONDecodeError, UnicodeDecodeError and
    CheckpointError), OSError (disk full, permissions, a file where a directory goes) and
    safetensors' SafetensorError (an unreadable tensor file).
    """
    from safetensors import SafetensorError  # no torch: safetensors' own Rust module

    if isinstance(error, WriteError):  # its own line names the path, cause and fix
        message = str(error)
    elif isinstance(error, OSError) and error.strerror:
        where = " -> ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        fix = OS_ERROR_FIXES.get(error.errno)
        message = f"{error.strerror}: {where}" if where else error.strerror
        message = f"{message}; {fix}" if fix else message
    elif isinstance(error, (ValueError, OSError, SafetensorError)):
        message = str(error) or type(error).__name__
    else:
        return None
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `momentum-interp` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a bad argument (status 2) or --help (0)
        return int(e.code or 0)
    args.argv = argv
    prog = " ".join(
        filter(None, ["momentum-interp", args.command, getattr(args, "corpus_command", None)])
    )
    try:
        return args.func(args) or 0  # a command returns a status only when it is not 0
    except Exception as e:
        message = expected_error(e)
        if message is None:  # a bug: the traceback is what a report needs
            e.add_note(f"{prog}: unexpected {type(e).__name__}; this is a bug, please report")
            raise
        if args.debug:
            traceback.print_exc()
        else:
            print(f"{prog}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
