"""The main job: evaluate and score the bundled zoo side by side, and write an HTML + JSON report."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from momentum_interp.analysis.lm import LMComparison, bundled_comparison
from momentum_interp.analysis.scoring import score_heads
from momentum_interp.analysis.spectral import spectral_report
from momentum_interp.analysis.statistics import Estimate, pooled_ratio_ci
from momentum_interp.analysis.tracing import trace_single_layer_induction
from momentum_interp.data import RepeatedTokensTask, make_task
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
from momentum_interp.report import example_tokens
from momentum_interp.sweeps.scaling import bundled_results, fit_scaling, load_table
from momentum_interp.viz.attention import attention_patterns_html
from momentum_interp.viz.figures import estimate_bars, load_metrics, training_curves
from momentum_interp.viz.report import Report
from momentum_interp.viz.sections import add_section
from momentum_interp.zoo import PAPER_SINGLE_LAYER_PEAK_ACCURACY, ZOO, run_config

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
    head_scores: object  # pandas DataFrame from score_heads

    def top_head(self) -> tuple[int, int, float]:
        best = self.head_scores.sort_values("induction", ascending=False).iloc[0]
        return int(best["layer"]), int(best["head"]), float(best["induction"])

    def to_dict(self) -> dict:
        layer, head, score = self.top_head()
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
            "top_induction_head": {"layer": layer, "head": head, "score": score},
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


def measure_zoo(n_sequences: int = 512, seed: int = 1234, device: str = "cpu") -> list[ZooResult]:
    """Evaluate every zoo model on the same fresh induction batches and score all its heads."""
    results = []
    for name in zoo_names():
        model = HookedMomentumTransformer.from_pretrained(name, device=device)
        task = make_task(**run_config(name)["task"])
        n_batches, batch_size = batching(n_sequences, EVAL_BATCH)
        per_seq = per_sequence_metrics(model, task, n_batches, batch_size, seed=seed)
        accuracy = pooled_ratio_ci(per_seq["correct"], per_seq["n_positions"], seed=seed)
        loss = pooled(per_seq)["loss"]
        scores = score_heads(model, n_sequences=100, seed=seed)
        results.append(
            ZooResult(name, ZOO[name], model, accuracy, loss, len(per_seq["correct"]), scores)
        )
    return results


def markdown_table(results: list[ZooResult]) -> str:
    """The results table as Markdown (printed by the demo and quoted in the README)."""
    lines = [
        "| model | role | accuracy on predictable positions [95% CI] | loss | top induction head (score) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        layer, head, score = r.top_head()
        lines.append(
            f"| `{r.name}` | {r.role} | {r.accuracy} | {r.loss:.3f} | L{layer}H{head} ({score:.3f}) |"
        )
    return "\n".join(lines)


def best_head_patterns(results: list[ZooResult], seed: int) -> str:
    """One circuitsvis view: each model's top induction head on the same repeated sequence."""
    d_vocab = min(r.model.cfg.d_vocab for r in results)
    half_len = min(r.model.cfg.n_ctx for r in results) // 2
    tokens = (
        RepeatedTokensTask(d_vocab=d_vocab, half_len=min(half_len, 20))
        .sample(1, seeded_generator("cpu", seed, PATTERN_STREAM))
        .tokens
    )
    patterns, names = [], []
    for r in results:
        layer, head, score = r.top_head()
        _, cache = r.model.run_with_cache(tokens, names_filter=f"blocks.{layer}.attn.hook_pattern")
        patterns.append(cache["pattern", layer][0, head])
        names.append(f"{r.name} L{layer}H{head} ({score:.2f})")
    str_tokens = results[0].model.to_str_tokens(tokens[0])
    return attention_patterns_html(torch.stack(patterns), str_tokens, names).local_src


def momentum_analyses(results: list[ZooResult], seed: int) -> dict[str, object]:
    """Circuit trace and spectral forensics of the paper's 1-layer momentum model; the committed
    γ*(N) sweep's fit and language-model comparison, when this checkout has them."""
    paper = next((r for r in results if r.name == "induction-1l-momentum"), None)
    if paper is None:
        return {}
    layer, head, _ = paper.top_head()
    trace = trace_single_layer_induction(paper.model, layer, head, n_sequences=256, seed=seed)
    spectral = spectral_report(paper.model, example_tokens(paper.model, seed, batch=32))
    analyses: dict[str, object] = {"trace": trace, "spectral": spectral}
    if (table := bundled_results()) is not None:
        analyses["scaling"] = fit_scaling(load_table(table))
    if (comparison := bundled_comparison()) is not None:
        analyses["language_models"] = LMComparison.load(comparison)
    return analyses


def build_report(
    results: list[ZooResult], analyses: dict[str, object], seed: int, elapsed: float
) -> Report:
    """The demo page: results table, accuracy chart, training curves, attention patterns."""
    report = Report("momentum_interp: single-layer induction zoo")
    report.paragraph(
        "Every model was trained by this project's own configs (configs/zoo/) on the same induction "
        "task and budget, and is evaluated here on fresh sequences it never saw. Accuracy counts "
        "only positions whose next token is predictable from an earlier occurrence; intervals "
        "bootstrap over sequences."
    )
    report.heading("Results with controls side by side")
    header = ["model", "role", "layers", "accuracy [95% CI]", "loss", "top induction head", "score"]
    rows = []
    for r in results:
        layer, head, score = r.top_head()
        rows.append(
            [
                r.name,
                r.role,
                r.model.cfg.n_layers,
                str(r.accuracy),
                f"{r.loss:.3f}",
                f"L{layer}H{head}",
                f"{score:.3f}",
            ]
        )
    report.table(header, rows)
    report.paragraph(paper_comparison(results), note=True)
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
    report.figure(training_curves({r.name: load_metrics(resolve(r.name)) for r in results}))
    report.heading("Attention of each model's top induction head")
    report.paragraph(
        "A random sequence followed by its exact repeat; an induction head attends from each "
        "repeated token to the token after its first occurrence (the off-diagonal stripe)."
    )
    report.raw(best_head_patterns(results, seed))
    for analysis in analyses.values():
        add_section(report, analysis)
    report.paragraph(
        f"Measured on {platform.machine()} with {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, in {elapsed:.1f} s."
    )
    return report


def paper_comparison(results: list[ZooResult]) -> str:
    """Plain statement of how our 1-layer momentum numbers compare with the paper's 83.4 %."""
    momentum = sorted(
        (r for r in results if r.name.startswith("induction-1l-momentum")),
        key=lambda r: r.name,
    )
    if not momentum:
        return "No 1-layer momentum model is bundled, so the paper's claim is not tested here."
    paper = PAPER_SINGLE_LAYER_PEAK_ACCURACY
    sentences = [f"The paper reports {paper:.1%} peak single-layer induction accuracy."]
    for r in momentum:
        a = r.accuracy
        verdict = "above" if a.low > paper else "below" if a.high < paper else "consistent with"
        sentences.append(
            f"{r.name} reaches {a.value:.1%} (95% CI {a.low:.1%} to {a.high:.1%}), {verdict} it."
        )
    sentences.append(
        "The paper's task, sizes and budget are unknown, so the numbers are not directly comparable."
    )
    return " ".join(sentences)


def run_demo(out_dir: Path, n_sequences: int = 512, seed: int = 1234) -> dict[str, Path]:
    """Measure the zoo and write `report.html` and `results.json` to `out_dir`."""
    started = time.perf_counter()
    results = measure_zoo(n_sequences=n_sequences, seed=seed)
    print(markdown_table(results))
    analyses = momentum_analyses(results, seed)
    elapsed = time.perf_counter() - started
    out_dir = Path(out_dir)
    html_path = build_report(results, analyses, seed, elapsed).save(out_dir / "report.html")
    json_path = out_dir / "results.json"
    atomic_write_json(
        json_path,
        {
            "models": [r.to_dict() for r in results],
            "paper_single_layer_peak_accuracy": PAPER_SINGLE_LAYER_PEAK_ACCURACY,
            "comparison": paper_comparison(results),
            **{name: analysis.to_dict() for name, analysis in analyses.items()},
            "seed": seed,
            "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
            "torch": torch.__version__,
            "elapsed_s": elapsed,
        },
    )
    return {"report": html_path, "numbers": json_path}
