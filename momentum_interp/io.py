"""Safe file writes: a crash or a full disk never leaves a half-written file, and a write never
replaces anything but a regular file (a symlink is followed; a device, FIFO or socket is refused).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

MiB = 2**20


class OutputPathError(ValueError):
    """An output path that cannot be written safely or has no room: refused before any work."""


class WriteError(OSError):
    """Writing a file failed (disk full, I/O error, read-only, over a size limit); the failed write
    left nothing half-written and the previous file, if any, as it was."""

    def __init__(self, path: str | Path, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))

    def __str__(self) -> str:
        return (
            f"cannot write {self.filename} ({self.strerror}); nothing half-written was left. "
            "Free space or write elsewhere, then run again"
        )


def _read_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux `/proc`)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)  # no way to read it without setting it; done once, at import
    os.umask(mask)
    return mask


# Read once: calling os.umask per write would set the process umask to 0 for a moment, a race
# with any other thread creating files.
UMASK = _read_umask()

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """What a `st_mode` is, in words ("a FIFO (named pipe)", "a regular file", ...)."""
    return next((name for test, name in _KINDS if test(mode)), "a regular file")


def regular_target(path: str | Path) -> Path:
    """The file a write to `path` replaces: `path` itself, or where its symlinks lead.

    Raises OutputPathError if that exists and is not a regular file (a device, FIFO, socket or
    directory), which a rename would destroy.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    if not stat.S_ISREG(mode):
        raise OutputPathError(
            f"{path} is {kind_of(mode)}, not a regular file; give the path of a file to write"
        )
    return target


def check_writable(path: str | Path, need_bytes: int = 0) -> None:
    """Raise OutputPathError unless `path` (a directory, made if missing) can be written and its
    disk has `need_bytes` free: probed in its nearest existing ancestor, left as it was."""
    path = Path(path)
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{path} lies inside {ancestor}, which is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=".momentum-interp-probe-"))
        free = shutil.disk_usage(ancestor).free
    except OSError as e:
        raise OutputPathError(
            f"cannot write under {ancestor} ({e.strerror}); choose a writable location"
        ) from e
    if free < need_bytes:
        raise OutputPathError(
            f"{path} has {free / MiB:.1f} MiB free on its disk, {need_bytes / MiB:.1f} MiB "
            "needed; free space or choose another location"
        )


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace the file at `path` (or, for a symlink, its target: the link stays) with `data`:
    written to a temporary file beside it, flushed to disk, then renamed over it.

    Raises OutputPathError, touching nothing, if `path` is not a regular file (see
    `regular_target`), and WriteError, with the temporary file removed and the old file intact,
    if the disk refuses the write.
    """
    target = regular_target(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, target)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(path, e) from e
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic `Path.write_text` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, ±inf; Python or numpy) replaced by None.

    Recurses into dicts, lists and tuples (tuples become lists, as JSON has them); numpy scalars
    become the matching Python numbers.
    """
    import numpy as np  # here, not at the top: the command line imports this module early

    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(value) for value in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON dump, indented for diffs and humans; NaN and ±inf are written as null.

    Strict JSON has no NaN/Infinity (Python would write them anyway, and other parsers reject
    the file), so non-finite floats become null; anything else JSON cannot hold raises.
    """
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")
