"""Analysis of trained models: head scores, single-layer circuit tracing, spectral forensics; the
scores, rankings and explorer also run on TransformerLens's own models (`TLModel`).

Results are data (dataclasses and DataFrames with `to_dict()`); `momentum_interp.viz` renders them."""

from momentum_interp.analysis.heads import HeadRanking, induction_heads_to_trace, rank_heads_ci
from momentum_interp.analysis.protocol import TLModel, has_momentum_attention
from momentum_interp.analysis.scoring import (
    SCORES,
    HeadScore,
    copying_scores,
    in_context_learning_score,
    rank_heads,
    repeated_random_tokens,
    score_heads,
    score_heads_on_tokens,
    token_match_masks,
)
from momentum_interp.analysis.spectral import (
    BANDS,
    SignalSpectra,
    SpectralResult,
    band_orthogonality,
    band_split,
    bode_table,
    orthogonality_summary,
    power_spectrum,
    score_band_terms,
    signal_spectra,
    spectral_report,
)
from momentum_interp.analysis.tracing import (
    InductionTrace,
    diagonal_scores,
    head_score_terms,
    induction_ablations,
    induction_keys,
    induction_margins,
    mean_ablation_hooks,
    qk_circuit,
    term_removal_hooks,
    trace_single_layer_induction,
    velocity_zero_hooks,
)
from momentum_interp.analysis.what_if import what_if_shear_hooks

__all__ = [
    "BANDS",
    "HeadRanking",
    "induction_heads_to_trace",
    "rank_heads_ci",
    "HeadScore",
    "SCORES",
    "InductionTrace",
    "SignalSpectra",
    "TLModel",
    "SpectralResult",
    "band_orthogonality",
    "band_split",
    "bode_table",
    "copying_scores",
    "diagonal_scores",
    "has_momentum_attention",
    "head_score_terms",
    "in_context_learning_score",
    "induction_ablations",
    "induction_keys",
    "induction_margins",
    "mean_ablation_hooks",
    "orthogonality_summary",
    "power_spectrum",
    "qk_circuit",
    "rank_heads",
    "repeated_random_tokens",
    "score_band_terms",
    "score_heads",
    "score_heads_on_tokens",
    "signal_spectra",
    "spectral_report",
    "term_removal_hooks",
    "token_match_masks",
    "trace_single_layer_induction",
    "velocity_zero_hooks",
    "what_if_shear_hooks",
]
