"""`scripts/gpu_suite.sh PART OUT --smoke` for every part: it runs, and its output is flat, at most
8 files, each under 16 MiB and valid JSON where it says so."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = sorted(p.stem for p in (ROOT / "benchmarks" / "gpu").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("part", PARTS)
def test_smoke_run_writes_the_promised_layout(part, tmp_path):
    out = tmp_path / "out"
    env = os.environ | {"PYTHON": sys.executable, "WHEELHOUSE": ""}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_suite.sh"), part, str(out), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = list(out.iterdir())
    assert 1 <= len(files) <= 8
    assert all(f.is_file() for f in files)  # flat
    assert all(f.stat().st_size < 16 * 2**20 for f in files)
    results = {f.name: json.loads(f.read_text()) for f in files if f.suffix == ".json"}
    if part == "bench":  # a number for every variant in both modes, and the interpretability calls
        bench = results["bench.json"]
        for mode in ("compiled", "eager"):
            for name, record in bench[mode]["variants"].items():
                assert record["tokens_per_s"] > 0, (mode, name)
            assert len(bench[mode]["variants"]) == 5
        assert bench["interpretability"]["run_with_cache_every_hook"]["over_forward"] > 0
        assert bench["interpretability"]["score_heads_100_sequences"]["first_s"] > 0


def test_unknown_part_exits_2(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_suite.sh"), "nope", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "bench" in done.stderr
