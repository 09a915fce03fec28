"""Ablations of one head: hooks that switch off momentum, a score term or the OV output, and
the induction accuracy and loss under each (on the same held-out batches)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import torch

from momentum_interp.analysis.statistics import pooled_ratio_ci
from momentum_interp.analysis.tracing.inputs import check_momentum_head, default_induction_task
from momentum_interp.analysis.tracing.terms import (
    causal_mask,
    signal_hook_names,
    terms_from_signals,
)
from momentum_interp.data import Task
from momentum_interp.defaults import DEFAULT_SEED, TRACE_SEQUENCES
from momentum_interp.evaluation import (
    MEAN_STREAM,
    batching,
    held_out_batches,
    per_sequence_metrics,
    pooled,
)
from momentum_interp.model.shear import TERM_NAMES

ABLATION_COLUMNS = ("ablation", "accuracy", "loss", "delta_accuracy", "delta_loss")


def velocity_zero_hooks(model, layer: int | None = None, head: int | None = None) -> list:
    """Forward hooks zeroing `hook_q_velocity`/`hook_k_velocity` (for one head, one layer, or all):
    the shear `x + γp` then passes x unchanged, for momentum and smeared-key heads alike."""

    def zero(value: torch.Tensor, hook) -> torch.Tensor:
        value = value.clone()
        if head is None:
            value.zero_()
        else:
            value[:, :, head] = 0.0
        return value

    layers = range(model.cfg.n_layers) if layer is None else [layer]
    return [
        (f"blocks.{index}.attn.hook_{which}_velocity", zero)
        for index in layers
        for which in ("q", "k")
    ]


def momentum_off(model) -> tuple[Any, list]:
    """`(model, hooks)` that run `model` with momentum off in every head (γ → 0 at inference):
    a deep copy with `set_gamma(0.0)`; for a smeared key (γ = α − 1 comes from a learned logit
    and reaches 0 only at +∞) and for shear="none" (nothing to switch off; `set_gamma` refuses)
    the model itself under `velocity_zero_hooks`, which makes every shear the identity."""
    if gamma_zero_method(model.cfg) != "set_gamma":
        return model, velocity_zero_hooks(model)
    no_momentum = copy.deepcopy(model)
    no_momentum.set_gamma(0.0)
    return no_momentum, []


def term_removal_hooks(model, layer: int, head: int, terms: tuple[str, ...] | list[str]) -> list:
    """Forward hooks that subtract the named score terms (scaled by 1/√d_head) from this head's
    `hook_attn_scores` on causal entries, leaving masked entries at −inf. The terms are recomputed
    in the same forward pass from the signal hooks, which fire before the scores."""
    unknown = set(terms) - set(TERM_NAMES)
    if unknown:
        raise ValueError(f"unknown term(s) {sorted(unknown)}; choose from {list(TERM_NAMES)}.")
    attn = model.blocks[layer].attn
    q_name, k_name = signal_hook_names(model, layer)
    store: dict[str, torch.Tensor] = {}

    def save(value: torch.Tensor, hook) -> None:
        store[hook.name] = value

    def remove(scores: torch.Tensor, hook) -> torch.Tensor:
        q = store[q_name][:, :, head : head + 1]
        k = store[k_name][:, :, head : head + 1]
        all_terms = terms_from_signals(attn, q, k, slice(head, head + 1))
        delta = sum(all_terms[name][:, 0] for name in terms)
        causal = causal_mask(scores.shape[-1], scores.device)
        scores = scores.clone()
        scores[:, head] = scores[:, head] - torch.where(causal, delta, 0.0).to(scores.dtype)
        return scores

    return [(q_name, save), (k_name, save), (f"blocks.{layer}.attn.hook_attn_scores", remove)]


def mean_ablation_hooks(model, layer: int, head: int, mean_z: torch.Tensor) -> list:
    """Forward hook replacing this head's `hook_z` by the constant `mean_z: [d_head]`, so its OV
    output carries no information about which token it attended to."""

    def replace(z: torch.Tensor, hook) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = mean_z.to(z.dtype)
        return z

    return [(f"blocks.{layer}.attn.hook_z", replace)]


@torch.no_grad()
def head_z_mean(
    model,
    task: Task,
    layer: int,
    head: int,
    n_sequences: int = TRACE_SEQUENCES,
    seed: int = DEFAULT_SEED,
) -> torch.Tensor:
    """Mean of this head's `hook_z` over batch and positions, `[d_head]`, on batches drawn from
    the `MEAN_STREAM` seed stream (disjoint from the held-out evaluation batches)."""
    name = f"blocks.{layer}.attn.hook_z"
    n_batches, batch_size = batching(n_sequences)
    total, count = torch.zeros((), dtype=torch.float64), 0  # 0 + the first sum is that sum
    batches = held_out_batches(task, n_batches, batch_size, seed, model.W_E.device, MEAN_STREAM)
    for batch in batches:
        _, cache = model.run_with_cache(batch.tokens, names_filter=name, return_type=None)
        z = cache[name][:, :, head].double()
        total = total + z.sum(dim=(0, 1))
        count += z.shape[0] * z.shape[1]
    return (total / count).to(model.W_E.dtype)


def gamma_zero_method(cfg) -> str:
    """How the `gamma_zero` ablation switches momentum off in a model of config `cfg`:
    `"set_gamma"` (a deep copy with `set_gamma(0.0)`), `"identity_smear"` (a smeared key's
    `hook_k_velocity` zeroed in every head: its α = γ + 1 reaches 1 only at +∞) or `"none"`
    (shear="none": nothing to switch off, the row equals clean)."""
    if cfg.smeared_key:
        return "identity_smear"
    return "none" if cfg.shear == "none" else "set_gamma"


def _metrics_row(name: str, per_seq: dict[str, np.ndarray]) -> dict[str, Any]:
    metrics = pooled(per_seq)
    ci = pooled_ratio_ci(per_seq["correct"], np.maximum(per_seq["n_positions"], 0))
    return {
        "ablation": name,
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "accuracy_low": ci.low,
        "accuracy_high": ci.high,
    }


def induction_ablations(
    model,
    layer: int,
    head: int,
    task: Task | None = None,
    n_sequences: int = TRACE_SEQUENCES,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Induction accuracy and loss under each ablation, on the same held-out batches.

    Rows: ``clean``; ``gamma_zero`` (momentum off in every head: a deep copy with
    `set_gamma(0.0)`; a smeared-key model's γ = α − 1 comes from its learned logit, which
    `set_gamma` does not touch and which reaches α = 1 only at +∞, so there the smear is made the
    identity exactly by zeroing `hook_k_velocity` in every head; a model with shear="none" has
    no momentum to switch off, and the row equals clean); ``velocity_zero_head`` (this
    head's q and k velocity hooks zeroed); ``remove_<term>`` for each term; ``mean_ablate_ov``
    (this head's `hook_z` replaced by its mean over batch and positions on separate batches).
    Columns: ablation, accuracy, loss, delta_accuracy, delta_loss (vs clean), then a 95 %
    bootstrap interval of the accuracy over sequences.
    """
    check_momentum_head(model, layer, head)
    task = default_induction_task(model.cfg) if task is None else task
    n_batches, batch_size = batching(n_sequences)

    def measure(target, hooks=()) -> dict[str, np.ndarray]:
        with target.hooks(fwd_hooks=list(hooks)):
            return per_sequence_metrics(target, task, n_batches, batch_size, seed)

    rows = [_metrics_row("clean", measure(model))]
    rows.append(_metrics_row("gamma_zero", measure(*momentum_off(model))))
    rows.append(
        _metrics_row("velocity_zero_head", measure(model, velocity_zero_hooks(model, layer, head)))
    )
    for name in TERM_NAMES:
        hooks = term_removal_hooks(model, layer, head, [name])
        rows.append(_metrics_row(f"remove_{name}", measure(model, hooks)))
    mean_z = head_z_mean(model, task, layer, head, n_sequences, seed)
    hooks = mean_ablation_hooks(model, layer, head, mean_z)
    rows.append(_metrics_row("mean_ablate_ov", measure(model, hooks)))
    frame = pd.DataFrame(rows)
    frame["delta_accuracy"] = frame["accuracy"] - frame.loc[0, "accuracy"]
    frame["delta_loss"] = frame["loss"] - frame.loc[0, "loss"]
    rest = [c for c in frame.columns if c not in ABLATION_COLUMNS]
    return frame[list(ABLATION_COLUMNS) + rest]
