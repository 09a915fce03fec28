"""The static type check of `analysis/` (mypy, configured in pyproject.toml's `[tool.mypy]`,
which checks this file too), and the typed call site it checks: TransformerLens's own
`TransformerBridge` passed where analysis entry points take a `protocol.TLModel`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from transformer_lens.model_bridge import TransformerBridge

from momentum_interp.analysis.heads import HeadRanking, rank_heads_ci

ROOT = Path(__file__).resolve().parents[1]


def rank_bridge_heads(bridge: TransformerBridge, n_sequences: int) -> HeadRanking:
    """A `TransformerBridge` is a `TLModel`: mypy accepts it where `rank_heads_ci` takes one."""
    return rank_heads_ci(bridge, "induction", n_sequences=n_sequences, seed=0, progress=False)


def test_a_bridge_ranks_its_heads(gpt2_pair):
    bridge = gpt2_pair[3]
    ranking = rank_bridge_heads(bridge, n_sequences=4)
    assert len(ranking.heads) == bridge.cfg.n_layers * bridge.cfg.n_heads
    assert ranking.top in ranking.tied and ranking.n_sequences == 4


def _mypy(*paths: str | Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("mypy") is None:
        message = "mypy is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    command = [sys.executable, "-m", "mypy", *map(str, paths)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_analysis_type_checks(tmp_path):
    """mypy passes on `analysis/` and this file (`[tool.mypy] files`), and it is no rubber stamp:
    beside them, a probe fails on exactly the lines that pass a model name where a `TLModel`
    goes, a NumPy array where token ids go, and a `TransformerBridge` where an int goes (so the
    bridge above was checked as itself, not as `Any`)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import numpy as np\n"
        "from momentum_interp.analysis.heads import rank_heads_ci\n"
        "from momentum_interp.analysis.scoring import token_match_masks\n"
        "rank_heads_ci('induction-1l-momentum')\n"
        "token_match_masks(np.zeros((2, 8), dtype=int))\n"
        "from transformer_lens.model_bridge import TransformerBridge\n"
        "def width(bridge: TransformerBridge) -> int:\n"
        "    return bridge\n"
    )
    run = _mypy()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success: no issues found" in run.stdout
    run = _mypy("momentum_interp/analysis", Path(__file__), probe)
    errors = re.findall(r"^(.+?):(\d+): error: (.*)$", run.stdout, flags=re.MULTILINE)
    assert run.returncode == 1
    assert [(Path(path).name, line) for path, line, _ in errors] == [
        ("probe.py", "4"),
        ("probe.py", "5"),
        ("probe.py", "8"),
    ], run.stdout
    assert '"TLModel"' in errors[0][2] and '"Tensor"' in errors[1][2]
    assert '"TransformerBridge", expected "int"' in errors[2][2]
