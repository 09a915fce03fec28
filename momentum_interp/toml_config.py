"""The one reader of TOML configs (run, sweep, corpus): a missing file, invalid TOML and bad
values all raise errors that name the file and the problem."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_toml(path: str | Path, kind: str, examples: str) -> dict[str, Any]:
    """The top-level table of the TOML file at `path`; `kind` names the file in errors (e.g.
    "Run config") and `examples` says where working ones are."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} {path} does not exist; see {examples}.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not valid TOML: {e}") from e


def load_toml(path: str | Path, kind: str, examples: str, build: Callable[[dict], T]) -> T:
    """`build` applied to the table of `read_toml`; its ValueError or TypeError is re-raised
    naming the file."""
    data = read_toml(path, kind, examples)
    try:
        return build(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e
