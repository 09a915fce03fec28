"""The GPU suite's sweep part in its --smoke form: runs on CPU and leaves the promised layout."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MAX_FILES, MAX_BYTES = 8, 16 * 2**20


def check_layout(out: Path) -> list[str]:
    """Flat, at most 8 files, each under 16 MiB; returns the names."""
    entries = list(out.iterdir())
    assert all(p.is_file() for p in entries), [p.name for p in entries if not p.is_file()]
    assert len(entries) <= MAX_FILES and all(p.stat().st_size < MAX_BYTES for p in entries)
    return sorted(p.name for p in entries)


def test_sweep_smoke(tmp_path):
    out = tmp_path / "sweep"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu.sweep", str(out), "--smoke"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    names = check_layout(out)
    assert {"results.jsonl", "results.csv", "fit.json", "summary.md"} <= set(names)
    table = pd.read_csv(out / "results.csv")
    # 2 depths x 3 γ (q/k), keys-only at N = 1 and 2 (3 γ each), smeared key at both depths.
    assert len(table) == 6 + 6 + 2
    assert table["auc_accuracy"].between(0, 1).all()
    assert set(table.loc[table["variant"] == "momentum", "batched_with"]) == {3}
    fit = json.loads((out / "fit.json").read_text())
    assert fit["metric"] == "auc_accuracy" and len(fit["depths"]) == 2
