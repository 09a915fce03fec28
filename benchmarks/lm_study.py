"""The fair LM comparison: the GPU `lm` part's five models, each at its own learning rate, on
fresh seeds, sized for two CPU cores.

    python -m benchmarks.lm_study OUT_DIR [--stage select|fresh|all] [--shape cpu|gpu|smoke]
                                          [--workers 2] [--runs-dir runs/lm_study]

Same corpus, split, models, schedule, training loop and evaluation as `benchmarks/gpu/lm.py`
(its functions, not a copy); `--shape gpu` is that part's shape, so a GPU run later is the same
experiment, larger. `--shape cpu` (the default): T = 256, 16 windows a step, 1,250 steps =
5,120,000 tokens per run (0.17 epochs of the training split, windows drawn at random); S is 2 layers
× 128 (4 heads, d_mlp 512; 2,502,144 parameters with the 8,192-id (un)embedding), 3×S is
4 layers × 256 (7,362,048: 2.94× S, the GPU part's S).

The protocol, fixed before the first run (`results/lm_fair/README.md`):
- **select**: every arm trains on selection seed 100 at 1e-3, 3.162e-3 and 1e-2 (√10 steps);
  its rate is the one with the lowest validation loss (exact ties: the smaller rate; a run
  without a finite loss ranks last). An arm whose best is an end of the rates it searched also
  trains the next rate of the ladder 1e-4 … 3.162e-2 beyond that end, until its best is interior
  or the ladder ends (then flagged "at ladder end").
- **fresh**: every arm at its rate on seeds 0, 1, 2 (seed = initial weights and training
  stream; the evaluation windows are the same for every run); only these are reported.
- Each S arm's validation-loss gap to 3×S and the fraction of the S baseline's gap it closes,
  t intervals over seeds; paired t-tests against the S baseline, Holm-corrected
  (`analysis.lm_study`).

OUT_DIR: `runs.jsonl` (one row per finished run, written as it ends: a killed study keeps every
finished run, and rerunning the command trains only what is missing; a run cut off mid-way
resumes from its last checkpoint, saved every few minutes under `--runs-dir`/resume and removed
once its row is written, with the same model, optimiser and data stream as if never cut off;
each row carries the protocol's fingerprint, and a study refuses rows of another),
`selection.json`, and once two fresh seeds have every arm, `study.json` and `summary.md` (all
three rewritten after every finished run, so a study cut off leaves them current).
Workers train one run each with one thread (`--workers 2` on two cores; on a GPU, `--shape gpu`
and one worker); the corpus is tokenised once into `--runs-dir` (git-ignored), where each run
also logs its steps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from benchmarks import common
from benchmarks.gpu import lm
from benchmarks.gpu_part import Budget
from benchmarks.reference_gpt import count_parameters
from momentum_interp.analysis.lm_study import analyse_lm_study, complete_seeds
from momentum_interp.data import TokenStreamTask
from momentum_interp.data.code_corpus import CORPUS_PATH, TOKENIZER_PATH, sha256_of
from momentum_interp.io import atomic_write_json
from momentum_interp.lock import one_writer
from momentum_interp.narrative.lm import lm_study_summary
from momentum_interp.provenance import git_commit
from momentum_interp.sweeps.backends import exit_with_parent
from momentum_interp.sweeps.runner import append_result, read_results
from momentum_interp.training.state import RunDirectory

LADDER = (1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2, 3.162e-2)  # √10 steps
FIRST_RATES = (1e-3, 3.162e-3, 1e-2)
SELECTION_SEED = 100
FRESH_SEEDS = (0, 1, 2)
CRITERION = "val_loss"  # lower is better
CPU = lm.FULL | dict(
    seq_len=256,
    batch=16,
    steps=1250,
    warmup_steps=100,
    eval_batches=64,
    eval_batch=16,
    log_every=50,
    backend="eager",  # inductor's CPU code generation costs minutes and a compiler
    sizes={
        "S": dict(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512),
        "3S": dict(n_layers=4, d_model=256, n_heads=4, d_head=64, d_mlp=1024),
    },
)
SHAPES = {"cpu": CPU, "gpu": lm.FULL, "smoke": lm.SMOKE}
ARMS = {name: (size, filt) for name, size, filt in lm.RUNS}
RESULTS, SELECTION, STUDY, SUMMARY = "runs.jsonl", "selection.json", "study.json", "summary.md"


def fingerprint(shape_name: str) -> str:
    """A short hash of everything that makes runs comparable: the shape, the models, the
    optimiser, the rate ladder and the seeds (rows of another fingerprint are another study)."""
    protocol = {
        "shape": SHAPES[shape_name],
        "model": lm.MODEL,
        "runs": lm.RUNS,
        "optim": lm.OPTIM,
        "ladder": LADDER,
        "first_rates": FIRST_RATES,
        "seeds": [SELECTION_SEED, *FRESH_SEEDS],
    }
    text = json.dumps(protocol, sort_keys=True, default=str)
    return f"{shape_name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def device_for(shape_name: str) -> torch.device:
    """CUDA for the GPU shape (which needs it), the CPU otherwise."""
    return torch.device("cuda" if shape_name == "gpu" else "cpu")


def run_key(arm: str, lr: float, seed: int) -> str:
    """A run's id in `runs.jsonl`: its arm, rate and seed (the stage follows from the seed)."""
    return f"{arm}-lr{lr:g}-seed{seed}"


def criterion(row: dict[str, Any] | None) -> float | None:
    """A run's validation loss, None when it did not finish its budget with a finite loss."""
    if row is None or lm.not_compared(row) is not None:
        return None
    value = (row.get("metrics") or {}).get(CRITERION)
    return value if isinstance(value, float) and math.isfinite(value) else None


def best_rate(rates: list[float], losses: dict[float, float | None]) -> float | None:
    """The rate with the lowest finite loss (ties: the smaller rate); None when none is finite."""
    finite = [r for r in rates if losses.get(r) is not None]
    return min(finite, key=lambda r: (losses[r], r)) if finite else None


def searched_rates(losses: dict[float, float | None]) -> list[float]:
    """The rates an arm searches, given the selection runs it has finished (`losses`: rate ->
    loss, None for a run without a finite loss): `FIRST_RATES`, widened one ladder step beyond an
    end that is the best so far, until the best is interior or the ladder ends."""
    rates = list(FIRST_RATES)
    while all(r in losses for r in rates):
        best = best_rate(rates, losses)
        low, high = LADDER.index(rates[0]), LADDER.index(rates[-1])
        if best == rates[0] and low > 0:
            rates.insert(0, LADDER[low - 1])
        elif best == rates[-1] and high < len(LADDER) - 1:
            rates.append(LADDER[high + 1])
        else:
            break
    return rates


def selection(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each arm's search on the selection seed so far: its rates, their losses, the runs still
    to train, and (when none is left) its pick and whether that is an end of the ladder."""
    arms = {}
    for arm in ARMS:
        losses = {
            r: criterion(rows[key])
            for r in LADDER
            if (key := run_key(arm, r, SELECTION_SEED)) in rows
        }
        rates = searched_rates(losses)
        pending = [r for r in rates if r not in losses]
        pick = None if pending else best_rate(rates, losses)
        arms[arm] = {
            "rates": rates,
            "val_loss": [losses.get(r) for r in rates],
            "pending": pending,
            "chosen": pick,
            "at_ladder_end": pick in (LADDER[0], LADDER[-1]),
        }
    return {
        "criterion": CRITERION,
        "selection_seed": SELECTION_SEED,
        "ladder": list(LADDER),
        "first_rates": list(FIRST_RATES),
        "complete": all(not a["pending"] for a in arms.values()),
        "arms": arms,
    }


class StudyError(ValueError):
    """A stage that cannot start: the command says why and exits 2."""


def pending_jobs(stage: str, rows: dict[str, dict[str, Any]]) -> list[tuple[str, float, int]]:
    """`(arm, lr, seed)` still to train in a stage, the reference (the longest) first within a
    seed; the fresh stage is seed by seed, so a study cut short holds whole replicates."""
    chosen = selection(rows)
    if stage == "select":
        jobs = [(a, r, SELECTION_SEED) for a, s in chosen["arms"].items() for r in s["pending"]]
    else:
        if not chosen["complete"]:
            raise StudyError("the select stage is not complete: run --stage select first")
        unpicked = [a for a, s in chosen["arms"].items() if s["chosen"] is None]
        if unpicked:
            raise StudyError(
                f"no finite validation loss at any searched rate for {unpicked}: every rate "
                "diverged; the rules do not say what to do, so amend results/lm_fair/README.md "
                "(e.g. extend LADDER downwards) before the fresh stage"
            )
        jobs = [
            (arm, s["chosen"], seed) for seed in FRESH_SEEDS for arm, s in chosen["arms"].items()
        ]
    jobs = [j for j in jobs if run_key(*j) not in rows]
    return sorted(jobs, key=lambda j: (j[2], ARMS[j[0]][0] != "3S"))


def tokenised(shape_name: str, scratch: Path, runs_dir: Path) -> tuple[dict[str, Path], dict]:
    """Both splits as `.npy` token streams (tokenised once, reused), and the corpus facts."""
    if shape_name == "smoke":
        corpus, tokenizer = lm.smoke_inputs(scratch)
        folder = scratch
    else:
        corpus, tokenizer = CORPUS_PATH, Tokenizer.from_file(str(TOKENIZER_PATH))
        folder = runs_dir / f"tokens-{sha256_of(corpus)[:12]}-{sha256_of(TOKENIZER_PATH)[:12]}"
    paths = {split: folder / f"{split}.npy" for split in ("train", "val")}
    facts_path = folder / "corpus.json"
    if all(p.is_file() for p in paths.values()) and facts_path.is_file():
        return paths, json.loads(facts_path.read_text())
    streams, facts = lm.tokenised_splits(corpus, tokenizer, lm.FULL["hold_out_every"])
    folder.mkdir(parents=True, exist_ok=True)
    for split, path in paths.items():
        np.save(path, streams[split])
    manifest = None if shape_name == "smoke" else json.loads(lm.MANIFEST_PATH.read_text())
    facts |= lm.manifest_check(facts, manifest)
    common.write_json(facts_path, facts)
    return paths, facts


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one run (in a worker: one thread); returns its `runs.jsonl` row."""
    if job["one_thread"]:
        torch.set_num_threads(1)
    torch._dynamo.reset()  # a worker trains many models: each compiles afresh, not as a recompile
    shape = SHAPES[job["shape"]]
    arm, lr, seed = job["arm"], job["lr"], job["seed"]
    size, filt = ARMS[arm]
    device = device_for(job["shape"])
    tasks = {
        split: TokenStreamTask(
            torch.from_numpy(np.load(path).astype(np.int32)).to(device),
            d_vocab=job["d_vocab"],
            seq_len=shape["seq_len"],
        )
        for split, path in job["tokens"].items()
    }
    run = lm.run_config(arm, size, filt, shape, lr=lr, seed=seed)
    model = lm.build_model(run, tasks["train"], device)
    budget = Budget(math.inf)
    entry: dict[str, Any] = {
        "run_id": run_key(arm, lr, seed),
        "arm": arm,
        "size": size,
        "lr": lr,
        "seed": seed,
        "stage": "select" if seed == SELECTION_SEED else "fresh",
        "shape": job["shape"],
        "protocol": job["protocol"],
        "n_params": count_parameters(model),
        "n_params_non_embedding": lm.non_embedding_parameters(model),
        "tokens_planned": shape["steps"] * shape["batch"] * shape["seq_len"],
    }
    started = time.perf_counter()
    resume = RunDirectory(Path(job["resume_dir"]) / entry["run_id"])  # a cut-off run goes on
    # checkpoints of another setup (run config, corpus tokens) cannot be resumed: replaced
    resume.claim(run.to_dict() | {"tokens": job["tokens"], "d_vocab": job["d_vocab"]}, True)
    log_path = Path(job["log_dir"]) / f"{entry['run_id']}.jsonl"
    log = lm.Log(log_path, budget, append=resume.latest_checkpoint() is not None)
    lm.measure(entry, model, run, tasks, shape, budget, log, resume)
    entry.pop("probe", None)
    entry.update(
        wall_s=round(time.perf_counter() - started, 2),
        hostname=socket.gethostname(),
        torch=torch.__version__,
        git_commit=job["git_commit"],
        finished=common.now(),
    )
    return entry


def run_stage(
    stage: str,
    args: argparse.Namespace,
    tokens: dict,
    d_vocab: int,
    after_row: Callable[[], None] = lambda: None,
) -> None:
    """Train every pending run of `stage`, appending each row as it ends and then calling
    `after_row` (which rewrites the outputs, so a stage cut off leaves them current); the
    select stage repeats until no arm needs a wider search."""
    results = args.out_dir / RESULTS
    log_dir = args.runs_dir / "logs" / args.out_dir.resolve().name
    log_dir.mkdir(parents=True, exist_ok=True)
    protocol = fingerprint(args.shape)
    resume_dir = args.runs_dir / "resume" / protocol / args.out_dir.resolve().name
    finished = {r["run_id"] for r in read_results(results)}
    for stale in resume_dir.glob("*") if resume_dir.is_dir() else []:
        if stale.name in finished:  # its row was written, its removal cut off
            shutil.rmtree(stale, ignore_errors=True)

    def record(row: dict[str, Any]) -> None:
        """Append a finished run's row, drop its resume checkpoints, rewrite the outputs (a
        fault there is reported, not raised: training goes on, and the stage's end rewrites)."""
        append_result(results, row)
        shutil.rmtree(resume_dir / row["run_id"], ignore_errors=True)
        try:
            after_row()
        except Exception as error:  # noqa: BLE001 (the rows are safe; the outputs can wait)
            print(
                f"lm_study: warning: outputs not rewritten after {row['run_id']}: {error}",
                file=sys.stderr,
            )

    shared = {
        "shape": args.shape,
        "protocol": protocol,
        "tokens": {k: str(v) for k, v in tokens.items()},
        "d_vocab": d_vocab,
        "log_dir": str(log_dir),
        "resume_dir": str(resume_dir),
        "git_commit": git_commit(),
        "one_thread": args.workers > 0,
    }
    while jobs := pending_jobs(stage, {r["run_id"]: r for r in read_results(results, repair=True)}):
        specs = [shared | {"arm": arm, "lr": lr, "seed": seed} for arm, lr, seed in jobs]
        bar = tqdm(total=len(specs), desc=f"lm study, {stage}", unit="run")
        if args.workers == 0:
            for spec in specs:
                record(train_one(spec))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(
                args.workers, context, initializer=exit_with_parent, initargs=(os.getpid(),)
            )  # a worker whose parent is killed stops too, instead of training on unrecorded
            with pool:
                futures = [pool.submit(train_one, s) for s in specs]
                try:
                    for future in as_completed(futures):
                        record(future.result())
                        bar.update()
                except BaseException:  # a failed run or Ctrl-C: no queued run starts after it
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        bar.close()
        if stage != "select":
            break


def write_outputs(out_dir: Path, corpus: dict[str, Any]) -> None:
    """`selection.json`, and `study.json` + `summary.md` once two fresh seeds have every arm."""
    rows = {r["run_id"]: r for r in read_results(out_dir / RESULTS)}
    chosen = selection(rows)
    atomic_write_json(out_dir / SELECTION, chosen)
    if not chosen["complete"]:
        return
    rates = {arm: s["chosen"] for arm, s in chosen["arms"].items() if s["chosen"] is not None}
    fresh = [r for r in rows.values() if r["seed"] in FRESH_SEEDS]
    if len(complete_seeds(fresh, rates)) < 2:
        return
    study = analyse_lm_study(fresh, rates)
    any_row = next(iter(rows.values()))
    data = {
        "command": "python -m benchmarks.lm_study " + " ".join(sys.argv[1:]),
        "shape": any_row["shape"],
        "tokens_per_run": any_row["tokens_planned"],
        "fresh_seeds": list(FRESH_SEEDS),
        "complete": study.seeds == list(FRESH_SEEDS),
        "corpus": corpus,
        "n_params": {
            arm: rows[run_key(arm, lr, study.seeds[0])]["n_params"] for arm, lr in rates.items()
        },
        "selection": chosen,
        **study.to_dict(),
    }
    atomic_write_json(out_dir / STUDY, data)
    common.write_text(out_dir / SUMMARY, lm_study_summary(data))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lm_study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", type=Path, help="results folder (created if missing)")
    parser.add_argument("--stage", choices=("select", "fresh", "all"), default="all")
    parser.add_argument("--shape", choices=tuple(SHAPES), default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="processes (0: in this one)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/lm_study"))
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.shape == "gpu" and not torch.cuda.is_available():
        print(
            "lm_study: --shape gpu needs a CUDA device; on a CPU use --shape cpu", file=sys.stderr
        )
        return 2
    rows = read_results(args.out_dir / RESULTS)  # repaired only under the lock (run_stage)
    others = sorted({r.get("protocol", r["shape"]) for r in rows} - {fingerprint(args.shape)})
    if others:
        print(
            f"lm_study: {args.out_dir / RESULTS} holds runs of another protocol {others} (shape "
            f"and fingerprint; this command's is {fingerprint(args.shape)}): a study is one "
            "protocol, so give another OUT_DIR, or rerun with the shape and code those rows had",
            file=sys.stderr,
        )
        return 2
    if args.shape != "smoke" and (problem := lm.missing_inputs()):
        print(problem.replace("lm:", "lm_study:", 1), file=sys.stderr)
        return 2
    if args.stage == "fresh":  # refused before the corpus is read
        try:
            pending_jobs("fresh", {r["run_id"]: r for r in rows})
        except StudyError as error:
            print(f"lm_study: {error}", file=sys.stderr)
            return 2
    with one_writer(args.out_dir), tempfile.TemporaryDirectory() as scratch:
        tokens, facts = tokenised(args.shape, Path(scratch), args.runs_dir)
        for warning in facts.get("warnings", []):
            print(f"lm_study: warning: {warning}", file=sys.stderr)
        stages = ("select", "fresh") if args.stage == "all" else (args.stage,)
        for stage in stages:
            try:
                run_stage(
                    stage,
                    args,
                    tokens,
                    facts["d_vocab"],
                    after_row=lambda: write_outputs(args.out_dir, facts),
                )
            except StudyError as error:
                print(f"lm_study: {error}", file=sys.stderr)
                write_outputs(args.out_dir, facts)
                return 2
            write_outputs(args.out_dir, facts)
    print(f"lm study: {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
