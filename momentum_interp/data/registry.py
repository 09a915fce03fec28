"""Build any task by name, with friendly errors for typos in names or arguments."""

import inspect
import numbers
import types
import typing
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
    """ValueError naming the nearest valid choice if `name` or an argument name is a typo, or
    naming the argument whose value has the wrong type (`d_vocab = [24]`)."""
    if name not in TASK_BUILDERS:
        raise ValueError(unknown_names("task", [name], TASK_BUILDERS))
    valid = inspect.signature(TASK_BUILDERS[name]).parameters
    if set(kwargs) - set(valid):
        raise ValueError(
            unknown_names(f"argument(s) of task {name!r}:", set(kwargs) - set(valid), valid)
        )
    hints = typing.get_type_hints(TASK_BUILDERS[name])
    for key, value in kwargs.items():
        if key in hints and not _fits(hints[key], value):
            raise ValueError(
                f"argument {key!r} of task {name!r} must be {_type_label(hints[key])}, "
                f"got {value!r}."
            )


def _fits(annotation, value) -> bool:
    """Whether a config value fits a builder's annotation: int and float (never a bool), str,
    Path (given as a string), None, unions of these and sequences of them."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_fits(arg, value) for arg in args)
    if annotation in (int, float):
        numeric = numbers.Integral if annotation is int else numbers.Real  # numpy's too
        return isinstance(value, numeric) and not isinstance(value, bool)
    if annotation is Path:
        return isinstance(value, (str, Path))
    if typing.get_origin(annotation) is Sequence:
        return isinstance(value, (list, tuple)) and all(_fits(args[0], v) for v in value)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def _type_label(annotation) -> str:
    """`int`, `int or None`, `sequence of str or Path`: the annotation in words."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_label(arg) for arg in args)
    if typing.get_origin(annotation) is Sequence:
        return f"a sequence of {_type_label(args[0])}"
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def make_task(name: str, **kwargs) -> Task:
    """`make_task("induction", seq_len=128)`; ValueError names the valid choices on a typo."""
    check_task(name, kwargs)
    return TASK_BUILDERS[name](**kwargs)
