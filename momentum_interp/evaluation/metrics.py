"""Held-out metrics: per-sequence correct counts and losses, and their pooled accuracy and loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from momentum_interp.evaluation.batches import held_out_batches
from momentum_interp.model.loss import per_token_loss

if TYPE_CHECKING:
    from momentum_interp.data.batch import Task
    from momentum_interp.model.transformer import HookedMomentumTransformer


@torch.no_grad()
def per_sequence_metrics(
    model: HookedMomentumTransformer,
    task: Task,
    n_batches: int = 4,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per held-out sequence: `correct` and `n_positions` on scored positions, and `loss_sum`.

    Sequences are i.i.d., so these arrays support honest confidence intervals (positions
    within one sequence are not independent).
    """
    was_training = model.training
    model.eval()
    correct, counts, loss_sums = [], [], []
    for batch in held_out_batches(task, n_batches, batch_size, seed, model.W_E.device):
        logits = model(batch.tokens)  # [batch, pos, d_vocab]
        loss = per_token_loss(logits, batch.tokens)  # [batch, pos-1]
        targets = batch.tokens[:, 1:]
        mask = batch.loss_mask[:, :-1]
        correct.append(((logits[:, :-1].argmax(-1) == targets) & mask).sum(-1).cpu())
        counts.append(mask.sum(-1).cpu())
        loss_sums.append((loss * mask).sum(-1).cpu())
    model.train(was_training)
    return {
        "correct": torch.cat(correct).numpy(),
        "n_positions": torch.cat(counts).numpy(),
        "loss_sum": torch.cat(loss_sums).double().numpy(),
    }


def pooled(per_seq: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy and mean loss over every scored position of `per_sequence_metrics` output."""
    correct, count = int(per_seq["correct"].sum()), int(per_seq["n_positions"].sum())
    return {
        "loss": float(per_seq["loss_sum"].sum()) / max(count, 1),
        "accuracy": correct / max(count, 1),
        "correct": correct,
        "n_positions": count,
    }


def evaluate(
    model: HookedMomentumTransformer,
    task: Task,
    n_batches: int = 4,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Pooled loss and accuracy over scored positions of fresh batches (for training curves)."""
    return pooled(per_sequence_metrics(model, task, n_batches, batch_size, seed))
