"""Where a result came from: the command line, seed, git commit, date, torch and machine. Every
command that measures something writes this block beside its numbers."""

from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from momentum_interp.paths import REPO_ROOT


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """`HEAD`'s commit (suffixed `+dirty` with uncommitted changes), or None outside a checkout."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def provenance(command: Sequence[str] | str, seed: int | None) -> dict:
    """Where a result came from: the command line, seed, commit, date, torch and machine."""
    return {
        "command": command if isinstance(command, str) else " ".join(command),
        "seed": seed,
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
    }


def command_line(prog: str) -> str:
    """This process's command line as a user would type it, with `prog` for the program."""
    return " ".join([prog, *sys.argv[1:]])
