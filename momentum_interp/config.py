"""MomentumConfig: a TransformerLens config with the momentum-attention options, validated on construction."""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens.config import TransformerLensConfig

from momentum_interp.naming import unknown_names

SHEAR_MODES = ("qk", "k", "none")
PLACEMENTS = ("post_rope", "pre_rope")
POSITIONAL_EMBEDDINGS = ("standard", "rotary")
NORMALIZATIONS = ("LN", "RMS", None)
ACTIVATIONS = ("gelu", "gelu_new", "relu")
UNSUPPORTED_DEFAULTS = {
    "gated_mlp": False,
    "n_key_value_heads": None,
    "num_experts": None,
    "experts_per_token": None,
    "final_rms": False,
    "layer_norm_folding": False,
}
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


@dataclass
class MomentumConfig(TransformerLensConfig):
    """Architecture of a `HookedMomentumTransformer`.

    Momentum options (arXiv 2602.04902):
        gamma: shear strength γ in `x̂_t = x_t + γ (x_t − x_{t−1})`; the initial value when learnable.
        shear: which signals are sheared: "qk" (the paper), "k" (keys only) or "none".
        shear_placement: "post_rope" (the paper) shears the rotated q/k, "pre_rope" the raw ones.
        gamma_learnable: one trained γ per head (shared by that head's q and k).
        shear_norm: gain-normalised shear: divide each sheared signal by the filter's RMS gain
            `√(1 + 2γ + 2γ²)` (`model.shear.rms_gain`), so the score scale at initialisation does
            not grow with γ (the raw shear multiplies the logits by up to `(1+2γ)²`).
        learned_temperature: one trained logit scale per head, `exp(log_temperature)` multiplying
            the queries (init 1): a control that separates "shear" from "logit scale".
        smeared_key: Olsson et al.'s control, `k̃_t = α k_t + (1−α) k_{t−1}` with a learned
            per-head α = sigmoid(logit); it is the same two-tap filter with γ = α − 1 on keys only,
            so it needs `shear="none"`.
    """

    d_vocab: int = 64
    gamma: float = 1.0
    shear: str = "qk"
    shear_placement: str = "post_rope"
    gamma_learnable: bool = False
    shear_norm: bool = False
    learned_temperature: bool = False
    smeared_key: bool = False
    smear_init: float = 0.5
    act_fn: str = "gelu"
    rotary_base: float = 10000.0
    rotary_dim: int | None = None
    init_range: float | None = -1.0
    seed: int | None = None
    model_name: str = "custom"
    use_hook_mlp_in: bool = False
    use_attn_in: bool = False

    def __post_init__(self) -> None:
        if self.n_heads == -1 and self.d_model % self.d_head != 0:
            raise ValueError(
                f"d_model={self.d_model} is not a multiple of d_head={self.d_head}, so n_heads "
                "cannot be derived; pass n_heads explicitly or make d_model = n_heads * d_head."
            )
        super().__post_init__()
        self._validate()
        self.uses_rms_norm = self.normalization_type == "RMS"
        if self.rotary_dim is None:
            self.rotary_dim = self.d_head
        if self.init_range is None or self.init_range < 0:  # TransformerLens: negative = derive
            self.init_range = 0.8 / math.sqrt(self.d_model)

    def _validate(self) -> None:
        for name in ("d_model", "d_head", "n_layers", "n_ctx", "n_heads", "d_vocab"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not self.attn_only and (not isinstance(self.d_mlp, int) or self.d_mlp <= 0):
            raise ValueError(f"d_mlp must be a positive integer, got {self.d_mlp!r}.")
        for name, default in UNSUPPORTED_DEFAULTS.items():
            if getattr(self, name) != default:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is a TransformerLens option this model does "
                    f"not implement; leave it at {default!r}."
                )
        _check_choice("shear", self.shear, SHEAR_MODES)
        _check_choice("shear_placement", self.shear_placement, PLACEMENTS)
        _check_choice(
            "positional_embedding_type", self.positional_embedding_type, POSITIONAL_EMBEDDINGS
        )
        _check_choice("normalization_type", self.normalization_type, NORMALIZATIONS)
        _check_choice("act_fn", self.act_fn, ACTIVATIONS)
        if isinstance(self.dtype, str):
            _check_choice("dtype", self.dtype, tuple(DTYPES))
            self.dtype = DTYPES[self.dtype]
        elif self.dtype not in DTYPES.values():
            raise ValueError(
                f"dtype={self.dtype!r} is not supported; choose one of {list(DTYPES)} (as the "
                "string or the matching torch.dtype)."
            )
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, int | float):
            raise ValueError(f"gamma must be a real number, got {self.gamma!r}.")
        if not math.isfinite(self.gamma):
            raise ValueError(f"gamma must be finite, got {self.gamma}; use e.g. gamma=1.0.")
        if self.init_range is not None and (
            not _is_real(self.init_range)
            or not math.isfinite(self.init_range)
            or self.init_range == 0
        ):
            raise ValueError(
                f"init_range must be a finite positive standard deviation, got "
                f"{self.init_range!r}; pass e.g. init_range=0.02, or leave it unset (-1 or None) "
                "for the default 0.8/sqrt(d_model)."
            )
        if not _is_real(self.eps) or not math.isfinite(self.eps) or self.eps <= 0:
            raise ValueError(
                f"eps must be a finite positive number, got {self.eps!r}; use e.g. eps=1e-5 "
                "(the default)."
            )
        if self.smeared_key and self.shear != "none":
            raise ValueError(
                "smeared_key=True is its own key filter; set shear='none' to use it "
                f"(got shear={self.shear!r})."
            )
        if self.shear_norm and self.shear == "none":
            raise ValueError(
                "shear_norm=True normalises a shear's gain, but shear='none'; set shear='qk' or "
                "'k', or leave shear_norm off."
            )
        if not 0.0 < self.smear_init < 1.0:
            raise ValueError(
                f"smear_init is the initial α and must lie in (0, 1), got {self.smear_init}."
            )
        if self.positional_embedding_type == "rotary":
            rotary_dim = self.d_head if self.rotary_dim is None else self.rotary_dim
            if rotary_dim % 2 or not 0 < rotary_dim <= self.d_head:
                raise ValueError(
                    f"rotary_dim must be even and in (0, d_head={self.d_head}], got {rotary_dim}."
                )

    @property
    def n_params(self) -> int:
        """Hidden weight count as TransformerLens counts it: attention and MLP matrices, no
        embeddings, biases or norms."""
        per_layer = 4 * self.d_model * self.d_head * self.n_heads
        if not self.attn_only:
            per_layer += 2 * self.d_model * self.d_mlp
        return self.n_layers * per_layer

    @property
    def momentum_enabled(self) -> bool:
        """Whether any head filters its queries or keys along the sequence."""
        return self.shear != "none" or self.smeared_key

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]) -> MomentumConfig:
        """Build from a dict (e.g. `config.json`); unknown option names raise ValueError."""
        return cls(**config_dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict that `from_dict` turns back into an equal config."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["dtype"] = next(k for k, v in DTYPES.items() if v == self.dtype)
        out.pop("device")
        return out


def _fixed(value: Any) -> property:
    return property(lambda self: value, doc=f"Always {value!r} here (TransformerLens reads it).")


# TransformerBridgeConfig's HookedTransformer-compatibility fields that TransformerLens code and
# tutorials read (`cfg.checkpoint_value`, `cfg.n_devices`, ...), with their values for this
# architecture. Read-only attributes rather than options, so config.json is unchanged.
_TL_FIELDS = {
    "checkpoint_index": _fixed(None),  # not one of a series of training checkpoints
    "checkpoint_value": _fixed(None),
    "checkpoint_label_type": _fixed(None),
    "from_checkpoint": _fixed(False),
    "tokenizer_name": _fixed(None),  # the tokenizer travels with the checkpoint, not by name
    "tokenizer_prepends_bos": _fixed(False),  # to_tokens adds BOS itself (default_prepend_bos)
    "tokenizer_appends_eos": _fixed(False),
    "original_architecture": _fixed("HookedMomentumTransformer"),
    "attention_dir": _fixed("causal"),
    "use_attn_scale": _fixed(True),
    "attn_scale": property(lambda self: math.sqrt(self.d_head), doc="Scores are q·k / √d_head."),
    "d_vocab_out": property(lambda self: self.d_vocab, doc="Logits over the input vocabulary."),
    "initializer_range": property(lambda self: self.init_range, doc="`init_range`."),
    "init_mode": _fixed("gpt2"),
    "n_devices": _fixed(1),
    "parallel_attn_mlp": _fixed(False),
    "post_embedding_ln": _fixed(False),
    "use_local_attn": _fixed(False),
    "window_size": _fixed(None),
    "attn_types": _fixed(None),
    "use_qk_norm": _fixed(False),
    "scale_attn_by_inverse_layer_idx": _fixed(False),
    "rotary_adjacent_pairs": _fixed(False),  # GPT-NeoX "rotate half" layout
    "use_hook_tokens": _fixed(False),
    "tie_word_embeddings": _fixed(False),  # W_U is its own parameter (from_hf copies W_Eᵀ)
    "trust_remote_code": _fixed(False),
}
for _name, _field in _TL_FIELDS.items():
    setattr(MomentumConfig, _name, _field)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {list(choices)}.")


def _reject_unknown_options(init):
    """Turn the dataclass TypeError for an unknown keyword into a ValueError naming the options."""

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        valid = {f.name for f in dataclasses.fields(MomentumConfig)}
        unknown = set(kwargs) - valid
        if unknown:
            raise ValueError(unknown_names("MomentumConfig option(s)", unknown, valid))
        init(self, *args, **kwargs)

    return checked_init


MomentumConfig.__init__ = _reject_unknown_options(MomentumConfig.__init__)
