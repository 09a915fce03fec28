"""`momentum-interp formation PATH`: induction over training, for one run that kept a checkpoint
history or for every run of a sweep (one table per run, then the comparison across arms)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from momentum_interp.arguments import announce, command_text, formation_source, output_dir
from momentum_interp.defaults import DEFAULT_SEED, SCORE_SEQUENCES


class FormationInputError(ValueError):
    """A sweep whose runs cannot be measured (missing run directories or histories)."""


def add_formation_parser(sub) -> None:
    cmd = sub.add_parser(
        "formation",
        help="induction over training, from a run's checkpoint history (or a sweep's runs)",
    )
    cmd.add_argument(
        "path",
        type=formation_source,
        help="run directory with history/, or a sweep's --out directory (results.jsonl)",
    )
    cmd.add_argument(
        "--runs-dir",
        type=Path,
        help="the sweep's run directories (its --runs-dir; default PATH/runs)",
    )
    cmd.add_argument("--out", type=output_dir, help="where the tables go (default PATH/formation)")
    cmd.add_argument(
        "--sequences", type=int, default=SCORE_SEQUENCES, help="repeated-token sequences"
    )
    cmd.add_argument("--seed", type=int, default=DEFAULT_SEED)
    cmd.add_argument("--quiet", action="store_true", help="no progress bars")
    cmd.set_defaults(func=_cmd_formation)


def _sweep_runs(args: argparse.Namespace) -> list[tuple[dict, Path]]:
    """The sweep's result rows with their run directories, in the spec's variant order, checked
    before any work: every run directory must hold a checkpoint history."""
    from momentum_interp.sweeps.runner import read_results

    rows = read_results(args.path / "results.jsonl")
    spec = json.loads((args.path / "sweep_spec.json").read_text())
    order = [v["label"] for v in spec.get("variants", [])]
    rows.sort(
        key=lambda r: (
            order.index(r["variant"]) if r["variant"] in order else len(order),
            r["train.seed"],
        )
    )
    runs_dir = args.runs_dir or args.path / "runs"
    missing = [
        r["run_id"]
        for r in rows
        if not (runs_dir / r["run_id"] / "history" / "index.json").is_file()
    ]
    if not rows or missing:
        raise FormationInputError(
            f"{runs_dir} holds no checkpoint history for {len(missing)} of {len(rows)} runs of "
            f"{args.path} (e.g. {missing[:3]}); pass the sweep's --runs-dir, and train with "
            "[train] history_checkpoints = 50."
        )
    return [(r, runs_dir / r["run_id"]) for r in rows]


def _measure(run_dir: Path, name: str, args: argparse.Namespace):
    """One run's formation result (loads its snapshots one at a time)."""
    from tqdm.auto import tqdm

    from momentum_interp import HookedMomentumTransformer
    from momentum_interp.analysis.formation import formation
    from momentum_interp.training.history import CheckpointHistory

    history = CheckpointHistory(run_dir)
    checkpoints = [
        (step, lambda step=step: HookedMomentumTransformer.from_pretrained(history.path(step)))
        for step in history.index()["steps"]
    ]
    return formation(
        name,
        checkpoints,
        args.sequences,
        args.seed,
        progress=lambda items: tqdm(items, desc=name, leave=False, disable=args.quiet),
    )


def _formation_run(args: argparse.Namespace) -> None:
    from momentum_interp.io import atomic_write_json
    from momentum_interp.provenance import provenance

    result = _measure(args.path, args.path.name, args)
    path = (args.out or args.path / "formation") / "formation.json"
    atomic_write_json(
        path, {"provenance": provenance(command_text(args), args.seed), **result.to_dict()}
    )
    test = result.phase_change
    print(f"{len(result.rows)} checkpoints of {args.path}; tracked head: {result.head}")
    window = "—" if test.window is None else f"steps {test.window[0]}–{test.window[1]}"
    share = "—" if test.abruptness is None else f"{test.abruptness:.2f}"
    print(
        f"repeated-token loss fell {test.total_drop:.3f} nats; largest fall within a step "
        f"doubling {test.largest_window_drop:.3f} ({share} of it, {window}); phase change: "
        f"{'yes' if test.detected else 'no'} (threshold {test.threshold:g} of a fall ≥ "
        f"{test.min_total_drop:g} nats)"
    )
    print(f"table: {path}")


def _formation_sweep(args: argparse.Namespace) -> None:
    """One table per run (kept when it exists for the same run, sequences and seed, so an
    interrupted study resumes), then `summary.json` comparing the arms."""
    runs = _sweep_runs(args)
    from momentum_interp.analysis.formation_study import (
        SUMMARY_FILE,
        formation_study,
        run_table_name,
    )
    from momentum_interp.io import atomic_write_json
    from momentum_interp.provenance import provenance

    out = args.out or args.path / "formation"
    tables = []
    for number, (row, run_dir) in enumerate(runs, start=1):
        name = f"{row['variant']}-seed{row['train.seed']}"
        path = out / run_table_name(row["variant"], row["train.seed"])
        table = json.loads(path.read_text()) if path.is_file() else None
        same = table is not None and (table["run"], table["n_sequences"], table["seed"]) == (
            row["run_id"],
            args.sequences,
            args.seed,
        )
        if not same:
            result = _measure(run_dir, row["run_id"], args)
            table = {
                "provenance": provenance(command_text(args), args.seed),
                "variant": row["variant"],
                "train_seed": row["train.seed"],
                **result.to_dict(),
            }
            atomic_write_json(path, table)
        if not args.quiet:
            test = table["phase_change"]
            print(
                f"[{number}/{len(runs)}] {name}: head {table['head']}, phase change "
                f"{'yes' if test['detected'] else 'no'} (abruptness {test['abruptness'] or 0:.2f}, "
                f"window {test['window']}), half the fall by step {test['half_step']}",
                flush=True,
            )
        tables.append(
            (row["variant"], row["config"]["model"], row["train.seed"], row["run_id"], table)
        )
    study = formation_study(tables)
    summary = out / SUMMARY_FILE
    atomic_write_json(
        summary, {"provenance": provenance(command_text(args), args.seed), **study.to_dict()}
    )
    print(f"summary: {summary}")


def _cmd_formation(args: argparse.Namespace) -> None:
    sweep = (args.path / "results.jsonl").is_file()
    announce(args, f"measuring every kept checkpoint of {args.path}")
    (_formation_sweep if sweep else _formation_run)(args)
