"""Shared helpers of the benchmark suite: machine description, load, memory, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from momentum_interp.io import atomic_write_text
from momentum_interp.tables import markdown_table  # noqa: F401  (re-exported for the benchmarks)

RESULTS_DIR = Path(__file__).parent / "results"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (runnable processes per core × cores, not a fraction)."""
    return [round(x, 2) for x in os.getloadavg()]


def today() -> str:
    return dt.date.today().isoformat()


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    """Everything needed to read a timing: device, versions, cores, threads, load."""
    info = {
        "device": str(device),
        "device_name": device_name(device),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "load_average": load_average(),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def cpu_peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Peak of torch's live CPU allocations while `fn()` runs, above what was live at its start.

    The CPU counterpart of `torch.cuda.max_memory_allocated` minus the allocation at the start,
    read from the profiler's memory events at op granularity (an op's allocations count from the
    op's start; a buffer an op allocates and frees inside itself is not seen). Unlike RSS it does
    not see the allocator's cache, other variants in the process, or other processes.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def quantiles(values: list[float]) -> dict[str, float]:
    """Median, 10th and 90th percentiles (nearest-rank on the sorted values)."""
    ordered = sorted(values)
    n = len(ordered)

    def pick(q: float) -> float:
        return ordered[min(n - 1, max(0, round(q * (n - 1))))]

    return {"median": statistics.median(ordered), "p10": pick(0.1), "p90": pick(0.9)}


def write_json(path: Path, payload: dict) -> Path:
    """Atomic, indented JSON (paths and torch dtypes written as strings)."""
    atomic_write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def write_text(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.dtype):
        return str(obj).removeprefix("torch.")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
