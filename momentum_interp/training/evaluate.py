"""Held-out evaluation: masked next-token loss and accuracy on fresh task batches."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from momentum_interp.data.batch import Task
from momentum_interp.model.transformer import HookedMomentumTransformer

EVAL_STREAM = 1  # seed-sequence stream id of evaluation batches (training uses stream 0)


def seeded_generator(device: torch.device | str, *entropy: int) -> torch.Generator:
    """A generator on `device` whose seed is a hash of `entropy` (distinct streams never collide)."""
    seed = int(np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(seed)


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
    device = model.W_E.device
    correct, counts, loss_sums = [], [], []
    for index in range(n_batches):
        batch = task.sample(batch_size, seeded_generator(device, seed, EVAL_STREAM, index))
        logits = model(batch.tokens)[:, :-1].float()  # [batch, pos-1, d_vocab]
        targets = batch.tokens[:, 1:]
        mask = batch.loss_mask[:, :-1]
        loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        correct.append(((logits.argmax(-1) == targets) & mask).sum(-1).cpu())
        counts.append(mask.sum(-1).cpu())
        loss_sums.append((loss * mask).sum(-1).cpu())
    model.train(was_training)
    return {
        "correct": torch.cat(correct).numpy(),
        "n_positions": torch.cat(counts).numpy(),
        "loss_sum": torch.cat(loss_sums).double().numpy(),
    }


def evaluate(
    model: HookedMomentumTransformer,
    task: Task,
    n_batches: int = 4,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Pooled loss and accuracy over scored positions of fresh batches (for training curves)."""
    per_seq = per_sequence_metrics(model, task, n_batches, batch_size, seed)
    count = max(int(per_seq["n_positions"].sum()), 1)
    return {
        "loss": float(per_seq["loss_sum"].sum()) / count,
        "accuracy": int(per_seq["correct"].sum()) / count,
        "correct": int(per_seq["correct"].sum()),
        "n_positions": int(per_seq["n_positions"].sum()),
    }
