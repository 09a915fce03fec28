"""Hook-name resolution for the momentum hooks, and an `ActivationCache` that uses it.

TransformerLens's `get_act_name` places names it does not know at block level
(`get_act_name("q_velocity", 0) == "blocks.0.hook_q_velocity"`), but ours live on the attention
module. `canonical_hook_name` maps them there, so the cache shorthand (`cache["q_velocity", 0]`,
`cache["k_sheared", 1]`) and TransformerLens's patching functions (which build names with
`get_act_name`) reach them.
"""

from __future__ import annotations

import re

import torch
from transformer_lens import ActivationCache
from transformer_lens.utilities import get_act_name

# hooks on blocks.{l}.attn that get_act_name does not place there
ATTENTION_HOOKS = (
    "q_velocity",
    "k_velocity",
    "q_sheared",
    "k_sheared",
    "q_input",
    "k_input",
    "v_input",
    "attn_in",
)
_BLOCK_LEVEL = re.compile(r"^blocks\.(\d+)\.hook_(\w+)$")
MLP_HOOK = re.compile(r"^blocks\.\d+\.(mlp\.|ln2\.|hook_mlp_|hook_resid_mid)")


def canonical_hook_name(name: str) -> str:
    """`blocks.{l}.hook_q_velocity` → `blocks.{l}.attn.hook_q_velocity`; other names unchanged."""
    match = _BLOCK_LEVEL.match(name)
    if match and match.group(2) in ATTENTION_HOOKS:
        return f"blocks.{match.group(1)}.attn.hook_{match.group(2)}"
    return name


def missing_hook_error(name: str, cfg) -> KeyError:
    """A KeyError that says why `name` is absent and what to use instead."""
    if cfg.attn_only and MLP_HOOK.match(name):
        return KeyError(
            f"{name}: this model is attention-only, so it has no MLP (no hook_mlp_in, "
            "hook_mlp_out, hook_resid_mid, mlp.* or ln2.*). Each block's output is hook_attn_out "
            "(and hook_resid_post); use those, or decompose_resid(mode='attn')."
        )
    if "rot_" in name and cfg.positional_embedding_type != "rotary":
        return KeyError(f"{name}: this model has learned positions, so no rotary hooks.")
    return KeyError(
        f"{name} is not a hook point of this model, or was not cached (check names_filter). "
        "Momentum hooks live on blocks.{l}.attn: hook_q_velocity, hook_k_velocity, "
        "hook_q_sheared, hook_k_sheared (shorthand cache['q_velocity', l])."
    )


class MomentumActivationCache(ActivationCache):
    """TransformerLens's `ActivationCache`, plus the momentum hooks in the shorthand and errors
    that say why a name is missing."""

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, str) and key in self.cache_dict:
            return self.cache_dict[key]
        if isinstance(key, tuple):
            key = list(key)
            if len(key) > 1 and isinstance(key[1], int) and key[1] < 0:
                key[1] += self.model.cfg.n_layers
            name = get_act_name(*key)
        else:
            name = get_act_name(key)
        name = canonical_hook_name(name)
        if name not in self.cache_dict:
            raise missing_hook_error(name, self.model.cfg)
        return self.cache_dict[name]
