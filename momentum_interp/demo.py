"""The main job: evaluate and score the bundled zoo side by side, and write an HTML + JSON report."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from momentum_interp.analysis.explorer import ExplorerData, explorer_data
from momentum_interp.analysis.formation_study import SUMMARY_FILE, load_formation
from momentum_interp.analysis.heads import (
    HeadRanking,
    induction_heads_to_trace,
    rank_heads_ci,
)
from momentum_interp.analysis.lm import LMComparison, bundled_comparison
from momentum_interp.analysis.spectral import spectral_report
from momentum_interp.analysis.statistics import Estimate, pooled_ratio_ci
from momentum_interp.analysis.tracing import trace_single_layer_induction
from momentum_interp.data import RepeatedTokensTask, make_task
from momentum_interp.defaults import DEFAULT_SEED, EVAL_SEQUENCES, SCORE_SEQUENCES, TRACE_SEQUENCES
from momentum_interp.evaluation import (
    PATTERN_STREAM,
    batching,
    per_sequence_metrics,
    pooled,
    seeded_generator,
)
from momentum_interp.io import atomic_write_json
from momentum_interp.model.checkpoint import bundled_names, resolve
from momentum_interp.model.transformer import HookedMomentumTransformer
from momentum_interp.naming import head_label
from momentum_interp.narrative.formation import add_formation_section
from momentum_interp.narrative.gamma_depths import add_gamma_star_section
from momentum_interp.narrative.sections import add_section
from momentum_interp.narrative.zoo import (
    PAPER_MODEL,
    TRACE_RULE,
    paper_comparison,
    spectral_headline,
    trace_headline,
    zoo_data,
    zoo_rows,
    zoo_table,
)
from momentum_interp.paths import REPO_ROOT
from momentum_interp.provenance import provenance
from momentum_interp.report import example_tokens
from momentum_interp.results import ZOO_RECORD
from momentum_interp.training.state import load_metrics
from momentum_interp.viz.attention import attention_patterns_html
from momentum_interp.viz.explorer import link_explorer, write_explorer
from momentum_interp.viz.figures import estimate_bars, training_curves
from momentum_interp.viz.report import Report
from momentum_interp.zoo import (
    PAPER_SINGLE_LAYER_PEAK_ACCURACY,
    ZOO,
    ZOO_FORMATION,
    bundled_gamma_studies,
    run_config,
)

EVAL_BATCH = 64


@dataclass
class ZooResult:
    """One zoo model measured on fresh induction data."""

    name: str
    role: str
    model: HookedMomentumTransformer
    accuracy: Estimate
    loss: float
    n_sequences: int
    induction: HeadRanking  # heads ranked by induction score, with intervals and the tied set

    def to_dict(self) -> dict:
        cfg = self.model.cfg
        return {
            "name": self.name,
            "role": self.role,
            "n_layers": cfg.n_layers,
            "shear": cfg.shear,
            "gamma": cfg.gamma,
            "gamma_learnable": cfg.gamma_learnable,
            "smeared_key": cfg.smeared_key,
            "shear_placement": cfg.shear_placement,
            "effective_gamma_q": self.model.gamma_q.tolist(),
            "effective_gamma_k": self.model.gamma_k.tolist(),
            "accuracy": self.accuracy.to_dict(),
            "loss": self.loss,
            "n_sequences": self.n_sequences,
            "induction_ranking": self.induction.to_dict(),
        }


def zoo_names() -> list[str]:
    """Bundled zoo checkpoints in their reporting order; fails clearly if none are present."""
    present = set(bundled_names())
    names = [name for name in ZOO if name in present]
    if not names:
        raise FileNotFoundError(
            f"No zoo checkpoints found among bundled models {sorted(present)}; rebuild them with "
            "`momentum-interp train --config configs/zoo/<name>.toml --out assets/<name>`."
        )
    return names


def measure_zoo(
    n_sequences: int = EVAL_SEQUENCES,
    seed: int = DEFAULT_SEED,
    device: str = "cpu",
    progress: bool = False,
) -> list[ZooResult]:
    """Evaluate every zoo model on the same fresh induction batches and rank all its heads by
    induction score on `score`'s repeated tokens (same seed, `SCORE_SEQUENCES` sequences)."""
    results = []
    for name in tqdm(zoo_names(), desc="measuring the zoo", unit="model", disable=not progress):
        model = HookedMomentumTransformer.from_pretrained(name, device=device)
        task = make_task(**run_config(name)["task"])
        n_batches, batch_size = batching(n_sequences, EVAL_BATCH)
        per_seq = per_sequence_metrics(model, task, n_batches, batch_size, seed=seed)
        accuracy = pooled_ratio_ci(per_seq["correct"], per_seq["n_positions"], seed=seed)
        loss = pooled(per_seq)["loss"]
        ranking = rank_heads_ci(model, "induction", SCORE_SEQUENCES, seed)
        results.append(
            ZooResult(name, ZOO[name], model, accuracy, loss, len(per_seq["correct"]), ranking)
        )
    return results


@dataclass
class HeadPatterns:
    """Attention patterns of several heads on one sequence, each with its label."""

    patterns: torch.Tensor  # [head, q_pos, k_pos]
    str_tokens: list[str]
    labels: list[str]


def best_head_patterns(results: list[ZooResult], seed: int) -> HeadPatterns:
    """Each model's top induction head(s) (every tied one, by `induction_heads_to_trace`'s rule,
    as the explorer and every trace choose) on the same repeated sequence: the paper model's
    head first, the controls after it."""
    d_vocab = min(r.model.cfg.d_vocab for r in results)
    half_len = min(r.model.cfg.n_ctx for r in results) // 2
    tokens = (
        RepeatedTokensTask(d_vocab=d_vocab, half_len=min(half_len, 20))
        .sample(1, seeded_generator("cpu", seed, PATTERN_STREAM))
        .tokens
    )
    patterns, names = [], []
    for r in sorted(results, key=lambda r: r.name != PAPER_MODEL):
        ranking = r.induction if seed == DEFAULT_SEED else induction_heads_to_trace(r.model)
        layers = sorted({layer for layer, _ in ranking.tied})
        names_filter = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
        _, cache = r.model.run_with_cache(tokens, names_filter=names_filter)
        tied = " tied" if len(ranking.tied) > 1 else ""
        for layer, head in ranking.tied:
            patterns.append(cache["pattern", layer][0, head])
            score = ranking.estimate((layer, head)).value
            names.append(f"{r.name} {head_label(layer, head)} ({score:.2f}{tied})")
    return HeadPatterns(torch.stack(patterns), results[0].model.to_str_tokens(tokens[0]), names)


def momentum_analyses(results: list[ZooResult], seed: int) -> dict[str, object]:
    """Circuit traces (every tied top induction head, by `induction_heads_to_trace`'s rule) and
    spectral forensics of the paper's 1-layer momentum model; the committed language-model
    comparison, when this checkout has it."""
    paper = next((r for r in results if r.name == PAPER_MODEL), None)
    if paper is None:
        return {}
    ranking = paper.induction if seed == DEFAULT_SEED else induction_heads_to_trace(paper.model)
    analyses: dict[str, object] = {
        f"trace_{head_label(*head)}": trace_single_layer_induction(
            paper.model, *head, n_sequences=TRACE_SEQUENCES, seed=seed
        )
        for head in ranking.tied
    }
    analyses["spectral"] = spectral_report(paper.model, example_tokens(paper.model, seed, batch=32))
    if (comparison := bundled_comparison()) is not None:
        analyses["language_models"] = LMComparison.load(comparison)
    return analyses


def zoo_record(
    results: list[ZooResult], analyses: dict[str, object], n_sequences: int, seed: int, command: str
) -> dict:
    """The demo's headline numbers (`results/zoo/zoo.json`), from which the README is rendered."""
    task = run_config(results[0].name)["task"]
    record = {
        "provenance": provenance(command, seed),
        "paper_single_layer_peak_accuracy": PAPER_SINGLE_LAYER_PEAK_ACCURACY,
        "data": {"task": task, "n_sequences": n_sequences, "seq_len": task.get("seq_len")},
        "models": [
            {
                "name": r.name,
                "role": r.role,
                "n_layers": r.model.cfg.n_layers,
                "accuracy": r.accuracy.to_dict(),
                "loss": r.loss,
                "n_sequences": r.n_sequences,
                "induction_ranking": r.induction.to_dict(),
            }
            for r in results
        ],
    }
    traces = [a.to_dict() for name, a in analyses.items() if name.startswith("trace_")]
    if traces:
        rule = TRACE_RULE.format(seed=DEFAULT_SEED, n=SCORE_SEQUENCES)
        record["trace"] = {
            "model": PAPER_MODEL,
            "rule": rule,
            "heads": [trace_headline(t) for t in traces],
        }
    if "spectral" in analyses:
        record["spectral"] = spectral_headline(analyses["spectral"].to_dict())
    return record


@dataclass
class DemoPage:
    """What the demo page shows beyond the zoo's results and analyses, measured or loaded
    before it is drawn."""

    patterns: HeadPatterns  # `best_head_patterns`
    histories: dict[str, dict]  # each model's training metrics
    explorer: ExplorerData  # the circuit explorer beside the page
    seed: int
    formation: tuple[dict, list] | None = None  # the committed formation study (`load_formation`)
    gamma_studies: list[dict] | None = None  # the committed fair γ*(N) study, by depth


def demo_page(results: list[ZooResult], seed: int) -> DemoPage:
    """The demo page's own measurements: head patterns, training curves, the explorer (paper
    model first, so the page opens on it), and the committed formation study's tables."""
    ordered = sorted(results, key=lambda r: r.name != PAPER_MODEL)
    return DemoPage(
        patterns=best_head_patterns(results, seed),
        histories={r.name: load_metrics(resolve(r.name)) for r in results},
        explorer=explorer_data({r.name: r.model for r in ordered}, seed=seed),
        seed=seed,
        formation=load_formation(ZOO_FORMATION)
        if (ZOO_FORMATION / SUMMARY_FILE).is_file()
        else None,
        gamma_studies=bundled_gamma_studies(),
    )


def build_report(
    results: list[ZooResult],
    record: dict,
    analyses: dict[str, object],
    page: DemoPage,
    elapsed: float,
) -> Report:
    """The demo page: results table, accuracy chart, training curves, attention patterns (all
    measured before: `measure_zoo`, `momentum_analyses`, `demo_page`; `elapsed` seconds)."""
    report = Report("momentum_interp: single-layer induction zoo")
    report.paragraph(
        "Every model was trained by this project's own configs (configs/zoo/) on the same induction "
        "task and budget, and is evaluated here on fresh sequences it never saw. Accuracy counts "
        "only positions whose next token is predictable from an earlier occurrence; intervals "
        "bootstrap over sequences."
    )
    link_explorer(report, page.explorer)
    report.heading("Results with controls side by side")
    report.table(*zoo_rows(record, code=""))
    report.paragraph(zoo_data(record, code=""), note=True)
    report.paragraph(paper_comparison({r.name: r.accuracy for r in results}), note=True)
    report.figure(
        estimate_bars(
            [r.name for r in results],
            [r.accuracy for r in results],
            "Induction accuracy on held-out sequences (95% CI)",
            reference=PAPER_SINGLE_LAYER_PEAK_ACCURACY,
            y_title="accuracy on predictable positions",
        )
    )
    report.heading("Training curves")
    report.figure(training_curves(page.histories))
    report.heading("Attention of each model's top induction head(s)")
    report.paragraph(
        "A random sequence followed by its exact repeat; an induction head attends from each "
        "repeated token to the token after its first occurrence (the off-diagonal stripe). "
        "Heads tied for the top induction score are all shown."
    )
    patterns = page.patterns
    report.raw(
        attention_patterns_html(patterns.patterns, patterns.str_tokens, patterns.labels).local_src
    )
    if "trace" in record:
        report.paragraph(f"Traced heads of {PAPER_MODEL}: {record['trace']['rule']}.", note=True)
    for analysis in analyses.values():
        add_section(report, analysis)
    if page.gamma_studies:
        add_gamma_star_section(report, page.gamma_studies)
    if page.formation is not None:
        add_formation_section(report, *page.formation)
        report.paragraph(
            f"The section above is drawn from committed tables ({ZOO_FORMATION.relative_to(REPO_ROOT)}), "
            "not measured by this run: the retrained runs' checkpoints are not shipped.",
            note=True,
        )
    report.paragraph(
        f"Measured on {platform.machine()} with {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, seed {page.seed}, in {elapsed:.1f} s."
    )
    return report


def run_demo(
    out_dir: Path,
    n_sequences: int = EVAL_SEQUENCES,
    seed: int = DEFAULT_SEED,
    results_dir: Path | None = None,
    command: str = "momentum-interp demo",
    progress: bool = False,
) -> dict[str, Path]:
    """Measure the zoo and write `report.html`, `results.json` and the circuit explorer
    (`explorer/index.html`) to `out_dir`; with
    `results_dir`, also the headline record `zoo.json` the README is rendered from."""
    started = time.perf_counter()
    results = measure_zoo(n_sequences=n_sequences, seed=seed, progress=progress)
    phases = tqdm(total=3, desc="tracing the paper model", unit="phase", disable=not progress)
    analyses = momentum_analyses(results, seed)
    record = zoo_record(results, analyses, n_sequences, seed, command)
    phases.update()
    phases.set_description("measuring the page's patterns and explorer")
    page = demo_page(results, seed)
    elapsed = time.perf_counter() - started
    phases.update()
    phases.set_description("writing the report and the explorer")
    out_dir = Path(out_dir)
    report = build_report(results, record, analyses, page, elapsed)
    html_path = report.save(out_dir / "report.html")
    json_path = out_dir / "results.json"
    atomic_write_json(
        json_path,
        {
            "provenance": record["provenance"],
            "models": [r.to_dict() for r in results],
            "paper_single_layer_peak_accuracy": PAPER_SINGLE_LAYER_PEAK_ACCURACY,
            "comparison": paper_comparison({r.name: r.accuracy for r in results}),
            **{name: analysis.to_dict() for name, analysis in analyses.items()},
            "gamma_studies": [study["provenance"] for study in page.gamma_studies or []],
            "headline": record,
            "seed": seed,
            "elapsed_s": elapsed,
        },
    )
    explorer = write_explorer(page.explorer, out_dir)
    phases.update()
    phases.close()
    print(zoo_table(record))
    paths = {"report": html_path, "numbers": json_path, "explorer": explorer}
    if results_dir is not None:
        paths["record"] = Path(results_dir) / ZOO_RECORD
        atomic_write_json(paths["record"], record)
    return paths
