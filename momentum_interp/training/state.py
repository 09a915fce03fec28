"""Resumable training state in safetensors + JSON (no pickle): model, optimiser, step and history.

A run directory holds the final model at its top level (loadable with `from_pretrained`) and,
while training, `checkpoints/step-NNNNNNN/` folders. Each is written completely before the
`checkpoints/LATEST` pointer is atomically switched to it, so a run killed at any moment
resumes from the last complete checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from momentum_interp.io import atomic_write_json, atomic_write_text
from momentum_interp.model.transformer import HookedMomentumTransformer

RUN_CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_STATE_FILE = "trainer_state.json"


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
            shutil.rmtree(self.root)
        elif self.root.is_dir() and any(self.root.iterdir()):
            if not overwrite:
                raise RunDirectoryError(
                    f"{self.root} is not empty and holds no run config. Choose another --out "
                    "directory, or pass --overwrite to replace its contents."
                )
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(existing, run_config)

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
        """Write a complete checkpoint for `step`, switch LATEST to it, then drop older ones."""
        name = f"step-{step:07d}"
        path = self.checkpoints / name
        if path.exists():
            shutil.rmtree(path)
        model.save_pretrained(path)
        tensors, meta = optimizer_to_files(optimizer)
        save_file(tensors, str(path / OPTIMIZER_FILE))
        atomic_write_json(
            path / TRAINER_STATE_FILE, {"step": step, "optimizer": meta, "history": history}
        )
        atomic_write_text(self.checkpoints / "LATEST", name)
        for old in self.checkpoints.glob("step-*"):
            if old.name != name:
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
