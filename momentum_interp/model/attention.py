"""Momentum attention: causal multi-head attention whose queries and keys are sheared along the sequence.

The query, key and value weights live in one parameter `W_QKV: [3, head, d_model, d_head]` (one
matmul per block); `W_Q`, `W_K`, `W_V` (and `b_Q`, ...) are views of it, so in-place edits of them
change the model, and the state dict keeps TransformerLens's separate keys. Two paths compute the
same numbers. The analysis path materialises scores and pattern so that
every hook fires; the fast path calls `scaled_dot_product_attention` and is taken whenever no
hook is attached to `hook_attn_scores` or `hook_pattern`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import einsum, rearrange
from transformer_lens.hook_points import HookPoint

from momentum_interp.config import MomentumConfig
from momentum_interp.model.components import add_bias
from momentum_interp.model.rotary import Rotary
from momentum_interp.model.shear import fused_shear, rms_gain, shear, smear_gamma, velocity

SPLIT_NAMES = ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V")  # the state dict's keys for W_QKV, b_QKV


class MomentumAttention(nn.Module):
    """One layer of heads with TransformerLens weights (`W_Q: [head, d_model, d_head]`, ...)."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.cfg = cfg
        n_heads, d_model, d_head = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_QKV = nn.Parameter(torch.empty(3, n_heads, d_model, d_head, dtype=cfg.dtype))
        self.b_QKV = nn.Parameter(torch.zeros(3, n_heads, d_head, dtype=cfg.dtype))
        self.W_O = nn.Parameter(torch.empty(n_heads, d_head, d_model, dtype=cfg.dtype))
        self.b_O = nn.Parameter(torch.zeros(d_model, dtype=cfg.dtype))

        # float32 (or float64 for float64 models): a bfloat16 gamma would lose its trained value
        param_dtype = torch.promote_types(cfg.dtype, torch.float32)
        gamma = torch.full((n_heads,), float(cfg.gamma), dtype=param_dtype)
        if cfg.gamma_learnable:
            self.gamma = nn.Parameter(gamma)
        else:
            self.register_buffer("gamma", gamma)  # saved, so set_gamma survives a round trip
        if cfg.smeared_key:
            self.smear_logit = nn.Parameter(
                torch.full(
                    (n_heads,), math.log(cfg.smear_init / (1 - cfg.smear_init)), dtype=param_dtype
                )
            )
        if cfg.learned_temperature:
            self.log_temperature = nn.Parameter(torch.zeros(n_heads, dtype=param_dtype))

        self.rotary = (
            Rotary(cfg.n_ctx, cfg.rotary_dim, cfg.rotary_base, dtype=cfg.dtype)
            if cfg.positional_embedding_type == "rotary"
            else None
        )
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        if self.rotary is not None:
            self.hook_rot_q = HookPoint()
            self.hook_rot_k = HookPoint()
        self.hook_q_velocity = HookPoint()
        self.hook_k_velocity = HookPoint()
        self.hook_q_sheared = HookPoint()
        self.hook_k_sheared = HookPoint()
        self.hook_attn_scores = HookPoint()  # [batch, head, q_pos, k_pos]
        self.hook_pattern = HookPoint()  # [batch, head, q_pos, k_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]
        # per-head copies of the block's residual input, [batch, pos, head, d_model]; they fire
        # only with cfg.use_split_qkv_input (q/k/v) or cfg.use_attn_in (one for all three)
        self.hook_q_input = HookPoint()
        self.hook_k_input = HookPoint()
        self.hook_v_input = HookPoint()
        self.hook_attn_in = HookPoint()
        self.hook_result = (
            HookPoint()
        )  # [batch, pos, head, d_model]; fires when cfg.use_attn_result

    # W_Q = W_QKV[0], ...: views, so `attn.W_Q[h] = w` or `attn.W_Q.data.mul_(c)` edits the model
    W_Q = property(lambda self: self.W_QKV[0], lambda self, w: self.W_QKV.data[0].copy_(w))
    W_K = property(lambda self: self.W_QKV[1], lambda self, w: self.W_QKV.data[1].copy_(w))
    W_V = property(lambda self: self.W_QKV[2], lambda self, w: self.W_QKV.data[2].copy_(w))
    b_Q = property(lambda self: self.b_QKV[0], lambda self, b: self.b_QKV.data[0].copy_(b))
    b_K = property(lambda self: self.b_QKV[1], lambda self, b: self.b_QKV.data[1].copy_(b))
    b_V = property(lambda self: self.b_QKV[2], lambda self, b: self.b_QKV.data[2].copy_(b))

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """TransformerLens's keys (`W_Q`, `W_K`, `W_V`, `b_Q`, ...) instead of the fused ones."""
        for name in SPLIT_NAMES:
            view = getattr(self, name)
            destination[prefix + name] = view if keep_vars else view.detach()
        fused = {}
        super()._save_to_state_dict(fused, prefix, keep_vars)
        for name in ("W_QKV", "b_QKV"):
            del fused[prefix + name]
        destination.update(fused)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept the separate keys of every checkpoint (and of `state_dict()`): stack them."""
        for fused, names in (("W_QKV", SPLIT_NAMES[:3]), ("b_QKV", SPLIT_NAMES[3:])):
            keys = [prefix + name for name in names]
            if all(key in state_dict for key in keys):
                state_dict[prefix + fused] = torch.stack([state_dict.pop(key) for key in keys])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def gamma_q(self) -> torch.Tensor:
        """Per-head shear applied to queries, `[head]` (0 where queries are not sheared)."""
        return self.gamma if self.cfg.shear == "qk" else torch.zeros_like(self.gamma)

    def gamma_k(self) -> torch.Tensor:
        """Per-head shear applied to keys, `[head]`; a smeared key is the shear γ = α − 1."""
        if self.cfg.smeared_key:
            return smear_gamma(torch.sigmoid(self.smear_logit))
        return self.gamma if self.cfg.shear in ("qk", "k") else torch.zeros_like(self.gamma)

    def scale_q(self) -> torch.Tensor:
        """Per-head factor on the filtered queries, `[head]`: `1/rms_gain(γq)` for a
        gain-normalised shear, times the learned temperature; ones for the plain model."""
        scale = self._gain_scale(self.gamma_q())
        if self.cfg.learned_temperature:
            scale = scale * self.log_temperature.exp()
        return scale

    def scale_k(self) -> torch.Tensor:
        """Per-head factor on the filtered keys, `[head]`: `1/rms_gain(γk)` for a gain-normalised
        shear (the smeared key, a convex mix, is never normalised), else ones."""
        return self._gain_scale(self.gamma_k())

    def _gain_scale(self, gamma: torch.Tensor) -> torch.Tensor:
        if self.cfg.shear_norm and not self.cfg.smeared_key:
            return 1.0 / rms_gain(gamma)
        return torch.ones_like(gamma)

    def rescales(self) -> bool:
        """Whether q or k is multiplied by anything but one after the filter."""
        return self.cfg.learned_temperature or (self.cfg.shear_norm and self.cfg.shear != "none")

    def _shears(self, which: str) -> bool:
        """Whether the config filters this signal ("q" or "k") at all; when it does not, the
        velocity and the (identity) shear are computed only for a hook that asks for them."""
        if which == "q":
            return self.cfg.shear == "qk"
        return self.cfg.shear != "none" or self.cfg.smeared_key

    @property
    def uses_fast_path(self) -> bool:
        """True when no hook needs the materialised scores or pattern."""
        return not (self.hook_attn_scores.has_hooks() or self.hook_pattern.has_hooks())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x: [batch, pos, d_model]` (normalised residual) → attention output `[batch, pos, d_model]`."""
        weight = rearrange(self.W_QKV, "three h m d -> m (three h d)")
        qkv = F.linear(x, weight.T, self.b_QKV.flatten())  # one matmul for q, k and v
        qkv = rearrange(qkv, "b p (three h d) -> b p three h d", three=3, h=self.cfg.n_heads)
        # plain slices, not unbind: a hook may edit q, k or v in place, as in TransformerLens
        q, k, v = self.hook_q(qkv[:, :, 0]), self.hook_k(qkv[:, :, 1]), self.hook_v(qkv[:, :, 2])
        return self.attend(q, k, v)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Raw `q, k, v: [batch, pos, head, d_head]` → output `[batch, pos, d_model]`: rotary and
        shear, attention, `W_O`. The split-input path (`use_split_qkv_input`) enters here."""
        q = self._rotate_and_shear(
            q, self.gamma_q(), self.hook_q_velocity, self.hook_q_sheared, "q"
        )
        k = self._rotate_and_shear(
            k, self.gamma_k(), self.hook_k_velocity, self.hook_k_sheared, "k"
        )
        if self.rescales():  # after the filter hooks: hook_*_sheared sees x + γ p itself
            q = q * self.scale_q().to(q.dtype)[:, None]
            k = k * self.scale_k().to(k.dtype)[:, None]

        if self.uses_fast_path:
            z = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
            ).transpose(1, 2)
        else:
            z = self._attend_materialised(q, k, v)
        z = self.hook_z(z)

        if self.cfg.use_attn_result:
            result = self.hook_result(einsum(z, self.W_O, "b p h d, h d m -> b p h m"))
            return add_bias(result.sum(dim=2), self.b_O)
        return F.linear(z.flatten(2), self.W_O.flatten(0, 1).T, self.b_O)

    def _rotate_and_shear(
        self,
        x: torch.Tensor,
        gamma: torch.Tensor,
        hook_velocity: HookPoint,
        hook_sheared: HookPoint,
        which: str,
    ) -> torch.Tensor:
        """Rotate and shear one signal in the configured order, firing its hooks."""
        hook_rot = getattr(self, f"hook_rot_{which}", None)
        if self.rotary is not None and self.cfg.shear_placement == "post_rope":
            x = hook_rot(self.rotary(x))
        if hook_velocity.has_hooks() or hook_sheared.has_hooks():
            p = hook_velocity(velocity(x))
            x = hook_sheared(shear(x, p, gamma.to(x.dtype)))
        elif self._shears(which):  # nothing reads p: two ops instead of four
            x = fused_shear(x, gamma.to(x.dtype))
        if self.rotary is not None and self.cfg.shear_placement == "pre_rope":
            x = hook_rot(self.rotary(x))
        return x

    def _attend_materialised(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """The analysis path: explicit scores, causal mask, softmax, weighted sum of values."""
        n_pos = q.shape[1]
        scores = einsum(q, k, "b q h d, b k h d -> b h q k") / math.sqrt(self.cfg.d_head)
        causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=q.device).tril()
        scores = self.hook_attn_scores(scores.masked_fill(~causal, float("-inf")))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        return einsum(pattern, v, "b h q k, b k h d -> b q h d")
