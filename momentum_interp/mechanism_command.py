"""`momentum-interp mechanism SWEEP_OUT`: every run's induction mechanism (score-term margins
against s′ and the strongest competitor, term ablations, γ → 0, both orthogonality readings), one
table per run (resumable), then each configuration summarised over its training seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from momentum_interp.arguments import announce, sweep_results
from momentum_interp.defaults import TRACE_SEQUENCES
from momentum_interp.study_runs import (
    StudyInputError,
    add_study_parser,
    run_tables,
    sweep_runs,
    write_summary,
)

DESCRIPTION = """\
Which score terms carry induction, over training seeds. For each run of a sweep
trained on the induction task, its final model's top induction head: the score
terms' margins against s′ and the strongest other key, term removals, γ → 0 and
both band-orthogonality readings, one table per run in PATH/mechanism/ (kept
when rerun, so an interrupted study resumes); then summary.json, each
configuration over its training seeds with t intervals.

example:
  momentum-interp mechanism results/zoo_history --runs-dir runs/studies/zoo_history
"""


def add_mechanism_parser(sub) -> None:
    """The `mechanism` command: every run of an induction sweep, then each arm over its seeds."""
    add_study_parser(
        sub,
        "mechanism",
        "which score terms carry induction, and band orthogonality, over a sweep's seeds",
        DESCRIPTION,
        (sweep_results, "a sweep's --out directory (results.jsonl)"),
        TRACE_SEQUENCES,
        "held-out induction",
        _cmd_mechanism,
    )


def _runs(args: argparse.Namespace) -> list[tuple[dict, Path]]:
    """The sweep's runs, checked before any work: each holds a final model, trained on the
    induction task."""
    runs = sweep_runs(args.path, args.runs_dir, "model.safetensors", "")
    other = sorted({r["config"]["task"]["name"] for r, _ in runs} - {"induction"})
    if other:
        raise StudyInputError(
            f"{args.path} was trained on {other}; the mechanism study measures induction heads, "
            'so it needs a sweep of [task] name = "induction".'
        )
    return runs


def _measure(row: dict, run_dir: Path, args: argparse.Namespace) -> dict:
    """One run's table body: its final model's top induction head, measured."""
    from momentum_interp import HookedMomentumTransformer
    from momentum_interp.analysis.heads import induction_heads_to_trace
    from momentum_interp.analysis.tracing.mechanism import measure_mechanism
    from momentum_interp.data.registry import make_task

    model = HookedMomentumTransformer.from_pretrained(run_dir)
    layer, head = induction_heads_to_trace(model).top
    task_config = dict(row["config"]["task"])
    task = make_task(task_config.pop("name"), **task_config)
    found = measure_mechanism(model, layer, head, task, args.sequences, args.seed)
    return {
        "run": row["run_id"],
        "n_sequences": args.sequences,
        "seed": args.seed,
        "measurement": found.to_dict(),
    }


def _cmd_mechanism(args: argparse.Namespace) -> None:
    runs = _runs(args)
    announce(args, f"measuring the final model of each of {len(runs)} runs of {args.path}")
    from momentum_interp.analysis.mechanism_study import SUMMARY_FILE, mechanism_study
    from momentum_interp.naming import head_label

    def progress(table: dict) -> str:
        found = table["measurement"]
        shares = found["shares"]["earlier_occurrence"]
        return f"{head_label(found['layer'], found['head'])}, shares of the margin over s′: " + (
            ", ".join(f"{k} {v:+.2f}" for k, v in shares.items())
        )

    out = args.out or args.path / "mechanism"
    tables = run_tables(
        runs, out, args, lambda row, run_dir: _measure(row, run_dir, args), progress
    )
    write_summary(out / SUMMARY_FILE, args, mechanism_study(tables))
