"""A sweep's runs for a per-run study (`formation`, `mechanism`): its result rows with their run
directories in the spec's variant order, checked before any work; and each run's table, kept
when it was written for the same run, sequences and seed, so an interrupted study resumes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from momentum_interp.arguments import command_text, output_dir, positive_int
from momentum_interp.defaults import DEFAULT_SEED


def add_study_parser(
    sub,
    name: str,
    summary: str,
    description: str,
    path: tuple[Callable[[str], Path], str],
    sequences: int,
    data: str,
    func: Callable[[argparse.Namespace], None],
) -> None:
    """A per-run study's subcommand `name`: its PATH argument (`path`: type and help), the
    sweep's --runs-dir, --out (default PATH/`name`), how many `data` sequences (default
    `sequences`), --seed and --quiet, run by `func`."""
    cmd = sub.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("path", type=path[0], help=path[1])
    cmd.add_argument(
        "--runs-dir",
        type=Path,
        help="a sweep only: where its run directories are (the sweep's --runs-dir; default "
        "PATH/runs)",
    )
    cmd.add_argument("--out", type=output_dir, help=f"where the tables go (default PATH/{name})")
    cmd.add_argument(
        "--sequences",
        type=positive_int,
        default=sequences,
        help=f"{data} sequences (default {sequences})",
    )
    cmd.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"seed of the {data} sequences (default {DEFAULT_SEED})",
    )
    cmd.add_argument("--quiet", action="store_true", help="no progress output")
    cmd.set_defaults(func=func)


class StudyInputError(ValueError):
    """A sweep whose runs cannot be measured (missing run directories or files)."""


def sweep_runs(
    path: Path, runs_dir: Path | None, needs: str, fix: str
) -> list[tuple[dict[str, Any], Path]]:
    """The rows of `path/results.jsonl` with their run directories (`runs_dir`, default
    `path/runs`), variants in the spec's order and runs by seed; every run directory must hold
    the file `needs` (relative to it), else StudyInputError says how many lack it and `fix`."""
    from momentum_interp.sweeps.runner import read_results

    rows = read_results(path / "results.jsonl")
    spec = json.loads((path / "sweep_spec.json").read_text())
    order = [v["label"] for v in spec.get("variants", [])]
    rows.sort(
        key=lambda r: (
            order.index(r["variant"]) if r["variant"] in order else len(order),
            r["train.seed"],
        )
    )
    seen: dict[tuple[str, int], str] = {}
    for r in rows:
        other = seen.setdefault((r["variant"], r["train.seed"]), r["run_id"])
        if other != r["run_id"]:
            raise StudyInputError(
                f"{path} has several runs of variant {r['variant']!r} at training seed "
                f"{r['train.seed']} ({other}, {r['run_id']}): a per-run study compares variants "
                "over seeds, so give each grid point its own [[variants]] label (a [grid] may "
                "vary train.seed only)."
            )
    runs_dir = runs_dir or path / "runs"
    missing = [r["run_id"] for r in rows if not (runs_dir / r["run_id"] / needs).is_file()]
    if not rows or missing:
        raise StudyInputError(
            f"{runs_dir} holds no {needs} for {len(missing)} of {len(rows)} runs of {path} "
            f"(e.g. {missing[:3]}); pass the sweep's --runs-dir{fix}."
        )
    return [(r, runs_dir / r["run_id"]) for r in rows]


def run_table(
    path: Path, row: dict[str, Any], args: argparse.Namespace, measure: Callable[[], dict]
) -> dict[str, Any]:
    """The run's table at `path` when it was written for the same run, `args.sequences` and
    `args.seed`; otherwise `measure()` (a dict holding `run`, `n_sequences` and `seed`), written
    there with the provenance, the variant and the training seed."""
    from momentum_interp.io import atomic_write_json
    from momentum_interp.provenance import provenance

    table = json.loads(path.read_text()) if path.is_file() else None
    if table is not None and (table["run"], table["n_sequences"], table["seed"]) == (
        row["run_id"],
        args.sequences,
        args.seed,
    ):
        return table
    table = {
        "provenance": provenance(command_text(args), args.seed),
        "variant": row["variant"],
        "train_seed": row["train.seed"],
        **measure(),
    }
    atomic_write_json(path, table)
    return table


def run_tables(
    runs: list[tuple[dict[str, Any], Path]],
    out: Path,
    args: argparse.Namespace,
    measure: Callable[[dict[str, Any], Path], dict],
    progress: Callable[[dict[str, Any]], str],
) -> list[tuple[str, dict[str, Any], int, str, dict[str, Any]]]:
    """Every run's `run_table` at `out/<variant>-seed<k>.json` (`measure(row, run_dir)` where
    it is missing or stale), a line per run (`progress(table)`) unless --quiet; returns
    `(variant, model config, training seed, run id, table)` per run, what a study groups."""
    from momentum_interp.naming import study_table_name

    tables = []
    for number, (row, run_dir) in enumerate(runs, start=1):
        variant, seed = row["variant"], row["train.seed"]
        table = run_table(
            out / study_table_name(variant, seed),
            row,
            args,
            lambda row=row, run_dir=run_dir: measure(row, run_dir),
        )
        if not args.quiet:
            print(f"[{number}/{len(runs)}] {variant}-seed{seed}: {progress(table)}", flush=True)
        tables.append((variant, row["config"]["model"], seed, row["run_id"], table))
    return tables


def write_summary(path: Path, args: argparse.Namespace, study: Any) -> None:
    """A study's `to_dict()` with the provenance, at `path`, and say where."""
    from momentum_interp.io import atomic_write_json
    from momentum_interp.provenance import provenance

    atomic_write_json(
        path, {"provenance": provenance(command_text(args), args.seed), **study.to_dict()}
    )
    print(f"summary: {path}")
