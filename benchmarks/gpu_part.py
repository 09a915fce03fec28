"""What every GPU-suite part shares: its command line, a wall-clock budget and a results file
rewritten atomically after every measurement (so a killed run leaves what it measured)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks import common

DEFAULT_BUDGET_S = 390.0  # measuring stops after this; start-up and the last write fit in 7 min


def parse_args(part: str, doc: str | None, argv: list[str] | None = None) -> argparse.Namespace:
    """`OUT_DIR [--smoke] [--budget-s S]`, the command line of every part."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.gpu.{part}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", type=Path, help="results folder (flat; created if missing)")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run, seconds")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    return parser.parse_args(argv)


class Budget:
    """Seconds left of a wall-clock budget started at construction."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


class Recorder:
    """`data`, written to `OUT_DIR/<part>.json` by `write()` (temp file + rename: never half)."""

    def __init__(self, out_dir: Path, part: str):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / f"{part}.json"
        self.data: dict = {"part": part, "started": common.now()}

    def write(self) -> Path:
        self.data["written"] = common.now()
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.data, indent=1, default=common._json_default) + "\n")
        os.replace(partial, self.path)
        return self.path
