"""Rotary position embedding (GPT-NeoX "rotate half" layout, as TransformerLens's default)."""

from __future__ import annotations

import torch
import torch.nn as nn


def rotary_frequencies(rotary_dim: int, base: float) -> torch.Tensor:
    """`θ_j = base^(−2j / rotary_dim)` (radians per position) of rotary pair j, `[rotary_dim/2]`
    in float64; in the rotate-half layout pair j is channels (j, j + rotary_dim/2)."""
    return base ** (-torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim)


class Rotary(nn.Module):
    """Rotates the first `rotary_dim` channels of each head by position-dependent angles."""

    def __init__(
        self, n_ctx: int, rotary_dim: int, base: float, dtype: torch.dtype = torch.float32
    ):
        super().__init__()
        self.rotary_dim = rotary_dim
        inv_freq = rotary_frequencies(rotary_dim, base)
        angles = torch.outer(torch.arange(n_ctx, dtype=torch.float64), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # [n_ctx, rotary_dim]
        dtype = torch.promote_types(dtype, torch.float32)  # float64 models keep float64 tables
        self.register_buffer("cos", angles.cos().to(dtype), persistent=False)
        self.register_buffer("sin", angles.sin().to(dtype), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """`x: [batch, pos, head, d_head]` at positions `offset, offset+1, ...` → same shape, rotated."""
        r, n_pos = self.rotary_dim, x.shape[1]
        x_rot, x_pass = x[..., :r], x[..., r:]
        half = r // 2
        rotated_half = torch.cat([-x_rot[..., half:], x_rot[..., :half]], dim=-1)
        cos = self.cos[offset : offset + n_pos, None, :].to(x.dtype)
        sin = self.sin[offset : offset + n_pos, None, :].to(x.dtype)
        return torch.cat([x_rot * cos + rotated_half * sin, x_pass], dim=-1)
