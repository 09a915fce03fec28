"""Import GPT-2-family weights from a Hugging Face `transformers` model (an object, or a local
directory: nothing is downloaded), optionally adding momentum to the attention.

GPT-2's `Conv1D` stores weights as `[in, out]`, so `x @ W + b` maps directly onto TransformerLens
names: `c_attn` splits into `W_Q/W_K/W_V [head, d_model, d_head]`, `c_proj` is `W_O` reshaped to
`[head, d_head, d_model]`. The tied unembedding is copied as `W_U = W_Eᵀ` with `b_U = 0`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from einops import rearrange

from momentum_interp.config import MomentumConfig

SUPPORTED_ARCHITECTURES = ("GPT2LMHeadModel",)


def _load(model_or_dir: Any) -> tuple[torch.nn.Module, Any]:
    """The `transformers` model and, for a directory that has one, its tokenizer."""
    if isinstance(model_or_dir, str | Path):
        from transformers import AutoTokenizer, GPT2LMHeadModel

        directory = Path(model_or_dir)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(
                f"{directory} is not a local Hugging Face model directory (no config.json); "
                "from_hf never downloads: save the model with save_pretrained first."
            )
        model = GPT2LMHeadModel.from_pretrained(directory, local_files_only=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError):
            tokenizer = None
        return model, tokenizer
    return model_or_dir, None


def _check(hf_config: Any) -> None:
    arch = (getattr(hf_config, "architectures", None) or ["GPT2LMHeadModel"])[0]
    if getattr(hf_config, "model_type", None) != "gpt2" or arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"from_hf imports GPT-2-family models (model_type 'gpt2'), got model_type="
            f"{getattr(hf_config, 'model_type', None)!r}, architecture {arch!r}."
        )
    unsupported = {
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "scale_attn_weights": True,
        "add_cross_attention": False,
    }
    for name, expected in unsupported.items():
        if getattr(hf_config, name, expected) != expected:
            raise ValueError(f"from_hf: {name}={getattr(hf_config, name)!r} is not supported.")


def config_from_hf(hf_config: Any, **overrides: Any) -> MomentumConfig:
    """A `MomentumConfig` with GPT-2's shapes; momentum off unless `overrides` turn it on."""
    _check(hf_config)
    n_heads = hf_config.n_head
    options = dict(
        d_model=hf_config.n_embd,
        d_head=hf_config.n_embd // n_heads,
        n_heads=n_heads,
        n_layers=hf_config.n_layer,
        n_ctx=hf_config.n_positions,
        d_vocab=hf_config.vocab_size,
        d_mlp=hf_config.n_inner or 4 * hf_config.n_embd,
        act_fn=hf_config.activation_function,
        eps=hf_config.layer_norm_epsilon,
        normalization_type="LN",
        positional_embedding_type="standard",
        init_range=hf_config.initializer_range,
        shear="none",
        model_name=getattr(hf_config, "name_or_path", "") or "gpt2-import",
    )
    return MomentumConfig(**{**options, **overrides})


@torch.no_grad()
def state_dict_from_hf(hf_model: torch.nn.Module, cfg: MomentumConfig) -> dict[str, torch.Tensor]:
    """Our parameter names → tensors, from a `GPT2LMHeadModel`'s weights."""
    hf = {name: value.detach().to(cfg.dtype) for name, value in hf_model.state_dict().items()}
    n_heads = cfg.n_heads
    out = {
        "embed.W_E": hf["transformer.wte.weight"],
        "pos_embed.W_pos": hf["transformer.wpe.weight"],
        "ln_final.w": hf["transformer.ln_f.weight"],
        "ln_final.b": hf["transformer.ln_f.bias"],
        "unembed.W_U": hf.get("lm_head.weight", hf["transformer.wte.weight"]).T,
        "unembed.b_U": torch.zeros(cfg.d_vocab, dtype=cfg.dtype),
    }
    for layer in range(cfg.n_layers):
        src, dst = f"transformer.h.{layer}.", f"blocks.{layer}."
        W_q, W_k, W_v = hf[src + "attn.c_attn.weight"].split(cfg.d_model, dim=1)
        b_q, b_k, b_v = hf[src + "attn.c_attn.bias"].split(cfg.d_model, dim=0)
        for name, W, b in (("Q", W_q, b_q), ("K", W_k, b_k), ("V", W_v, b_v)):
            out[dst + f"attn.W_{name}"] = rearrange(W, "m (h d) -> h m d", h=n_heads)
            out[dst + f"attn.b_{name}"] = rearrange(b, "(h d) -> h d", h=n_heads)
        out[dst + "attn.W_O"] = rearrange(
            hf[src + "attn.c_proj.weight"], "(h d) m -> h d m", h=n_heads
        )
        out[dst + "attn.b_O"] = hf[src + "attn.c_proj.bias"]
        for ours, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[dst + f"{ours}.w"] = hf[src + f"{theirs}.weight"]
            out[dst + f"{ours}.b"] = hf[src + f"{theirs}.bias"]
        out[dst + "mlp.W_in"] = hf[src + "mlp.c_fc.weight"]
        out[dst + "mlp.b_in"] = hf[src + "mlp.c_fc.bias"]
        out[dst + "mlp.W_out"] = hf[src + "mlp.c_proj.weight"]
        out[dst + "mlp.b_out"] = hf[src + "mlp.c_proj.bias"]
    return out


def from_hf(cls, model_or_dir: Any, tokenizer: Any = None, device: str | None = None, **overrides):
    """Build `cls` (a `HookedMomentumTransformer`) from GPT-2-family weights; see the module doc."""
    hf_model, dir_tokenizer = _load(model_or_dir)
    cfg = config_from_hf(hf_model.config, device=device or "cpu", **overrides)
    model = cls(cfg, tokenizer=tokenizer or dir_tokenizer, move_to_device=False)
    weights = state_dict_from_hf(hf_model, cfg)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [name for name in missing if not name.endswith(("gamma", "smear_logit"))]
    if missing or unexpected:
        raise ValueError(f"from_hf: missing weights {missing}, unexpected {unexpected}.")
    return model.to(cfg.device).eval()
