"""`momentum-interp formation PATH`: induction over training, for one run that kept a checkpoint
history or for every run of a sweep (one table per run, then the comparison across arms)."""

from __future__ import annotations

import argparse
from pathlib import Path

from momentum_interp.arguments import announce, command_text, formation_source
from momentum_interp.defaults import SCORE_SEQUENCES
from momentum_interp.study_runs import add_study_parser, run_tables, sweep_runs, write_summary

DESCRIPTION = """\
Induction over training. For a run trained with [train] history_checkpoints = 50:
every kept checkpoint's followed head (scores with intervals, ICL score,
repeated-token loss, score-term margins) and the phase-change test, written to
PATH/formation/formation.json. For a sweep's --out directory: one such table per
run (kept when rerun, so an interrupted study resumes) and summary.json
comparing the arms, in PATH/formation/.

example:
  momentum-interp formation results/zoo_history --runs-dir runs/studies/zoo_history
"""


def add_formation_parser(sub) -> None:
    """The `formation` command: one run's checkpoint history, or every run of a sweep."""
    add_study_parser(
        sub,
        "formation",
        "induction over training, from a run's checkpoint history (or a sweep's runs)",
        DESCRIPTION,
        (
            formation_source,
            "run directory with history/, or a sweep's --out directory (results.jsonl)",
        ),
        SCORE_SEQUENCES,
        "repeated-token",
        _cmd_formation,
    )


def _sweep_runs(args: argparse.Namespace) -> list[tuple[dict, Path]]:
    """The sweep's runs, checked before any work: each must hold a checkpoint history."""
    fix = ", and train with [train] history_checkpoints = 50"
    return sweep_runs(args.path, args.runs_dir, "history/index.json", fix)


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
        # the bar counts every checkpoint: those `formation` measured before the loop start it
        progress=lambda items: tqdm(
            items,
            desc=name,
            total=len(checkpoints),
            initial=len(checkpoints) - len(items),
            leave=False,
            disable=args.quiet,
        ),
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
    from momentum_interp.analysis.formation_study import SUMMARY_FILE, formation_study

    def progress(table: dict) -> str:
        test = table["phase_change"]
        return (
            f"head {table['head']}, phase change {'yes' if test['detected'] else 'no'} "
            f"(abruptness {test['abruptness'] or 0:.2f}, window {test['window']}), half the "
            f"fall by step {test['half_step']}"
        )

    out = args.out or args.path / "formation"
    tables = run_tables(
        runs,
        out,
        args,
        lambda row, run_dir: _measure(run_dir, row["run_id"], args).to_dict(),
        progress,
    )
    write_summary(out / SUMMARY_FILE, args, formation_study(tables))


def _cmd_formation(args: argparse.Namespace) -> None:
    sweep = (args.path / "results.jsonl").is_file()
    if args.runs_dir is not None and not sweep:
        raise ValueError(
            f"--runs-dir applies to a sweep's --out directory; {args.path} is one run: drop "
            "--runs-dir."
        )
    announce(args, f"measuring every kept checkpoint of {args.path}")
    (_formation_sweep if sweep else _formation_run)(args)
