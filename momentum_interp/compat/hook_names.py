"""Hook names that TransformerLens code uses but that are not our modules' own, and where each lives.

Two kinds of name resolve to one of our hook points:

- the momentum hooks at TransformerLens's default placement: `get_act_name("q_velocity", 0)`
  gives `blocks.0.hook_q_velocity`, but ours live on `blocks.0.attn`;
- TransformerBridge's aliases and component hooks: `blocks.{l}.hook_in` (what
  `get_act_name("in", l)` returns) is `hook_resid_pre`, `blocks.{l}.attn.q.hook_out` is
  `attn.hook_q`, and so on. A name is mapped only where hooking ours means what hooking the
  bridge's does: the same value, and an edit reaches the same readers (`attn.hook_in` is
  `ln1.hook_normalized` because attention is the only reader of ln1's output).

The bridge's other names are `EXEMPT`: each says why it has no counterpart and what to use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# hooks on blocks.{l}.attn that get_act_name places on the block
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

# TransformerBridge name inside `blocks.{l}.` -> ours inside `blocks.{l}.`
BLOCK_ALIASES = {
    "hook_in": "hook_resid_pre",
    "hook_out": "hook_resid_post",
    "ln1.hook_out": "ln1.hook_normalized",
    "attn.hook_in": "ln1.hook_normalized",
    "attn.qkv.hook_in": "ln1.hook_normalized",
    "attn.q.hook_out": "attn.hook_q",
    "attn.k.hook_out": "attn.hook_k",
    "attn.v.hook_out": "attn.hook_v",
    "attn.o.hook_in": "attn.hook_z",
    "attn.o.hook_out": "hook_attn_out",
    "attn.hook_hidden_states": "hook_attn_out",
    "attn.hook_out": "hook_attn_out",
    "ln2.hook_in": "hook_resid_mid",
    "ln2.hook_out": "ln2.hook_normalized",
    "mlp.hook_in": "ln2.hook_normalized",
    "mlp.in.hook_in": "ln2.hook_normalized",
    "mlp.in.hook_out": "mlp.hook_pre",
    "mlp.out.hook_in": "mlp.hook_post",
    "mlp.out.hook_out": "hook_mlp_out",
    "mlp.hook_out": "hook_mlp_out",
    **{f"hook_{name}": f"attn.hook_{name}" for name in ATTENTION_HOOKS},
}

# TransformerBridge top-level name -> ours (`ln_final.hook_in` is the last block's resid_post)
TOP_ALIASES = {
    "embed.hook_out": "hook_embed",
    "pos_embed.hook_out": "hook_pos_embed",
    "ln_final.hook_out": "ln_final.hook_normalized",
    "unembed.hook_in": "ln_final.hook_normalized",
}
FINAL_RESID = "ln_final.hook_in"

_LOGITS = (
    "the logits, which forward returns; to change them, hook ln_final.hook_normalized (the "
    "unembedding's only input)"
)
_QKV_IN = (
    "q, k and v are one matmul of ln1's output here, whose value is blocks.{l}.ln1.hook_normalized; "
    "to change one projection's input alone, call set_use_split_qkv_input(True) and hook "
    "blocks.{l}.attn.hook_q_input / hook_k_input / hook_v_input"
)
_ROPE_TABLES = (
    "RoPE's cos/sin tables (or the position ids), not activations; the rotated queries and keys "
    "are blocks.{l}.attn.hook_rot_q / hook_rot_k"
)
_GATE = "a gated MLP's gate; this architecture's MLPs are not gated (gated_mlp=False)"
# TransformerBridge names with no counterpart here ({l} = a layer), and why
EXEMPT = {
    "hook_pos_embed": (
        "with RoPE nothing positional is added to the residual stream (on a rotary "
        "TransformerBridge this name is the cos/sin tables); positions act in "
        "blocks.{l}.attn.hook_rot_q / hook_rot_k"
    ),
    **{f"rotary_emb.hook_{x}": _ROPE_TABLES for x in ("in", "out", "cos", "sin")},
    "blocks.{l}.attn.hook_cos": _ROPE_TABLES,
    "blocks.{l}.attn.hook_sin": _ROPE_TABLES,
    "blocks.{l}.mlp.gate.hook_in": _GATE,
    "blocks.{l}.mlp.gate.hook_out": _GATE,
    "blocks.{l}.mlp.hook_pre_linear": _GATE,
    "embed.hook_in": "the input token ids, not an activation; edit the tokens you pass in",
    "pos_embed.hook_in": "the position ids 0 … pos − 1, not an activation",
    "hook_unembed": _LOGITS,
    "unembed.hook_out": _LOGITS,
    "blocks.{l}.ln1.hook_in": (
        "its value is blocks.{l}.hook_resid_pre (cache that); to change what attention reads "
        "without changing the residual stream, call set_use_attn_in(True) and hook "
        "blocks.{l}.attn.hook_attn_in"
    ),
    "blocks.{l}.attn.q.hook_in": _QKV_IN,
    "blocks.{l}.attn.k.hook_in": _QKV_IN,
    "blocks.{l}.attn.v.hook_in": _QKV_IN,
    "blocks.{l}.attn.qkv.hook_out": (
        "GPT-2's fused [batch, pos, 3·d_model] projection; the same numbers, per head, are "
        "blocks.{l}.attn.hook_q, hook_k and hook_v"
    ),
}

_IN_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
MLP_HOOK = re.compile(r"^blocks\.\d+\.(mlp\.|ln2\.|hook_mlp_|hook_resid_mid)")


def resolve(name: str, n_layers: int) -> str:
    """Our hook point's name for `name` (a name that is not an alias comes back unchanged)."""
    if name in TOP_ALIASES:
        return TOP_ALIASES[name]
    if name == FINAL_RESID:
        return f"blocks.{n_layers - 1}.hook_resid_post"
    match = _IN_BLOCK.match(name)
    if match and match.group(2) in BLOCK_ALIASES:
        return f"blocks.{match.group(1)}.{BLOCK_ALIASES[match.group(2)]}"
    return name


def aliases(hook_names: Iterable[str], n_layers: int) -> dict[str, str]:
    """Every alias of this model's hooks, `{alias: our name}` (only aliases whose target exists:
    an attention-only model has no `blocks.{l}.mlp.hook_out`)."""
    names = set(hook_names)
    candidates = [
        *TOP_ALIASES,
        FINAL_RESID,
        *(f"blocks.{layer}.{alias}" for layer in range(n_layers) for alias in BLOCK_ALIASES),
    ]
    resolved = {alias: resolve(alias, n_layers) for alias in candidates}
    return {alias: target for alias, target in resolved.items() if target in names}


def exemption(name: str) -> str | None:
    """Why TransformerBridge's hook `name` has no counterpart here, or None if it is not exempt."""
    match = _IN_BLOCK.match(name)
    layer = match.group(1) if match else None
    key = f"blocks.{{l}}.{match.group(2)}" if match else name
    reason = EXEMPT.get(key)
    return None if reason is None else reason.replace("{l}", layer or "{l}")


def missing_hook_error(name: str, cfg) -> KeyError:
    """A KeyError that says why `name` is absent and what to use instead."""
    reason = exemption(name)
    if reason is not None:
        return KeyError(f"{name} has no counterpart in this model: {reason}.")
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
