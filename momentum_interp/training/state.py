"""Resumable training state in safetensors + JSON (no pickle): model, optimiser, step and history.

A run directory holds the final model at its top level (loadable with `from_pretrained`) and,
while training, `checkpoints/step-NNNNNNN/` folders. Each is written completely into a hidden
folder, renamed into place, and only then is the `checkpoints/LATEST` pointer atomically switched
to it, so a run killed at any moment, or whose save fails (disk full), resumes from the last
complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from momentum_interp.io import (
    UMASK,
    WriteError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_writable,
)
from momentum_interp.lock import LOCK_FILE
from momentum_interp.model.transformer import HookedMomentumTransformer

RUN_CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_STATE_FILE = "trainer_state.json"
HISTORY_BYTES_PER_STEP = 256  # a step's train (and eval) entry in the JSON history, generously


def load_metrics(run_dir: str | Path) -> dict:
    """The `metrics.json` history saved beside a trained checkpoint ("train" and "eval" entries)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the checkpoint has no training history.")
    return json.loads(path.read_text())


class RunDirectoryError(ValueError):
    """The output directory holds a different run, or its checkpoint cannot be resumed."""


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors (for safetensors) and JSON-able metadata."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of `optimizer_to_files`: a state dict for `optimizer.load_state_dict`."""
    state: dict[int, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = flat.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    param_groups = meta["param_groups"]
    for group in param_groups:
        group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": param_groups}


def _without_name(run_config: dict) -> dict:
    return {key: value for key, value in run_config.items() if key != "name"}


def space_needed(model: torch.nn.Module, steps: int, snapshots: int = 0) -> int:
    """Bytes a run's directory needs at its peak: while a checkpoint is saved the old and the
    new one (weights and AdamW's two moments each) coexist, then the final model is added;
    each of them holds the step history; plus `snapshots` weight-only history snapshots."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return (2 * 3 + 1 + snapshots) * weights + 3 * HISTORY_BYTES_PER_STEP * steps


class RunDirectory:
    """The files of one training run under `root`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"

    def claim(self, run_config: dict, overwrite: bool) -> None:
        """Make `root` this run's directory; refuse a directory that holds a different run.

        Runs that differ only in `name` are the same run (a sweep names a shared run its own way),
        so it resumes or stays finished instead of being replaced.
        """
        run_config = json.loads(json.dumps(run_config))  # compare as stored (tuples -> lists)
        existing = self.root / RUN_CONFIG_FILE
        if existing.is_file():
            previous = json.loads(existing.read_text())
            if _without_name(previous) == _without_name(run_config):
                return
            if not overwrite:
                raise RunDirectoryError(
                    f"{self.root} already holds a different run (its {RUN_CONFIG_FILE} differs). "
                    "Choose another --out directory, or pass --overwrite to replace it."
                )
            self._clear()
        elif self._contents():
            if not overwrite:
                raise RunDirectoryError(
                    f"{self.root} is not empty and holds no run config. Choose another --out "
                    "directory, or pass --overwrite to replace its contents."
                )
            self._clear()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(existing, run_config)

    def _contents(self) -> list[Path]:
        """What `root` holds, but the one-writer lock of the command writing it."""
        if not self.root.is_dir():
            return []
        return [path for path in self.root.iterdir() if path.name != LOCK_FILE]

    def _clear(self) -> None:
        """Empty `root` for a new run (symlinks are removed, not followed)."""
        for path in self._contents():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def check_space(self, model: torch.nn.Module, steps: int, snapshots: int = 0) -> None:
        """Refuse to start (OutputPathError) unless the disk has room for the whole run."""
        check_writable(self.root, need_bytes=space_needed(model, steps, snapshots))

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoints / "LATEST"
        if not pointer.is_file():
            return None
        path = self.checkpoints / pointer.read_text().strip()
        if not path.is_dir():
            raise RunDirectoryError(
                f"{pointer} points to a missing checkpoint {path}; remove {pointer} to restart."
            )
        return path

    def save_checkpoint(
        self,
        step: int,
        model: HookedMomentumTransformer,
        optimizer: torch.optim.Optimizer,
        history: dict,
    ) -> Path:
        """Write a complete checkpoint for `step`, switch LATEST to it, then drop older ones.

        A save that fails (WriteError, naming the checkpoint) leaves no trace: the previous
        checkpoint and LATEST stay as they were.
        """
        name = f"step-{step:07d}"
        path = self.checkpoints / name
        staging = None
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.checkpoints, prefix=f".{name}."))
            os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes it private; give normal permissions
            model.save_pretrained(staging)
            tensors, meta = optimizer_to_files(optimizer)
            atomic_write_bytes(staging / OPTIMIZER_FILE, save_safetensors(tensors))
            atomic_write_json(
                staging / TRAINER_STATE_FILE, {"step": step, "optimizer": meta, "history": history}
            )
            if path.exists():  # an earlier save of this step that never became LATEST
                shutil.rmtree(path)
            os.replace(staging, path)
            atomic_write_text(self.checkpoints / "LATEST", name)
        except BaseException as e:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            if isinstance(e, OSError):
                raise WriteError(path, e) from e
            raise
        for old in [*self.checkpoints.glob("step-*"), *self.checkpoints.glob(".step-*")]:
            if old.name != name:  # older checkpoints, and saves a kill interrupted
                shutil.rmtree(old, ignore_errors=True)
        return path

    def load_checkpoint(
        self, path: Path, model: HookedMomentumTransformer, optimizer: torch.optim.Optimizer
    ) -> tuple[int, dict]:
        """Restore model and optimiser from `path`; returns (next step, history). A corrupt file
        is a RunDirectoryError naming it and how to go on."""
        restored = HookedMomentumTransformer.from_pretrained(path, device="cpu")
        model.load_state_dict(restored.state_dict())
        try:
            state = json.loads((path / TRAINER_STATE_FILE).read_text())
            tensors = load_file(str(path / OPTIMIZER_FILE))
            optimizer.load_state_dict(optimizer_from_files(tensors, state["optimizer"]))
        except (ValueError, KeyError, TypeError, SafetensorError) as e:
            raise RunDirectoryError(
                f"the resume checkpoint {path} is corrupt ({type(e).__name__}: {e}); delete "
                f"{self.checkpoints / 'LATEST'} to train from scratch, or restore the checkpoint."
            ) from e
        return state["step"], state["history"]

    def finish(self, model: HookedMomentumTransformer, metrics: dict) -> None:
        """Save the final model and metrics at the top level and remove resume checkpoints."""
        model.save_pretrained(self.root)
        atomic_write_json(self.root / METRICS_FILE, metrics)
        # Drop the pointer first: a kill mid-cleanup must not leave LATEST naming a deleted folder.
        (self.checkpoints / "LATEST").unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)
