"""Text data: find files, train a byte-level BPE tokenizer, cache the token stream, sample windows.

Token streams are cached as flat `.npy` arrays named by a hash of the inputs, so every later run
memory-maps them instead of re-tokenising.
"""

import glob
import hashlib
import itertools
import os
import sysconfig
import tempfile
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm

from momentum_interp.data.batch import TaskBatch

EOT = "<|endoftext|>"
DEFAULT_SUFFIXES = (".py", ".txt", ".md")
_STDLIB_SKIP = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3"}


def _files_under(path: Path, suffixes: Sequence[str]) -> list[Path]:
    """A file itself, or a directory's files with a matching suffix (skipping hidden dirs)."""
    if path.is_file():
        return [path]
    return [
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix in suffixes
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]


def collect_text_files(
    sources: Sequence[str | Path], suffixes: Sequence[str] = DEFAULT_SUFFIXES
) -> list[Path]:
    """Expand directories (recursively, by suffix), files and globs into sorted unique paths."""
    found: set[Path] = set()
    for source in sources:
        path = Path(source)
        if path.exists():
            found.update(_files_under(path, suffixes))
        elif any(c in str(source) for c in "*?["):
            for match in glob.glob(str(source), recursive=True):
                found.update(_files_under(Path(match), suffixes))
        else:
            raise ValueError(
                f"corpus source {str(source)!r} does not exist; "
                "pass an existing directory, file or glob pattern"
            )
    if not found:
        raise ValueError(
            f"corpus is empty: no files matched {[str(s) for s in sources]} "
            f"(directory suffixes {tuple(suffixes)}); pass a directory or glob of text files"
        )
    return sorted({p.resolve() for p in found})


def stdlib_corpus_files() -> list[Path]:
    """The default corpus every Python install has: the standard library's own `.py` sources."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(
        p for p in root.rglob("*.py") if not _STDLIB_SKIP.intersection(p.relative_to(root).parts)
    )


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def train_bpe_tokenizer(
    files: Sequence[Path] = (),
    vocab_size: int = 4096,
    min_frequency: int = 2,
    *,
    texts: Collection[str] = (),
) -> Tokenizer:
    """Byte-level BPE (GPT-2 style) with `<|endoftext|>` as id 0, trained on the files' and then
    the `texts`' contents (documents already in memory); deterministic given them."""
    if not files and not texts:
        raise ValueError("nothing to train the tokenizer on: pass files or texts")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    documents = itertools.chain((_read_text(Path(f)) for f in files), texts)
    tokenizer.train_from_iterator(documents, trainer, length=len(files) + len(texts))
    return tokenizer


def _fingerprint(files: Iterable[Path], *extra: str) -> str:
    """Hash of file paths, sizes and mtimes plus extra strings: changes when any input changes."""
    digest = hashlib.sha256()
    for f in files:
        stat = Path(f).stat()
        digest.update(f"{Path(f).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:20]


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write to a temp file beside `path`, then `os.replace`: readers never see a half file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_or_train_tokenizer(
    files: Sequence[Path], cache_dir: str | Path, vocab_size: int = 4096, min_frequency: int = 2
) -> Tokenizer:
    """`train_bpe_tokenizer`, cached as JSON under cache_dir keyed by the files and settings."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"tokenizer-{_fingerprint(files, f'{vocab_size}/{min_frequency}')}.json"
    if not path.exists():
        tokenizer = train_bpe_tokenizer(files, vocab_size=vocab_size, min_frequency=min_frequency)
        _write_atomic(path, tokenizer.save)
    return Tokenizer.from_file(str(path))


def tokenize_texts(
    texts: Iterable[str], tokenizer: Tokenizer, chunk_size: int = 64, total: int | None = None
) -> np.ndarray:
    """One flat token stream: each text followed by `<|endoftext|>` (uint16 when the vocabulary
    fits). Texts are encoded `chunk_size` at a time by `encode_batch`, which uses every core."""
    eot = tokenizer.token_to_id(EOT)
    if eot is None:
        raise ValueError(f"tokenizer has no {EOT!r} token; train it with train_bpe_tokenizer")
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 65535 else np.uint32
    parts = [np.zeros(0, dtype=dtype)]
    texts = iter(texts)
    with tqdm(total=total, desc="tokenising", unit="doc") as bar:
        while chunk := list(itertools.islice(texts, chunk_size)):
            for encoding in tokenizer.encode_batch(chunk):
                parts.append(np.asarray([*encoding.ids, eot], dtype=dtype))
            bar.update(len(chunk))
    return np.concatenate(parts)


@dataclass
class TokenizedCorpus:
    """A tokenised corpus as one memory-mapped token stream, cached on disk."""

    tokens: np.ndarray = field(repr=False)  # [n_tokens] uint16/uint32 memmap
    tokenizer: Tokenizer = field(repr=False)
    path: Path

    @classmethod
    def build(
        cls,
        files: Sequence[Path],
        tokenizer: Tokenizer,
        cache_dir: str | Path,
        chunk_size: int = 64,
    ) -> "TokenizedCorpus":
        """Tokenise `files` once (cached by a hash of the files and tokenizer), then memory-map."""
        if not files:
            raise ValueError("corpus is empty: pass at least one file (see collect_text_files)")
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"tokens-{_fingerprint(files, tokenizer.to_str())}.npy"
        if not path.exists():
            texts = (_read_text(Path(f)) for f in files)
            stream = tokenize_texts(texts, tokenizer, chunk_size, total=len(files))
            _write_atomic(path, lambda tmp: np.save(tmp, stream))
        return cls(tokens=np.load(path, mmap_mode="r"), tokenizer=tokenizer, path=path)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class TextTask:
    """Next-token prediction on random windows of a tokenised corpus.

    The last `val_fraction` of the token stream is the "val" split, the rest "train"; windows never
    cross the boundary. Every position but the last is scored.
    """

    name: ClassVar[str] = "text"
    corpus: TokenizedCorpus
    seq_len: int = 128
    split: str = "train"
    val_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {self.split!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        start, stop = self.bounds
        if stop - start < self.seq_len:
            raise ValueError(
                f"the {self.split} split has {stop - start} tokens, fewer than seq_len="
                f"{self.seq_len}; use a bigger corpus, a shorter seq_len or another val_fraction"
            )

    @property
    def d_vocab(self) -> int:
        return self.corpus.tokenizer.get_vocab_size()

    @property
    def tokenizer(self) -> Tokenizer:
        """The corpus tokenizer, saved with models trained on this task."""
        return self.corpus.tokenizer

    @property
    def bounds(self) -> tuple[int, int]:
        """[start, stop) of this split in the token stream."""
        n_tokens = len(self.corpus)
        boundary = n_tokens - int(n_tokens * self.val_fraction)
        return (0, boundary) if self.split == "train" else (boundary, n_tokens)

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        start, stop = self.bounds
        starts = torch.randint(
            start,
            stop - self.seq_len + 1,
            (batch_size, 1),
            generator=generator,
            device=generator.device,
        )
        index = starts.cpu().numpy() + np.arange(self.seq_len)  # [batch, pos]
        tokens = torch.from_numpy(self.corpus.tokens[index].astype(np.int64)).to(generator.device)
        loss_mask = torch.ones_like(tokens, dtype=torch.bool)
        loss_mask[:, -1] = False
        return TaskBatch(tokens=tokens, loss_mask=loss_mask)


def hold_out_every(documents: Sequence, every: int = 20) -> tuple[list, list]:
    """`(train, val)`: every `every`-th document (the 20th, 40th, ... in order) is held out.

    Spread over the whole collection, unlike a tail split of a stream sorted by source.
    """
    if every < 2:
        raise ValueError(f"every must be >= 2 (one document in `every` is held out), got {every}")
    val = list(documents[every - 1 :: every])
    train = [doc for i, doc in enumerate(documents) if i % every != every - 1]
    return train, val


@dataclass
class TokenStreamTask:
    """Next-token prediction on random windows of one split's token stream, sampled on the device.

    The stream moves once to the generator's device and windows are cut there, so a training step
    needs no host round trip. Each split is its own stream (documents held out before
    tokenising, see `hold_out_every`), so a window never crosses from one split into another.
    """

    name: ClassVar[str] = "text"
    tokens: torch.Tensor = field(repr=False)  # [n_tokens] integer ids
    d_vocab: int
    seq_len: int = 512

    def __post_init__(self) -> None:
        if self.tokens.ndim != 1 or self.tokens.dtype.is_floating_point:
            raise ValueError(
                f"tokens must be a 1-D integer stream, got {self.tokens.dtype} "
                f"of shape {tuple(self.tokens.shape)}"
            )
        if len(self.tokens) < self.seq_len:
            raise ValueError(
                f"the stream has {len(self.tokens)} tokens, fewer than seq_len={self.seq_len}; "
                "use a bigger corpus or a shorter seq_len"
            )

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        device = generator.device
        if self.tokens.device != device:
            self.tokens = self.tokens.to(device)
        n_starts = len(self.tokens) - self.seq_len + 1
        starts = torch.randint(0, n_starts, (batch_size, 1), generator=generator, device=device)
        tokens = self.tokens[starts + torch.arange(self.seq_len, device=device)].long()
        loss_mask = torch.ones_like(tokens, dtype=torch.bool)
        loss_mask[:, -1] = False
        return TaskBatch(tokens=tokens, loss_mask=loss_mask)


def repeated_span_mask(tokens: torch.Tensor, min_match: int = 2) -> torch.Tensor:
    """True at t when tokens[t - min_match + 1 .. t + 1] already occurred earlier in the window.

    Marks "induction-heavy" positions of natural text: copying what followed the last `min_match`
    tokens' earlier occurrence predicts the next token. tokens: [batch, pos] -> [batch, pos] bool.
    """
    if min_match < 1:
        raise ValueError(f"min_match must be >= 1, got {min_match}")
    span = min_match + 1
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    if tokens.shape[1] < span:
        return mask
    grams = tokens.unfold(1, span, 1)  # [batch, gram, span]; gram i ends at next-token i + span - 1
    same = torch.ones(grams.shape[:2] + grams.shape[1:2], dtype=torch.bool, device=tokens.device)
    for k in range(span):
        same &= grams[:, :, None, k] == grams[:, None, :, k]  # [batch, gram, earlier gram]
    earlier = torch.ones(same.shape[1:], dtype=torch.bool, device=tokens.device).tril(-1)
    mask[:, min_match - 1 : tokens.shape[1] - 1] = (same & earlier).any(-1)
    return mask
