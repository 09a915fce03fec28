"""One head's induction mechanism, measured for a study over training seeds (numbers only).

Each score term's margin at the induction key s* against three references (the mean of the
other causal keys, s′ = the earlier occurrence of the query's own token, and the strongest other
key) and its share of the full score's margin; accuracy and attention on s* with the
current·current and current·previous-key terms removed from this head, alone and together, and
with momentum off in every head (γ → 0 at inference); and the two readings of the orthogonality
theorem: the sequence-axis band split (`band_orthogonality`) and the split over rotary frequency
pairs (`high_frequency_channels`). The maths is in docs/maths.md, sections 4 and 6.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from functools import reduce
from typing import Any

import torch

from momentum_interp.analysis.spectral.orthogonality import (
    band_orthogonality,
    channel_frequencies,
    high_frequency_channels,
)
from momentum_interp.analysis.tracing.ablations import momentum_off, term_removal_hooks
from momentum_interp.analysis.tracing.inputs import check_momentum_head
from momentum_interp.analysis.tracing.terms import (
    MARGIN_REFERENCES,
    causal_mask,
    competitors,
    head_score_terms,
    induction_keys,
    induction_margins,
    signal_hook_names,
    term_coefficients,
)
from momentum_interp.data import Task
from momentum_interp.evaluation import batching, held_out_batches, per_sequence_metrics, pooled
from momentum_interp.model.shear import TERM_NAMES

# The two terms the mechanism question is about: the paper's lookup and the plain q·k term.
LOOKUP, CONTENT = "current_prev_key", "current_current"
REMOVALS = {
    f"remove_{CONTENT}": (CONTENT,),
    f"remove_{LOOKUP}": (LOOKUP,),
    "remove_both": (CONTENT, LOOKUP),
}
# name -> (terms removed, from this head or from every head of its layer); None: momentum off
ABLATIONS: dict[str, tuple[tuple[str, ...], str] | None] = {
    "clean": ((), "head"),
    **{name: (terms, "head") for name, terms in REMOVALS.items()},
    **{f"layer_{name}": (terms, "layer") for name, terms in REMOVALS.items()},
    "gamma_zero": None,
}
PAIR_REFERENCE = "earlier_occurrence"  # the margin the frequency-pair split is taken on


@dataclass
class AblationEffect:
    """Accuracy, loss and mean attention of the head on s* under one ablation, and the changes
    from the clean model."""

    accuracy: float
    loss: float
    induction_attention: float
    delta_accuracy: float = 0.0
    delta_attention: float = 0.0


@dataclass
class MechanismMeasurement:
    """What `measure_mechanism` found for one head (module doc); `to_dict` is JSON-able."""

    layer: int
    head: int
    gamma_q: float
    gamma_k: float
    n_sequences: int
    n_queries: int
    top_fraction: float  # queries where s* scores above every other key (margin vs strongest > 0)
    margins: dict[str, dict[str, float]]  # reference -> term or "total" -> mean margin
    shares: dict[str, dict[str, float]]  # reference -> term -> term margin / total margin
    token_match_shares: dict[str, float]  # the shares over s′ the coefficients alone predict
    ablations: dict[str, AblationEffect]
    sequence_bands: dict[str, float]  # reading (i): one row of `band_orthogonality`
    rotary_pairs: dict[str, Any]  # reading (ii): the high pairs' shares

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ablations"] = {name: asdict(effect) for name, effect in self.ablations.items()}
        return out


def _share(part: float, whole: float) -> float:
    return part / whole if whole != 0 else math.nan


def token_match_shares(attn, head: int) -> dict[str, float]:
    """The term shares of the margin over s′ if it came from token matches alone: ⟨q_t, k_{s′}⟩
    (the query's token at s′) enters current_current at s′ and current_prev_key at s*
    (k_{s*−1} = k_{s′}); ⟨q_{t−1}, k_{s′−1}⟩ (the previous tokens match) enters prev_prev at s′;
    with the two products equal, each term's share is fixed by the shear's coefficients (γ = 1
    on q and k: 4/7, 2/7, 0, 1/7). docs/maths.md, "Induction margins"."""
    c = {name: float(v[0]) for name, v in term_coefficients(attn, slice(head, head + 1)).items()}
    signed = {
        "current_current": -c["current_current"],
        "current_prev_key": c["current_prev_key"],
        "prev_query_current": 0.0,
        "prev_prev": -c["prev_prev"],
    }
    total = sum(signed.values())
    return {name: _share(value, total) for name, value in signed.items()}


@torch.no_grad()
def _term_margins(model, layer: int, head: int, task: Task, n_sequences: int, seed: int):
    """Mean margins per reference and term; the high frequency pairs' part of the margins
    against `PAIR_REFERENCE` and of the causal score energy; the query count; and the fraction
    of queries where s* scores above every other key."""
    names = (*signal_hook_names(model, layer), f"blocks.{layer}.attn.hook_attn_scores")
    high = high_frequency_channels(model.cfg).to(model.W_E.device)
    sums = {ref: dict.fromkeys((*TERM_NAMES, "total"), 0.0) for ref in MARGIN_REFERENCES}
    high_sums = dict.fromkeys((*TERM_NAMES, "total"), 0.0)
    energy = {"high": 0.0, "low": 0.0}
    n_queries = wins = 0
    for batch in held_out_batches(task, *batching(n_sequences), seed, model.W_E.device):
        _, cache = model.run_with_cache(batch.tokens, names_filter=list(names), return_type=None)
        terms = head_score_terms(model, cache, layer, head)
        high_terms = head_score_terms(model, cache, layer, head, channels=high)
        scores = cache[names[2]][:, head]
        query_mask, key_index = induction_keys(batch.tokens, batch.loss_mask)
        against = competitors(scores, key_index)
        for ref, competitor in against.items():
            found = induction_margins(terms, scores, query_mask, key_index, competitor)
            for name, values in found.items():
                sums[ref][name] += float(values.sum())
            if ref == "strongest":
                wins += int((found["total"] > 0).sum())
        high_score = reduce(operator.add, high_terms.values())  # the terms' sum, in order
        found = induction_margins(
            high_terms, high_score, query_mask, key_index, against[PAIR_REFERENCE]
        )
        for name, values in found.items():
            high_sums[name] += float(values.sum())
        causal = causal_mask(scores.shape[-1], scores.device)
        low_score = reduce(operator.add, terms.values()) - high_score
        energy["high"] += float(high_score.square()[:, causal].sum())
        energy["low"] += float(low_score.square()[:, causal].sum())
        n_queries += int(query_mask.sum())
    if n_queries == 0:
        raise ValueError(
            "the task's batches contain no induction queries (loss_mask positions whose token "
            "occurred earlier); use an induction task."
        )
    margins = {ref: {k: v / n_queries for k, v in row.items()} for ref, row in sums.items()}
    pairs = {
        "high_channels": high.nonzero()[:, 0].tolist(),
        "frequencies": channel_frequencies(model.cfg).tolist(),
        "reference": PAIR_REFERENCE,
        "high_margin_share": {
            name: _share(high_sums[name], sums[PAIR_REFERENCE][name]) for name in high_sums
        },
        "high_energy_share": _share(energy["high"], energy["high"] + energy["low"]),
    }
    return margins, pairs, n_queries, wins / n_queries


@torch.no_grad()
def _ablation(model, hooks, layer, head, task, n_sequences, seed) -> AblationEffect:
    """Accuracy and loss (`per_sequence_metrics`) and the head's mean attention on s*, from one
    pass over the held-out batches with `hooks` on."""
    n_batches, batch_size = batching(n_sequences)
    device = model.W_E.device
    keys = iter(
        [
            induction_keys(b.tokens, b.loss_mask)
            for b in held_out_batches(task, n_batches, batch_size, seed, device)
        ]
    )
    on_key: list[torch.Tensor] = []

    def record(pattern: torch.Tensor, hook) -> None:  # once per batch, in batch order
        query_mask, key_index = next(keys)
        attention = pattern[:, head].gather(-1, key_index.clamp(min=0)[..., None])[..., 0]
        on_key.append(attention[query_mask].double())

    pattern_hook = (f"blocks.{layer}.attn.hook_pattern", record)
    with model.hooks(fwd_hooks=[*hooks, pattern_hook]):
        metrics = pooled(per_sequence_metrics(model, task, n_batches, batch_size, seed))
    return AblationEffect(
        accuracy=metrics["accuracy"],
        loss=metrics["loss"],
        induction_attention=float(torch.cat(on_key).mean()),
    )


def ablation_effects(
    model, layer: int, head: int, task: Task, n_sequences: int, seed: int
) -> dict[str, AblationEffect]:
    """Every `ABLATIONS` entry measured on the same held-out batches, with deltas from clean."""
    effects = {}
    for name, ablation in ABLATIONS.items():
        target, hooks = momentum_off(model) if ablation is None else (model, [])
        if ablation is not None and ablation[0]:
            removed, scope = ablation
            for index in [head] if scope == "head" else range(model.cfg.n_heads):
                hooks += term_removal_hooks(model, layer, index, removed)
        effects[name] = _ablation(target, hooks, layer, head, task, n_sequences, seed)
    clean = effects["clean"]
    for effect in effects.values():
        effect.delta_accuracy = effect.accuracy - clean.accuracy
        effect.delta_attention = effect.induction_attention - clean.induction_attention
    return effects


BAND_COLUMNS = ("cross_share", "null_cross_share", "low_share_q", "low_share_k", "cutoff")


@torch.no_grad()
def measure_mechanism(
    model, layer: int, head: int, task: Task, n_sequences: int, seed: int
) -> MechanismMeasurement:
    """Measure head `layer.head` (module doc) on `n_sequences` held-out sequences of `task`
    (rounded up to whole batches of 64), drawn with `seed` as `per_sequence_metrics` draws them."""
    check_momentum_head(model, layer, head)
    was_training = model.training
    model.eval()
    margins, pairs, n_queries, top_fraction = _term_margins(
        model, layer, head, task, n_sequences, seed
    )
    n_batches, batch_size = batching(n_sequences)
    tokens = torch.cat(
        [b.tokens for b in held_out_batches(task, n_batches, batch_size, seed, model.W_E.device)]
    )
    bands = band_orthogonality(model, tokens, layer).iloc[head]
    attn = model.blocks[layer].attn
    measurement = MechanismMeasurement(
        layer=layer,
        head=head,
        gamma_q=float(attn.gamma_q()[head]),
        gamma_k=float(attn.gamma_k()[head]),
        n_sequences=len(tokens),
        n_queries=n_queries,
        top_fraction=top_fraction,
        margins=margins,
        shares={
            ref: {name: _share(row[name], row["total"]) for name in TERM_NAMES}
            for ref, row in margins.items()
        },
        token_match_shares=token_match_shares(attn, head),
        ablations=ablation_effects(model, layer, head, task, n_sequences, seed),
        sequence_bands={column: float(bands[column]) for column in BAND_COLUMNS},
        rotary_pairs=pairs,
    )
    model.train(was_training)
    return measurement
