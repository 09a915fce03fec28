"""The code corpus: Python sources of pinned package versions, as one reproducible xz file.

One line per source file, `{"path": ..., "text": ...}`, sorted by path, so the same documents always
give the same bytes and the same sha256 (the manifest records it). The documents come from sdists
pinned by version and sha256 in a TOML config (`configs/corpus/pypi_code.toml`); everything here but
`fetch_archives` is offline and pure: the same archives and config give the same corpus bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import lzma
import os
import re
import tarfile
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import tokenizers
from tokenizers import Tokenizer
from tqdm import tqdm

from momentum_interp.data.corpus import EOT, train_bpe_tokenizer
from momentum_interp.paths import REPO_ROOT
from momentum_interp.toml_config import read_toml

CORPUS_PATH = REPO_ROOT / "data" / "code_corpus.jsonl.xz"  # built, git-ignored
CONFIG_PATH = REPO_ROOT / "configs" / "corpus" / "pypi_code.toml"
TOKENIZER_PATH = REPO_ROOT / "assets" / "code_corpus" / "tokenizer.json"
MANIFEST_PATH = REPO_ROOT / "assets" / "code_corpus" / "manifest.json"
DOWNLOADS_DIR = REPO_ROOT / "data" / "corpus_downloads"  # cached sdists, git-ignored
XZ_PRESET = 9
ARCHIVE_SUFFIXES = (".tar.gz", ".zip")
SKIP_REASONS = ("not_source", "too_large", "not_utf8", "has_eot", "empty", "duplicate")


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_documents(
    documents: Iterable[tuple[str, str]],
    path: str | Path,
    preset: int = XZ_PRESET,
    progress: bool = False,
) -> str:
    """Write (path, text) documents sorted by path as xz JSON lines; return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    documents = sorted(documents)
    with lzma.open(tmp, "wt", encoding="utf-8", preset=preset) as f:
        for name, text in tqdm(documents, desc="compressing", unit="doc", disable=not progress):
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


# ------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CorpusPackage:
    """One pinned source archive: the package index's file for `name` at `version`."""

    name: str
    version: str
    filename: str
    sha256: str
    url: str

    @property
    def prefix(self) -> str:
        """The folder its documents' paths start with: `<name>-<version>`."""
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class CorpusConfig:
    """What goes into the corpus (packages, file filters) and how its tokenizer is trained."""

    packages: tuple[CorpusPackage, ...]
    suffixes: tuple[str, ...] = (".py",)
    max_file_bytes: int = 256 * 1024
    xz_preset: int = XZ_PRESET
    vocab_size: int = 8192
    min_frequency: int = 2
    tokenizer_every: int = 1  # train the tokenizer on every k-th document (1: all of them)


class ChecksumError(ValueError):
    """An archive whose sha256 is not the one pinned in the corpus config."""


class DownloadError(OSError):
    """A pinned archive that could not be fetched from its url."""


def _package(entry: dict, where: str) -> CorpusPackage:
    """One [[packages]] table, checked: every key a string, a hex sha256, a bare archive name."""
    keys = CorpusPackage.__annotations__
    for key in keys:
        if not isinstance(entry.get(key), str):
            raise ValueError(f"{where}: {key!r} must be a string, got {entry.get(key)!r}")
    if unknown := set(entry) - set(keys):
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    package = CorpusPackage(**entry)
    if not re.fullmatch(r"[0-9a-f]{64}", package.sha256):
        raise ValueError(f"{where}: sha256 must be 64 lowercase hex digits, got {package.sha256!r}")
    if not package.filename.endswith(ARCHIVE_SUFFIXES) or "/" in package.filename:
        raise ValueError(
            f"{where}: filename must be a bare {' or '.join(ARCHIVE_SUFFIXES)} name, "
            f"got {package.filename!r}"
        )
    return package


def load_corpus_config(path: str | Path) -> CorpusConfig:
    """Read and check a corpus TOML: [corpus], [tokenizer] and one [[packages]] table each."""
    path = Path(path)
    raw = read_toml(path, "Corpus config", "configs/corpus/")
    if unknown := set(raw) - {"corpus", "tokenizer", "packages"}:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)} (corpus, tokenizer, packages)")
    entries = raw.get("packages", [])
    if not entries:
        raise ValueError(f"{path}: no [[packages]]; pin at least one source archive")
    packages = tuple(
        _package(entry, f"{path} [[packages]] #{i + 1}") for i, entry in enumerate(entries)
    )
    names = [p.name for p in packages]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a package is listed twice: {sorted(names)}")
    corpus, tok = raw.get("corpus", {}), raw.get("tokenizer", {})
    settings = {
        "suffixes": tuple(corpus.get("suffixes", CorpusConfig.suffixes)),
        "max_file_bytes": corpus.get("max_file_bytes", CorpusConfig.max_file_bytes),
        "xz_preset": corpus.get("xz_preset", CorpusConfig.xz_preset),
        "vocab_size": tok.get("vocab_size", CorpusConfig.vocab_size),
        "min_frequency": tok.get("min_frequency", CorpusConfig.min_frequency),
        "tokenizer_every": tok.get("every", CorpusConfig.tokenizer_every),
    }
    known = {"corpus": {"suffixes", "max_file_bytes", "xz_preset"}}
    known["tokenizer"] = {"vocab_size", "min_frequency", "every"}
    for table, keys in known.items():
        if unknown := set(raw.get(table, {})) - keys:
            raise ValueError(f"{path} [{table}]: unknown keys {sorted(unknown)} ({sorted(keys)})")
    for key in ("max_file_bytes", "vocab_size", "min_frequency", "tokenizer_every"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(f"{path}: {key} must be a positive integer, got {settings[key]!r}")
    if settings["xz_preset"] not in range(10):
        raise ValueError(f"{path}: xz_preset must be 0..9, got {settings['xz_preset']!r}")
    if settings["vocab_size"] < 257:
        raise ValueError(f"{path}: vocab_size must be >= 257 (256 bytes + {EOT})")
    return CorpusConfig(packages=packages, **settings)


# ------------------------------------------------------------------------------- archives


def verify_archive(path: str | Path, expected_sha256: str) -> None:
    """Raise ChecksumError unless the file's sha256 is the pinned one."""
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match the pinned {expected_sha256}; "
            "the file is corrupt or not the pinned release (delete it to download it again)"
        )


def archive_members(path: str | Path) -> list[tuple[str, bytes]]:
    """(path inside the top folder, bytes) of every regular file of a .tar.gz or .zip, sorted."""
    path = Path(path)
    files: dict[str, bytes] = {}
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.isfile():
                    files[member.name] = tar.extractfile(member).read()
    elif path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    files[info.filename] = archive.read(info)
    else:
        raise ValueError(f"{path}: not a {' or '.join(ARCHIVE_SUFFIXES)} archive")
    members = {}
    for name, data in files.items():
        parts = PurePosixPath(name).parts
        if len(parts) < 2 or name.startswith("/") or ".." in parts:
            continue  # outside the archive's single top folder
        members["/".join(parts[1:])] = data
    return sorted(members.items())


def _skip_reason(name: str, data: bytes, config: CorpusConfig) -> str | None:
    """Why a file stays out of the corpus (a SKIP_REASONS entry), or None to keep it."""
    if not name.endswith(config.suffixes):
        return "not_source"
    if len(data) > config.max_file_bytes:
        return "too_large"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    if EOT in text:
        return "has_eot"
    return None if text.strip() else "empty"


@dataclass
class CorpusDocuments:
    """The corpus's documents, sorted by path, with per-package and per-reason counts."""

    documents: list[tuple[str, str]] = field(repr=False)
    per_package: dict[str, dict[str, int]]  # name -> {"documents", "text_bytes"}
    skipped: dict[str, int]  # SKIP_REASONS entry -> files

    @property
    def text_bytes(self) -> int:
        return sum(p["text_bytes"] for p in self.per_package.values())


def collect_documents(
    archives: Sequence[tuple[CorpusPackage, Path]], config: CorpusConfig, progress: bool = False
) -> CorpusDocuments:
    """The filtered, de-duplicated documents of verified archives; the same archives, the same
    documents (exact duplicates keep the first path in sorted order)."""
    candidates, skipped = [], Counter({reason: 0 for reason in SKIP_REASONS})
    for package, path in tqdm(archives, desc="extracting", unit="archive", disable=not progress):
        for name, data in archive_members(path):
            if reason := _skip_reason(name, data, config):
                skipped[reason] += 1
            else:
                candidates.append((f"{package.prefix}/{name}", data.decode("utf-8")))
    documents, seen = [], set()
    per_package = {p.name: {"documents": 0, "text_bytes": 0} for p, _ in archives}
    by_prefix = {p.prefix: p.name for p, _ in archives}
    for name, text in sorted(candidates):
        if text in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(text)
        documents.append((name, text))
        counts = per_package[by_prefix[name.split("/", 1)[0]]]
        counts["documents"] += 1
        counts["text_bytes"] += len(text.encode("utf-8"))
    return CorpusDocuments(documents, per_package, dict(skipped))


def archive_paths(config: CorpusConfig, downloads: str | Path) -> list[tuple[CorpusPackage, Path]]:
    """Each pinned package with its archive under `downloads`, checked against its sha256."""
    downloads = Path(downloads)
    missing = [p.filename for p in config.packages if not (downloads / p.filename).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} pinned archive(s) missing from {downloads}: {', '.join(missing)}; "
            "fetch them with `momentum-interp corpus build` (needs the package index)"
        )
    for package in config.packages:
        verify_archive(downloads / package.filename, package.sha256)
    return [(p, downloads / p.filename) for p in config.packages]


def fetch_archives(config: CorpusConfig, downloads: str | Path, progress: bool = True) -> None:
    """Download the pinned archives missing from `downloads` (the network step), each verified
    against its sha256 before it is kept."""
    downloads = Path(downloads)
    downloads.mkdir(parents=True, exist_ok=True)
    for package in config.packages:
        target = downloads / package.filename
        if target.is_file():
            continue
        tmp = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(package.url, timeout=60) as response, open(tmp, "wb") as f:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total,
                    desc=package.filename,
                    unit="B",
                    unit_scale=True,
                    disable=not progress,
                ) as bar:
                    for block in iter(lambda: response.read(2**20), b""):
                        f.write(block)
                        bar.update(len(block))
        except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, IncompleteRead
            tmp.unlink(missing_ok=True)
            raise DownloadError(
                f"could not download {package.filename} from {package.url} ({e}); this step "
                f"needs the package index, or put the archive in {downloads} by hand"
            ) from e
        try:
            verify_archive(tmp, package.sha256)
        except ChecksumError:
            tmp.unlink()
            raise
        os.replace(tmp, target)


# ------------------------------------------------------------------------------- build


def train_corpus_tokenizer(
    documents: Sequence[tuple[str, str]], config: CorpusConfig, progress: bool = False
) -> Tokenizer:
    """The corpus's byte-level BPE, trained on every `tokenizer_every`-th document in path order."""
    texts = [text for _, text in documents[:: config.tokenizer_every]]
    bar = tqdm(texts, desc="training tokenizer", unit="doc", disable=not progress)
    return train_bpe_tokenizer(
        vocab_size=config.vocab_size, min_frequency=config.min_frequency, texts=bar
    )


def count_tokens(
    tokenizer: Tokenizer, texts: Sequence[str], chunk: int = 256, progress: bool = False
) -> int:
    """Tokens in the corpus stream: each document's tokens plus one `<|endoftext|>` after it."""
    total = 0
    with tqdm(total=len(texts), desc="counting tokens", unit="doc", disable=not progress) as bar:
        for i in range(0, len(texts), chunk):
            batch = texts[i : i + chunk]
            total += sum(len(e.ids) + 1 for e in tokenizer.encode_batch(batch))
            bar.update(len(batch))
    return total


@dataclass
class TokenizerBuild:
    """A tokenizer trained on the corpus and saved, with the corpus's token count under it."""

    path: Path
    sha256: str
    trained_on: int  # documents
    tokens: int  # each document's tokens plus one <|endoftext|> after it


@dataclass
class CorpusBuild:
    """What one build wrote: the corpus file (and, when asked, its tokenizer), with the numbers the
    manifest keeps."""

    config: CorpusConfig = field(repr=False)
    corpus_path: Path
    corpus_sha256: str
    corpus_bytes: int
    documents: int
    text_bytes: int
    per_package: dict[str, dict[str, int]]
    skipped: dict[str, int]
    tokenizer: TokenizerBuild | None = None

    def to_dict(self) -> dict:
        """The manifest's numbers: packages, corpus file and, when trained, tokenizer and tokens."""
        cfg = self.config
        record = {
            "packages": [{**asdict(p), **self.per_package[p.name]} for p in cfg.packages],
            "filters": {
                "suffixes": list(cfg.suffixes),
                "max_file_bytes": cfg.max_file_bytes,
                "skipped_files": self.skipped,
                "rule": "kept: files with a listed suffix, at most max_file_bytes, UTF-8, "
                f"without {EOT!r}, not blank; exact duplicates keep the first path in sorted order",
            },
            "corpus": {
                "file": self.corpus_path.name,
                "sha256": self.corpus_sha256,
                "bytes": self.corpus_bytes,
                "documents": self.documents,
                "text_bytes": self.text_bytes,
                "xz_preset": cfg.xz_preset,
                "format": "xz JSON lines {path, text}, sorted by path",
            },
        }
        if (tok := self.tokenizer) is not None:
            record["tokenizers_version"] = tokenizers.__version__
            record["tokenizer"] = {
                "file": tok.path.name,
                "sha256": tok.sha256,
                "vocab_size": cfg.vocab_size,
                "min_frequency": cfg.min_frequency,
                "eot_id": 0,
                "trained_on": f"documents 0, k, 2k, ... in path order, k = {cfg.tokenizer_every} "
                f"({tok.trained_on} of {self.documents})",
            }
            record["tokens"] = tok.tokens
            record["tokens_note"] = (
                f"each document's tokens plus one {EOT} after it, with this tokenizer"
            )
        return record


def build_corpus(
    config: CorpusConfig,
    downloads: str | Path,
    out: str | Path = CORPUS_PATH,
    tokenizer_out: str | Path | None = None,
    progress: bool = False,
) -> CorpusBuild:
    """Build the corpus file from the pinned archives under `downloads` (verified first) and, with
    `tokenizer_out`, train and save its tokenizer; offline and deterministic: same inputs, same bytes."""
    archives = archive_paths(config, downloads)
    collected = collect_documents(archives, config, progress=progress)
    if not collected.documents:
        raise ValueError(f"no documents passed the filters in {[str(p) for _, p in archives]}")
    out = Path(out)
    corpus_sha256 = write_documents(
        collected.documents, out, preset=config.xz_preset, progress=progress
    )
    build = CorpusBuild(
        config=config,
        corpus_path=out,
        corpus_sha256=corpus_sha256,
        corpus_bytes=out.stat().st_size,
        documents=len(collected.documents),
        text_bytes=collected.text_bytes,
        per_package=collected.per_package,
        skipped=collected.skipped,
    )
    if tokenizer_out is not None:
        tokenizer_out = Path(tokenizer_out)
        tokenizer = train_corpus_tokenizer(collected.documents, config, progress=progress)
        tokenizer_out.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(tokenizer_out))
        texts = [text for _, text in collected.documents]
        build.tokenizer = TokenizerBuild(
            path=tokenizer_out,
            sha256=sha256_of(tokenizer_out),
            trained_on=len(collected.documents[:: config.tokenizer_every]),
            tokens=count_tokens(tokenizer, texts, progress=progress),
        )
    return build


# ------------------------------------------------------------------------------- manifest


def load_manifest(path: str | Path) -> dict:
    """A corpus manifest, checked to hold what `manifest_items` compares."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no corpus manifest at {path} to verify the build against; "
            "`momentum-interp corpus build --update-assets` writes one (and its tokenizer)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON: {e}") from e
    needed = {"corpus": ("sha256", "documents", "text_bytes"), "tokenizer": ("sha256",)}
    tables = {t: manifest.get(t) if isinstance(manifest, dict) else None for t in needed}
    missing = [f"{t}.{k}" for t, keys in needed.items() for k in keys if k not in (tables[t] or {})]
    if missing:
        raise ValueError(f"{path} is not a corpus manifest: it has no {', '.join(missing)}")
    return manifest


def manifest_items(build: CorpusBuild, manifest: dict, tokenizer_path: str | Path) -> list[tuple]:
    """(item, manifest's value, this build's value) for what a build must reproduce: the corpus
    file's sha256, document count and text bytes, and the tokenizer file's sha256."""
    corpus = manifest["corpus"]
    return [
        ("corpus sha256", corpus["sha256"], build.corpus_sha256),
        ("documents", corpus["documents"], build.documents),
        ("text bytes", corpus["text_bytes"], build.text_bytes),
        ("tokenizer sha256", manifest["tokenizer"]["sha256"], sha256_of(tokenizer_path)),
    ]
