"""Text pipeline on a tiny temp corpus: file discovery, BPE, token caching, windows, span mask."""

import os
import random
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from momentum_interp.data import (
    EOT,
    TextTask,
    TokenizedCorpus,
    TokenStreamTask,
    collect_text_files,
    hold_out_every,
    make_task,
    repeated_span_mask,
    stdlib_corpus_files,
    tokenize_texts,
    train_bpe_tokenizer,
)
from momentum_interp.data import corpus as corpus_module

CODE = '''def add(a, b):
    """Return a + b."""
    return a + b


class Counter:
    def __init__(self, start=0):
        self.count = start  # {i}

    def step(self, by=1):
        self.count += by
        return self.count
'''


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for i in range(6):
        (root / "pkg" / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / "pkg" / f"sub{i % 2}" / f"mod{i}.py").write_text(CODE.format(i=i) * (i + 1))
    (root / "README.md").write_text("# Tiny corpus\n\nA few files for tests.\n")
    (root / "notes.txt").write_text("counter steps: 1, 2, 3, 4\n")
    (root / "blob.bin").write_bytes(b"\x00\x01")
    (root / ".venv").mkdir()
    (root / ".venv" / "hidden.py").write_text("x = 1\n")
    return root


@pytest.fixture(scope="module")
def files(corpus_dir) -> list[Path]:
    return collect_text_files([corpus_dir])


@pytest.fixture(scope="module")
def tokenizer(files):
    return train_bpe_tokenizer(files, vocab_size=320)


# ---------------------------------------------------------------- collect_text_files


def test_collect_directory_by_suffix_sorted_without_hidden(corpus_dir, files):
    expected = sorted(
        p.resolve()
        for p in corpus_dir.rglob("*")
        if p.suffix in {".py", ".txt", ".md"} and ".venv" not in p.parts
    )
    assert files == expected and len(files) == 8


def test_collect_glob_file_and_dedup(corpus_dir):
    got = collect_text_files(
        [f"{corpus_dir}/pkg/**/*.py", corpus_dir / "notes.txt", corpus_dir / "notes.txt"]
    )
    expected = [*(corpus_dir / "pkg").rglob("*.py"), corpus_dir / "notes.txt"]
    assert got == sorted(p.resolve() for p in expected) and len(got) == 7


def test_collect_empty_dir_and_missing_path_raise_helpful_errors(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty.*pass a directory or glob"):
        collect_text_files([tmp_path])
    with pytest.raises(ValueError, match="corpus is empty"):
        collect_text_files([f"{tmp_path}/*.py"])
    with pytest.raises(ValueError, match="does not exist"):
        collect_text_files([tmp_path / "nope"])


def test_stdlib_corpus_files():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_corpus_files()
    assert len(files) > 200 and files == sorted(files)
    assert root / "os.py" in files and root / "json" / "decoder.py" in files
    skipped = {"site-packages", "test", "tests", "idlelib", "lib2to3"}
    for f in files[:: len(files) // 50]:
        assert f.suffix == ".py" and f.is_file()
        assert not skipped.intersection(f.relative_to(root).parts)


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_round_trips_and_is_deterministic(files, tokenizer):
    assert tokenizer.token_to_id(EOT) == 0 and tokenizer.get_vocab_size() == 320
    for text in [CODE, "x = {'a': [1, 2]}\n\tif x: pass  # tab\n", "unseen ~`^|@ chars!\r\n"]:
        ids = tokenizer.encode(text).ids
        assert tokenizer.decode(ids) == text
    assert len(tokenizer.encode(CODE).ids) < len(CODE.encode()) / 2  # merges were learned
    assert train_bpe_tokenizer(files, vocab_size=320).to_str() == tokenizer.to_str()


# ---------------------------------------------------------------- TokenizedCorpus


def test_corpus_cache_matches_encoding_and_is_reused(files, tokenizer, tmp_path, monkeypatch):
    built = TokenizedCorpus.build(files, tokenizer, tmp_path)
    expected = [i for f in files for i in [*tokenizer.encode(f.read_text()).ids, 0]]
    assert isinstance(built.tokens, np.memmap) and built.tokens.dtype == np.uint16
    assert built.tokens.tolist() == expected and len(built) == len(expected)
    assert [p.name for p in tmp_path.iterdir()] == [built.path.name]  # no temp files left

    mtime = built.path.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("re-tokenised despite a cache hit")

    monkeypatch.setattr(corpus_module, "tokenize_texts", fail)
    again = TokenizedCorpus.build(files, tokenizer, tmp_path)
    assert again.path == built.path and built.path.stat().st_mtime_ns == mtime
    assert np.array_equal(again.tokens, built.tokens)


def test_corpus_cache_invalidated_by_changed_file(tmp_path, tokenizer):
    doc = tmp_path / "docs" / "a.py"
    doc.parent.mkdir()
    doc.write_text("a = 1\n")
    first = TokenizedCorpus.build([doc], tokenizer, tmp_path / "cache")
    doc.write_text("a = 22\n")
    os.utime(doc, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = TokenizedCorpus.build([doc], tokenizer, tmp_path / "cache")
    assert first.path != second.path
    assert second.tokens.tolist() == [*tokenizer.encode("a = 22\n").ids, 0]


# ---------------------------------------------------------------- TextTask


@pytest.fixture(scope="module")
def corpus(files, tokenizer, tmp_path_factory) -> TokenizedCorpus:
    return TokenizedCorpus.build(files, tokenizer, tmp_path_factory.mktemp("cache"))


def window_starts(stream: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Every index where `window` occurs in `stream` (independent of the sampler)."""
    views = np.lib.stride_tricks.sliding_window_view(stream, len(window))
    return np.flatnonzero((views == window).all(axis=1))


@pytest.mark.parametrize("split", ["train", "val"])
def test_text_windows_come_from_their_split(corpus, split):
    task = TextTask(corpus, seq_len=24, split=split, val_fraction=0.25)
    boundary = len(corpus) - int(len(corpus) * 0.25)
    batch = task.sample(16, torch.Generator().manual_seed(0))
    assert task.d_vocab == 320 and task.name == "text"
    assert batch.tokens.shape == (16, 24) and batch.tokens.dtype == torch.int64
    assert batch.loss_mask[:, :-1].all() and not batch.loss_mask[:, -1].any()
    stream = np.asarray(corpus.tokens)
    for row in batch.tokens.numpy():
        starts = window_starts(stream, row)
        in_split = starts + 24 <= boundary if split == "train" else starts >= boundary
        assert in_split.any()
    again = task.sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(again.tokens, batch.tokens)


def test_text_windows_as_long_as_the_split_are_the_whole_split(corpus):
    stream = np.asarray(corpus.tokens, dtype=np.int64)
    boundary = len(stream) - int(len(stream) * 0.1)
    for split, part in [("train", stream[:boundary]), ("val", stream[boundary:])]:
        task = TextTask(corpus, seq_len=len(part), split=split, val_fraction=0.1)
        tokens = task.sample(4, torch.Generator().manual_seed(1)).tokens
        assert (tokens.numpy() == part).all()


def test_text_task_validation(corpus):
    with pytest.raises(ValueError, match="fewer than seq_len"):
        TextTask(corpus, seq_len=len(corpus) // 2, split="val", val_fraction=0.1)
    with pytest.raises(ValueError, match="split"):
        TextTask(corpus, split="test")


def test_make_task_text_uses_cache(corpus_dir, tmp_path):
    kwargs = dict(sources=[corpus_dir], tokenizer_vocab_size=300, cache_dir=tmp_path, seq_len=16)
    task = make_task("text", **kwargs)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert len(cached) == 2 and task.d_vocab == 300 and task.seq_len == 16
    again = make_task("text", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == cached
    assert again.corpus.tokenizer.to_str() == task.corpus.tokenizer.to_str()


# ------------------------------------------------- tokenize_texts, hold_out_every, TokenStreamTask


def test_tokenize_texts_is_each_encoding_then_eot(tokenizer):
    texts = [CODE.format(i=i) for i in range(5)] + ["", "x = 1"]
    stream = tokenize_texts(iter(texts), tokenizer, chunk_size=2)  # a generator, chunks of 2
    expected = [i for text in texts for i in [*tokenizer.encode(text).ids, 0]]
    assert stream.dtype == np.uint16 and stream.tolist() == expected
    assert tokenize_texts([], tokenizer).tolist() == []


def test_hold_out_every():
    train, val = hold_out_every(list(range(45)), every=20)
    assert val == [19, 39] and train == [i for i in range(45) if i not in (19, 39)]
    with pytest.raises(ValueError, match="every must be >= 2"):
        hold_out_every([1, 2], every=1)


def test_stream_windows_never_cross_the_split(tokenizer):
    # held-out documents are written in characters no training document uses (their bytes get
    # token ids of their own), so any window mixing the splits would show them
    docs = [CODE.format(i=i) if i % 5 != 4 else "ü é ß ø " * 40 for i in range(40)]
    train_docs, val_docs = hold_out_every(docs, every=5)
    assert {d[0] for d in val_docs} == {"ü"} and not any("ü" in d for d in train_docs)
    streams = {
        k: tokenize_texts(v, tokenizer) for k, v in (("train", train_docs), ("val", val_docs))
    }
    ids = {split: set(stream.tolist()) for split, stream in streams.items()}
    only = {"train": ids["train"] - ids["val"], "val": ids["val"] - ids["train"]}
    assert only["train"] and only["val"]
    for split, stream in streams.items():
        task = TokenStreamTask(torch.from_numpy(stream.astype(np.int32)), d_vocab=320, seq_len=48)
        batch = task.sample(64, torch.Generator().manual_seed(0))
        assert batch.tokens.shape == (64, 48) and batch.tokens.dtype == torch.int64
        assert batch.loss_mask[:, :-1].all() and not batch.loss_mask[:, -1].any()
        for row in batch.tokens.numpy():
            assert len(window_starts(stream, row)) > 0  # a contiguous slice of its own stream
            other = "val" if split == "train" else "train"
            assert not only[other] & set(row.tolist())
        again = task.sample(64, torch.Generator().manual_seed(0))
        assert torch.equal(again.tokens, batch.tokens)
        whole = TokenStreamTask(task.tokens, d_vocab=320, seq_len=len(stream))
        assert (whole.sample(2, torch.Generator()).tokens.numpy() == stream).all()


def test_stream_task_validation():
    with pytest.raises(ValueError, match="fewer than seq_len=8"):
        TokenStreamTask(torch.arange(5), d_vocab=10, seq_len=8)
    with pytest.raises(ValueError, match="1-D integer stream"):
        TokenStreamTask(torch.zeros(2, 10, dtype=torch.long), d_vocab=10, seq_len=8)


# ---------------------------------------------------------------- repeated_span_mask


def brute_force_span_mask(tokens: torch.Tensor, min_match: int) -> list[list[bool]]:
    """Python scan: does the (min_match + 1)-gram ending at t + 1 also end at some s + 1 < t + 1?"""
    out = []
    for row in tokens.tolist():
        grams = {
            t: tuple(row[t - min_match + 1 : t + 2]) for t in range(min_match - 1, len(row) - 1)
        }
        out.append(
            [t in grams and grams[t] in [grams[s] for s in grams if s < t] for t in range(len(row))]
        )
    return out


def test_repeated_span_mask_hand_example():
    # a b c x a b c: with min_match=2 the trigram (a b c) recurs, so t=5 (predicting c) is True.
    tokens = torch.tensor([[1, 2, 3, 9, 1, 2, 3]])
    assert repeated_span_mask(tokens, 2).tolist() == [[False] * 5 + [True, False]]
    assert repeated_span_mask(tokens, 1).tolist() == [[False] * 4 + [True, True, False]]


@pytest.mark.parametrize("min_match", [1, 2, 3])
def test_repeated_span_mask_matches_brute_force(min_match):
    rng = random.Random(min_match)
    for vocab, length in [(3, 40), (5, 60), (20, 7), (4, 2)]:
        tokens = torch.tensor([[rng.randrange(vocab) for _ in range(length)] for _ in range(4)])
        assert repeated_span_mask(tokens, min_match).tolist() == brute_force_span_mask(
            tokens, min_match
        )


def test_repeated_span_mask_is_fast():
    tokens = torch.randint(0, 300, (16, 512), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    mask = repeated_span_mask(tokens)
    assert time.perf_counter() - start < 1.0 and mask.shape == (16, 512)
