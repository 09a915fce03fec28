"""The single-layer induction trace of one head: four-term margins, ablations and the QK circuit.

Results are data (`InductionTrace` and its parts, with `to_dict()`); `momentum_interp.viz.tracing`
renders them. The maths is in docs/maths.md ("Single-layer induction trace").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from momentum_interp.analysis.tracing.ablations import gamma_zero_method, induction_ablations
from momentum_interp.analysis.tracing.inputs import check_momentum_head, default_induction_task
from momentum_interp.analysis.tracing.qk_circuit import QK_MAX_TOKENS, QKCircuit
from momentum_interp.analysis.tracing.terms import (
    causal_mask,
    head_score_terms,
    induction_keys,
    induction_margins,
    signal_hook_names,
)
from momentum_interp.architecture import describe
from momentum_interp.data import Task
from momentum_interp.defaults import DEFAULT_SEED, TRACE_SEQUENCES
from momentum_interp.evaluation import batching, held_out_batches
from momentum_interp.model.inputs import str_tokens
from momentum_interp.model.shear import TERM_NAMES

# What a trace's numbers leave out, by code (`viz.captions` words them): the QK circuit reads the
# token embedding through ln1 (with learned positions, ignoring them); at a layer > 0 it ignores
# what earlier layers write; with rotary it ignores the relative rotation; a smeared key's
# `gamma_zero` ablation zeroes `hook_k_velocity` rather than calling `set_gamma(0)`.
CAVEATS = (
    "qk_embedding",
    "qk_embedding_no_positions",
    "qk_earlier_layers",
    "qk_rotary_offset",
    "identity_smear",
)


@dataclass
class TermDecomposition:
    """Mean margin of the induction key s* per score term, over every induction query."""

    n_sequences: int
    n_queries: int
    term_margins: dict[str, float]
    total_margin: float
    term_shares: dict[str, float]  # term margin / total margin
    dominant_term: str
    induction_attention: float  # mean attention on s*

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_sequences": self.n_sequences,
            "n_queries": self.n_queries,
            "term_margins": {k: float(v) for k, v in self.term_margins.items()},
            "total_margin": float(self.total_margin),
            "term_shares": {k: float(v) for k, v in self.term_shares.items()},
            "dominant_term": self.dominant_term,
            "induction_attention": float(self.induction_attention),
        }


@dataclass
class ExampleScores:
    """The four scaled score terms and the full score of one example sequence (NaN above the
    diagonal), with its induction (query, key) pairs."""

    tokens: np.ndarray  # [pos]
    labels: list[str]
    terms: dict[str, np.ndarray]  # term -> [q_pos, k_pos]
    scores: np.ndarray  # [q_pos, k_pos]
    pairs: list[tuple[int, int]]


def _listed(a: np.ndarray) -> list:
    """Nested lists of `a`, its non-finite entries None (JSON null)."""
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()


@dataclass
class InductionTrace:
    """Everything `trace_single_layer_induction` measured about one head (numbers only)."""

    layer: int
    head: int
    gamma_q: float
    gamma_k: float
    model_kind: str
    decomposition: TermDecomposition
    ablations: pd.DataFrame  # `ABLATION_COLUMNS` + interval, one row per ablation
    qk: QKCircuit  # current_prev_key: the induction lookup
    qk_current: QKCircuit  # current_current: the contrast
    example: ExampleScores
    gamma_zero_method: str = "set_gamma"  # how `gamma_zero` switched momentum off (`ablations`)
    caveats: list[str] = field(default_factory=list)  # codes of `CAVEATS` that apply

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        """JSON-able numbers; `include_arrays` adds the QK matrices and example score maps."""
        out: dict[str, Any] = {
            "layer": self.layer,
            "head": self.head,
            "gamma_q": self.gamma_q,
            "gamma_k": self.gamma_k,
            "model_kind": self.model_kind,
            **self.decomposition.to_dict(),
            "ablations": [
                {k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}
                for row in self.ablations.to_dict(orient="records")
            ],
            "qk_diagonal_top1": float(self.qk.diagonal_top1),
            "qk_diagonal_z": float(self.qk.diagonal_z),
            "qk_current_diagonal_top1": float(self.qk_current.diagonal_top1),
            "qk_current_diagonal_z": float(self.qk_current.diagonal_z),
            "example_tokens": [int(t) for t in self.example.tokens],
            "example_pairs": [[int(t), int(s)] for t, s in self.example.pairs],
            "gamma_zero_method": self.gamma_zero_method,
            "caveats": list(self.caveats),
        }
        if include_arrays:
            out["qk_matrix"] = _listed(self.qk.matrix)
            out["qk_current_matrix"] = _listed(self.qk_current.matrix)
            out["example_terms"] = {k: _listed(v) for k, v in self.example.terms.items()}
            out["example_scores"] = _listed(self.example.scores)
        return out


def caveats(cfg, layer: int) -> list[str]:
    """The `CAVEATS` that apply to a trace of `layer` in a model of config `cfg`."""
    found = [
        "qk_embedding_no_positions"
        if cfg.positional_embedding_type == "standard"
        else "qk_embedding"
    ]
    if layer > 0:
        found.append("qk_earlier_layers")
    if cfg.positional_embedding_type == "rotary":
        found.append("qk_rotary_offset")
    if cfg.smeared_key:
        found.append("identity_smear")
    return found


@torch.no_grad()
def trace_single_layer_induction(
    model,
    layer: int,
    head: int,
    task: Task | None = None,
    n_sequences: int = TRACE_SEQUENCES,
    seed: int = DEFAULT_SEED,
) -> InductionTrace:
    """Trace how head `layer.head` performs induction: four-term score margins, ablations and
    the token-level QK circuit (docs/maths.md, section 4). The decomposition and ablations use
    the same held-out batches as `per_sequence_metrics(model, task, n_batches, batch_size, seed)`
    (n_sequences rounded up to whole batches of 64)."""
    check_momentum_head(model, layer, head)
    cfg = model.cfg
    task = default_induction_task(cfg) if task is None else task
    if task.seq_len > cfg.n_ctx:
        raise ValueError(f"task.seq_len={task.seq_len} exceeds the model's n_ctx={cfg.n_ctx}.")
    was_training = model.training
    model.eval()
    device = model.W_E.device
    attn = model.blocks[layer].attn
    names = (
        *signal_hook_names(model, layer),
        f"blocks.{layer}.attn.hook_attn_scores",
        f"blocks.{layer}.attn.hook_pattern",
    )

    sums = {name: 0.0 for name in (*TERM_NAMES, "total")}
    attention_sum, n_queries, n_seen, example = 0.0, 0, 0, None
    n_batches, batch_size = batching(n_sequences)
    for batch in held_out_batches(task, n_batches, batch_size, seed, device):
        _, cache = model.run_with_cache(batch.tokens, names_filter=list(names), return_type=None)
        terms = head_score_terms(model, cache, layer, head)
        scores = cache[names[2]][:, head]
        query_mask, key_index = induction_keys(batch.tokens, batch.loss_mask)
        per_query = induction_margins(terms, scores, query_mask, key_index)
        for name, values in per_query.items():
            sums[name] += float(values.double().sum())
        pattern = cache[names[3]][:, head]
        on_key = pattern.gather(-1, key_index.clamp(min=0)[..., None])[..., 0][query_mask]
        attention_sum += float(on_key.double().sum())
        n_queries += int(query_mask.sum())
        n_seen += batch.tokens.shape[0]
        if example is None and query_mask.any():
            row = int(query_mask.any(dim=1).nonzero()[0, 0])
            example = (batch.tokens[row], query_mask[row], key_index[row], terms, scores, row)
    if n_queries == 0 or example is None:
        raise ValueError(
            "the task's batches contain no induction queries (loss_mask positions whose token "
            "occurred earlier); use an induction task."
        )

    term_margins = {name: sums[name] / n_queries for name in TERM_NAMES}
    total_margin = sums["total"] / n_queries
    term_shares = {
        name: (value / total_margin if total_margin != 0 else float("nan"))
        for name, value in term_margins.items()
    }
    # The term with the largest share of the total margin: the largest margin when the head
    # does attend to s* (total > 0), the most negative when it avoids s*.
    sign = math.copysign(1.0, total_margin) if total_margin != 0 else 0.0
    dominant = max(
        TERM_NAMES,
        key=lambda name: sign * term_margins[name] if sign else abs(term_margins[name]),
    )

    ex_tokens, ex_queries, ex_keys, ex_terms, ex_scores, row = example
    causal = causal_mask(ex_tokens.shape[0], device)

    def masked(x: torch.Tensor) -> np.ndarray:
        return torch.where(causal, x.double(), float("nan")).cpu().numpy()

    example_terms = {name: masked(value[row]) for name, value in ex_terms.items()}
    example_pairs = [(int(t), int(ex_keys[t])) for t in ex_queries.nonzero()[:, 0].tolist()]

    tokenizer = getattr(model, "tokenizer", None)
    qk_tokens = torch.arange(min(cfg.d_vocab, QK_MAX_TOKENS))
    qk_labels = str_tokens(qk_tokens.tolist(), tokenizer)

    ablations = induction_ablations(model, layer, head, task, n_sequences, seed)
    model.train(was_training)
    return InductionTrace(
        layer=layer,
        head=head,
        gamma_q=float(attn.gamma_q().detach()[head]),
        gamma_k=float(attn.gamma_k().detach()[head]),
        model_kind=describe(cfg),
        decomposition=TermDecomposition(
            n_sequences=n_seen,
            n_queries=n_queries,
            term_margins=term_margins,
            total_margin=total_margin,
            term_shares=term_shares,
            dominant_term=dominant,
            induction_attention=attention_sum / n_queries,
        ),
        ablations=ablations,
        qk=QKCircuit.measure(model, layer, head, "current_prev_key", qk_tokens, qk_labels),
        qk_current=QKCircuit.measure(model, layer, head, "current_current", qk_tokens, qk_labels),
        example=ExampleScores(
            tokens=ex_tokens.cpu().numpy(),
            labels=str_tokens(ex_tokens.tolist(), tokenizer),
            terms=example_terms,
            scores=masked(ex_scores[row]),
            pairs=example_pairs,
        ),
        gamma_zero_method=gamma_zero_method(cfg),
        caveats=caveats(cfg, layer),
    )
