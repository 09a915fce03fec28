"""Checkpoint I/O: `model.safetensors` + `config.json` (+ `tokenizer.json`), never pickle.

`config.json` carries a format version and the SHA-256 of the weights file, so a truncated,
corrupt or mismatched pair is caught on load with a message that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from tokenizers import Tokenizer

from momentum_interp.config import MomentumConfig
from momentum_interp.io import atomic_write_bytes, atomic_write_json

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, from a newer version, or does not match its config."""


def assets_dir() -> Path:
    """Where bundled checkpoints live: `$MOMENTUM_INTERP_ASSETS` or the repository's `assets/`."""
    override = os.environ.get("MOMENTUM_INTERP_ASSETS")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "assets"


def bundled_names() -> list[str]:
    """Names of the bundled checkpoints, loadable with `from_pretrained(name)`."""
    root = assets_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint directory from a path or the name of a bundled checkpoint."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    bundled = assets_dir() / str(name_or_path)
    if bundled.is_dir():
        return bundled
    raise CheckpointError(
        f"No checkpoint directory at {str(name_or_path)!r} and no bundled checkpoint of that name. "
        f"Bundled: {bundled_names() or 'none found in ' + str(assets_dir())}."
    )


def write_checkpoint(
    directory: str | Path,
    cfg: MomentumConfig,
    state_dict: dict[str, torch.Tensor],
    tokenizer: Tokenizer | None,
) -> Path:
    """Write weights, tokenizer and config atomically (each file renamed into place, config last)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous().cpu() for name, t in state_dict.items()}
    weights = save_safetensors(tensors, metadata={"format_version": str(FORMAT_VERSION)})
    atomic_write_bytes(directory / WEIGHTS_FILE, weights)
    if tokenizer is not None:
        atomic_write_bytes(directory / TOKENIZER_FILE, tokenizer.to_str().encode("utf-8"))
    from momentum_interp import __version__

    atomic_write_json(
        directory / CONFIG_FILE,
        {
            "format_version": FORMAT_VERSION,
            "library": "momentum_interp",
            "library_version": __version__,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "has_tokenizer": tokenizer is not None,
            "config": cfg.to_dict(),
        },
    )
    return directory


def read_checkpoint(
    directory: Path,
) -> tuple[MomentumConfig, dict[str, torch.Tensor], Tokenizer | None]:
    """Read and verify a checkpoint directory; every failure is a `CheckpointError` with a fix."""
    meta = _read_meta(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(
            f"{weights_path} is missing; the checkpoint is incomplete, save it again."
        )
    weights = weights_path.read_bytes()
    if hashlib.sha256(weights).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{weights_path} does not match the checksum in {CONFIG_FILE}: the weights are corrupt, "
            "truncated or from a different save. Restore or re-save the checkpoint."
        )
    try:
        tensors = load_safetensors(weights)
    except SafetensorError as e:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file ({e}).") from e
    try:
        cfg = MomentumConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{directory / CONFIG_FILE} holds an invalid model config: {e}"
        ) from e
    tokenizer = None
    if meta.get("has_tokenizer"):
        tokenizer_path = directory / TOKENIZER_FILE
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as e:
            raise CheckpointError(
                f"{tokenizer_path} is missing or corrupt ({e}); restore it from the original run."
            ) from e
    return cfg, tensors, tokenizer


def _read_meta(directory: Path) -> dict:
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"{directory} has no {CONFIG_FILE}: it is not a momentum_interp checkpoint "
            "(write one with model.save_pretrained(directory))."
        )
    try:
        meta = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path} is corrupt ({e}); restore or re-save it.") from e
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise CheckpointError(
            f"{config_path} has no format_version: it was not written by momentum_interp."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} uses checkpoint format {version}, newer than this momentum_interp "
            f"understands ({FORMAT_VERSION}); upgrade momentum_interp to load it."
        )
    return meta


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy `tensors` into `model`, naming every missing, unexpected or mis-shaped weight."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [
        f"{name}: file {tuple(tensors[name].shape)} vs config {tuple(param.shape)}"
        for name, param in expected.items()
        if name in tensors and tensors[name].shape != param.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"The config in {source} does not match its weights: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {mismatched[:5]}. "
            "The config.json was probably edited or copied from another run."
        )
    model.load_state_dict(tensors)
