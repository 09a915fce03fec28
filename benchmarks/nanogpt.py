"""A plain nanoGPT-style GPT (Karpathy's `model.py` layout, with RoPE): the second speed reference.

`GPT.forward(idx, targets)` returns `(logits, loss)` with the float32 cross-entropy inside the
module, as nanoGPT does, so a compiled step compiles the loss with it. It shares only the rotary
table with `benchmarks.reference_gpt`; `from_momentum` copies a momentum model's weights into it
(through the reference GPT's mapping) so that a test can check it equals ours at γ = 0.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.reference_gpt import ReferenceConfig, RotaryEmbedding
from benchmarks.reference_gpt import from_momentum as reference_from_momentum


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ReferenceConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_heads, config.d_head
        self.c_attn = nn.Linear(config.d_model, 3 * config.n_heads * config.d_head)
        self.c_proj = nn.Linear(config.n_heads * config.d_head, config.d_model)
        self.rotary = RotaryEmbedding(config.rotary_dim, config.n_ctx, config.rotary_base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_head * self.head_dim, dim=2)
        q = self.rotary(q.view(B, T, self.n_head, self.head_dim)).transpose(1, 2)
        k = self.rotary(k.view(B, T, self.n_head, self.head_dim)).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, -1))


class MLP(nn.Module):
    def __init__(self, config: ReferenceConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.d_model, config.d_mlp)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(config.d_mlp, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: ReferenceConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, eps=config.eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model, eps=config.eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: ReferenceConfig):
        super().__init__()
        if config.attn_only or config.act_fn != "gelu":
            raise ValueError("the nanoGPT reference has GELU MLPs in every block")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.d_vocab, config.d_model),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layers)]),
                ln_f=nn.LayerNorm(config.d_model, eps=config.eps),
            )
        )
        self.lm_head = nn.Linear(config.d_model, config.d_vocab)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.transformer.wte(idx)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def from_momentum(model) -> GPT:
    """A nanoGPT of `model`'s shape holding its weights (γ is not copied: this is the γ = 0 model)."""
    reference = reference_from_momentum(model)
    gpt = GPT(reference.cfg).to(next(reference.parameters()).device)
    renamed = {
        name.replace("blocks.", "transformer.h.", 1)
        .replace("wte.", "transformer.wte.", 1)
        .replace("ln_f.", "transformer.ln_f.", 1): tensor
        for name, tensor in reference.state_dict().items()
    }
    gpt.load_state_dict(renamed)
    return gpt
