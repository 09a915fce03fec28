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

    As in TransformerLens, `n_heads` defaults to `d_model / d_head`; here `d_head` also defaults
    to `d_model / n_heads` when only `n_heads` is given. `device` must exist on this machine.

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
        check_device(self.device)
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
            not is_finite_real(self.init_range) or self.init_range == 0
        ):
            raise ValueError(
                f"init_range must be a finite positive standard deviation, got "
                f"{self.init_range!r}; pass e.g. init_range=0.02, or leave it unset (-1 or None) "
                "for the default 0.8/sqrt(d_model)."
            )
        if not is_finite_real(self.eps) or self.eps <= 0:
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


def is_finite_real(value: Any) -> bool:
    """Whether `value` is a finite int or float (not a bool, a string, NaN or ±inf)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def available_devices() -> list[str]:
    """The devices this machine has: "cpu", then "cuda:0", "cuda:1", ... and "mps" if present."""
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = torch.backends.mps.is_available()
    return ["cpu", *(f"cuda:{i}" for i in range(cuda)), *(["mps"] if mps else [])]


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a `torch.device` if this machine has it, else a ValueError naming what exists
    (torch itself fails later with an AssertionError or an invalid-ordinal error)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"device {str(device)!r} is not a device name; use one of {available_devices()}."
        ) from e
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        present = count > 0 and (parsed.index is None or parsed.index < count)
    elif parsed.type == "mps":
        present = torch.backends.mps.is_available()
    else:
        present = True  # cpu, meta, ...: nothing to look for
    if not present:
        raise ValueError(
            f"device {str(device)!r} does not exist on this machine; it has {available_devices()}."
        )
    return parsed


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


def _with_d_head(options: dict[str, Any]) -> dict[str, Any]:
    """`options` with `d_head = d_model / n_heads` filled in when only `n_heads` is given."""
    if "d_head" in options or options.get("n_heads", -1) == -1:
        return options
    d_model, n_heads = options.get("d_model"), options["n_heads"]
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (d_model, n_heads)
    ):
        return options  # _validate names the bad value
    if d_model % n_heads:
        raise ValueError(
            f"d_head is not set and d_model={d_model} is not a multiple of n_heads={n_heads}, so "
            "it cannot be derived as d_model / n_heads; set d_head (each head's width) or choose "
            "n_heads dividing d_model."
        )
    return {**options, "d_head": d_model // n_heads}


def _check_options(init):
    """Options by keyword: an unknown or a missing one is a ValueError naming it (not the
    dataclass TypeError), and `d_head` defaults to `d_model / n_heads`."""

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        fields = dataclasses.fields(MomentumConfig)
        valid = {f.name for f in fields}
        unknown = set(kwargs) - valid
        if unknown:
            raise ValueError(unknown_names("MomentumConfig option(s)", unknown, valid))
        if not args:
            kwargs = _with_d_head(kwargs)
            missing = [
                f.name
                for f in fields
                if f.name not in kwargs
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ]
            if missing:
                what = ["d_head (or n_heads)" if m == "d_head" else m for m in missing]
                raise ValueError(
                    f"MomentumConfig is missing the required option(s) {', '.join(what)}."
                )
        init(self, *args, **kwargs)

    return checked_init


MomentumConfig.__init__ = _check_options(MomentumConfig.__init__)
