"""Single-layer induction circuit tracing: which of the four momentum score terms carries the
induction attention of one head, what ablating each piece costs, and the token-level QK circuit
of the induction lookup (design.md section 1, "Single-layer induction").

Three measurements, numbers only (the plotly figures live in `momentum_interp.viz.tracing`):

1. **Four-term decomposition.** The head's attention score `⟨q̂_t, k̂_s⟩ / √d_head` is split into
   the four bilinear terms of `shear.score_terms` (current_current, current_prev_key,
   prev_query_current, prev_prev), computed from the cached signal that enters the shear:
   `hook_rot_q/k` for post-RoPE rotary models, `hook_q/k` otherwise. With pre-RoPE placement the
   shear acts before the rotation, so the terms are `⟨R_t q_t, R_s k_{s−1}⟩` etc. (each slot
   rotated at its own position t or s, whichever raw vector it holds); the coefficients are still
   those of `score_terms`. On causal entries the terms sum to `hook_attn_scores` exactly.
   For an induction query t (a `loss_mask` position whose token occurred earlier, most recently
   at s′) the target key is `s* = s′ + 1`; the *margin* of a term is `term[t, s*]` minus the mean
   of `term[t, s]` over the other causal keys `s ≤ t, s ≠ s*`. Margins are linear, so the four
   term margins add up to the margin of the full score. Each term's share is its mean margin over
   the mean total margin; the dominant term is the one with the largest share (when the head
   attends to s*, total > 0, that is the term pushing hardest towards s*; when it avoids s*, the
   term pushing hardest away).
2. **Ablations** (induction accuracy and loss on the task's scored positions, the same held-out
   batches as `training.evaluate.per_sequence_metrics` for every row): momentum off everywhere,
   this head's velocity zeroed, each score term removed from this head, and this head's OV output
   mean-ablated.
3. **Token-level QK circuit.** `M[a, b] = c · (ê_a W_Q + b_Q)·(ê_b W_K + b_K) / √d_head`, with
   `ê = ln1(W_E)`: how strongly a query whose current token is a matches a key whose *previous*
   token is b through the current_prev_key path, `c = −(1+γq)γk`. A diagonal-dominant M is the
   token-level signature of an induction lookup. Approximations (also listed in
   `InductionTrace.notes` when they apply): the residual stream is taken to be the token
   embedding alone (positional embeddings and, for layer > 0, everything earlier layers write
   are ignored), and rotary's relative rotation is ignored (at an induction key the relative
   offset between query t and the key's previous slot s′ is the copy period, which varies).
"""

from __future__ import annotations

import copy
import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from momentum_interp.analysis.statistics import pooled_ratio_ci
from momentum_interp.data import InductionTask, Task
from momentum_interp.model.inputs import str_tokens
from momentum_interp.model.shear import TERM_NAMES, previous, score_terms
from momentum_interp.training.evaluate import EVAL_STREAM, per_sequence_metrics, seeded_generator
from momentum_interp.viz.report import Report, ReportSection

# Seed-sequence stream of the batch that estimates the mean of hook_z for the OV mean-ablation
# (training uses stream 0, held-out evaluation stream 1); distinct so the mean is not fitted on
# the sequences it is evaluated on.
MEAN_STREAM = 11
# Sequences per forward pass (the decomposition caches `[batch, head, pos, pos]` scores).
BATCH_SIZE = 64
# Largest vocabulary whose full token-level QK circuit is computed (d_vocab² floats).
QK_MAX_TOKENS = 4096

ABLATION_COLUMNS = ("ablation", "accuracy", "loss", "delta_accuracy", "delta_loss")


# ----------------------------------------------------------------------------- helpers


def default_induction_task(cfg, seq_len: int | None = None) -> InductionTask:
    """An `InductionTask` for a model config: its vocabulary, `seq_len` (default `n_ctx`), copies
    of 4–16 tokens (shortened to fit the context; lengthened where the vocabulary is too small
    to keep every non-copied token distinct)."""
    seq_len = cfg.n_ctx if seq_len is None else seq_len
    max_repeat = min(16, (seq_len - 1) // 2)
    min_repeat = max(min(4, max_repeat), seq_len - cfg.d_vocab, 2)
    if min_repeat > max_repeat:
        raise ValueError(
            f"n_ctx={cfg.n_ctx} and d_vocab={cfg.d_vocab} admit no InductionTask (every "
            "non-copied token must be distinct); pass task=InductionTask(...) with a shorter "
            "seq_len."
        )
    return InductionTask(
        d_vocab=cfg.d_vocab, seq_len=seq_len, min_repeat=min_repeat, max_repeat=max_repeat
    )


def _batching(n_sequences: int) -> tuple[int, int]:
    """`(n_batches, batch_size)`: n_sequences rounded up to whole batches of `BATCH_SIZE`."""
    if n_sequences < 1:
        raise ValueError(f"n_sequences must be >= 1, got {n_sequences}.")
    batch_size = min(BATCH_SIZE, n_sequences)
    return math.ceil(n_sequences / batch_size), batch_size


def _eval_batches(task: Task, device, n_sequences: int, seed: int):
    """The held-out batches `per_sequence_metrics(model, task, n_batches, batch_size, seed)` uses."""
    n_batches, batch_size = _batching(n_sequences)
    for index in range(n_batches):
        yield task.sample(batch_size, seeded_generator(device, seed, EVAL_STREAM, index))


def _check_head(model, layer: int, head: int) -> None:
    cfg = model.cfg
    if not 0 <= layer < cfg.n_layers:
        raise ValueError(f"layer={layer} is out of range for a {cfg.n_layers}-layer model.")
    if not 0 <= head < cfg.n_heads:
        raise ValueError(f"head={head} is out of range for {cfg.n_heads} heads per layer.")


def _causal(n_pos: int, device) -> torch.Tensor:
    return torch.ones(n_pos, n_pos, dtype=torch.bool, device=device).tril()


def signal_hook_names(model, layer: int) -> tuple[str, str]:
    """Names of the hooks holding the (query, key) signal the shear acts on, or, for pre-RoPE
    rotary models, the raw signal that is sheared and then rotated."""
    cfg = model.cfg
    prefix = f"blocks.{layer}.attn."
    if cfg.positional_embedding_type == "rotary" and cfg.shear_placement == "post_rope":
        return prefix + "hook_rot_q", prefix + "hook_rot_k"
    return prefix + "hook_q", prefix + "hook_k"


def term_coefficients(gamma_q: torch.Tensor, gamma_k: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-head coefficient of each term, `[head]`, read off `score_terms` on unit signals (so
    the coefficient formula lives only in `shear.score_terms`)."""
    ones = torch.ones(1, 1, gamma_q.shape[0], 1, dtype=gamma_q.dtype, device=gamma_q.device)
    return {
        name: value[0, :, 0, 0] for name, value in score_terms(ones, ones, gamma_q, gamma_k).items()
    }


def terms_from_signals(
    attn, q: torch.Tensor, k: torch.Tensor, gamma_q: torch.Tensor, gamma_k: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The four score terms, scaled by `1/√d_head`, `[batch, head, q_pos, k_pos]` (unmasked).

    `q, k: [batch, pos, head, d_head]` are the signals `signal_hook_names` names (for the heads
    selected, with their `gamma_*: [head]`); `attn` is the layer's `MomentumAttention`.
    Sequences must start at position 0 (the rotary angles are taken from the position index).
    """
    scale = math.sqrt(attn.cfg.d_head)
    if attn.rotary is None or attn.cfg.shear_placement == "post_rope":
        terms = score_terms(q, k, gamma_q.to(q.dtype), gamma_k.to(q.dtype))
        return {name: value / scale for name, value in terms.items()}
    # Pre-RoPE: R_t(x_t + γ(x_t − x_{t−1})) = (1+γ) R_t x_t − γ R_t x_{t−1}: each slot is rotated
    # at its own position, whichever raw vector it holds.
    rotate = attn.rotary
    signals = {
        "q": rotate(q),
        "q_prev": rotate(previous(q)),
        "k": rotate(k),
        "k_prev": rotate(previous(k)),
    }
    pairs = {
        "current_current": ("q", "k"),
        "current_prev_key": ("q", "k_prev"),
        "prev_query_current": ("q_prev", "k"),
        "prev_prev": ("q_prev", "k_prev"),
    }
    coeffs = term_coefficients(gamma_q.to(q.dtype), gamma_k.to(q.dtype))
    out = {}
    for name, (a, b) in pairs.items():
        dot = torch.einsum("bqhd,bkhd->bhqk", signals[a], signals[b])
        out[name] = coeffs[name][:, None, None] * dot / scale
    return out


def head_score_terms(model, cache, layer: int, head: int | None = None) -> dict[str, torch.Tensor]:
    """The four scaled score terms of one head `[batch, q_pos, k_pos]` (or of every head,
    `[batch, head, q_pos, k_pos]`, when `head` is None) from an `ActivationCache` holding the
    layer's `signal_hook_names`, in float64. On causal entries they sum to `hook_attn_scores`."""
    attn = model.blocks[layer].attn
    q_name, k_name = signal_hook_names(model, layer)
    heads = slice(None) if head is None else slice(head, head + 1)
    with torch.no_grad():
        q, k = cache[q_name][:, :, heads], cache[k_name][:, :, heads]
        dtype = torch.float64  # one head's [batch, pos, pos] maps: cheap, and exact to compare
        terms = terms_from_signals(
            attn,
            q.to(dtype),
            k.to(dtype),
            attn.gamma_q().detach()[heads].to(dtype),
            attn.gamma_k().detach()[heads].to(dtype),
        )
    return terms if head is None else {name: value[:, 0] for name, value in terms.items()}


def induction_keys(
    tokens: torch.Tensor, loss_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(query_mask, key_index)`, both `[batch, pos]`: the induction queries (loss_mask positions
    whose token occurred earlier) and their target key `s* = s′ + 1`, s′ the most recent earlier
    occurrence (−1 where t is not a query)."""
    n_pos = tokens.shape[1]
    pos = torch.arange(n_pos, device=tokens.device)
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & (pos[None, None, :] < pos[None, :, None])
    # Most recent earlier occurrence: the largest s′ < t with the same token.
    last = torch.where(earlier, pos[None, None, :], -1).amax(dim=-1)  # [batch, pos]
    query_mask = loss_mask.bool() & (last >= 0)
    key_index = torch.where(query_mask, last + 1, torch.full_like(last, -1))
    return query_mask, key_index


def margins(x: torch.Tensor, query_mask: torch.Tensor, key_index: torch.Tensor) -> torch.Tensor:
    """Per induction query: `x[t, s*]` minus the mean of `x[t, s]` over the other causal keys.

    `x: [batch, q_pos, k_pos]` (entries above the diagonal are ignored, so −inf masking is fine);
    returns a flat tensor over the queries in `query_mask` (row-major order)."""
    n_pos = x.shape[-1]
    causal = _causal(n_pos, x.device)
    x = torch.where(causal, x, torch.zeros((), dtype=x.dtype, device=x.device))
    row_sum = x.sum(dim=-1)  # [batch, q_pos]
    target = x.gather(-1, key_index.clamp(min=0)[..., None])[..., 0]
    n_other = torch.arange(n_pos, device=x.device, dtype=x.dtype).expand_as(row_sum)  # t keys
    other_mean = (row_sum - target) / n_other.clamp(min=1)
    return (target - other_mean)[query_mask]


def induction_margins(
    terms: dict[str, torch.Tensor],
    scores: torch.Tensor,
    query_mask: torch.Tensor,
    key_index: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-query margins of each term and of the full score (`"total"`), flat over queries."""
    out = {name: margins(value, query_mask, key_index) for name, value in terms.items()}
    out["total"] = margins(scores.to(next(iter(terms.values())).dtype), query_mask, key_index)
    return out


# ----------------------------------------------------------------------------- ablation hooks


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
        gq = attn.gamma_q().detach()[head : head + 1]
        gk = attn.gamma_k().detach()[head : head + 1]
        all_terms = terms_from_signals(attn, q, k, gq, gk)
        delta = sum(all_terms[name][:, 0] for name in terms)
        causal = _causal(scores.shape[-1], scores.device)
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
    model, task: Task, layer: int, head: int, n_sequences: int = 256, seed: int = 0
) -> torch.Tensor:
    """Mean of this head's `hook_z` over batch and positions, `[d_head]`, on batches drawn from
    the `MEAN_STREAM` seed stream (disjoint from the held-out evaluation batches)."""
    device = model.W_E.device
    name = f"blocks.{layer}.attn.hook_z"
    n_batches, batch_size = _batching(n_sequences)
    total, count = None, 0
    for index in range(n_batches):
        batch = task.sample(batch_size, seeded_generator(device, seed, MEAN_STREAM, index))
        _, cache = model.run_with_cache(batch.tokens, names_filter=name, return_type=None)
        z = cache[name][:, :, head].double()
        total = z.sum(dim=(0, 1)) if total is None else total + z.sum(dim=(0, 1))
        count += z.shape[0] * z.shape[1]
    return (total / count).to(model.W_E.dtype)


def _metrics_row(name: str, description: str, per_seq: dict[str, np.ndarray]) -> dict[str, Any]:
    count = max(int(per_seq["n_positions"].sum()), 1)
    ci = pooled_ratio_ci(per_seq["correct"], np.maximum(per_seq["n_positions"], 0))
    return {
        "ablation": name,
        "accuracy": int(per_seq["correct"].sum()) / count,
        "loss": float(per_seq["loss_sum"].sum()) / count,
        "accuracy_low": ci.low,
        "accuracy_high": ci.high,
        "description": description,
    }


def induction_ablations(
    model, layer: int, head: int, task: Task | None = None, n_sequences: int = 256, seed: int = 0
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
    bootstrap interval of the accuracy over sequences and a description.
    """
    _check_head(model, layer, head)
    task = default_induction_task(model.cfg) if task is None else task
    n_batches, batch_size = _batching(n_sequences)

    def measure(target, hooks=()) -> dict[str, np.ndarray]:
        with target.hooks(fwd_hooks=list(hooks)):
            return per_sequence_metrics(target, task, n_batches, batch_size, seed)

    rows = [_metrics_row("clean", "unablated model", measure(model))]
    if model.cfg.smeared_key:
        zero_gamma = measure(model, velocity_zero_hooks(model))
        description = "smear set to identity in every head (hook_k_velocity zeroed)"
    elif model.cfg.shear == "none":  # nothing to switch off (and set_gamma refuses)
        zero_gamma = measure(model, velocity_zero_hooks(model))
        description = "no momentum to switch off (shear='none'): equals clean"
    else:
        no_momentum = copy.deepcopy(model)
        no_momentum.set_gamma(0.0)
        zero_gamma = measure(no_momentum)
        del no_momentum
        description = "γ = 0 in every head (deep copy, set_gamma(0.0))"
    rows.append(_metrics_row("gamma_zero", description, zero_gamma))
    rows.append(
        _metrics_row(
            "velocity_zero_head",
            f"hook_q/k_velocity zeroed for L{layer}H{head} only",
            measure(model, velocity_zero_hooks(model, layer, head)),
        )
    )
    for name in TERM_NAMES:
        rows.append(
            _metrics_row(
                f"remove_{name}",
                f"{name} term subtracted from L{layer}H{head}'s scores",
                measure(model, term_removal_hooks(model, layer, head, [name])),
            )
        )
    mean_z = head_z_mean(model, task, layer, head, n_sequences, seed)
    rows.append(
        _metrics_row(
            "mean_ablate_ov",
            f"L{layer}H{head}'s hook_z replaced by its mean (separate batches)",
            measure(model, mean_ablation_hooks(model, layer, head, mean_z)),
        )
    )
    frame = pd.DataFrame(rows)
    frame["delta_accuracy"] = frame["accuracy"] - frame.loc[0, "accuracy"]
    frame["delta_loss"] = frame["loss"] - frame.loc[0, "loss"]
    rest = [c for c in frame.columns if c not in ABLATION_COLUMNS]
    return frame[list(ABLATION_COLUMNS) + rest]


# ----------------------------------------------------------------------------- QK circuit


@torch.no_grad()
def qk_circuit(
    model, layer: int, head: int, term: str = "current_prev_key", tokens=None
) -> np.ndarray:
    """Token-level QK circuit of one score term, `[n_tokens, n_tokens]` (float64).

    `M[a, b] = c · (ê_a W_Q + b_Q)·(ê_b W_K + b_K) / √d_head` with `ê = ln1(W_E)` and c the term's
    coefficient for this head: for ``current_prev_key`` a is the query's current token and b the
    key's previous token, `c = −(1+γq)γk`; for ``current_current`` both are current tokens,
    `c = (1+γq)(1+γk)`. Positional embeddings, earlier layers and rotary rotation are ignored
    (module docstring). `tokens` selects rows/columns (default: the first `QK_MAX_TOKENS` ids).
    """
    _check_head(model, layer, head)
    if term not in TERM_NAMES:
        raise ValueError(f"unknown term {term!r}; choose from {list(TERM_NAMES)}.")
    block = model.blocks[layer]
    if tokens is None:
        tokens = torch.arange(min(model.cfg.d_vocab, QK_MAX_TOKENS))
    tokens = torch.as_tensor(tokens, dtype=torch.long, device=model.W_E.device)
    embed = block.ln1(model.W_E[tokens]).double()
    attn = block.attn
    q = embed @ attn.W_Q[head].double() + attn.b_Q[head].double()
    k = embed @ attn.W_K[head].double() + attn.b_K[head].double()
    coeff = term_coefficients(
        attn.gamma_q().detach()[head : head + 1].double(),
        attn.gamma_k().detach()[head : head + 1].double(),
    )[term][0]
    return (coeff * (q @ k.T) / math.sqrt(model.cfg.d_head)).cpu().numpy()


def diagonal_scores(matrix: np.ndarray) -> tuple[float, float]:
    """`(top1, z)` over rows with any spread: the fraction whose diagonal entry is the row
    maximum, and the mean z-score of the diagonal entry within its row.

    Constant rows say nothing about matching (a head with no momentum has an all-zero
    `current_prev_key` circuit), so they are skipped; with no informative row both are NaN.
    """
    matrix = np.asarray(matrix, dtype=float)
    std = matrix.std(axis=1)
    ok = std > 0
    if not ok.any():
        return float("nan"), float("nan")
    diag = np.diag(matrix)[ok]
    top1 = float(np.mean(diag >= matrix.max(axis=1)[ok]))
    z = (diag - matrix.mean(axis=1)[ok]) / std[ok]
    return top1, float(z.mean())


# ----------------------------------------------------------------------------- the trace


@dataclass
class InductionTrace(ReportSection):
    """Everything `trace_single_layer_induction` measured about one head (numbers only)."""

    layer: int
    head: int
    gamma_q: float
    gamma_k: float
    model_kind: str
    n_sequences: int
    n_queries: int
    term_margins: dict[str, float]
    total_margin: float
    term_shares: dict[str, float]
    dominant_term: str
    induction_attention: float
    ablations: pd.DataFrame
    qk_matrix: np.ndarray
    qk_diagonal_top1: float
    qk_diagonal_z: float
    qk_current_matrix: np.ndarray
    qk_current_diagonal_top1: float
    qk_current_diagonal_z: float
    qk_labels: list[str]
    example_tokens: np.ndarray
    example_labels: list[str]
    example_terms: dict[str, np.ndarray]
    example_scores: np.ndarray
    example_pairs: list[tuple[int, int]]
    notes: list[str] = field(default_factory=list)

    @property
    def gammas(self) -> dict[str, float]:
        return {"gamma_q": self.gamma_q, "gamma_k": self.gamma_k}

    def summary(self) -> str:
        """A plain-text summary of the margins, ablations and QK circuit."""
        lines = [
            f"Induction trace of L{self.layer}H{self.head} ({self.model_kind}; "
            f"γq = {self.gamma_q:.4g}, γk = {self.gamma_k:.4g})",
            f"{self.n_queries} induction queries in {self.n_sequences} sequences; mean attention "
            f"on the induction key s* = {self.induction_attention:.3f}",
            f"Mean score margin of s* over the other causal keys: {self.total_margin:.4g}",
        ]
        for name in TERM_NAMES:
            lines.append(
                f"  {name:<20} margin {self.term_margins[name]:>+10.4g}   "
                f"share {self.term_shares[name]:>+8.3f}"
            )
        lines.append(f"Dominant term: {self.dominant_term}")
        lines.append("Ablations (induction accuracy / loss, delta vs clean):")
        for row in self.ablations.itertuples():
            lines.append(
                f"  {row.ablation:<26} acc {row.accuracy:.3f} ({row.delta_accuracy:+.3f})   "
                f"loss {row.loss:.3f} ({row.delta_loss:+.3f})"
            )
        lines.append(
            f"QK circuit (current_prev_key): diagonal is the row max in "
            f"{self.qk_diagonal_top1:.1%} of rows, mean diagonal z-score {self.qk_diagonal_z:.2f}"
        )
        lines.append(
            f"QK circuit (current_current, contrast): top-1 {self.qk_current_diagonal_top1:.1%}, "
            f"mean diagonal z-score {self.qk_current_diagonal_z:.2f}"
        )
        lines.extend(f"Note: {note}" for note in self.notes)
        return "\n".join(lines)

    def figures(self) -> dict[str, Any]:
        """Plotly figures: term shares, ablation accuracy, QK circuits, per-term score maps."""
        from momentum_interp.viz import tracing as viz

        figs = {
            "term_shares": viz.term_share_figure(
                self.term_margins, self.term_shares, self.total_margin, self.dominant_term
            ),
            "ablation_accuracy": viz.ablation_figure(self.ablations),
            "qk_circuit": viz.qk_circuit_figure(
                self.qk_matrix,
                self.qk_labels,
                f"L{self.layer}H{self.head} QK circuit, current_prev_key: query token a vs key's "
                "previous token b",
            ),
            "qk_circuit_current": viz.qk_circuit_figure(
                self.qk_current_matrix,
                self.qk_labels,
                f"L{self.layer}H{self.head} QK circuit, current_current (contrast)",
            ),
        }
        for name in TERM_NAMES:
            figs[f"scores_{name}"] = viz.term_score_figure(
                self.example_terms[name], self.example_labels, self.example_pairs, name
            )
        return figs

    @property
    def title(self) -> str:
        return f"Single-layer induction trace: L{self.layer}H{self.head}"

    def add_to(self, report: Report, heading: bool = True) -> Report:
        """Append this trace's sections to a `Report` (e.g. the demo or `report` pages)."""
        figs = self.figures()
        if heading:
            report.heading(self.title)
        report.raw(f"<pre>{html.escape(self.summary())}</pre>")
        for note in self.notes:
            report.paragraph(note, note=True)
        report.heading("Which score term carries the induction attention")
        report.paragraph(
            "Margin of a term = its value at the induction key s* (the token after the earlier "
            "occurrence of the query's token) minus its mean over the other causal keys, averaged "
            "over induction queries; scores are scaled by 1/sqrt(d_head). The four margins add up "
            "to the margin of the full score."
        )
        report.table(
            ["term", "mean margin", "share of total"],
            [[n, f"{self.term_margins[n]:+.4g}", f"{self.term_shares[n]:+.3f}"] for n in TERM_NAMES]
            + [["total", f"{self.total_margin:+.4g}", "1.000"]],
        )
        report.figure(figs["term_shares"])
        report.heading("Ablations")
        columns = list(self.ablations.columns)
        report.table(
            columns,
            [
                [f"{v:.4f}" if isinstance(v, float) else v for v in row]
                for row in self.ablations.itertuples(index=False)
            ],
        )
        report.figure(figs["ablation_accuracy"])
        report.heading("Token-level QK circuit")
        report.table(
            ["term", "diagonal top-1", "mean diagonal z"],
            [
                ["current_prev_key", f"{self.qk_diagonal_top1:.3f}", f"{self.qk_diagonal_z:.3f}"],
                [
                    "current_current",
                    f"{self.qk_current_diagonal_top1:.3f}",
                    f"{self.qk_current_diagonal_z:.3f}",
                ],
            ],
        )
        report.figure(figs["qk_circuit"]).figure(figs["qk_circuit_current"])
        report.heading("Per-term scores on one example sequence")
        report.paragraph("Markers: the induction key s* of each induction query t.")
        for name in TERM_NAMES:
            report.figure(figs[f"scores_{name}"])
        return report

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        """JSON-able numbers; `include_arrays` adds the QK matrices and example score maps."""
        out: dict[str, Any] = {
            "layer": self.layer,
            "head": self.head,
            "gamma_q": self.gamma_q,
            "gamma_k": self.gamma_k,
            "model_kind": self.model_kind,
            "n_sequences": self.n_sequences,
            "n_queries": self.n_queries,
            "term_margins": {k: float(v) for k, v in self.term_margins.items()},
            "total_margin": float(self.total_margin),
            "term_shares": {k: float(v) for k, v in self.term_shares.items()},
            "dominant_term": self.dominant_term,
            "induction_attention": float(self.induction_attention),
            "ablations": [
                {k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}
                for row in self.ablations.to_dict(orient="records")
            ],
            "qk_diagonal_top1": float(self.qk_diagonal_top1),
            "qk_diagonal_z": float(self.qk_diagonal_z),
            "qk_current_diagonal_top1": float(self.qk_current_diagonal_top1),
            "qk_current_diagonal_z": float(self.qk_current_diagonal_z),
            "example_tokens": [int(t) for t in self.example_tokens],
            "example_pairs": [[int(t), int(s)] for t, s in self.example_pairs],
            "notes": list(self.notes),
        }
        if include_arrays:

            def listed(a: np.ndarray) -> list:
                return np.where(np.isfinite(a), a, None).tolist()

            out["qk_matrix"] = listed(self.qk_matrix)
            out["qk_current_matrix"] = listed(self.qk_current_matrix)
            out["example_terms"] = {k: listed(v) for k, v in self.example_terms.items()}
            out["example_scores"] = listed(self.example_scores)
        return out


def _model_kind(cfg) -> str:
    if cfg.smeared_key:
        kind = "smeared keys"
    elif cfg.shear == "none":
        kind = "no momentum"
    else:
        kind = f"momentum shear={cfg.shear}"
    if cfg.positional_embedding_type == "rotary":
        kind += f", rotary {cfg.shear_placement}" if cfg.momentum_enabled else ", rotary"
    else:
        kind += ", learned positions"
    return f"{cfg.n_layers}-layer, {kind}"


def _notes(cfg, layer: int) -> list[str]:
    notes = [
        "QK circuit: the residual stream at the layer is approximated by the token embedding "
        "passed through the layer's ln1"
        + (
            " (learned positional embeddings ignored)"
            if cfg.positional_embedding_type == "standard"
            else ""
        )
        + "."
    ]
    if layer > 0:
        notes.append(
            f"QK circuit: layer {layer} > 0, so everything earlier layers write to the residual "
            "stream is ignored; the score decomposition and ablations are exact."
        )
    if cfg.positional_embedding_type == "rotary":
        notes.append(
            "QK circuit: rotary's relative rotation is ignored (offset 0); at an induction key "
            "the relative offset between the query and the key's previous slot is the copy "
            "period, which varies from sequence to sequence."
        )
    if cfg.smeared_key:
        notes.append(
            "gamma_zero ablation: a smeared key's γ = α − 1 comes from its learned logit and "
            "reaches α = 1 only at +∞, so the smear is set to the identity by zeroing "
            "hook_k_velocity in every head instead of set_gamma(0)."
        )
    return notes


@torch.no_grad()
def trace_single_layer_induction(
    model,
    layer: int,
    head: int,
    task: Task | None = None,
    n_sequences: int = 256,
    seed: int = 0,
) -> InductionTrace:
    """Trace how head `layer.head` performs induction: four-term score margins, ablations and
    the token-level QK circuit (module docstring). The decomposition and ablations use the same
    held-out batches as `per_sequence_metrics(model, task, n_batches, batch_size, seed)`
    (n_sequences rounded up to whole batches of 64)."""
    _check_head(model, layer, head)
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
    for batch in _eval_batches(task, device, n_sequences, seed):
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
    if n_queries == 0:
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
    causal = _causal(ex_tokens.shape[0], device)

    def masked(x: torch.Tensor) -> np.ndarray:
        return torch.where(causal, x.double(), float("nan")).cpu().numpy()

    example_terms = {name: masked(value[row]) for name, value in ex_terms.items()}
    example_pairs = [(int(t), int(ex_keys[t])) for t in ex_queries.nonzero()[:, 0].tolist()]

    qk_tokens = torch.arange(min(cfg.d_vocab, QK_MAX_TOKENS))
    qk_matrix = qk_circuit(model, layer, head, "current_prev_key", qk_tokens)
    qk_current = qk_circuit(model, layer, head, "current_current", qk_tokens)
    top1, z = diagonal_scores(qk_matrix)
    top1_cc, z_cc = diagonal_scores(qk_current)
    tokenizer = getattr(model, "tokenizer", None)

    ablations = induction_ablations(model, layer, head, task, n_sequences, seed)
    model.train(was_training)
    return InductionTrace(
        layer=layer,
        head=head,
        gamma_q=float(attn.gamma_q().detach()[head]),
        gamma_k=float(attn.gamma_k().detach()[head]),
        model_kind=_model_kind(cfg),
        n_sequences=n_seen,
        n_queries=n_queries,
        term_margins=term_margins,
        total_margin=total_margin,
        term_shares=term_shares,
        dominant_term=dominant,
        induction_attention=attention_sum / n_queries,
        ablations=ablations,
        qk_matrix=qk_matrix,
        qk_diagonal_top1=top1,
        qk_diagonal_z=z,
        qk_current_matrix=qk_current,
        qk_current_diagonal_top1=top1_cc,
        qk_current_diagonal_z=z_cc,
        qk_labels=str_tokens(qk_tokens.tolist(), tokenizer),
        example_tokens=ex_tokens.cpu().numpy(),
        example_labels=str_tokens(ex_tokens.tolist(), tokenizer),
        example_terms=example_terms,
        example_scores=masked(ex_scores[row]),
        example_pairs=example_pairs,
        notes=_notes(cfg, layer),
    )
