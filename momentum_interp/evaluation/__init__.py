"""Evaluation: the next-token loss, seed streams, held-out batches and pooled metrics."""

from momentum_interp.evaluation.loss import next_token_loss, per_token_loss

__all__ = ["next_token_loss", "per_token_loss"]
