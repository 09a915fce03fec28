"""A plain-PyTorch reference GPT, nanoGPT-style, shaped like a `HookedMomentumTransformer`.

Written independently of `momentum_interp.model` (no einops, no hooks, no shared code): a fused
qkv `nn.Linear`, rotary positions (GPT-NeoX "rotate half" layout, optionally on the first
`rotary_dim` channels only), `F.scaled_dot_product_attention(is_causal=True)`, a GELU/ReLU MLP,
`nn.LayerNorm` pre-norm blocks and an untied `lm_head` with a bias. With the same weights it
computes the same logits as our model at γ = 0, which makes it both the speed baseline of
`benchmarks.throughput` and a second implementation that `tests/test_benchmarks.py` checks ours
against.

`from_momentum(model)` builds a reference with the same shape and `load_momentum_weights`
copies a momentum model's weights into it (the mapping is written out in that function).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ReferenceConfig:
    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    rotary_dim: int
    rotary_base: float = 10000.0
    eps: float = 1e-5
    act_fn: str = "gelu"
    attn_only: bool = False


class RotaryEmbedding(nn.Module):
    """cos/sin tables for the rotate-half layout: channel i pairs with channel i + rotary_dim/2."""

    def __init__(self, rotary_dim: int, n_ctx: int, base: float):
        super().__init__()
        self.rotary_dim = rotary_dim
        exponents = torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim
        theta = torch.arange(n_ctx, dtype=torch.float64)[:, None] / base**exponents  # [T, r/2]
        theta = theta.repeat(1, 2)  # [T, r]: both halves of a pair share an angle
        self.register_buffer("cos", theta.cos().float(), persistent=False)
        self.register_buffer("sin", theta.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x: [B, T, H, D]` → rotated; channels past `rotary_dim` pass through."""
        r, n_pos = self.rotary_dim, x.shape[1]
        cos = self.cos[:n_pos].to(x.dtype)[None, :, None, :]
        sin = self.sin[:n_pos].to(x.dtype)[None, :, None, :]
        if r == x.shape[-1]:
            first, second = x.chunk(2, dim=-1)
            return x * cos + torch.cat((-second, first), dim=-1) * sin
        x_rot, x_pass = x[..., :r], x[..., r:]
        first, second = x_rot.chunk(2, dim=-1)
        rotated = x_rot * cos + torch.cat((-second, first), dim=-1) * sin
        return torch.cat((rotated, x_pass), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        inner = cfg.n_heads * cfg.d_head
        self.c_attn = nn.Linear(
            cfg.d_model, 3 * inner
        )  # output rows: [q heads | k heads | v heads]
        self.c_proj = nn.Linear(inner, cfg.d_model)
        self.rotary = RotaryEmbedding(cfg.rotary_dim, cfg.n_ctx, cfg.rotary_base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.c_attn(x).view(B, T, 3, self.n_heads, self.d_head).unbind(dim=2)
        q, k = self.rotary(q), self.rotary(k)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.c_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.d_head))


class FeedForward(nn.Module):
    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.c_proj = nn.Linear(cfg.d_mlp, cfg.d_model)
        self.act = nn.GELU() if cfg.act_fn == "gelu" else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.attn = CausalSelfAttention(cfg)
        self.attn_only = cfg.attn_only
        if not cfg.attn_only:
            self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
            self.mlp = FeedForward(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        if not self.attn_only:
            x = x + self.mlp(self.ln_2(x))
        return x


class ReferenceGPT(nn.Module):
    """Token embedding → pre-norm blocks → final LayerNorm → untied `lm_head` (with bias)."""

    def __init__(self, cfg: ReferenceConfig, init_std: float | None = None):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.d_vocab)
        std = init_std if init_std is not None else 0.8 / math.sqrt(cfg.d_model)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """`tokens: [B, T]` int64 → logits `[B, T, d_vocab]`."""
        x = self.wte(tokens)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (buffers such as a fixed γ or rotary tables are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def config_from_momentum(cfg) -> ReferenceConfig:
    """The reference shape of a `MomentumConfig`; rejects options the reference does not have."""
    if cfg.positional_embedding_type != "rotary" or cfg.normalization_type != "LN":
        raise ValueError(
            "The reference GPT has rotary positions and LayerNorm; got "
            f"positional_embedding_type={cfg.positional_embedding_type!r}, "
            f"normalization_type={cfg.normalization_type!r}."
        )
    if cfg.use_attn_result:
        raise ValueError("use_attn_result only changes hooks; build the momentum model without it.")
    return ReferenceConfig(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp if not cfg.attn_only else 0,
        d_vocab=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        rotary_dim=cfg.rotary_dim,
        rotary_base=cfg.rotary_base,
        eps=cfg.eps,
        act_fn=cfg.act_fn,
        attn_only=cfg.attn_only,
    )


@torch.no_grad()
def load_momentum_weights(ref: ReferenceGPT, model) -> ReferenceGPT:
    """Copy a momentum model's weights into `ref` (shapes must agree).

    Ours (TransformerLens layout)              → reference (`nn.Linear.weight` is [out, in])
      embed.W_E            [V, m]              → wte.weight [V, m]
      attn.W_Q/W_K/W_V     [h, m, dh]          → c_attn.weight rows [q | k | v], each
                                                 W.permute(0, 2, 1).reshape(h·dh, m)
      attn.b_Q/b_K/b_V     [h, dh]             → c_attn.bias [q | k | v], each b.reshape(h·dh)
      attn.W_O             [h, dh, m]          → c_proj.weight = W_O.reshape(h·dh, m).T
      attn.b_O             [m]                 → c_proj.bias
      ln1.w / ln1.b, ln2.*, ln_final.*         → ln_1 / ln_2 / ln_f weight, bias
      mlp.W_in [m, d_mlp], mlp.W_out [d_mlp, m] → c_fc.weight = W_in.T, c_proj.weight = W_out.T
      mlp.b_in, mlp.b_out                      → c_fc.bias, c_proj.bias
      unembed.W_U [m, V], unembed.b_U [V]      → lm_head.weight = W_U.T, lm_head.bias
    γ is not copied: the reference is the γ = 0 model.
    """

    def heads_to_rows(w: torch.Tensor) -> torch.Tensor:  # [h, m, dh] → [h·dh, m]
        return w.permute(0, 2, 1).reshape(-1, w.shape[1])

    ref.wte.weight.copy_(model.embed.W_E)
    for block, ours in zip(ref.blocks, model.blocks, strict=True):
        a = ours.attn
        block.attn.c_attn.weight.copy_(
            torch.cat([heads_to_rows(a.W_Q), heads_to_rows(a.W_K), heads_to_rows(a.W_V)])
        )
        block.attn.c_attn.bias.copy_(
            torch.cat([a.b_Q.reshape(-1), a.b_K.reshape(-1), a.b_V.reshape(-1)])
        )
        block.attn.c_proj.weight.copy_(a.W_O.reshape(-1, a.W_O.shape[-1]).T)
        block.attn.c_proj.bias.copy_(a.b_O)
        block.ln_1.weight.copy_(ours.ln1.w)
        block.ln_1.bias.copy_(ours.ln1.b)
        if not ref.cfg.attn_only:
            block.ln_2.weight.copy_(ours.ln2.w)
            block.ln_2.bias.copy_(ours.ln2.b)
            block.mlp.c_fc.weight.copy_(ours.mlp.W_in.T)
            block.mlp.c_fc.bias.copy_(ours.mlp.b_in)
            block.mlp.c_proj.weight.copy_(ours.mlp.W_out.T)
            block.mlp.c_proj.bias.copy_(ours.mlp.b_out)
    ref.ln_f.weight.copy_(model.ln_final.w)
    ref.ln_f.bias.copy_(model.ln_final.b)
    ref.lm_head.weight.copy_(model.unembed.W_U.T)
    ref.lm_head.bias.copy_(model.unembed.b_U)
    return ref


def from_momentum(model, copy_weights: bool = True) -> ReferenceGPT:
    """A reference GPT shaped like `model` (same parameter count), on its device and dtype."""
    param = next(model.parameters())
    ref = ReferenceGPT(config_from_momentum(model.cfg)).to(device=param.device, dtype=param.dtype)
    return load_momentum_weights(ref, model) if copy_weights else ref
