"""One writer per output directory: an exclusive `fcntl.flock` on a lock file inside it.

The lock file holds the holder's PID, so a second writer can say whom it is waiting for. The
kernel drops the lock when the holder exits, however it exits; the file is removed on release,
and directories the lock created are removed again if nothing was written into them.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".momentum-interp.lock"


class DirectoryLocked(ValueError):
    """Another process holds the output directory's lock."""


def _missing_ancestors(directory: Path) -> list[Path]:
    """`directory` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


def _acquire(path: Path, directory: Path) -> int:
    """An open descriptor of the lock file at `path`, exclusively locked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"another momentum-interp (PID {holder})" if holder else "another momentum-interp"
            raise DirectoryLocked(
                f"{who} is writing to {directory}; wait for it to finish or use another --out"
            ) from None
        # The previous holder removes the file on release: if it did so after we opened it, we
        # locked a removed file, and must lock the one now at `path` instead.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def one_writer(directory: str | Path) -> Iterator[Path]:
    """Hold `directory`'s lock (creating the directory) while the block runs.

    Raises DirectoryLocked at once, naming the holder's PID, if another process holds it.
    """
    directory = Path(directory)
    created = _missing_ancestors(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    try:
        fd = _acquire(path, directory)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield directory
    finally:
        path.unlink(missing_ok=True)  # while still locked, so no one locks the removed file
        os.close(fd)
        _remove_empty(created)


def _remove_empty(directories: list[Path]) -> None:
    """Remove these directories (deepest first) where they are still empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return
