"""The batch type every task returns, and the `Task` protocol that training code relies on."""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass
class TaskBatch:
    """A batch of token sequences plus which next-token predictions the task scores.

    `loss_mask[:, t]` is True when predicting `tokens[:, t + 1]` from position t counts for the
    task's loss/accuracy; the last position has no next token, so it is always False.
    """

    tokens: torch.Tensor  # [batch, pos] int64
    loss_mask: torch.Tensor  # [batch, pos] bool


@runtime_checkable
class Task(Protocol):
    """Anything that samples deterministic batches of a fixed shape on the generator's device."""

    d_vocab: int
    seq_len: int

    @property
    def name(self) -> str:
        """The task's registry name (a class constant of each task)."""
        ...

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        """Same generator state -> identical batch; tensors live on `generator.device`."""
        ...
