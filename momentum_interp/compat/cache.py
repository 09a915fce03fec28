"""An `ActivationCache` whose shorthand also knows the momentum hooks: `cache["q_velocity", 0]`,
`cache["k_sheared", 1]`, `cache["rot_q", 0]`, `cache["q_input", 0]` (all on `blocks.{l}.attn`)."""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache

# hooks on blocks.{l}.attn that TransformerLens's get_act_name does not place there
ATTENTION_HOOKS = (
    "q_velocity",
    "k_velocity",
    "q_sheared",
    "k_sheared",
    "rot_q",
    "rot_k",
    "q_input",
    "k_input",
    "v_input",
    "attn_in",
)


def momentum_act_name(name: str, layer: int) -> str | None:
    """The full hook name of a momentum-attention shorthand (`"q_velocity"` or `"hook_q_velocity"`),
    or None when `name` is not one of ours."""
    short = name.removeprefix("hook_")
    return f"blocks.{layer}.attn.hook_{short}" if short in ATTENTION_HOOKS else None


class MomentumActivationCache(ActivationCache):
    """TransformerLens's `ActivationCache`, plus the shorthand for the momentum hooks."""

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, tuple) and len(key) >= 2 and isinstance(key[0], str):
            layer = key[1]
            if isinstance(layer, int) and layer < 0:
                layer += self.model.cfg.n_layers
            full = momentum_act_name(key[0], layer) if isinstance(layer, int) else None
            if full is not None and (len(key) == 2 or key[2] in (None, "attn", "a")):
                if full not in self.cache_dict:
                    raise KeyError(
                        f"{full} is not in this cache: it is only recorded when a hook or cache "
                        "asks for it (run_with_cache caches every hook point by default; check "
                        "names_filter), and hook_rot_* exists only for rotary models."
                    )
                return self.cache_dict[full]
        return super().__getitem__(key)
