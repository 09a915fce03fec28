"""Induction over training: one row of measurements per kept checkpoint, and a phase-change test.

Every checkpoint is measured on one fixed set of repeated random tokens (`score_heads`' set:
`SCORE_SEQUENCES` sequences, seed `DEFAULT_SEED`). The head followed through training is the
final checkpoint's top induction head (the "tracked" head): its induction and prefix-matching
scores with bootstrap intervals over sequences, and its mean induction margin split into the
score terms (four for a shearing model, two for a smeared key; and γ where it is learned).
Beside it each row has every head's point scores, the checkpoint's own top head, the
in-context-learning score, the loss on the repeated half against the first occurrences, and the
other mechanisms' parts: the heads' α for a smeared key; for a deeper plain model the best
layer-0 previous-token score and its K-composition with the tracked head.

Phase change (fixed before any zoo run was measured): the repeated-token loss L(step) must fall
by at least `MIN_TOTAL_DROP` nats over the run, and the largest fall within a factor-2 window of
steps (`L(s) − L(s′)` with `s < s′ ≤ 2s`, kept checkpoints only) must be at least `ABRUPTNESS`
of that total fall. The 1-layer baseline, which cannot do induction, should show none. (Not the
gap to the first occurrences: those are masked out of the training loss, so their loss drifts
up by several nats as a model learns to copy, and would dominate the gap.)

The margins are over the mean of the other causal keys (`tracing.terms.margins`), in score
units (before the softmax). The leading term of a shearing model is the score term whose margin
rose most across the phase window (across the whole run where no phase change was found); a
smeared key's score splits into two of the terms (`docs/maths.md`, section 3), the baselines'
into none.
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
from momentum_interp.naming import head_label, parse_head_label

ABRUPTNESS = 0.5  # share of the run's total repeated-token loss fall within one step doubling
MIN_TOTAL_DROP = 0.25  # nats: a run whose repeated-token loss falls less has nothing to test
WINDOW_FACTOR = 2.0
PATTERN_HALF_LEN = 16  # the pattern snapshots' sequence: 16 random tokens, then them again
PATTERN_PANELS = 5  # log-spaced checkpoints shown (plus the phase window's two ends)


@dataclass
class CheckpointRow:
    """Measurements of one checkpoint (None where a part does not apply to the model)."""

    step: int
    head: str  # the tracked head (the final checkpoint's top induction head)
    induction: float
    induction_low: float
    induction_high: float
    prefix_matching: float
    prefix_matching_low: float
    prefix_matching_high: float
    top_head: str  # this checkpoint's own top induction head
    head_induction: dict[str, float]  # every head's induction score
    head_prefix_matching: dict[str, float]  # every head's prefix-matching score
    icl_score: float
    loss_first: float  # mean loss predicting first occurrences (unpredictable tokens)
    loss_repeat: float  # mean loss predicting the repeated half (predictable by induction)
    term_margins: dict[str, float] | None  # the tracked head's mean margin, by score term
    margin: float | None  # its full mean induction margin (the terms' sum, in score units)
    gamma: float | None  # the tracked head's γ where it is learned
    smear_alpha: list[float] | None  # every head's α for a smeared-key model, [layer][head] flat
    previous_token_layer0: float | None  # best layer-0 previous-token score (deeper models)
    k_composition: float | None  # its K-composition with the tracked head

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
    half_step: int | None  # first kept step past half the total fall (None when none fell)
    threshold: float = ABRUPTNESS
    min_total_drop: float = MIN_TOTAL_DROP
    window_factor: float = WINDOW_FACTOR

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window"] = None if self.window is None else list(self.window)
        return out


@dataclass
class FormationResult:
    """One run's formation table, phase-change test and leading score term."""

    run: str
    head: str  # the tracked head
    rows: list[CheckpointRow]
    phase_change: PhaseChange
    leading_term: str | None  # the term whose margin rose most (shearing models only)
    patterns: dict[int, list[list[float]]]  # step -> the tracked head's [query, key] pattern
    pattern_tokens: list[int]  # the one repeated sequence those patterns are on
    seed: int
    n_sequences: int
    seq_len: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "head": self.head,
            "seed": self.seed,
            "n_sequences": self.n_sequences,
            "seq_len": self.seq_len,
            "phase_change": self.phase_change.to_dict(),
            "leading_term": self.leading_term,
            "rows": [r.to_dict() for r in self.rows],
            "pattern_tokens": self.pattern_tokens,
            "patterns": {str(step): p for step, p in self.patterns.items()},
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
    half = np.flatnonzero(loss <= loss[0] - total / 2) if total > 0 else np.array([], dtype=int)
    half_step = int(steps[half[0]]) if len(half) else None
    return PhaseChange(total, best, abruptness, window, detected, half_step)


def leading_term(rows: Sequence[CheckpointRow], window: tuple[int, int] | None) -> str | None:
    """The score term whose margin rose most from the window's first row to its last (the whole
    run without a window); None for models without score terms."""
    if not rows or rows[0].term_margins is None:
        return None
    start, end = (rows[0].step, rows[-1].step) if window is None else window
    first = next(r for r in rows if r.step == start).term_margins
    last = next(r for r in rows if r.step == end).term_margins
    if first is None or last is None:
        return None
    return max(TERM_NAMES, key=lambda name: last[name] - first[name])


def _term_margins(model, tokens, half_len, offset, head) -> dict[str, float]:
    """The head's mean induction margin on the repeated half, split into its score terms."""
    layer, index = head
    names = [*signal_hook_names(model, layer), f"blocks.{layer}.attn.hook_attn_scores"]
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    terms = head_score_terms(model, cache, layer, index)
    repeat = torch.zeros_like(tokens, dtype=torch.bool)
    repeat[:, offset + half_len :] = True
    query_mask, key_index = induction_keys(tokens, repeat)
    scores = cache[f"blocks.{layer}.attn.hook_attn_scores"][:, index]
    found = induction_margins(terms, scores, query_mask, key_index)
    return {name: float(found[name].mean()) for name in (*TERM_NAMES, "total")}


def _losses(model, tokens, half_len, offset) -> tuple[float, float]:
    """Mean loss predicting the first occurrences and the repeat (targets at index j ≥ 1)."""
    loss = per_token_loss(model(tokens), tokens)  # [batch, pos − 1]: target j = index + 1
    first = loss[:, offset : offset + half_len - 1]  # targets offset+1 .. offset+half_len−1
    repeat = loss[:, offset + half_len : offset + 2 * half_len - 1]  # the repeat after its first
    return float(first.mean()), float(repeat.mean())


@torch.no_grad()
def measure_checkpoint(
    model,
    step: int,
    head: tuple[int, int] | None = None,
    n_sequences: int = SCORE_SEQUENCES,
    seed: int = DEFAULT_SEED,
) -> CheckpointRow:
    """One checkpoint's row (module doc), following `head` (default: this checkpoint's top
    induction head); the same tokens for every checkpoint of a run."""
    model.eval()
    tokens, half_len, offset = repeated_tokens_for(model, n_sequences, None, seed, None)
    tokens = tokens.to(model.W_E.device)
    samples = head_score_samples(model, tokens, half_len=half_len, offset=offset, progress=False)
    table = scores_table(model, samples)
    induction = rank_from_samples(table, samples, "induction", seed)
    head = induction.top if head is None else head
    prefix = rank_from_samples(table, samples, "prefix_matching", seed).estimate(head)
    labels = [head_label(*pair) for pair in zip(table["layer"], table["head"], strict=True)]
    cfg = model.cfg
    shears = cfg.shear != "none" and not cfg.smeared_key
    has_terms = shears or cfg.smeared_key  # a smeared key splits into two of the four terms
    previous, composition = None, None
    if cfg.n_layers > 1 and not shears and not cfg.smeared_key:
        layer0 = table[table["layer"] == 0]
        best = layer0.loc[layer0["previous_token"].idxmax()]
        previous = float(best["previous_token"])
        k_scores = model.all_composition_scores("K")
        composition = float(k_scores[0, int(best["head"]), head[0], head[1]])
    first, repeat = _losses(model, tokens, half_len, offset)
    margins = _term_margins(model, tokens, half_len, offset, head) if has_terms else None
    tracked = induction.estimate(head)
    return CheckpointRow(
        step=step,
        head=head_label(*head),
        induction=tracked.value,
        induction_low=tracked.low,
        induction_high=tracked.high,
        prefix_matching=prefix.value,
        prefix_matching_low=prefix.low,
        prefix_matching_high=prefix.high,
        top_head=head_label(*induction.top),
        head_induction=dict(zip(labels, map(float, table["induction"]), strict=True)),
        head_prefix_matching=dict(zip(labels, map(float, table["prefix_matching"]), strict=True)),
        icl_score=in_context_learning_score(model, tokens, progress=False),
        loss_first=first,
        loss_repeat=repeat,
        term_margins=None if margins is None else {n: margins[n] for n in TERM_NAMES},
        margin=None if margins is None else margins["total"],
        gamma=float(model.blocks[head[0]].attn.gamma[head[1]]) if cfg.gamma_learnable else None,
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


def pattern_steps(steps: Sequence[int], window: tuple[int, int] | None) -> list[int]:
    """The checkpoints whose patterns are kept: the kept steps nearest `PATTERN_PANELS`
    log-spaced steps from the first to the last, and the phase window's ends."""
    kept = np.asarray(sorted(steps))
    targets = np.geomspace(kept[0], kept[-1], min(PATTERN_PANELS, len(kept)))
    picked = {int(kept[np.abs(np.log(kept) - np.log(t)).argmin()]) for t in targets}
    return sorted(picked | set(window or ()))


def _pattern(model, tokens: torch.Tensor, head: tuple[int, int]) -> list[list[float]]:
    """The head's attention pattern on one sequence, [query, key], to 4 decimals."""
    name = f"blocks.{head[0]}.attn.hook_pattern"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return np.round(cache[name][0, head[1]].float().numpy(), 4).tolist()


def formation(
    run: str,
    checkpoints: Sequence[tuple[int, Callable[[], Any]]],
    n_sequences: int = SCORE_SEQUENCES,
    seed: int = DEFAULT_SEED,
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> FormationResult:
    """Measure every `(step, load_model)` checkpoint (loaded one at a time), following the final
    checkpoint's top induction head, and test the repeated-token loss for a phase change."""
    if not checkpoints:
        raise ValueError(f"{run} has no kept checkpoints to measure.")
    ordered = sorted(checkpoints, key=lambda item: item[0])
    final_step, load_final = ordered[-1]
    final_model = load_final()
    last = measure_checkpoint(final_model, final_step, None, n_sequences, seed)
    head = parse_head_label(last.head)
    half_len = min(PATTERN_HALF_LEN, final_model.cfg.n_ctx // 2)
    pattern_tokens, _, _ = repeated_tokens_for(final_model, 1, half_len, seed, None)
    patterns = {final_step: _pattern(final_model, pattern_tokens, head)}
    rows = []
    for step, load in progress(ordered[:-1]):
        model = load()
        rows.append(measure_checkpoint(model, step, head, n_sequences, seed))
        patterns[step] = _pattern(model, pattern_tokens, head)
    rows.append(last)
    test = phase_change([r.step for r in rows], [r.loss_repeat for r in rows])
    kept = pattern_steps([r.step for r in rows], test.window)
    return FormationResult(
        run=run,
        head=last.head,
        rows=rows,
        phase_change=test,
        leading_term=leading_term(rows, test.window),
        patterns={step: patterns[step] for step in kept},
        pattern_tokens=pattern_tokens[0].tolist(),
        seed=seed,
        n_sequences=n_sequences,
        seq_len=2 * (final_model.cfg.n_ctx // 2),
    )
