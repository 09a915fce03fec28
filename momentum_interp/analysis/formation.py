"""Induction over training: one row of measurements per kept checkpoint, and a phase-change test.

Every checkpoint is measured on one fixed set of repeated random tokens (`score_heads`' set:
`SCORE_SEQUENCES` sequences, seed `DEFAULT_SEED`): the induction and prefix-matching scores of
the top induction head with bootstrap intervals over sequences, the in-context-learning score,
the loss on the repeated half against the first occurrences, and the mechanism's own parts:
for a shearing model the top head's four score terms as shares of its induction margin (and γ
where it is learned), for a smeared key the heads' α, for a deeper plain model the best layer-0
previous-token score and its K-composition with the top induction head.

Phase change (fixed before any run): the repeated-token loss L(step) must fall by at least
`MIN_TOTAL_DROP` nats over the run, and the largest drop within a factor-2 window of steps
(`L(s) − L(s′)` with `s < s′ ≤ 2s`, kept checkpoints only) must be at least `ABRUPTNESS` of that
total drop. The 1-layer baseline, which cannot do induction, should show none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from momentum_interp.analysis.heads import rank_from_samples
from momentum_interp.analysis.scoring import (
    head_score_samples,
    in_context_learning_score,
    repeated_tokens_for,
    scores_table,
)
from momentum_interp.analysis.tracing.terms import (
    head_score_terms,
    induction_keys,
    induction_margins,
    signal_hook_names,
)
from momentum_interp.defaults import DEFAULT_SEED, SCORE_SEQUENCES
from momentum_interp.evaluation import per_token_loss
from momentum_interp.model.shear import TERM_NAMES
from momentum_interp.naming import head_label

ABRUPTNESS = 0.5  # share of the run's total repeated-token loss drop within one step doubling
MIN_TOTAL_DROP = 0.25  # nats: a run whose repeated-token loss falls less has nothing to test
WINDOW_FACTOR = 2.0


@dataclass
class CheckpointRow:
    """Measurements of one checkpoint (`NaN`/None where a part does not apply to the model)."""

    step: int
    top_head: str
    induction: float
    induction_low: float
    induction_high: float
    prefix_matching: float
    prefix_matching_low: float
    prefix_matching_high: float
    icl_score: float
    loss_first: float  # mean loss predicting first occurrences (unpredictable tokens)
    loss_repeat: float  # mean loss predicting the repeated half (predictable by induction)
    term_shares: dict[str, float] | None  # each score term's share of the top head's margin
    gamma: float | None  # the top head's γ where it is learned
    smear_alpha: list[float] | None  # every head's α for a smeared-key model, [layer][head] flat
    previous_token_layer0: float | None  # best layer-0 previous-token score (deeper models)
    k_composition: float | None  # its K-composition with the top induction head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PhaseChange:
    """The abruptness test on the repeated-token loss (module doc)."""

    total_drop: float
    largest_window_drop: float
    abruptness: float | None  # largest_window_drop / total_drop (None when nothing dropped)
    window: tuple[int, int] | None  # the steps (s, s′) of the largest window drop
    detected: bool
    threshold: float = ABRUPTNESS
    min_total_drop: float = MIN_TOTAL_DROP
    window_factor: float = WINDOW_FACTOR

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window"] = None if self.window is None else list(self.window)
        return out


@dataclass
class FormationResult:
    """One run's formation table and phase-change test."""

    run: str
    rows: list[CheckpointRow]
    phase_change: PhaseChange
    seed: int
    n_sequences: int
    seq_len: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "seed": self.seed,
            "n_sequences": self.n_sequences,
            "seq_len": self.seq_len,
            "phase_change": self.phase_change.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
        }


def phase_change(steps: ArrayLike, loss: ArrayLike) -> PhaseChange:
    """The largest fall of `loss` within a factor-2 window of steps, against its total fall."""
    steps, loss = np.asarray(steps, dtype=float), np.asarray(loss, dtype=float)
    total = float(loss[0] - loss.min()) if len(loss) else 0.0
    best, window = 0.0, None
    for i in range(len(steps)):
        inside = (steps > steps[i]) & (steps <= WINDOW_FACTOR * steps[i])
        for j in np.flatnonzero(inside):
            drop = float(loss[i] - loss[j])
            if drop > best:
                best, window = drop, (int(steps[i]), int(steps[j]))
    abruptness = best / total if total > 0 else None
    detected = total >= MIN_TOTAL_DROP and abruptness is not None and abruptness >= ABRUPTNESS
    return PhaseChange(total, best, abruptness, window, detected)


def _term_shares(model, tokens, half_len, offset, head) -> dict[str, float]:
    """Each score term's share of the head's mean induction margin on the repeated half."""
    layer, index = head
    names = [*signal_hook_names(model, layer), f"blocks.{layer}.attn.hook_attn_scores"]
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    terms = head_score_terms(model, cache, layer, index)
    repeat = torch.zeros_like(tokens, dtype=torch.bool)
    repeat[:, offset + half_len :] = True
    query_mask, key_index = induction_keys(tokens, repeat)
    scores = cache[f"blocks.{layer}.attn.hook_attn_scores"][:, index]
    found = induction_margins(terms, scores, query_mask, key_index)
    total = float(found["total"].mean())
    return {name: float(found[name].mean()) / total for name in TERM_NAMES}


def _losses(model, tokens, half_len, offset) -> tuple[float, float]:
    """Mean loss predicting the first occurrences and the repeat (targets at index j ≥ 1)."""
    loss = per_token_loss(model(tokens), tokens)  # [batch, pos − 1]: target j = index + 1
    first = loss[:, offset : offset + half_len - 1]  # targets offset+1 .. offset+half_len−1
    repeat = loss[:, offset + half_len : offset + 2 * half_len - 1]  # the repeat after its first
    return float(first.mean()), float(repeat.mean())


@torch.no_grad()
def measure_checkpoint(
    model, step: int, n_sequences: int = SCORE_SEQUENCES, seed: int = DEFAULT_SEED
) -> CheckpointRow:
    """One checkpoint's row (module doc); the same tokens for every checkpoint of a run."""
    model.eval()
    tokens, half_len, offset = repeated_tokens_for(model, n_sequences, None, seed, None)
    tokens = tokens.to(model.W_E.device)
    samples = head_score_samples(model, tokens, half_len=half_len, offset=offset, progress=False)
    table = scores_table(model, samples)
    induction = rank_from_samples(table, samples, "induction", seed)
    head = induction.top
    prefix = rank_from_samples(table, samples, "prefix_matching", seed).estimate(head)
    cfg = model.cfg
    attn = model.blocks[head[0]].attn
    shears = cfg.shear != "none" and not cfg.smeared_key
    previous, composition = None, None
    if cfg.n_layers > 1 and not shears and not cfg.smeared_key:
        layer0 = table[table["layer"] == 0]
        best = layer0.loc[layer0["previous_token"].idxmax()]
        previous = float(best["previous_token"])
        k_scores = model.all_composition_scores("K")
        composition = float(k_scores[0, int(best["head"]), head[0], head[1]])
    first, repeat = _losses(model, tokens, half_len, offset)
    top = induction.estimate(head)
    return CheckpointRow(
        step=step,
        top_head=head_label(*head),
        induction=top.value,
        induction_low=top.low,
        induction_high=top.high,
        prefix_matching=prefix.value,
        prefix_matching_low=prefix.low,
        prefix_matching_high=prefix.high,
        icl_score=in_context_learning_score(model, tokens, progress=False),
        loss_first=first,
        loss_repeat=repeat,
        term_shares=_term_shares(model, tokens, half_len, offset, head) if shears else None,
        gamma=float(attn.gamma[head[1]]) if cfg.gamma_learnable else None,
        smear_alpha=[
            float(a)
            for block in model.blocks
            for a in torch.sigmoid(block.attn.smear_logit.detach())
        ]
        if cfg.smeared_key
        else None,
        previous_token_layer0=previous,
        k_composition=composition,
    )


def formation(
    run: str,
    checkpoints: Sequence[tuple[int, Callable[[], Any]]],
    n_sequences: int = SCORE_SEQUENCES,
    seed: int = DEFAULT_SEED,
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> FormationResult:
    """Measure every `(step, load_model)` checkpoint (loaded one at a time) and test the
    repeated-token loss for a phase change."""
    rows, seq_len = [], 0
    for step, load in progress(checkpoints):
        model = load()
        seq_len = 2 * (model.cfg.n_ctx // 2)
        rows.append(measure_checkpoint(model, step, n_sequences, seed))
    rows.sort(key=lambda r: r.step)
    test = phase_change([r.step for r in rows], [r.loss_repeat for r in rows])
    return FormationResult(run, rows, test, seed, n_sequences, seq_len)
