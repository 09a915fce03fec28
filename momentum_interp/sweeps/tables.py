"""A sweep's results as a table: read from `results.csv` or `results.jsonl`, and what the table
came from (runs, summed training time, machines, the sweep's sessions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from momentum_interp.sweeps.runner import SESSIONS_FILE, read_results, results_frame


def load_table(path: str | Path) -> pd.DataFrame:
    """A sweep's results table from `results.csv` or `results.jsonl`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Results table {path} does not exist.")
    if path.suffix == ".jsonl":
        return results_frame(read_results(path))
    return pd.read_csv(path)


def table_provenance(df: pd.DataFrame, results_dir: str | Path | None = None) -> dict[str, Any]:
    """Runs, summed per-run training time, machines and devices; the sweep's own wall time when
    its `sweep_sessions.jsonl` lies beside the table."""
    out: dict[str, Any] = {"n_runs": len(df)}
    if "wall_time_s" in df:
        out["sum_run_wall_time_s"] = float(df["wall_time_s"].sum())
    for column in ("hostname", "device"):
        if column in df:
            out[f"{column}s"] = sorted({str(x) for x in df[column].dropna()})
    if results_dir is not None:
        sessions_path = Path(results_dir) / SESSIONS_FILE
        if sessions_path.is_file():
            sessions = [json.loads(x) for x in sessions_path.read_text().splitlines() if x.strip()]
            out["sessions"] = sessions
            out["sweep_wall_time_s"] = float(sum(s.get("elapsed_s", 0.0) for s in sessions))
    return out
