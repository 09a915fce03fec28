"""Evaluation: the next-token loss, seed streams, held-out batches and pooled metrics."""

from momentum_interp.evaluation.batches import batching, held_out_batches
from momentum_interp.evaluation.metrics import evaluate, per_sequence_metrics, pooled
from momentum_interp.evaluation.seeds import (
    EVAL_STREAM,
    MEAN_STREAM,
    PATTERN_STREAM,
    TRAIN_STREAM,
    seeded_generator,
)
from momentum_interp.model.loss import next_token_loss, per_token_loss

__all__ = [
    "EVAL_STREAM",
    "MEAN_STREAM",
    "PATTERN_STREAM",
    "TRAIN_STREAM",
    "batching",
    "evaluate",
    "held_out_batches",
    "next_token_loss",
    "per_sequence_metrics",
    "per_token_loss",
    "pooled",
    "seeded_generator",
]
