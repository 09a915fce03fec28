"""Embedding, normalisation and MLP modules, named and hooked as in TransformerLens."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens.hook_points import HookPoint

from momentum_interp.config import MomentumConfig


def add_bias(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`x + bias` in `x`'s dtype: under bf16 autocast a float32 bias would promote the bf16
    output of the matmul before it to float32 (and with it q/k/v, SDPA and the saved activations)."""
    return x + bias.to(x.dtype)


class Embed(nn.Module):
    """Token embedding `W_E: [d_vocab, d_model]`."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, dtype=cfg.dtype))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    """Learned absolute positions `W_pos: [n_ctx, d_model]`."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model, dtype=cfg.dtype))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.W_pos[: tokens.shape[-1]].expand(tokens.shape[0], -1, -1)


class Unembed(nn.Module):
    """Logits `x W_U + b_U`, `W_U: [d_model, d_vocab]`."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab, dtype=cfg.dtype))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab, dtype=cfg.dtype))

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        return resid @ self.W_U + self.b_U


class LayerNorm(nn.Module):
    """LayerNorm with TransformerLens's `hook_scale` and `hook_normalized` (the scale is computed
    explicitly only when a hook on it needs it; otherwise `F.layer_norm`)."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.eps = cfg.eps
        self.w = nn.Parameter(torch.ones(cfg.d_model, dtype=cfg.dtype))
        self.b = nn.Parameter(torch.zeros(cfg.d_model, dtype=cfg.dtype))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.hook_scale.has_hooks():  # one fused kernel; the same maths
            return self.hook_normalized(F.layer_norm(x, x.shape[-1:], self.w, self.b, self.eps))
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale * self.w + self.b)


class RMSNorm(nn.Module):
    """RMSNorm with TransformerLens's `hook_scale` and `hook_normalized` (`F.rms_norm` unless a
    hook on the scale needs it)."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.eps = cfg.eps
        self.w = nn.Parameter(torch.ones(cfg.d_model, dtype=cfg.dtype))
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.hook_scale.has_hooks():  # one fused kernel; the same maths
            return self.hook_normalized(F.rms_norm(x, x.shape[-1:], self.w, self.eps))
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale * self.w)


def make_norm(cfg: MomentumConfig) -> nn.Module:
    """The configured normalisation, or identity when `normalization_type` is None."""
    if cfg.normalization_type == "LN":
        return LayerNorm(cfg)
    if cfg.normalization_type == "RMS":
        return RMSNorm(cfg)
    return nn.Identity()


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's tanh approximation of GELU."""
    return F.gelu(x, approximate="tanh")


ACTIVATION_FNS = {"gelu": F.gelu, "gelu_new": gelu_new, "relu": F.relu}


class MLP(nn.Module):
    """Two-layer MLP with `hook_pre` (pre-activation) and `hook_post` (post-activation)."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp, dtype=cfg.dtype))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp, dtype=cfg.dtype))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model, dtype=cfg.dtype))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model, dtype=cfg.dtype))
        self.act = ACTIVATION_FNS[cfg.act_fn]
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(F.linear(x, self.W_in.T, self.b_in))  # one addmm each
        post = self.hook_post(self.act(pre))
        return F.linear(post, self.W_out.T, self.b_out)
