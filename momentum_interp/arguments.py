"""The command line's argument types and guards, checked before torch is imported: paths we will
write or read, checkpoint names, run directories with a history, and the one-writer lock with the
room a command needs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from momentum_interp.io import MiB, OutputPathError, check_writable, kind_of, regular_target
from momentum_interp.model.locate import CheckpointError, resolve

# Free space a command needs before it starts, so a full disk fails in seconds rather than after
# the work: its HTML pages inline Plotly (~5 MB each). `train` also checks, once its model is
# built, room for that model's checkpoints.
ROOM = {
    "score": 1 * MiB,
    "explore": 16 * MiB,
    "report": 32 * MiB,
    "demo": 64 * MiB,
    "train": 1 * MiB,
    "sweep": 16 * MiB,
}


def output_dir(value: str) -> Path:
    """A directory we will write into: not an existing file, and creatable/writable."""
    path = Path(value)
    try:
        if path.exists() and not path.is_dir():
            raise OutputPathError(
                f"{path} is {kind_of(path.stat().st_mode)}; give a directory path"
            )
        check_writable(path)
    except OutputPathError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return path


def output_file(value: str) -> Path:
    """A file we will write: a regular file or none (a symlink's target counts; a device, FIFO,
    socket or directory is refused), its folder creatable/writable."""
    path = Path(value)
    try:
        check_writable(regular_target(path).parent)
    except OutputPathError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return path


@contextmanager
def one_writer_with_room(out: Path, command: str) -> Iterator[None]:
    """Check that `out` has room for `command`, then hold its one-writer lock while the command
    runs. Taken before torch is imported, so a second writer is refused in a fraction of a second;
    under torchrun only rank 0 takes it (the ranks write one run together)."""
    from momentum_interp.lock import one_writer

    check_writable(out, ROOM[command])
    with one_writer(out) if os.environ.get("RANK", "0") == "0" else nullcontext():
        yield


def toml_name(path: Path, default: str) -> str:
    """The top-level `name` of a TOML config (`default` if it has none or cannot be read: its
    loader then says why), read without the loader's heavy imports."""
    import tomllib

    try:
        return str(tomllib.loads(path.read_text()).get("name", default))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return default


def input_file(value: str) -> Path:
    """A file we will read: it must exist and be a file."""
    path = Path(value)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise argparse.ArgumentTypeError(f"{path} {what}; give an existing file")
    return path


def checkpoint_name(value: str) -> str:
    """A checkpoint directory, packed file or bundled name; a typo is answered with the nearest
    bundled name before torch is imported."""
    try:
        resolve(value)
    except CheckpointError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return value


def command_text(args: argparse.Namespace) -> str:
    """The command line that produced `args`, recorded in every result file."""
    return " ".join(["momentum-interp", *args.argv])


def positive_int(value: str) -> int:
    """A count of at least 1 (sequences to measure), so 0 fails before torch is imported."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number; give one ≥ 1") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is too few; give a count ≥ 1")
    return number


def _directory(path: Path, wanted: str) -> None:
    """Refuse a path that is not a directory, saying whether it is missing or something else."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else f"is {kind_of(path.stat().st_mode)}"
        raise argparse.ArgumentTypeError(f"{path} {what}; give {wanted}")


def sweep_results(value: str) -> Path:
    """A sweep's results directory: its `--out`, holding results.jsonl and sweep_spec.json."""
    path, fix = Path(value), "the directory `momentum-interp sweep` wrote with --out"
    _directory(path, fix)
    missing = [n for n in ("results.jsonl", "sweep_spec.json") if not (path / n).is_file()]
    if missing:
        raise argparse.ArgumentTypeError(
            f"{path} is not a sweep's results directory (no {' or '.join(missing)}); give {fix}"
        )
    return path


def formation_source(value: str) -> Path:
    """A run directory that kept a checkpoint history, or a sweep's results directory (checked
    as `sweep_results` is, once it holds results.jsonl)."""
    path = Path(value)
    _directory(path, "a run directory with history/ or a sweep's --out directory")
    if (path / "results.jsonl").is_file():
        return sweep_results(value)
    if not (path / "history" / "index.json").is_file():
        raise argparse.ArgumentTypeError(
            f"{path} is neither a run that kept a checkpoint history (train it with [train] "
            "history_checkpoints = 50) nor a sweep's results directory (results.jsonl)"
        )
    return path


def announce(args: argparse.Namespace, doing: str) -> None:
    """What a long command is doing, printed before its heavy imports (torch and TransformerLens
    take seconds to load) so a person sees it started; stderr stays for errors (one line) and
    progress bars; silent under --quiet."""
    if not getattr(args, "quiet", False):
        print(f"momentum-interp {args.command}: {doing}; loading torch first", flush=True)
