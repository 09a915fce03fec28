"""Sweeps: expand a grid of run configs, run them locally or on Ray, collect one results table."""

from momentum_interp.sweeps.runner import (
    RESULTS_CSV,
    RESULTS_JSONL,
    SweepError,
    read_results,
    results_frame,
    run_sweep,
    write_csv,
)
from momentum_interp.sweeps.spec import RunSpec, SweepSpec, load_sweep, run_id

__all__ = [
    "RESULTS_CSV",
    "RESULTS_JSONL",
    "RunSpec",
    "SweepError",
    "SweepSpec",
    "load_sweep",
    "read_results",
    "results_frame",
    "run_id",
    "run_sweep",
    "write_csv",
]
