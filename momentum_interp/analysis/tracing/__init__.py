"""Single-layer induction circuit tracing: which of the four momentum score terms carries one
head's induction attention (`terms`), what ablating each piece costs (`ablations`), and the
token-level QK circuit of the induction lookup (`qk_circuit`), gathered by `trace` into an
`InductionTrace`. The maths is in docs/maths.md ("Single-layer induction trace"); figures and
HTML are in `momentum_interp.viz.tracing`."""

from momentum_interp.analysis.tracing.ablations import (
    ABLATION_COLUMNS,
    head_z_mean,
    induction_ablations,
    mean_ablation_hooks,
    momentum_off,
    term_removal_hooks,
    velocity_zero_hooks,
)
from momentum_interp.analysis.tracing.inputs import check_head, default_induction_task
from momentum_interp.analysis.tracing.qk_circuit import (
    QK_MAX_TOKENS,
    QKCircuit,
    diagonal_scores,
    qk_circuit,
)
from momentum_interp.analysis.tracing.terms import (
    MARGIN_REFERENCES,
    causal_mask,
    competitors,
    head_score_terms,
    induction_keys,
    induction_margins,
    margins,
    signal_hook_names,
    strongest_competitor,
    term_coefficients,
    terms_from_signals,
)
from momentum_interp.analysis.tracing.trace import (
    ExampleScores,
    InductionTrace,
    TermDecomposition,
    trace_single_layer_induction,
)

__all__ = [
    "ABLATION_COLUMNS",
    "MARGIN_REFERENCES",
    "QK_MAX_TOKENS",
    "ExampleScores",
    "InductionTrace",
    "QKCircuit",
    "TermDecomposition",
    "causal_mask",
    "check_head",
    "competitors",
    "default_induction_task",
    "diagonal_scores",
    "head_score_terms",
    "head_z_mean",
    "induction_ablations",
    "induction_keys",
    "induction_margins",
    "margins",
    "mean_ablation_hooks",
    "momentum_off",
    "qk_circuit",
    "signal_hook_names",
    "strongest_competitor",
    "term_coefficients",
    "term_removal_hooks",
    "terms_from_signals",
    "trace_single_layer_induction",
    "velocity_zero_hooks",
]
