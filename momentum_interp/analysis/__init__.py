"""Analysis of trained models: head scores (more to come: circuits, spectra, scaling fits)."""

from momentum_interp.analysis.scoring import (
    SCORE_COLUMNS,
    copying_scores,
    in_context_learning_score,
    rank_heads,
    repeated_random_tokens,
    score_heads,
    score_heads_on_tokens,
    score_heatmaps,
    token_match_masks,
)

__all__ = [
    "SCORE_COLUMNS",
    "copying_scores",
    "in_context_learning_score",
    "rank_heads",
    "repeated_random_tokens",
    "score_heads",
    "score_heads_on_tokens",
    "score_heatmaps",
    "token_match_masks",
]
