"""The full analysis of one model: head scores, attention patterns, circuit trace, spectra."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from momentum_interp.analysis.explorer import ExplorerData, explorer_data
from momentum_interp.analysis.heads import HeadRanking, induction_heads_to_trace, rank_heads_ci
from momentum_interp.analysis.scaling import ScalingFit, fit_scaling
from momentum_interp.analysis.spectral import SpectralResult, spectral_report
from momentum_interp.analysis.tracing import (
    InductionTrace,
    default_induction_task,
    trace_single_layer_induction,
)
from momentum_interp.defaults import DEFAULT_SEED, SCORE_SEQUENCES, TRACE_SEQUENCES
from momentum_interp.evaluation import PATTERN_STREAM, seeded_generator
from momentum_interp.io import atomic_write_json
from momentum_interp.model.checkpoint import check_finite, resolve
from momentum_interp.model.transformer import HookedMomentumTransformer
from momentum_interp.naming import head_label
from momentum_interp.narrative.gamma_depths import add_gamma_star_section
from momentum_interp.narrative.rankings import data_statement
from momentum_interp.narrative.scaling import fit_record
from momentum_interp.narrative.sections import add_section
from momentum_interp.narrative.zoo import TRACE_RULE
from momentum_interp.provenance import provenance
from momentum_interp.sweeps.tables import load_table
from momentum_interp.tables import frame_rows
from momentum_interp.training.state import load_metrics
from momentum_interp.viz.attention import attention_patterns_html
from momentum_interp.viz.explorer import link_explorer, write_explorer
from momentum_interp.viz.figures import training_curves
from momentum_interp.viz.report import Report
from momentum_interp.viz.scores import score_heatmaps


def load_model(name_or_path: str | Path, device: str = "cpu") -> HookedMomentumTransformer:
    """A bundled checkpoint by name or a checkpoint directory; non-finite weights are refused."""
    model = HookedMomentumTransformer.from_pretrained(name_or_path, device=device)
    check_finite(model, name_or_path)
    return model


def example_tokens(model: HookedMomentumTransformer, seed: int, batch: int = 1) -> torch.Tensor:
    """Fresh induction-task sequences for patterns and spectra: the model's vocabulary, and the
    longest sequence up to `n_ctx` that the vocabulary can fill with distinct tokens."""
    for seq_len in range(model.cfg.n_ctx, 1, -1):
        try:
            task = default_induction_task(model.cfg, seq_len)
        except ValueError:
            continue
        return task.sample(batch, seeded_generator("cpu", seed, PATTERN_STREAM)).tokens
    raise ValueError(
        f"d_vocab={model.cfg.d_vocab} and n_ctx={model.cfg.n_ctx} admit no induction sequence "
        "to draw examples from; pass your own tokens to the analysis function instead."
    )


@dataclass
class LayerPatterns:
    """Every head's attention in one layer on one example sequence (`example_tokens`)."""

    layer: int
    pattern: torch.Tensor  # [head, q_pos, k_pos]
    str_tokens: list[str]


def layer_patterns(model: HookedMomentumTransformer, layer: int, seed: int) -> LayerPatterns:
    """The attention of every head of `layer` on one example sequence drawn with `seed`."""
    tokens = example_tokens(model, seed)
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.attn.hook_pattern")
    return LayerPatterns(layer, cache["pattern", layer][0], model.to_str_tokens(tokens[0]))


@dataclass
class ModelAnalysis:
    """Everything `momentum-interp report` measures for one model."""

    name: str
    model: HookedMomentumTransformer
    ranking: HeadRanking  # every head by induction score, with intervals and the tied set
    traces: list[InductionTrace]  # every head tied for the top induction score
    spectral: SpectralResult
    seed: int
    patterns: list[LayerPatterns]  # every layer holding a traced head
    explorer: ExplorerData  # the circuit explorer on one repeated random sequence (`seed`)

    @property
    def scores(self) -> pd.DataFrame:
        return self.ranking.scores

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "config": self.model.cfg.to_dict(),
            "head_scores": self.scores.to_dict(orient="records"),
            "in_context_learning": self.scores.attrs.get("in_context_learning"),
            "induction_ranking": self.ranking.to_dict(),
            "trace_rule": TRACE_RULE.format(seed=DEFAULT_SEED, n=SCORE_SEQUENCES),
            "traces": [trace.to_dict() for trace in self.traces],
            "spectral": self.spectral.to_dict(),
        }


def analyse(
    name_or_path: str | Path, n_sequences: int = TRACE_SEQUENCES, seed: int = DEFAULT_SEED
) -> ModelAnalysis:
    """Rank every head (`score`'s defaults, data seed `seed`), trace every head tied for the top
    induction score (`induction_heads_to_trace`'s rule), measure spectra."""
    model = load_model(name_or_path)
    ranking = rank_heads_ci(model, "induction", SCORE_SEQUENCES, seed)
    chosen = ranking if seed == DEFAULT_SEED else induction_heads_to_trace(model)
    traces = [
        trace_single_layer_induction(model, layer, head, n_sequences=n_sequences, seed=seed)
        for layer, head in chosen.tied
    ]
    spectral = spectral_report(model, example_tokens(model, seed, batch=32))
    patterns = [layer_patterns(model, layer, seed) for layer in sorted({t.layer for t in traces})]
    explorer = explorer_data({str(name_or_path): model}, seed=seed)
    return ModelAnalysis(
        str(name_or_path), model, ranking, traces, spectral, seed, patterns, explorer
    )


def add_scores(report: Report, analysis: ModelAnalysis) -> Report:
    """Head-score table, heatmaps and the attention of the traced heads' layers."""
    scores = analysis.scores
    table = analysis.ranking.table()
    report.heading(f"Head scores: {analysis.name}")
    report.paragraph(
        f"{data_statement(analysis.ranking.to_dict())}. Heads by induction score with 95 % bootstrap "
        f"intervals over sequences; tied with the top: {analysis.ranking.tied_label()}."
    )
    report.table(list(table.columns), frame_rows(table))
    icl = scores.attrs.get("in_context_learning")
    if icl is not None:
        report.paragraph(f"In-context-learning score (late minus early loss): {icl:+.3f} nats.")
    for fig in score_heatmaps(scores).values():
        report.figure(fig)
    for p in analysis.patterns:
        report.heading(f"Attention patterns of layer {p.layer}")
        names = [head_label(p.layer, h) for h in range(p.pattern.shape[0])]
        report.raw(attention_patterns_html(p.pattern, p.str_tokens, names).local_src)
    return report


def model_report(
    analysis: ModelAnalysis,
    history: dict | None,
    fit: ScalingFit | None = None,
    gamma_studies: list[dict] | None = None,
) -> Report:
    """The page of a measured model: its explorer's link, head scores, traces, spectra, its
    training curves (`history`, if any), the fair γ*(N) study's section (`gamma_studies`, its
    `study.json` files, if any) and the γ*(N) section of a sweep's `fit` (if any)."""
    report = Report(f"momentum_interp report: {analysis.name}")
    link_explorer(report, analysis.explorer)
    add_scores(report, analysis)
    for trace in analysis.traces:
        add_section(report, trace)
    add_section(report, analysis.spectral)
    if history is not None:
        report.heading("Training curves")
        report.figure(training_curves({analysis.name: history}))
    if gamma_studies:
        add_gamma_star_section(report, gamma_studies)
    if fit is not None:
        add_section(report, fit)
    return report


def write_model_report(
    name_or_path: str | Path,
    out_dir: str | Path,
    n_sequences: int = TRACE_SEQUENCES,
    seed: int = DEFAULT_SEED,
    scaling: str | Path | None = None,
    command: str = "momentum-interp report",
    gamma_studies: list[dict] | None = None,
) -> dict[str, Path]:
    """`report.html` (self-contained), `report.json` and the model's circuit explorer
    (`explorer/index.html`) in `out_dir`; `gamma_studies` (the fair study's `study.json` files)
    add its γ*(N) section, `scaling` (a sweep's results table) a γ*(N) section fitted to it."""
    analysis = analyse(name_or_path, n_sequences=n_sequences, seed=seed)
    try:
        history = load_metrics(resolve(name_or_path))
    except FileNotFoundError:
        history = None
    fit = None if scaling is None else fit_scaling(load_table(scaling))
    numbers = {"provenance": provenance(command, seed), **analysis.to_dict()}
    if fit is not None:
        numbers["scaling"] = {**fit_record(fit), "source": str(scaling)}
    if gamma_studies:
        numbers["gamma_studies"] = [study["provenance"] for study in gamma_studies]
    out_dir = Path(out_dir)
    page = model_report(analysis, history, fit, gamma_studies)
    html_path = page.save(out_dir / "report.html")
    json_path = out_dir / "report.json"
    atomic_write_json(json_path, numbers)
    explorer = write_explorer(analysis.explorer, out_dir)
    return {"report": html_path, "numbers": json_path, "explorer": explorer}
