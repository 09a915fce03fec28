"""Checkpoint history: weights kept at scheduled steps, so analyses can watch a circuit form.

A run trained with `[train] history_checkpoints = n` keeps its weights (no optimiser state) at
about n steps: half log-spaced from step 1 (dense early, where induction heads usually form) and
half evenly spaced, so a transition anywhere in the run falls between close snapshots. Each
snapshot is `history/step-NNNNNNN/` (what `from_pretrained` loads), written into a temporary
folder and renamed into place, so a kill never leaves a half-written one; `history/index.json`
lists the kept steps. A resumed run first discards snapshots past its resume point (they belong
to the interrupted trajectory it is about to replay), then keeps a snapshot only where none
exists, so every scheduled step is kept exactly once and all come from one trajectory. Disk use is
bounded by n times the model's weights.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from momentum_interp.io import atomic_write_json

HISTORY_DIR = "history"
INDEX_FILE = "index.json"


def history_schedule(total_steps: int, n_checkpoints: int) -> list[int]:
    """About `n_checkpoints` distinct steps in [1, total_steps]: half log-spaced, half evenly
    spaced, topped up evenly where rounding merged steps; the last step always included."""
    if n_checkpoints <= 0 or total_steps <= 0:
        return []
    n = min(n_checkpoints, total_steps)
    log_spaced = np.geomspace(1, total_steps, (n + 1) // 2)
    even = np.linspace(total_steps / (n // 2 + 1), total_steps, n // 2 + 1)
    steps = {int(round(s)) for s in (*log_spaced, *even)} | {total_steps}
    fill = iter(np.linspace(1, total_steps, 4 * n).round().astype(int))
    while len(steps) < n:
        steps.add(int(next(fill)))
    return sorted(s for s in steps if 1 <= s <= total_steps)


def snapshot_name(step: int) -> str:
    """The folder name of `step`'s snapshot, zero-padded so folders sort by step."""
    return f"step-{step:07d}"


class CheckpointHistory:
    """The `history/` folder of one run directory."""

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir) / HISTORY_DIR

    def steps(self) -> list[int]:
        """The kept steps, from the snapshots on disk (complete ones only)."""
        if not self.root.is_dir():
            return []
        return sorted(
            int(path.name.split("-")[1])
            for path in self.root.glob("step-*")
            if path.is_dir() and (path / "config.json").is_file()
        )

    def path(self, step: int) -> Path:
        """The snapshot folder of `step` (what `from_pretrained` loads); FileNotFoundError
        names the kept steps when there is none."""
        path = self.root / snapshot_name(step)
        if not path.is_dir():
            kept = self.steps()
            raise FileNotFoundError(
                f"{self.root} keeps no snapshot at step {step}; kept steps: "
                f"{kept[:5]}{' …' if len(kept) > 5 else ''} ({len(kept)} in all)."
            )
        return path

    def keep(self, step: int, model) -> bool:
        """Save `model`'s weights as the snapshot of `step` unless one exists; returns whether
        it wrote one. The folder appears complete or not at all (temporary folder, rename)."""
        final = self.root / snapshot_name(step)
        if final.is_dir():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{snapshot_name(step)}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        try:
            model.save_pretrained(staging)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.write_index()
        return True

    def discard_after(self, step: int) -> list[int]:
        """Remove the snapshots of steps after `step` (a restart replays them); returns those
        steps. Leftover partial folders of an interrupted save go too."""
        stale = [s for s in self.steps() if s > step]
        for s in stale:
            shutil.rmtree(self.root / snapshot_name(s))
        for partial in self.root.glob(".step-*.partial") if self.root.is_dir() else ():
            shutil.rmtree(partial)
        if stale:
            self.write_index()
        return stale

    def write_index(self) -> None:
        """`index.json`: every kept step and its folder, for readers that do not list folders."""
        steps = self.steps()
        atomic_write_json(
            self.root / INDEX_FILE,
            {"steps": steps, "paths": [snapshot_name(s) for s in steps]},
        )

    def index(self) -> dict:
        """`index.json` (`steps`, `paths`); FileNotFoundError says how to train a run that keeps
        a history when there is none."""
        path = self.root / INDEX_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: the run kept no checkpoint history (train it with "
                "[train] history_checkpoints = 50 or more)."
            )
        return json.loads(path.read_text())
