"""Where a source checkout keeps its committed files (bundled checkpoints, results)."""

from __future__ import annotations

from pathlib import Path

# The repository root of a source checkout: the directory holding the package, assets/ and results/.
REPO_ROOT = Path(__file__).resolve().parents[1]
