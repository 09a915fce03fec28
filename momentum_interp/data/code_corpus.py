"""The code corpus file: documents as xz-compressed JSON lines, written byte-for-byte reproducibly.

One line per source file, `{"path": ..., "text": ...}`, sorted by path, so the same documents always
give the same bytes and the same sha256 (the manifest records it).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from momentum_interp.paths import REPO_ROOT

CORPUS_PATH = REPO_ROOT / "data" / "code_corpus.jsonl.xz"  # built, git-ignored
XZ_PRESET = 9


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_documents(documents: Iterable[tuple[str, str]], path: str | Path) -> str:
    """Write (path, text) documents sorted by path as xz JSON lines; return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with lzma.open(tmp, "wt", encoding="utf-8", preset=XZ_PRESET) as f:
        for name, text in sorted(documents):
            f.write(json.dumps({"path": name, "text": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return sha256_of(path)


def read_documents(path: str | Path = CORPUS_PATH) -> Iterator[tuple[str, str]]:
    """(path, text) for every document of a corpus file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no code corpus at {path}; build it (needs the package index once) with "
            "`momentum-interp corpus build`, or pass the path of a built one"
        )
    with lzma.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            yield record["path"], record["text"]
