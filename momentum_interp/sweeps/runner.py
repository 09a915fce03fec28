"""Run a sweep into one results table, resumably.

`out_dir/results.jsonl` gets one JSON line per finished run, appended (flush + fsync) by this
process only (the command line holds the directory's one-writer lock), as runs finish. A sweep
started again skips the run ids already there, so an interrupted sweep resumes without lost or
duplicated rows; a torn last line (the process died mid-write) is dropped and that run done
again; a run id recorded twice (two writers, before the lock) is read once.
`out_dir/results.csv` is rewritten atomically from the JSONL at the end. Runs train into
`runs_dir/<run id>/` (default `out_dir/runs/`), so a run killed mid-training resumes from its
last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from momentum_interp.io import WriteError, atomic_write_json, atomic_write_text
from momentum_interp.sweeps.backends import (
    BACKENDS,
    default_workers,
    plan_units,
    run_local,
    run_ray,
)
from momentum_interp.sweeps.selection import select
from momentum_interp.sweeps.spec import STAGES, RunSpec, SweepSpec, flatten, load_sweep

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
SPEC_FILE = "sweep_spec.json"
SESSIONS_FILE = "sweep_sessions.jsonl"  # one line per run_sweep call that ran to its end
SELECTION_FILE = "selection.json"  # a [protocol] spec's search: every arm's values and its pick
# Config columns the table always carries, varying or not (and every task.* field).
KEY_FIELDS = (
    "task.name",
    "model.n_layers",
    "model.d_model",
    "model.n_heads",
    "model.shear",
    "model.gamma",
    "model.gamma_learnable",
    "model.smeared_key",
    "train.steps",
    "train.batch_size",
    "train.lr",
    "train.seed",
)
METRIC_COLUMNS = (
    "diverged",
    "diverged_step",
    "final_accuracy",
    "auc_accuracy",
    "steps_to_target",
    "final_loss",
    "best_accuracy",
    "best_step",
    "final_train_loss",
    "eval_positions",
    "steps_trained",
    "wall_time_s",
    "batched_with",
    "device",
    "hostname",
)


class SweepError(RuntimeError):
    """Some runs failed; the finished ones are in the results table and a rerun retries the rest."""


def read_results(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """The rows of a results JSONL file, one per run id.

    A run id recorded more than once keeps its first row's place and its last row's content. A
    torn trailing line (the writer died mid-line) is ignored; with `repair=True` the file is
    rewritten atomically without it and without repeated ids, so that later appends start on a
    fresh line. A corrupt line anywhere else is an error.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows: dict[str, dict[str, Any]] = {}
    torn, repeated = not data.endswith(b"\n") and bool(data), False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "run_id" not in row:
                raise ValueError("not a result row")
        except ValueError as e:
            if number == len(lines):  # the unterminated last line: torn by a crash
                torn = True
                continue
            raise ValueError(f"{path}:{number} is not a valid result row ({e}).") from e
        repeated |= row["run_id"] in rows
        rows[row["run_id"]] = row
    if (torn or repeated) and repair:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows.values())
        atomic_write_text(path, text)
    return list(rows.values())


def append_result(path: Path, row: dict[str, Any]) -> None:
    """Append one row as a single line and force it to disk before the next run is recorded.

    A failed append (WriteError) cuts the file back to where it ended: no torn line is left.
    """
    line = memoryview((json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))
    try:
        with open(path, "ab", buffering=0) as f:
            end = f.tell()
            try:
                while line:  # an unbuffered write may write part of the line
                    line = line[f.write(line) :]
                os.fsync(f.fileno())
            except OSError:
                f.truncate(end)
                raise
    except OSError as e:
        raise WriteError(path, e) from e


def results_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The table: run id, variant, config columns that vary or are key, metrics, provenance."""
    rows = list(rows)
    flats = [flatten(r.get("config", {})) for r in rows]
    keys = sorted({k for f in flats for k in f})
    varying = [k for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1]
    config_cols = [k for k in keys if k in varying or k in KEY_FIELDS or k.startswith("task.")]
    records = []
    for row, flat in zip(rows, flats, strict=True):
        record = {"run_id": row["run_id"], "variant": row.get("variant")}
        for key in config_cols:
            value = flat.get(key)
            record[key] = json.dumps(value) if isinstance(value, list | dict) else value
        record.update({m: row.get(m) for m in METRIC_COLUMNS})
        records.append(record)
    columns = ["run_id", "variant", *config_cols, *METRIC_COLUMNS]
    return pd.DataFrame.from_records(records, columns=columns)


def write_csv(out_dir: str | Path) -> pd.DataFrame:
    """Rebuild `results.csv` from `results.jsonl` (atomically) and return the table."""
    out_dir = Path(out_dir)
    frame = results_frame(read_results(out_dir / RESULTS_JSONL))
    atomic_write_text(out_dir / RESULTS_CSV, frame.to_csv(index=False))
    return frame


def _row(spec: SweepSpec, run: RunSpec, metrics: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(run.canonical)
    return {
        "run_id": run.run_id,
        "sweep": spec.name,
        "variant": run.variant,
        **{k: flat[k] for k in sorted(run.overrides)},
        **metrics,
        "config": run.canonical,
    }


def _stage_runs(spec: SweepSpec, stage: str | None, out_dir: Path) -> list[RunSpec]:
    """The runs of one stage; the fresh stage reads the selection's results from `out_dir`, and
    so does a widening select stage (the values its results so far call for)."""
    if stage == "select":
        return spec.expand(stage, read_results(out_dir / RESULTS_JSONL, repair=True))
    if stage != "fresh":
        return spec.expand(stage)
    selection = select(spec, read_results(out_dir / RESULTS_JSONL, repair=True))
    if not selection.complete:
        raise SweepError(
            f"{selection.missing_runs} selection run(s) have no result in {out_dir}; run the "
            "select stage to its end (--stage select) before the fresh stage."
        )
    atomic_write_json(out_dir / SELECTION_FILE, selection.to_dict())
    if selection.at_floor:
        check = selection.floor_check
        best = check["best_final_accuracy"]
        ended = (
            "none has a final accuracy"
            if best is None
            else f"best {best:.3f}, run {check['best_run']}"
        )
        raise SweepError(
            f"No selection run in {out_dir} ended above {check['floor']:g} final accuracy "
            f"({ended}): the study is at the floor, and by its rules the fresh stage does not "
            "run. Report it as undecided at this budget, or give the runs a larger budget in a "
            "new study."
        )
    if selection.unpicked:
        listed = "; ".join(f"{a.variant} {a.config.get('model.gamma')}" for a in selection.unpicked)
        raise SweepError(
            f"{len(selection.unpicked)} arm(s) have no finite {selection.criterion} at any "
            f"searched {selection.search} on the selection seeds (every value diverged): "
            f"{listed}. Widen their search ([protocol] values or neighbours) or remove them from "
            "the spec, and state it in the study's rules, before the fresh stage."
        )
    return spec.expand_fresh(selection.chosen, selection.fresh_seeds)


def run_sweep(
    spec: SweepSpec | str | Path,
    out_dir: str | Path,
    backend: str = "local",
    workers: int | None = None,
    progress: bool = True,
    runs_dir: str | Path | None = None,
    address: str | None = None,
    batch_runs: int = 1,
    time_limit_s: float | None = None,
    stage: str | None = None,
) -> pd.DataFrame:
    """Run every run of `spec` not yet in `out_dir/results.jsonl`; return the results table.

    A spec with a `[protocol]` runs in two stages (`stage`: "select", "fresh", or None for
    both in turn): the select stage trains every arm at every searched value on the selection
    seeds and writes `selection.json`; the fresh stage trains each arm at its chosen value on
    the fresh seeds, and refuses to start while a selection run has no result.
    backend: "local" (spawned worker processes: one per CPU core, or one per GPU when runs use
    CUDA; `workers` overrides, 0 runs them in this process) or "ray" (`address` of a running
    cluster, else a local instance). `batch_runs` > 1 trains up to that many same-shaped runs
    (configs differing only in `model.gamma`) together, stacked and vmap-ed, as one unit.
    `time_limit_s` (local backend): stop starting units then (`backends.run_local` says how a
    unit's time is estimated); the runs left stay pending, and running the sweep again continues
    with them.
    Raises SweepError after the other runs finish if any run failed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}.")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (0: in this process), got {workers}.")
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}.")
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    if spec.protocol is not None and stage is None:
        options = dict(
            out_dir=out_dir,
            backend=backend,
            workers=workers,
            progress=progress,
            runs_dir=runs_dir,
            address=address,
            batch_runs=batch_runs,
        )
        started = time.monotonic()
        run_sweep(spec, stage="select", time_limit_s=time_limit_s, **options)
        left = None if time_limit_s is None else time_limit_s - (time.monotonic() - started)
        return run_sweep(spec, stage="fresh", time_limit_s=left, **options)
    requested_workers = workers  # what a widening round asks for again
    out_dir = Path(out_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else out_dir / "runs"
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / RESULTS_JSONL
    runs = _stage_runs(spec, stage, out_dir)
    atomic_write_json(
        out_dir / SPEC_FILE,
        {
            "name": spec.name,
            "source": spec.source,
            "base": spec.base,
            "grid": spec.grid,
            "variants": spec.variants,
            "protocol": None if spec.protocol is None else dataclasses.asdict(spec.protocol),
            # a protocol's selection runs (with widening, those its results call for so far:
            # the select stage's own runs)
            "n_runs": len(runs)
            if not spec.protocol or stage == "select"
            else len(spec.expand("select", read_results(jsonl))),
        },
    )
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    done = {row["run_id"] for row in read_results(jsonl, repair=True)}
    pending = [r for r in runs if r.run_id not in done]

    def name_of(run: RunSpec) -> str:
        return f"{spec.name}/{run.run_id}"

    units = plan_units(pending, batch_runs)
    if backend == "local":
        if workers is None and pending:
            workers = min(default_workers(pending), len(units))
        deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        outcomes = run_local(units, runs_dir, name_of, workers, deadline)
    else:
        if time_limit_s is not None:
            raise ValueError("time_limit_s is supported by the local backend only.")
        outcomes = run_ray(units, runs_dir, name_of, workers, address)
    failures, n_new = [], 0
    bar = tqdm(
        total=len(runs), initial=len(runs) - len(pending), desc=spec.name, disable=not progress
    )
    try:
        for run, metrics, error in outcomes:
            if error is not None:
                failures.append((run, error))
                bar.write(f"run {run.run_id} {run.overrides} failed: {error!r}")
                continue
            append_result(jsonl, _row(spec, run, metrics))
            n_new += 1
            if stage == "select":  # kept current, so a session cut off leaves it consistent
                atomic_write_json(
                    out_dir / SELECTION_FILE, select(spec, read_results(jsonl)).to_dict()
                )
            accuracy = metrics["final_accuracy"]  # None: the run diverged
            bar.set_postfix(
                acc="diverged" if accuracy is None else f"{accuracy:.3f}", refresh=False
            )
            bar.update(1)
    finally:
        bar.close()
        outcomes.close()
        frame = write_csv(out_dir)
    done = {row["run_id"] for row in read_results(jsonl)}
    session = {
        "started": started_at,
        "elapsed_s": time.perf_counter() - started,
        "n_runs": len(runs),
        "n_new": n_new,
        "n_failed": len(failures),
        "n_left": sum(r.run_id not in done for r in runs),
        "backend": backend,
        "workers": workers,
        "batch_runs": batch_runs,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    if stage is not None:
        session["stage"] = stage
    append_result(out_dir / SESSIONS_FILE, session)
    if stage == "select":
        selection = select(spec, read_results(jsonl))
        atomic_write_json(out_dir / SELECTION_FILE, selection.to_dict())
    if failures:
        listed = "; ".join(f"{r.run_id} {r.overrides}: {e!r}" for r, e in failures[:5])
        raise SweepError(
            f"{len(failures)} of {len(pending)} run(s) failed ({listed}). Finished runs are in "
            f"{jsonl}; run the sweep again to retry the failed ones."
        )
    if stage == "select" and session["n_left"] == 0 and not selection.complete:
        # every run listed is done, and the results call for more values (widening): a round more
        left = None if time_limit_s is None else time_limit_s - session["elapsed_s"]
        if left is None or left > 0:
            return run_sweep(
                spec, out_dir, backend, requested_workers, progress, runs_dir, address,
                batch_runs, left, stage,
            )  # fmt: skip
    return frame
