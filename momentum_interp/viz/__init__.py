"""Rendering: every picture of the toolkit, from results that `momentum_interp.analysis` computes.

Each picture is one function (plotly figures unless noted); pages and notebooks render them
offline. In a notebook, call `viz.notebook.setup()` once first, so plotly figures also survive
`jupyter nbconvert --to html`.

    >>> from momentum_interp import HookedMomentumTransformer, viz
    >>> from momentum_interp.analysis import score_heads, trace_single_layer_induction
    >>> from momentum_interp.analysis.explorer import explorer_data
    >>> model = HookedMomentumTransformer.from_pretrained("induction-1l-momentum")
    >>> viz.notebook.setup()                                  # once per notebook
    >>> _, cache = model.run_with_cache("1 2 3 4 1 2 3 4")
    >>> viz.attention_patterns_html(cache["pattern", 0][0], model.to_str_tokens("1 2 3 4 1 2 3 4"),
    ...                             [f"L0H{h}" for h in range(4)])   # circuitsvis, interactive
    >>> trace = trace_single_layer_induction(model, layer=0, head=3, n_sequences=64)
    >>> viz.trace_figures(trace)                              # the trace's figures, by name
    >>> viz.Explorer(explorer_data(["induction-1l-momentum", "induction-1l-baseline"]))  # explorer

Pictures and where they come from:

- `attention_patterns_html`: several heads' attention patterns (circuitsvis, offline), as an
  `OfflineHTML` that notebooks and pages show.
- `Explorer`: one head and one sequence, a live γ slider, the four score terms
  (`Explorer(analysis.explorer.explorer_data(models, tokens))`).
- `term_share_figure`, `ablation_figure`, `qk_circuit_figure`, `term_score_figure`: the
  single-layer induction trace (`trace_figures(trace)` draws them all).
- `bode_plot`, `spectra_figure`, `ratio_figure`, `orthogonality_figure`: spectral forensics
  (`spectral_figures(result)` draws them all).
- `accuracy_vs_gamma`, `gamma_star_vs_depth`: the γ*(N) scaling sweep; `criterion_by_depth`:
  the two-sided sweep's criterion against γ, one panel per depth, both shears and the controls.
- `loss_by_position`: language models' loss at each position of the context (in-context learning);
  `loss_curves`: an LM comparison's validation loss during training, a colour per arm.
- `training_curves`, `estimate_bars`: training histories and estimates with intervals.
- `score_heatmaps`: one layer × head heatmap per score, `score_heatmaps(score_heads(model))`
  (colours span the data; `zrange=(0, 1)` fixes them).
- `page_html`: any result (trace, spectral, LM comparison) as one self-contained page.

Modules: `style` (the layout rules every figure follows), `notebook` (offline rendering),
`report` (self-contained HTML pages: `Report`, `ReportSection`).
"""

from __future__ import annotations

import importlib

# Exported name → the module defining it; imported on first use, so `import momentum_interp.viz`
# stays cheap and no module here imports another at package import.
_EXPORTS = {
    "attention_patterns_html": "attention",
    "OfflineHTML": "attention",
    "Explorer": "explorer",
    "score_heatmaps": "scores",
    "trace_figures": "tracing",
    "term_share_figure": "tracing",
    "ablation_figure": "tracing",
    "qk_circuit_figure": "tracing",
    "term_score_figure": "tracing",
    "spectral_figures": "spectral",
    "bode_plot": "spectral",
    "spectra_figure": "spectral",
    "ratio_figure": "spectral",
    "orthogonality_figure": "spectral",
    "accuracy_vs_gamma": "scaling",
    "gamma_star_vs_depth": "scaling",
    "criterion_by_depth": "scaling",
    "loss_by_position": "lm",
    "loss_curves": "lm",
    "training_curves": "figures",
    "estimate_bars": "figures",
    "page_html": "sections",
    "Report": "report",
    "ReportSection": "report",
}
_MODULES = ("style", "notebook", "report")

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
