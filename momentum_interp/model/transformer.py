"""HookedMomentumTransformer: a HookedRootModule with the HookedTransformer surface."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import einops
import torch
import torch.nn as nn
from tokenizers import Tokenizer
from transformer_lens import FactoredMatrix, HookedRootModule
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import composition_scores
from transformers import PreTrainedTokenizerBase

from momentum_interp.compat import hook_names
from momentum_interp.compat.cache import MomentumActivationCache
from momentum_interp.compat.tokenizer import as_hf_tokenizer
from momentum_interp.config import MomentumConfig, check_device
from momentum_interp.model import checkpoint, hf, processing
from momentum_interp.model import generate as generation
from momentum_interp.model.attention import MomentumAttention
from momentum_interp.model.components import MLP, Embed, PosEmbed, Unembed, make_norm
from momentum_interp.model.loss import (
    next_token_loss,
    per_token_loss,
    unembed_next_token_loss,
)
from momentum_interp.model.split_input import split_input_attention
from momentum_interp.model.tokens import TokenMethods
from momentum_interp.naming import head_label

if TYPE_CHECKING:
    from transformer_lens.model_bridge.composition_scores import CompositionScores

ReturnType = Literal["logits", "loss", "both"] | None


def _rotary_reason(cfg: MomentumConfig) -> str | None:
    if cfg.positional_embedding_type == "rotary":
        return (
            "this model encodes positions with RoPE (rotary embeddings applied to q and k), so it "
            "has no learned positional embedding matrix; its positions are in hook_rot_q/hook_rot_k."
        )
    return None


def _attn_only_reason(cfg: MomentumConfig) -> str | None:
    return "this model is attention-only and has no MLPs." if cfg.attn_only else None


# weights that some architectures lack -> why, for the model's config (None: it has them)
_ABSENT_WEIGHTS = {
    "W_pos": _rotary_reason,
    "W_E_pos": _rotary_reason,
    **{name: _attn_only_reason for name in ("W_in", "W_out", "b_in", "b_out")},
}


class TransformerBlock(nn.Module):
    """Pre-norm residual block: attention, then (unless attention-only) an MLP."""

    # TransformerLens's logit lens checks this: hook_resid_post is the one stream ln_final reads
    hook_out_is_single_residual_stream = True

    def __init__(self, cfg: MomentumConfig):
        super().__init__()
        self.cfg = cfg
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
            self.hook_mlp_in = HookPoint()  # fires with cfg.use_hook_mlp_in
            self.hook_mlp_out = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        if self.cfg.use_split_qkv_input or self.cfg.use_attn_in:
            attn_out = split_input_attention(self, resid)
        else:
            attn_out = self.attn(self.ln1(resid))
        resid = resid + self.hook_attn_out(attn_out)
        if not self.attn_only:
            resid = self.hook_resid_mid(resid)
            mlp_in = self.hook_mlp_in(resid.clone()) if self.cfg.use_hook_mlp_in else resid
            resid = resid + self.hook_mlp_out(self.mlp(self.ln2(mlp_in)))
        return self.hook_resid_post(resid)


class HookedMomentumTransformer(TokenMethods, HookedRootModule):
    """A decoder-only transformer whose attention can shear queries and keys along the sequence.

    Hook names, weight shapes and methods follow TransformerLens's HookedTransformer, so
    `ActivationCache`, `head_detector`, `patching` and `FactoredMatrix` work on it.
    """

    def __init__(
        self,
        cfg: MomentumConfig | dict,
        tokenizer: Tokenizer | PreTrainedTokenizerBase | None = None,
        move_to_device: bool = True,
    ):
        super().__init__()
        self.cfg = MomentumConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg
        cfg = self.cfg
        if tokenizer is not None:
            tokenizer = as_hf_tokenizer(tokenizer)
            if len(tokenizer) > cfg.d_vocab:
                raise ValueError(
                    f"The tokenizer has {len(tokenizer)} tokens but d_vocab={cfg.d_vocab}; "
                    "set d_vocab to at least the tokenizer's vocabulary size."
                )
        self.tokenizer = tokenizer
        # TransformerBridge's flag, which TransformerLens's tools read: enable_compatibility_mode
        self.compatibility_mode = False
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
        *,
        loss_per_token: bool = False,
        prepend_bos: bool | None = None,
        padding_side: str | None = None,
        start_at_layer: int | None = None,
        stop_at_layer: int | None = None,
        tokens: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None:
        """Run on tokens `[batch, pos]` (or text / id lists) and return logits, loss, both or None.

        As in HookedTransformer: `start_at_layer=l` takes `input` as the residual stream entering
        block l (pass `tokens=` for a loss); `stop_at_layer=l` returns the residual stream entering
        block l instead of logits; `loss_per_token` gives the loss as `[batch, pos − 1]`.
        """
        if return_type not in ("logits", "loss", "both", None):
            raise ValueError(
                f"return_type must be 'logits', 'loss', 'both' or None, got {return_type!r}."
            )
        if start_at_layer is None:
            tokens = self._tokens_on_device(input, prepend_bos, padding_side)
            resid = self.embed_tokens(tokens)
        else:
            resid = self._check_residual(input, start_at_layer)
        for block in self.blocks[start_at_layer:stop_at_layer]:
            resid = block(resid)
        if stop_at_layer is not None:
            return resid
        if return_type is None:
            return None
        resid = self.ln_final(resid)
        if return_type == "loss" and tokens is not None and not loss_per_token:
            # chunked: no float32 logits for the whole batch
            return unembed_next_token_loss(resid, self.W_U, self.b_U, tokens, loss_mask)
        logits = self.unembed(resid)  # [batch, pos, d_vocab]
        if return_type == "logits":
            return logits
        if tokens is None:
            raise ValueError(
                "A loss needs the tokens: with start_at_layer, pass tokens=[batch, pos] too."
            )
        loss = self.loss_fn(logits, tokens, loss_mask=loss_mask, per_token=loss_per_token)
        return loss if return_type == "loss" else (logits, loss)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token (+ learned position) embedding: the residual stream entering block 0."""
        resid = self.hook_embed(self.embed(tokens))
        if self.cfg.positional_embedding_type == "standard":
            resid = resid + self.hook_pos_embed(self.pos_embed(tokens))
        return resid

    def _check_residual(self, resid: torch.Tensor, start_at_layer: int) -> torch.Tensor:
        if not -self.cfg.n_layers <= start_at_layer < self.cfg.n_layers:
            raise ValueError(
                f"start_at_layer={start_at_layer} is out of range for {self.cfg.n_layers} layers."
            )
        if (
            not isinstance(resid, torch.Tensor)
            or resid.ndim != 3
            or resid.shape[-1] != (self.cfg.d_model)
        ):
            raise ValueError(
                "With start_at_layer, input is the residual stream [batch, pos, d_model="
                f"{self.cfg.d_model}] entering that block (e.g. from input_to_embed or "
                "stop_at_layer), not tokens."
            )
        return resid

    def loss_fn(
        self,
        logits: torch.Tensor,
        tokens: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        per_token: bool = False,
        loss_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token cross-entropy, as HookedTransformer.loss_fn: a scalar, or `[batch, pos − 1]`
        with `per_token`. `attention_mask` (TransformerLens) drops pad positions, as `loss_mask` does."""
        if attention_mask is not None:
            mask = attention_mask.bool() & attention_mask.roll(-1, dims=1).bool()
            loss_mask = mask if loss_mask is None else loss_mask & mask
        if per_token:
            losses = per_token_loss(logits, tokens)
            return losses if loss_mask is None else losses * loss_mask[:, :-1]
        return next_token_loss(logits, tokens, loss_mask)

    def input_to_embed(
        self, input: torch.Tensor | str | Sequence, prepend_bos: bool | None = None, **_
    ) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        """`(residual entering block 0, tokens, None, None)`, as HookedTransformer.input_to_embed;
        feed the residual to `forward(..., start_at_layer=0)`."""
        tokens = self._tokens_on_device(input, prepend_bos)
        return self.embed_tokens(tokens), tokens, None, None

    def run_with_cache(
        self, *model_args, return_cache_object: bool = True, **kwargs
    ) -> tuple[torch.Tensor, MomentumActivationCache | dict[str, torch.Tensor]]:
        """Like HookedTransformer.run_with_cache: output plus an `ActivationCache` (ours resolves
        the momentum hooks in the shorthand: `cache["q_velocity", 0]`), or a plain dict."""
        remove_batch_dim = kwargs.get("remove_batch_dim", False)
        out, cache_dict = super().run_with_cache(*model_args, **kwargs)
        if not return_cache_object:
            return out, cache_dict
        return out, MomentumActivationCache(cache_dict, self, has_batch_dim=not remove_batch_dim)

    def setup(self) -> None:
        """HookedRootModule's setup, plus `hook_aliases`: TransformerBridge's names for our hooks."""
        super().setup()
        self.hook_aliases = hook_names.aliases(self.hook_dict, self.cfg.n_layers)

    def _resolve_hook_name(self, name: str) -> str:
        """Our name for a hook named ours, TransformerLens's way (`blocks.{l}.hook_q_velocity`,
        as `get_act_name` builds it) or TransformerBridge's way (`blocks.{l}.hook_in`), or an
        error that says why it does not exist (e.g. an MLP hook on an attention-only model)."""
        resolved = hook_names.resolve(name, self.cfg.n_layers)
        if resolved not in self.mod_dict:
            raise hook_names.missing_hook_error(resolved, self.cfg)
        return resolved

    def _with_aliases(self, names_filter: Callable[[str], bool]) -> Callable[[str], bool]:
        """A filter on our hook names that also accepts a hook when it accepts one of the hook's
        bridge aliases (the bridge's `hook_dict` lists both, so its filters see both)."""
        aliases_of: dict[str, list[str]] = {}
        for alias, target in self.hook_aliases.items():
            aliases_of.setdefault(target, []).append(alias)
        return lambda name: names_filter(name) or any(map(names_filter, aliases_of.get(name, ())))

    def _enable_hook_with_name(self, name: str, hook, dir) -> None:
        super()._enable_hook_with_name(self._resolve_hook_name(name), hook, dir)

    def _enable_hooks_for_points(self, hook_points, enabled, hook, dir) -> None:
        super()._enable_hooks_for_points(hook_points, self._with_aliases(enabled), hook, dir)

    def add_hook(self, name, hook, dir="fwd", is_permanent=False, level=None, prepend=False):
        """HookedRootModule.add_hook, with the names `_resolve_hook_name` accepts."""
        name = self._resolve_hook_name(name) if isinstance(name, str) else self._with_aliases(name)
        super().add_hook(name, hook, dir, is_permanent, level, prepend)

    def get_caching_hooks(self, names_filter=None, *args, **kwargs):
        """HookedRootModule.get_caching_hooks; a names filter may use the bridge's names too (the
        cache keeps ours, and the cache's lookup takes either)."""
        if isinstance(names_filter, str):
            names_filter = [names_filter]
        if isinstance(names_filter, list):
            wanted = {hook_names.resolve(name, self.cfg.n_layers) for name in names_filter}
            names_filter = wanted.__contains__
        elif callable(names_filter):
            names_filter = self._with_aliases(names_filter)
        return super().get_caching_hooks(names_filter, *args, **kwargs)

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
        """`[n_ctx, d_model]` (learned positional embeddings only)."""
        return self.pos_embed.W_pos

    @property
    def W_E_pos(self) -> torch.Tensor:
        """`[W_E; W_pos]`, `[d_vocab + n_ctx, d_model]`: the input space's full basis."""
        return torch.cat([self.W_E, self.W_pos], dim=0)

    def __getattr__(self, name: str):
        """nn.Module's lookup, except that a weight this architecture does not have (`W_pos` with
        RoPE, `W_in` without MLPs) raises an AttributeError saying why: the one a property
        raises would be replaced by nn.Module's bare "has no attribute"."""
        if name in _ABSENT_WEIGHTS:
            reason = _ABSENT_WEIGHTS[name](self.__dict__["cfg"])
            if reason is not None:
                raise AttributeError(f"{name}: {reason}")
        return super().__getattr__(name)

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

    def all_composition_scores(self, mode: str) -> CompositionScores:
        """Q-, K- or V-composition score of every head pair, `[layer, head, layer, head]` (zero
        unless the first head's layer is earlier), as TransformerLens computes them from the
        weights. Momentum acts after the projections, so these are the unsheared circuits."""
        left = self.OV
        if mode == "Q":
            right = self.QK
        elif mode == "K":
            right = self.QK.T
        elif mode == "V":
            right = self.OV
        else:
            raise ValueError(f"mode must be one of ['Q', 'K', 'V'], not {mode!r}.")
        scores = composition_scores(left, right, broadcast_dims=True)
        layer = torch.arange(self.cfg.n_layers, device=scores.device)
        mask = layer[:, None, None, None] < layer[None, None, :, None]
        scores = torch.where(mask, scores, torch.zeros_like(scores))
        labels = [
            head_label(i, h) for i in range(self.cfg.n_layers) for h in range(self.cfg.n_heads)
        ]
        # imported here: transformer_lens.model_bridge costs ~2 s to import, and only this uses it
        from transformer_lens.model_bridge.composition_scores import CompositionScores

        return CompositionScores(scores, list(range(self.cfg.n_layers)), labels)

    # ------------------------------------------------------ attribution helpers

    def tokens_to_residual_directions(self, tokens: str | int | torch.Tensor) -> torch.Tensor:
        """The residual direction whose dot product with the *normalised-before-gain* stream
        (`cache.apply_ln_to_stack`'s output) gives each token's logit, `[*tokens.shape, d_model]`.

        That is `ln_final.w ⊙ W_U[:, token]`: with an unfolded final LayerNorm, plain `W_U`
        columns would silently give wrong attributions. After `process_weights()` the gain is 1
        and this is `W_U[:, token]`, as in TransformerLens. The rest of each logit is the constant
        `unembed_bias_terms(tokens)`, which no component writes.
        """
        ids = self._token_ids(tokens)
        return einops.rearrange(self._folded_W_U()[:, ids], "d_model ... -> ... d_model")

    def unembed_bias_terms(self, tokens: str | int | torch.Tensor) -> torch.Tensor:
        """`b_U[token] + ln_final.b · W_U[:, token]`: the part of a logit that DLA leaves out.

        `logit[t] = Σ_components logit_attrs + unembed_bias_terms(t)` holds exactly.
        """
        ids = self._token_ids(tokens)
        bias = self.b_U
        ln_b = getattr(self.ln_final, "b", None)
        if ln_b is not None:
            bias = bias + ln_b @ self.W_U
        return bias[ids]

    def _folded_W_U(self) -> torch.Tensor:
        w = getattr(self.ln_final, "w", None)
        return self.W_U if w is None else w[:, None] * self.W_U

    def _token_ids(self, tokens: str | int | torch.Tensor) -> torch.Tensor | int:
        if isinstance(tokens, str):
            return self.to_single_token(tokens)
        if isinstance(tokens, torch.Tensor):
            return tokens.to(self.W_U.device).long()
        if isinstance(tokens, int):
            return tokens
        raise ValueError(f"Expected a token string, id or id tensor, got {type(tokens).__name__}.")

    def accumulated_bias(
        self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True
    ) -> torch.Tensor:
        """Sum of the attention (`b_O`) and MLP (`b_out`) output biases written before `layer`'s
        attention (or its MLP, with `mlp_input`), `[d_model]`, as in TransformerLens."""
        total = torch.zeros(self.cfg.d_model, dtype=self.cfg.dtype, device=self.W_E.device)
        for block in self.blocks[:layer]:
            total = total + block.attn.b_O
            if include_mlp_biases and not self.cfg.attn_only:
                total = total + block.mlp.b_out
        if mlp_input:
            if layer >= self.cfg.n_layers:
                raise ValueError("mlp_input: there is no MLP after the final layer.")
            total = total + self.blocks[layer].attn.b_O
        return total

    def generate(self, input: str | Sequence | torch.Tensor = "", **kwargs):
        """Sample a continuation with a KV cache that carries the previous raw q and k for the
        shear; same arguments and meaning as HookedTransformer.generate (see `model.generate`)."""
        return generation.generate(self, input, **kwargs)

    # ------------------------------------------------------- weight processing

    def process_weights(
        self,
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        fold_value_biases: bool = True,
        refactor_factored_attn_matrices: bool = False,
    ) -> HookedMomentumTransformer:
        """TransformerLens's weight processing, exact with momentum (see `model.processing`);
        a step that would not be exact for this model (centring with RMSNorm, the QK refactor
        with RoPE) is refused."""
        processing.process_weights(
            self,
            fold_ln=fold_ln,
            center_writing_weights=center_writing_weights,
            center_unembed=center_unembed,
            fold_value_biases=fold_value_biases,
            refactor_factored_attn_matrices=refactor_factored_attn_matrices,
        )
        return self

    def enable_compatibility_mode(
        self,
        disable_warnings: bool = False,
        no_processing: bool = False,
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        fold_value_biases: bool = True,
        refactor_factored_attn_matrices: bool = False,
    ) -> None:
        """TransformerBridge.enable_compatibility_mode, which every TransformerLens 4 tutorial calls
        after loading: TransformerLens's weight processing (`process_weights`, exact with
        momentum). As TransformerLens does, centring is skipped (not refused) when the residual
        stream's readers are not LayerNorms; `refactor_factored_attn_matrices` is refused with
        RoPE, where it would not be exact. Our hooks already have HookedTransformer's names and
        shapes, so nothing else changes (`disable_warnings`: there are no legacy-name warnings)."""
        if not no_processing:
            processing.process_weights(
                self,
                **processing.compatibility_steps(
                    self.cfg,
                    fold_ln=fold_ln,
                    center_writing_weights=center_writing_weights,
                    center_unembed=center_unembed,
                    fold_value_biases=fold_value_biases,
                    refactor_factored_attn_matrices=refactor_factored_attn_matrices,
                ),
            )
        self.compatibility_mode = True

    def tl_parameters(self) -> dict[str, torch.Tensor]:
        """Parameters under TransformerLens's names (`blocks.0.attn.W_Q`, ...), as
        TransformerBridge.tl_parameters gives them (what SVDInterpreter reads): the state dict
        without buffers, so W_Q, W_K, W_V are views of the fused W_QKV that edit the model."""
        buffers = {name for name, _ in self.named_buffers()}
        state = self.state_dict(keep_vars=True)
        return {name: value for name, value in state.items() if name not in buffers}

    def tl_named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """`tl_parameters()` as `(name, tensor)` pairs, as TransformerBridge.tl_named_parameters."""
        return iter(self.tl_parameters().items())

    def fold_layer_norm(self) -> None:
        """Fold every norm's gain and offset into the weights that read it."""
        processing.fold_layer_norm(self)

    def center_writing_weights(self) -> None:
        """Centre every residual-stream write over d_model (LayerNorm models only)."""
        processing.center_writing_weights(self)

    def center_unembed(self) -> None:
        """Centre `W_U` and `b_U` over the vocabulary (logits move by one constant per position)."""
        processing.center_unembed(self)

    def fold_value_biases(self) -> None:
        """Move `b_V` into `b_O`."""
        processing.fold_value_biases(self)

    # --------------------------------------------------- analysis-path hooks

    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """Fire `blocks.{l}.attn.hook_result` (each head's write, `[batch, pos, head, d_model]`)."""
        self.cfg.use_attn_result = bool(use_attn_result)

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """Give each head its own copy of the residual input for q, k and v, hooked before `ln1`
        at `blocks.{l}.attn.hook_{q,k,v}_input` (path patching). Analysis path only."""
        if use_split_qkv_input and self.cfg.use_attn_in:
            raise ValueError("use_split_qkv_input and use_attn_in exclude each other; unset one.")
        self.cfg.use_split_qkv_input = bool(use_split_qkv_input)

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """One per-head copy of the residual input, `blocks.{l}.attn.hook_attn_in`, for q, k and v."""
        if use_attn_in and self.cfg.use_split_qkv_input:
            raise ValueError("use_attn_in and use_split_qkv_input exclude each other; unset one.")
        self.cfg.use_attn_in = bool(use_attn_in)

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """Fire `blocks.{l}.hook_mlp_in`, the MLP's own copy of `resid_mid`."""
        if use_hook_mlp_in and self.cfg.attn_only:
            raise ValueError(
                "This model is attention-only: it has no MLPs, so no hook_mlp_in (or hook_mlp_out). "
                "Patch hook_attn_out or hook_resid_post instead."
            )
        self.cfg.use_hook_mlp_in = bool(use_hook_mlp_in)

    # ------------------------------------------------------------ devices & I/O

    def to(self, *args, **kwargs):
        """`nn.Module.to`, also recording the device and dtype in `cfg` as TransformerLens does
        (only once the move has succeeded)."""
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        model = super().to(*args, **kwargs)
        if device is not None:
            self.cfg.device = str(device)
        if dtype is not None:
            self.cfg.dtype = dtype
        return model

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
        tokenizer = None if self.tokenizer is None else self.tokenizer.backend_tokenizer
        return checkpoint.write_checkpoint(directory, self.cfg, self.state_dict(), tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        fold_ln: bool = False,
        center_writing_weights: bool = False,
        center_unembed: bool = False,
        fold_value_biases: bool = False,
    ) -> HookedMomentumTransformer:
        """Load a checkpoint directory, or a bundled checkpoint by name (see `bundled_names()`).

        Loading is unprocessed by default (activations keep their trained values); the flags
        apply TransformerLens's weight processing (`process_weights`) after loading.
        """
        directory = checkpoint.resolve(name_or_path)
        cfg, tensors, tokenizer = checkpoint.read_checkpoint(directory)
        if device is not None:
            cfg.device = str(check_device(device))
        model = cls(cfg, tokenizer=tokenizer, move_to_device=False)
        checkpoint.load_weights(model, tensors, directory)
        model.process_weights(fold_ln, center_writing_weights, center_unembed, fold_value_biases)
        return model.to(cfg.device).eval()

    @classmethod
    def from_hf(
        cls, model_or_dir, tokenizer=None, device: str | None = None, **momentum_options
    ) -> HookedMomentumTransformer:
        """Import a GPT-2-family `transformers` model (object or local directory; never downloads).

        Momentum is off unless `momentum_options` turn it on (e.g. `shear="qk", gamma=0.5`), so a
        plain import reproduces the model's logits; see `model.hf`.
        """
        return hf.from_hf(cls, model_or_dir, tokenizer=tokenizer, device=device, **momentum_options)
