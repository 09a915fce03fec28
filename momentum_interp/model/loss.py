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


# Rows of logits materialised at once by `unembed_next_token_loss` (float32 bytes per chunk).
LOSS_CHUNK_BYTES = 1 << 30


def unembed_next_token_loss(
    resid: torch.Tensor,
    W_U: torch.Tensor,
    b_U: torch.Tensor,
    tokens: torch.Tensor,
    loss_mask: torch.Tensor | None = None,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """`next_token_loss(resid @ W_U + b_U, tokens, loss_mask)` without the whole batch's logits.

    `resid: [batch, pos, d_model]` is the final (normalised) residual. The logits are made
    `chunk_rows` positions at a time (default: `LOSS_CHUNK_BYTES` of float32 logits), and the
    gradients of `resid`, `W_U` and `b_U` are computed chunk by chunk in the same pass, so
    backward stores no logits. Under autocast the unembedding runs in the autocast dtype and the
    softmax in float32, as the unfused path does. Supports one backward (not double backward).
    """
    _check(tokens, loss_mask)
    x = resid[:, :-1].flatten(0, 1)  # [rows, d_model]
    targets = tokens[:, 1:].flatten()
    if loss_mask is None:
        weights = torch.full(targets.shape, 1.0 / targets.numel(), device=x.device)
    else:
        mask = loss_mask[:, :-1].flatten().to(device=x.device, dtype=torch.float32)
        weights = mask / mask.sum().clamp(min=1.0)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = torch.promote_types(x.dtype, W_U.dtype)
    rows = chunk_rows or max(1, LOSS_CHUNK_BYTES // (4 * W_U.shape[-1]))
    with torch.autocast(device_type, enabled=False):
        return _ChunkedUnembedLoss.apply(x, W_U, b_U, targets, weights, dtype, rows)


class _ChunkedUnembedLoss(torch.autograd.Function):
    """Weighted cross-entropy of `x W_U + b_U` with the gradients computed during the forward."""

    @staticmethod
    def forward(ctx, x, W_U, b_U, targets, weights, dtype, rows):
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        x_c, w_c, b_c = x.to(dtype), W_U.to(dtype), b_U.to(dtype)
        loss = torch.zeros((), dtype=torch.float32, device=x.device)
        grad_x = torch.empty_like(x) if need_x else None
        grad_w = torch.zeros(W_U.shape, dtype=torch.float32, device=x.device) if need_w else None
        grad_b = torch.zeros(b_U.shape, dtype=torch.float32, device=x.device) if need_b else None
        for start in range(0, x.shape[0], rows):
            part = slice(start, start + rows)
            logits = torch.addmm(b_c, x_c[part], w_c).float()  # [rows, d_vocab]
            log_z = logits.logsumexp(-1)  # [rows]
            target_logit = logits.gather(1, targets[part, None]).squeeze(1)
            loss += ((log_z - target_logit) * weights[part]).sum()
            if need_x or need_w or need_b:  # d loss / d logits = w (softmax − one-hot)
                grad = logits.sub_(log_z[:, None]).exp_()
                grad[torch.arange(grad.shape[0], device=grad.device), targets[part]] -= 1.0
                grad.mul_(weights[part, None])
                if need_b:
                    grad_b += grad.sum(0)
                grad = grad.to(dtype)
                if need_x:
                    grad_x[part] = (grad @ w_c.T).to(x.dtype)
                if need_w:
                    grad_w += (x_c[part].T @ grad).float()
        ctx.param_dtypes = W_U.dtype, b_U.dtype
        ctx.save_for_backward(grad_x, grad_w, grad_b)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad_x, grad_w, grad_b = ctx.saved_tensors
        scale = grad_loss.float()
        w_dtype, b_dtype = ctx.param_dtypes
        return (
            None if grad_x is None else grad_x * scale.to(grad_x.dtype),
            None if grad_w is None else (grad_w * scale).to(w_dtype),
            None if grad_b is None else (grad_b * scale).to(b_dtype),
            None,
            None,
            None,
            None,
        )
