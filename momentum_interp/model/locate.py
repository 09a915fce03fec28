"""Find a checkpoint by path or bundled name without importing torch, so that the command line
answers a mistyped model name at once (with the nearest bundled name) before any heavy import."""

from __future__ import annotations

import os
from pathlib import Path

from momentum_interp.naming import unknown_names
from momentum_interp.paths import REPO_ROOT

CONFIG_FILE = "config.json"
PACKED_SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, from a newer version, or does not match its config."""


def assets_dir() -> Path:
    """Where bundled checkpoints live: `$MOMENTUM_INTERP_ASSETS` or the repository's `assets/`."""
    override = os.environ.get("MOMENTUM_INTERP_ASSETS")
    return Path(override) if override else REPO_ROOT / "assets"


def bundled_names() -> list[str]:
    """Names of the bundled checkpoints, loadable with `from_pretrained(name)`."""
    root = assets_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint directory (or packed file) from a path or the name of a bundled checkpoint;
    an unknown name raises `CheckpointError` naming the nearest bundled one (case ignored)."""
    path = Path(name_or_path)
    if path.is_dir() or (path.is_file() and path.suffix == PACKED_SUFFIX):
        return path
    bundled = assets_dir() / str(name_or_path)
    if bundled.is_dir():
        return bundled
    names = bundled_names()
    if names:
        raise CheckpointError(
            f"No checkpoint directory at {str(name_or_path)!r}. "
            + unknown_names("bundled checkpoint", [str(name_or_path)], names)
        )
    raise CheckpointError(
        f"No checkpoint directory at {str(name_or_path)!r}, and no bundled checkpoints in "
        f"{assets_dir()}: they ship in the repository's assets/, not in a wheel. Install from a "
        "clone with `pip install -e .`, or set MOMENTUM_INTERP_ASSETS to a clone's assets/."
    )
