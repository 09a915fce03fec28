"""HookedMomentumTransformer: a HookedRootModule with the HookedTransformer surface."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from tokenizers import Tokenizer
from transformer_lens import ActivationCache, FactoredMatrix, HookedRootModule
from transformer_lens.hook_points import HookPoint

from momentum_interp.config import MomentumConfig
from momentum_interp.evaluation.loss import next_token_loss, unembed_next_token_loss
from momentum_interp.model import checkpoint, inputs
from momentum_interp.model.attention import MomentumAttention
from momentum_interp.model.components import MLP, Embed, PosEmbed, Unembed, make_norm

ReturnType = Literal["logits", "loss", "both"] | None


class TransformerBlock(nn.Module):
    """Pre-norm residual block: attention, then (unless attention-only) an MLP."""

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.ln1 = make_norm(cfg)
        self.attn = MomentumAttention(cfg)
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()
        self.hook_resid_post = HookPoint()
        self.attn_only = cfg.attn_only
        if not cfg.attn_only:
            self.ln2 = make_norm(cfg)
            self.mlp = MLP(cfg)
            self.hook_resid_mid = HookPoint()
            self.hook_mlp_out = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid = resid + self.hook_attn_out(self.attn(self.ln1(resid)))
        if not self.attn_only:
            resid = self.hook_resid_mid(resid)
            resid = resid + self.hook_mlp_out(self.mlp(self.ln2(resid)))
        return self.hook_resid_post(resid)


class HookedMomentumTransformer(HookedRootModule):
    """A decoder-only transformer whose attention can shear queries and keys along the sequence.

    Hook names, weight shapes and methods follow TransformerLens's HookedTransformer, so
    `ActivationCache`, `head_detector`, `patching` and `FactoredMatrix` work on it.
    """

    def __init__(
        self,
        cfg: MomentumConfig | dict,
        tokenizer: Tokenizer | None = None,
        move_to_device: bool = True,
    ):
        super().__init__()
        self.cfg = MomentumConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg
        cfg = self.cfg
        if tokenizer is not None and tokenizer.get_vocab_size() > cfg.d_vocab:
            raise ValueError(
                f"The tokenizer has {tokenizer.get_vocab_size()} tokens but d_vocab={cfg.d_vocab}; "
                "set d_vocab to at least the tokenizer's vocabulary size."
            )
        self.tokenizer = tokenizer
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        if cfg.positional_embedding_type == "standard":
            self.pos_embed = PosEmbed(cfg)
            self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = make_norm(cfg)
        self.unembed = Unembed(cfg)
        self.init_weights()
        if move_to_device:
            self.to(cfg.device)
        self.setup()

    def init_weights(self) -> None:
        """GPT-2 style: weight matrices ~ N(0, init_range²), biases and norm offsets zero."""
        generator = (
            torch.Generator().manual_seed(self.cfg.seed) if self.cfg.seed is not None else None
        )
        # in state-dict order (W_Q, W_K, W_V: views of the fused W_QKV), so a seed draws the same weights
        for name, param in self.state_dict(keep_vars=True).items():
            if name.split(".")[-1].startswith("W_"):
                with torch.no_grad():
                    param.copy_(torch.randn(param.shape, generator=generator) * self.cfg.init_range)

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input: torch.Tensor | str | Sequence,
        return_type: ReturnType = "logits",
        loss_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None:
        """Run on tokens `[batch, pos]` (or text / id lists) and return logits, loss, both or None."""
        if return_type not in ("logits", "loss", "both", None):
            raise ValueError(
                f"return_type must be 'logits', 'loss', 'both' or None, got {return_type!r}."
            )
        tokens = self._tokens_on_device(input)
        resid = self.hook_embed(self.embed(tokens))
        if self.cfg.positional_embedding_type == "standard":
            resid = resid + self.hook_pos_embed(self.pos_embed(tokens))
        for block in self.blocks:
            resid = block(resid)
        if return_type is None:
            return None
        resid = self.ln_final(resid)
        if return_type == "loss":  # chunked: no float32 logits for the whole batch
            return unembed_next_token_loss(
                resid, self.unembed.W_U, self.unembed.b_U, tokens, loss_mask
            )
        logits = self.unembed(resid)  # [batch, pos, d_vocab]
        if return_type == "logits":
            return logits
        loss = next_token_loss(logits, tokens, loss_mask)
        return loss if return_type == "loss" else (logits, loss)

    def run_with_cache(self, *model_args, **kwargs) -> tuple[torch.Tensor, ActivationCache]:
        """Like HookedTransformer.run_with_cache: output plus a TransformerLens `ActivationCache`."""
        remove_batch_dim = kwargs.get("remove_batch_dim", False)
        out, cache_dict = super().run_with_cache(*model_args, **kwargs)
        return out, ActivationCache(cache_dict, self, has_batch_dim=not remove_batch_dim)

    # --------------------------------------------------------------- tokens

    def to_tokens(
        self, input: str | Sequence | torch.Tensor, prepend_bos: bool | None = None
    ) -> torch.Tensor:
        """Text, space-separated ids, id lists or a tensor → validated `[batch, pos]` on the model's device."""
        if isinstance(input, torch.Tensor):
            tokens = input
        else:
            bos = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
            tokens = torch.tensor(inputs.encode(input, self.tokenizer, bos), dtype=torch.long)
        return inputs.check_tokens(tokens, self.cfg.d_vocab, self.cfg.n_ctx).to(self.cfg.device)

    def to_string(self, tokens: torch.Tensor | Sequence[int]) -> str | list[str]:
        """Token ids back to text; a `[batch, pos]` tensor gives one string per sequence."""
        tokens = torch.as_tensor(tokens)
        if tokens.ndim == 2:
            return [inputs.decode(row.tolist(), self.tokenizer) for row in tokens]
        return inputs.decode(tokens.tolist(), self.tokenizer)

    def to_str_tokens(self, input: str | Sequence | torch.Tensor) -> list[str]:
        """One string per token of a single sequence (for attention-pattern labels)."""
        tokens = self.to_tokens(input)
        if tokens.shape[0] != 1:
            raise ValueError("to_str_tokens takes a single sequence; index the batch first.")
        return inputs.str_tokens(tokens[0].tolist(), self.tokenizer)

    def _tokens_on_device(self, input: torch.Tensor | str | Sequence) -> torch.Tensor:
        if isinstance(input, torch.Tensor):
            tokens = inputs.check_tokens(input, self.cfg.d_vocab, self.cfg.n_ctx)
            return tokens.to(self.W_E.device)
        return self.to_tokens(input)

    # ------------------------------------------------------------- momentum

    @property
    def gamma_q(self) -> torch.Tensor:
        """Effective per-head query shear, `[layer, head]`."""
        return torch.stack([block.attn.gamma_q() for block in self.blocks]).detach()

    @property
    def gamma_k(self) -> torch.Tensor:
        """Effective per-head key shear, `[layer, head]` (γ = α − 1 for smeared keys)."""
        return torch.stack([block.attn.gamma_k() for block in self.blocks]).detach()

    @torch.no_grad()
    def set_gamma(self, value: float, layer: int | None = None, head: int | None = None) -> None:
        """Set the shear γ of one head, one layer, or every head (e.g. 0 to ablate momentum)."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"gamma must be finite, got {value}.")
        if self.cfg.shear == "none":
            raise ValueError(
                "This model does not shear (shear='none'), so set_gamma has no effect; for a "
                "smeared-key model ablate with a hook that zeroes blocks.{l}.attn.hook_k_velocity."
            )
        layers = range(self.cfg.n_layers) if layer is None else [layer]
        for index in layers:
            gamma = self.blocks[index].attn.gamma
            gamma[slice(None) if head is None else head] = value

    # -------------------------------------------------------- stacked weights

    def _stack(self, name: str) -> torch.Tensor:
        return torch.stack([getattr(block.attn, name) for block in self.blocks])

    def _stack_mlp(self, name: str) -> torch.Tensor:
        if self.cfg.attn_only:
            raise AttributeError(f"{name}: this model is attention-only and has no MLPs.")
        return torch.stack([getattr(block.mlp, name) for block in self.blocks])

    W_Q = property(lambda self: self._stack("W_Q"), doc="`[layer, head, d_model, d_head]`")
    W_K = property(lambda self: self._stack("W_K"), doc="`[layer, head, d_model, d_head]`")
    W_V = property(lambda self: self._stack("W_V"), doc="`[layer, head, d_model, d_head]`")
    W_O = property(lambda self: self._stack("W_O"), doc="`[layer, head, d_head, d_model]`")
    b_Q = property(lambda self: self._stack("b_Q"), doc="`[layer, head, d_head]`")
    b_K = property(lambda self: self._stack("b_K"), doc="`[layer, head, d_head]`")
    b_V = property(lambda self: self._stack("b_V"), doc="`[layer, head, d_head]`")
    b_O = property(lambda self: self._stack("b_O"), doc="`[layer, d_model]`")
    W_in = property(lambda self: self._stack_mlp("W_in"), doc="`[layer, d_model, d_mlp]`")
    W_out = property(lambda self: self._stack_mlp("W_out"), doc="`[layer, d_mlp, d_model]`")
    b_in = property(lambda self: self._stack_mlp("b_in"), doc="`[layer, d_mlp]`")
    b_out = property(lambda self: self._stack_mlp("b_out"), doc="`[layer, d_model]`")

    @property
    def W_E(self) -> torch.Tensor:
        """`[d_vocab, d_model]`"""
        return self.embed.W_E

    @property
    def W_pos(self) -> torch.Tensor:
        """`[n_ctx, d_model]` (standard positional embeddings only)."""
        if self.cfg.positional_embedding_type != "standard":
            raise AttributeError("W_pos: this model uses rotary positions, not a learned W_pos.")
        return self.pos_embed.W_pos

    @property
    def W_U(self) -> torch.Tensor:
        """`[d_model, d_vocab]`"""
        return self.unembed.W_U

    @property
    def b_U(self) -> torch.Tensor:
        """`[d_vocab]`"""
        return self.unembed.b_U

    @property
    def QK(self) -> FactoredMatrix:
        """`W_Q W_Kᵀ` per head, `[layer, head, d_model, d_model]` (before rotary and shear)."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    @property
    def OV(self) -> FactoredMatrix:
        """`W_V W_O` per head, `[layer, head, d_model, d_model]`."""
        return FactoredMatrix(self.W_V, self.W_O)

    # ------------------------------------------------------------ devices & I/O

    def to(self, *args, **kwargs):
        """`nn.Module.to`, also recording the device in `cfg.device` as TransformerLens does."""
        device, _, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None:
            self.cfg.device = str(device)
        return super().to(*args, **kwargs)

    def cuda(self, device: int | str | torch.device | None = None):
        """`nn.Module.cuda` through `to`, so `cfg.device` follows (as in TransformerLens)."""
        if device is None:
            return self.to("cuda")
        if isinstance(device, int):
            return self.to(f"cuda:{device}")
        return self.to(device)

    def cpu(self):
        """`nn.Module.cpu` through `to`, so `cfg.device` follows (as in TransformerLens)."""
        return self.to("cpu")

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `model.safetensors`, `config.json` (+ `tokenizer.json`) atomically to `directory`.

        The checkpoint as a whole is replaced atomically: a crash at any moment leaves a
        `directory` that loads as the previous checkpoint or as this one. Other files in
        `directory` (a run's metrics, card, ...) are left alone; see `checkpoint.write_checkpoint`.
        """
        return checkpoint.write_checkpoint(directory, self.cfg, self.state_dict(), self.tokenizer)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, device: str | torch.device | None = None
    ) -> HookedMomentumTransformer:
        """Load a checkpoint directory, or a bundled checkpoint by name (see `bundled_names()`)."""
        directory = checkpoint.resolve(name_or_path)
        cfg, tensors, tokenizer = checkpoint.read_checkpoint(directory)
        if device is not None:
            cfg.device = str(device)
        model = cls(cfg, tokenizer=tokenizer, move_to_device=False)
        checkpoint.load_weights(model, tensors, directory)
        return model.to(cfg.device).eval()
