"""Next-token cross-entropy: the one implementation every caller uses (training, evaluation,
scoring, the LM comparison)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(tokens: torch.Tensor, loss_mask: torch.Tensor | None) -> None:
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(
            f"The next-token loss needs tokens of shape [batch, pos] with pos >= 2, got "
            f"{tuple(tokens.shape)}: a single position has no next token to predict. Pass "
            "sequences of at least 2 tokens, or use return_type='logits'."
        )
    if loss_mask is not None and loss_mask.shape != tokens.shape:
        raise ValueError(
            f"loss_mask has shape {tuple(loss_mask.shape)} but tokens have shape "
            f"{tuple(tokens.shape)}; pass a [batch, pos] loss_mask of the same shape as the "
            "tokens (True where predicting the next token counts)."
        )


def per_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting `tokens[:, t+1]` from `logits[:, t]`: `[batch, pos − 1]`, float32.

    `logits: [batch, pos, d_vocab]`, `tokens: [batch, pos]`.
    """
    _check(tokens, None)
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none"
    ).view(tokens.shape[0], -1)


def next_token_loss(
    logits: torch.Tensor, tokens: torch.Tensor, loss_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy (a scalar).

    `loss_mask: [batch, pos]` (True = counts) restricts the mean to chosen positions; its last
    column is ignored since the last position has no next token.
    """
    _check(tokens, loss_mask)
    per_token = per_token_loss(logits, tokens)
    if loss_mask is None:
        return per_token.mean()
    mask = loss_mask[:, :-1].to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
