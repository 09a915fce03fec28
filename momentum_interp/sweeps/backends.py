"""Where a sweep's runs execute: local worker processes, or Ray tasks on a local or remote cluster.

Each backend takes the pending runs as *units* and yields `(run, result, error)` as units
finish, in completion order; the parent process alone writes the results table. A unit of one
run is `execute_run`: train it (into its own run directory, so a killed run resumes from its
last checkpoint) and summarise its metrics. A unit of several same-shaped runs (configs that
differ only in `model.gamma`, see `plan_units`) is `execute_group`: trained together by
`training.batched.train_batched`, one vmap-ed step for all of them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from momentum_interp.sweeps.spec import RunSpec

BACKENDS = ("local", "ray")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

Outcome = tuple[RunSpec, dict[str, Any] | None, BaseException | None]
# A diverged run's numbers: none of them measures a trained model.
DIVERGED_NONE = (
    "final_accuracy",
    "final_loss",
    "best_accuracy",
    "best_step",
    "final_train_loss",
    "eval_positions",
    "auc_accuracy",
    "steps_to_target",
)
Unit = Sequence[RunSpec]


def plan_units(runs: Sequence[RunSpec], batch_runs: int = 1) -> list[list[RunSpec]]:
    """Split runs into units of up to `batch_runs` runs that can train together (same config but
    for `model.gamma`); `batch_runs=1`: one run per unit. Units run seed by seed (then in the
    order their first run appears), so a sweep cut short holds whole replicates of the grid."""
    from momentum_interp.training.batched import group_key

    if batch_runs < 1:
        raise ValueError(f"batch_runs must be >= 1, got {batch_runs}.")
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        key = group_key(run.config) if batch_runs > 1 else run.run_id
        groups.setdefault(key, []).append(run)
    units = [g[i : i + batch_runs] for g in groups.values() for i in range(0, len(g), batch_runs)]
    return sorted(units, key=lambda u: u[0].config.get("train", {}).get("seed", 0))


def _one_thread() -> None:
    """One intra-op thread per process: runs execute side by side, not each across all cores."""
    for name in THREAD_ENV:
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)


def execute_run(
    config: dict[str, Any], name: str, run_dir: str, one_thread: bool = True
) -> dict[str, Any]:
    """Train one run into `run_dir` (resuming a killed attempt) and return its summary metrics."""
    if one_thread:
        _one_thread()

    from momentum_interp.training.config import RunConfig
    from momentum_interp.training.loop import Distributed, TrainingDiverged, resolve_device, train
    from momentum_interp.training.state import METRICS_FILE, load_metrics

    run = RunConfig.from_dict({**config, "name": name})
    device = resolve_device(run.train.device, Distributed())
    started = time.perf_counter()
    try:
        root = train(run, run_dir, overwrite=True, progress=False)
    except TrainingDiverged:  # a result (ranked last), not a failure: its metrics say where
        root = Path(run_dir)
    wall = time.perf_counter() - started
    history = load_metrics(root)
    if not history.get("eval") and "diverged" not in history:
        raise RuntimeError(f"run {name} finished without an evaluation in {root}/{METRICS_FILE}")
    return {**summarise_history(history), "wall_time_s": wall, **_where(device)}


def execute_group(
    configs: list[dict[str, Any]], names: list[str], run_dirs: list[str], one_thread: bool = True
) -> list[dict[str, Any]]:
    """Train same-shaped runs together (`train_batched`) and return each one's summary metrics.
    The group starts again if killed; `wall_time_s` is the group's time shared equally."""
    if one_thread:
        _one_thread()
    from momentum_interp.training.batched import train_batched
    from momentum_interp.training.config import RunConfig
    from momentum_interp.training.loop import Distributed, resolve_device

    runs = [RunConfig.from_dict({**c, "name": n}) for c, n in zip(configs, names, strict=True)]
    device = resolve_device(runs[0].train.device, Distributed())
    started = time.perf_counter()
    histories = train_batched(runs, run_dirs, progress=False)
    wall = (time.perf_counter() - started) / len(runs)
    return [
        {**summarise_history(h), "wall_time_s": wall, "batched_with": len(runs), **_where(device)}
        for h in histories
    ]


def execute_unit(
    configs: list[dict[str, Any]], names: list[str], run_dirs: list[str], one_thread: bool = True
) -> list[dict[str, Any]]:
    """One run alone (`execute_run`, resumable) or a same-shaped group (`execute_group`)."""
    if len(configs) == 1:
        return [execute_run(configs[0], names[0], run_dirs[0], one_thread)]
    return execute_group(configs, names, run_dirs, one_thread)


def _where(device) -> dict[str, str]:
    return {
        "device": str(device) if device.type != "cuda" else _cuda_name(device),
        "hostname": socket.gethostname(),
    }


def summarise_history(history: dict[str, Any]) -> dict[str, Any]:
    """A run's result row from its metrics history: final and best held-out numbers, and the
    whole held-out curve (`eval_steps`, `eval_accuracy`, `eval_loss`) for curve criteria.

    A diverged run (`history["diverged"]`) is a result too: `diverged` with its step and every
    criterion None, so a search ranks it last; its curve up to the divergence is kept."""
    evals, steps = history["eval"], history["train"]
    curves = {
        "eval_steps": [e["step"] for e in evals],
        "eval_accuracy": [e["accuracy"] for e in evals],
        "eval_loss": [e["loss"] for e in evals],
    }
    record = history.get("diverged")
    if record is not None:
        return {
            **dict.fromkeys(DIVERGED_NONE),
            "diverged": True,
            "diverged_step": record["step"],
            "diverged_what": record["what"],
            "steps_trained": record["step"] - 1,
            **curves,
        }
    final, best = evals[-1], max(evals, key=lambda e: e["accuracy"])
    return {
        "diverged": False,
        "final_accuracy": final["accuracy"],
        "final_loss": final["loss"],
        "best_accuracy": best["accuracy"],
        "best_step": best["step"],
        "final_train_loss": steps[-1]["loss"] if steps else None,
        "eval_positions": final.get("n_positions"),
        "steps_trained": final["step"],
        **curves,
        **curve_criteria(curves["eval_steps"], curves["eval_accuracy"]),
    }


def curve_criteria(steps: list[int], accuracy: list[float]) -> dict[str, float | None]:
    """`auc_accuracy` and `steps_to_target` of a held-out curve (None with fewer than 2 points)."""
    from momentum_interp.training.curves import accuracy_auc, steps_to_accuracy

    if len(steps) < 2:
        return {"auc_accuracy": None, "steps_to_target": None}
    return {
        "auc_accuracy": accuracy_auc(steps, accuracy),
        "steps_to_target": steps_to_accuracy(steps, accuracy),
    }


def _cuda_name(device) -> str:
    import torch

    return f"{device}:{torch.cuda.get_device_name(device)}"


def wants_gpu(runs: Sequence[RunSpec]) -> bool:
    """Whether these runs would train on CUDA here (device "auto" or "cuda" with a GPU present)."""
    import torch

    devices = {r.config.get("train", {}).get("device", "auto") for r in runs}
    return torch.cuda.is_available() and bool(devices & {"auto", "cuda"})


def default_workers(runs: Sequence[RunSpec]) -> int:
    """One worker per GPU when runs use CUDA, else one per CPU core."""
    if runs and wants_gpu(runs):
        import torch

        return torch.cuda.device_count()
    return os.cpu_count() or 1


@contextmanager
def _thread_env():
    """Spawned workers inherit the environment: one thread before torch is even imported there."""
    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update(dict.fromkeys(THREAD_ENV, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (e.g. SIGKILL) stops at once instead of finishing its run,
    so a resumed sweep never trains the same run directory twice at the same time."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def exit_with_parent(parent: int) -> None:
    """A pool initializer: this worker exits as soon as its parent process `parent` is gone."""
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _init_worker(gpu_queue, parent: int) -> None:
    _one_thread()
    exit_with_parent(parent)
    if gpu_queue is not None:
        import torch

        torch.cuda.set_device(gpu_queue.get())


def unit_cost(unit: Unit) -> float:
    """A unit's training cost in layer-run-steps (layers × steps, summed over its runs): what
    its time scales with, to estimate a unit from the ones before it."""
    return float(sum(r.config["model"]["n_layers"] * r.config["train"]["steps"] for r in unit))


def _unit_args(unit: Unit, runs_dir: Path, name_of) -> tuple[list, list, list]:
    return (
        [r.config for r in unit],
        [name_of(r) for r in unit],
        [str(runs_dir / r.run_id) for r in unit],
    )


def _outcomes(unit: Unit, get) -> Iterator[Outcome]:
    """One outcome per run of a finished unit: its metrics, or the unit's error for each run."""
    try:
        results = get()
    except Exception as e:  # a failed unit is reported; the others go on
        for run in unit:
            yield run, None, e
        return
    for run, result in zip(unit, results, strict=True):
        yield run, result, None


def run_local(
    units: Sequence[Unit],
    runs_dir: Path,
    name_of,
    workers: int | None = None,
    deadline: float | None = None,
) -> Iterator[Outcome]:
    """A spawn-context `ProcessPoolExecutor`; with GPUs, each worker owns one device.

    `workers=0` runs the units one after another in this process (debugging, notebooks, tests).
    `deadline` (a `time.monotonic()` value): in this process the first unit always starts (there
    is no estimate yet); after it, no unit starts unless it would end before the deadline, judged
    per layer-run-step (`unit_cost`) by the slowest unit so far of the same number of runs (a
    stacked unit of 13 runs costs far less per run than a single run), or of any size when none
    of its size has run. With workers, once the deadline has passed, units not yet handed to a
    worker are cancelled. Units not started stay pending for a later resume; running ones finish.
    """
    import multiprocessing

    if not units:
        return
    runs = [r for unit in units for r in unit]
    if workers == 0:
        rate: dict[int, float] = {}  # seconds per unit_cost, by the unit's number of runs
        for unit in units:
            started = time.monotonic()
            known = rate.get(len(unit), max(rate.values(), default=0.0))
            if deadline is not None and started + known * unit_cost(unit) > deadline:
                return
            args = _unit_args(unit, runs_dir, name_of)
            yield from _outcomes(unit, lambda args=args: execute_unit(*args, one_thread=False))
            elapsed = time.monotonic() - started
            rate[len(unit)] = max(rate.get(len(unit), 0.0), elapsed / unit_cost(unit))
        return
    context = multiprocessing.get_context("spawn")
    gpu = wants_gpu(runs)
    workers = max(1, min(workers or default_workers(runs), len(units)))
    gpu_queue = None
    if gpu:
        import torch

        gpu_queue = context.Queue()
        for index in range(workers):
            gpu_queue.put(index % torch.cuda.device_count())
    with _thread_env():
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(gpu_queue, os.getpid()),
        )
    try:
        with _thread_env():
            futures = {
                pool.submit(execute_unit, *_unit_args(u, runs_dir, name_of)): u for u in units
            }
        for future in as_completed(futures):
            if future.cancelled():
                continue
            yield from _outcomes(futures[future], future.result)
            if deadline is not None and time.monotonic() > deadline:
                for waiting in futures:
                    waiting.cancel()  # only units not yet started can be cancelled
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(
    units: Sequence[Unit],
    runs_dir: Path,
    name_of,
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[Outcome]:
    """One `@ray.remote` task per unit; results are collected with `ray.wait` as they finish.

    Uses the Ray instance already initialised in this process if there is one; otherwise
    `ray.init(address=address)` (a running cluster, e.g. "auto" or "ray://host:10001") or, with
    no address, a local instance with `workers` CPUs. Run directories are paths on the worker
    nodes (use a shared filesystem for resume across nodes); results come back to this process.
    """
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "The ray backend needs Ray: pip install 'momentum_interp[ray]' (or pip install ray)."
        ) from e
    if not units:
        return
    runs = [r for unit in units for r in unit]
    started_here = not ray.is_initialized()
    if started_here:
        if address is None:
            ray.init(
                num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False
            )
        else:
            ray.init(address=address, log_to_driver=False)
    pending = []
    try:
        num_gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        devices = {r.config.get("train", {}).get("device", "auto") for r in runs}
        if devices == {"cpu"}:
            num_gpus = 0
        task = ray.remote(
            num_cpus=1,
            num_gpus=num_gpus,
            max_retries=0,
        )(execute_unit)  # Ray sets OMP_NUM_THREADS=num_cpus (1) in task workers; so does the task
        refs = {task.remote(*_unit_args(u, runs_dir.resolve(), name_of)): u for u in units}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield from _outcomes(refs[ref], lambda ref=ref: ray.get(ref))
    finally:
        for ref in pending:  # interrupted: runs not yet collected are cancelled
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
