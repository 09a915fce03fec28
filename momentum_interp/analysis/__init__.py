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

# Single-layer induction circuit tracing (analysis/tracing.py).
from momentum_interp.analysis.tracing import (  # noqa: E402
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

__all__ += [
    "InductionTrace",
    "diagonal_scores",
    "head_score_terms",
    "induction_ablations",
    "induction_keys",
    "induction_margins",
    "mean_ablation_hooks",
    "qk_circuit",
    "term_removal_hooks",
    "trace_single_layer_induction",
    "velocity_zero_hooks",
]

# Spectral forensics: Bode data, q/k spectra, band orthogonality (analysis/spectral.py).
from momentum_interp.analysis.spectral import (  # noqa: E402
    BANDS,
    SignalSpectra,
    SpectralResult,
    band_orthogonality,
    band_split,
    bode_plot,
    bode_table,
    orthogonality_verdict,
    power_spectrum,
    score_band_terms,
    signal_spectra,
    spectral_report,
)

__all__ += [
    "BANDS",
    "SignalSpectra",
    "SpectralResult",
    "band_orthogonality",
    "band_split",
    "bode_plot",
    "bode_table",
    "orthogonality_verdict",
    "power_spectrum",
    "score_band_terms",
    "signal_spectra",
    "spectral_report",
]
