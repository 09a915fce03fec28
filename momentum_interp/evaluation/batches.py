"""Held-out batches: the same fresh task sequences for every measurement with the same seed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from momentum_interp.evaluation.seeds import EVAL_STREAM, seeded_generator

if TYPE_CHECKING:
    from momentum_interp.data.batch import Task, TaskBatch

BATCH_SIZE = 64  # sequences per forward pass when a count of sequences is asked for


def batching(n_sequences: int, batch_size: int = BATCH_SIZE) -> tuple[int, int]:
    """`(n_batches, batch_size)`: `n_sequences` rounded up to whole batches of `batch_size`."""
    if n_sequences < 1:
        raise ValueError(f"n_sequences must be >= 1, got {n_sequences}.")
    batch_size = min(batch_size, n_sequences)
    return math.ceil(n_sequences / batch_size), batch_size


def held_out_batches(
    task: Task,
    n_batches: int,
    batch_size: int,
    seed: int,
    device: torch.device | str = "cpu",
    stream: int = EVAL_STREAM,
) -> Iterator[TaskBatch]:
    """Batch `i` is `task.sample(batch_size, seeded_generator(device, seed, stream, i))`."""
    for index in range(n_batches):
        yield task.sample(batch_size, seeded_generator(device, seed, stream, index))
