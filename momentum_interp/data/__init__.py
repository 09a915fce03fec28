"""Tasks for training and probing induction: synthetic copies, associative recall, and text."""

from momentum_interp.data.batch import Task, TaskBatch
from momentum_interp.data.corpus import (
    EOT,
    TextTask,
    TokenizedCorpus,
    TokenStreamTask,
    collect_text_files,
    hold_out_every,
    load_or_train_tokenizer,
    repeated_span_mask,
    stdlib_corpus_files,
    tokenize_texts,
    train_bpe_tokenizer,
)
from momentum_interp.data.induction import (
    InductionTask,
    RepeatedTokensTask,
    earlier_occurrence_mask,
)
from momentum_interp.data.mqar import MQARTask
from momentum_interp.data.recall import AssociativeRecallTask
from momentum_interp.data.registry import TASK_BUILDERS, make_task, make_text_task

__all__ = [
    "EOT",
    "TASK_BUILDERS",
    "AssociativeRecallTask",
    "InductionTask",
    "MQARTask",
    "RepeatedTokensTask",
    "Task",
    "TaskBatch",
    "TextTask",
    "TokenStreamTask",
    "TokenizedCorpus",
    "collect_text_files",
    "earlier_occurrence_mask",
    "hold_out_every",
    "load_or_train_tokenizer",
    "make_task",
    "make_text_task",
    "repeated_span_mask",
    "stdlib_corpus_files",
    "tokenize_texts",
    "train_bpe_tokenizer",
]
