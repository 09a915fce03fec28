"""Build any task by name, with friendly errors for typos in names or arguments."""

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

from momentum_interp.data.batch import Task
from momentum_interp.data.corpus import (
    TextTask,
    TokenizedCorpus,
    collect_text_files,
    load_or_train_tokenizer,
    stdlib_corpus_files,
)
from momentum_interp.data.induction import InductionTask, RepeatedTokensTask
from momentum_interp.data.mqar import MQARTask
from momentum_interp.data.recall import AssociativeRecallTask
from momentum_interp.naming import unknown_names

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "momentum_interp"


def make_text_task(
    sources: Sequence[str | Path] | None = None,
    tokenizer_vocab_size: int = 4096,
    min_frequency: int = 2,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    seq_len: int = 128,
    split: str = "train",
    val_fraction: float = 0.05,
) -> TextTask:
    """Files (default: the Python stdlib) -> cached BPE tokenizer -> cached token stream -> task."""
    files = stdlib_corpus_files() if sources is None else collect_text_files(sources)
    tokenizer = load_or_train_tokenizer(
        files, cache_dir, vocab_size=tokenizer_vocab_size, min_frequency=min_frequency
    )
    corpus = TokenizedCorpus.build(files, tokenizer, cache_dir)
    return TextTask(corpus, seq_len=seq_len, split=split, val_fraction=val_fraction)


TASK_BUILDERS: dict[str, Callable[..., Task]] = {
    "induction": InductionTask,
    "repeated_tokens": RepeatedTokensTask,
    "associative_recall": AssociativeRecallTask,
    "mqar": MQARTask,
    "text": make_text_task,
}


def check_task(name: str, kwargs: dict) -> None:
    """ValueError naming the nearest valid choice if `name` or an argument name is a typo."""
    if name not in TASK_BUILDERS:
        raise ValueError(unknown_names("task", [name], TASK_BUILDERS))
    valid = inspect.signature(TASK_BUILDERS[name]).parameters
    if set(kwargs) - set(valid):
        raise ValueError(
            unknown_names(f"argument(s) of task {name!r}:", set(kwargs) - set(valid), valid)
        )


def make_task(name: str, **kwargs) -> Task:
    """`make_task("induction", seq_len=128)`; ValueError names the valid choices on a typo."""
    check_task(name, kwargs)
    return TASK_BUILDERS[name](**kwargs)
