"""The bundled single-layer-induction zoo: which checkpoint plays which role in every comparison."""

from __future__ import annotations

import json
from pathlib import Path

from momentum_interp.architecture import attention_variant as architecture
from momentum_interp.model.checkpoint import resolve

ZOO: dict[str, str] = {
    "induction-1l-baseline": "1-layer baseline (negative control)",
    "induction-2l-baseline": "2-layer baseline (the depth momentum claims to replace)",
    "induction-1l-smeared-key": "1-layer smeared key (Olsson et al. control)",
    "induction-1l-momentum": "1-layer momentum, q/k shear post-RoPE, γ=1 (the paper)",
    "induction-1l-momentum-best": "best 1-layer momentum variant found: keys-only shear, γ=1 (see its card)",
}

PAPER_SINGLE_LAYER_PEAK_ACCURACY = 0.834  # figure caption of arXiv 2602.04902


def run_config(name: str) -> dict:
    """The training run config saved beside a bundled checkpoint."""
    return json.loads((resolve(name) / "run_config.json").read_text())


def final_eval(directory: Path) -> dict:
    """The last held-out evaluation recorded in a run's `metrics.json`."""
    return json.loads((Path(directory) / "metrics.json").read_text())["eval"][-1]


def card_markdown(name: str, variants: dict[str, Path] | None = None) -> str:
    """A model card from the checkpoint's own run config and metrics history (nothing typed in)."""
    directory = resolve(name)
    run = run_config(name)
    metrics = json.loads((directory / "metrics.json").read_text())
    model, task, train = run["model"], run["task"], run["train"]
    evals = metrics["eval"]
    last = evals[-1]
    stride = max(1, len(evals) // 8)
    curve = evals[stride - 1 :: stride]
    if curve[-1] is not last:
        curve.append(last)
    lines = [
        f"# {name}",
        "",
        f"Role: {ZOO.get(name, 'zoo model')}.",
        "",
        f"- Architecture: {model['n_layers']} attention-only layer(s), {model['n_heads']} heads, "
        f"d_model {model['d_model']}, d_head {model['d_head']}, {model.get('normalization_type', 'LN')} "
        f"norm, {model.get('positional_embedding_type', 'standard')} positions; {architecture(model)}.",
        f"- Task: `{task['name']}` {json.dumps({k: v for k, v in task.items() if k != 'name'})}.",
        f"- Training: {train['steps']} steps × {train['batch_size']} sequences, AdamW lr {train['lr']} "
        f"(warmup {train['warmup_steps']}, cosine), seed {train['seed']}.",
        f"- Rebuild: `momentum-interp train --config configs/zoo/{name}.toml --out assets/{name}`.",
        "",
        f"Final held-out accuracy on predictable positions: **{last['accuracy']:.3f}** "
        f"({last['correct']}/{last['n_positions']} positions), loss {last['loss']:.3f}. "
        "`momentum-interp demo` re-measures it on fresh data with a 95 % interval.",
        "",
        "| step | held-out accuracy | held-out loss |",
        "|---:|---:|---:|",
        *[f"| {e['step']} | {e['accuracy']:.3f} | {e['loss']:.3f} |" for e in curve],
    ]
    if variants:
        lines += [
            "",
            "## Variants tried (same task, budget and seed)",
            "",
            "| variant | attention | final held-out accuracy | loss |",
            "|---|---|---:|---:|",
        ]
        for label, path in sorted(variants.items(), key=lambda kv: -final_eval(kv[1])["accuracy"]):
            result = final_eval(path)
            variant_model = json.loads((Path(path) / "run_config.json").read_text())["model"]
            lines.append(
                f"| {label} | {architecture(variant_model)} | {result['accuracy']:.3f} | {result['loss']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def write_cards(variants_dir: str | Path = "runs/variants") -> list[Path]:
    """Write `card.md` beside every bundled zoo checkpoint; the best variant's lists the search."""
    from momentum_interp.io import atomic_write_text
    from momentum_interp.model.checkpoint import bundled_names

    variants = {
        p.name: p for p in sorted(Path(variants_dir).glob("*")) if (p / "metrics.json").is_file()
    }
    written = []
    for name in [n for n in ZOO if n in bundled_names()]:
        searched = variants if name == "induction-1l-momentum-best" else None
        path = resolve(name) / "card.md"
        atomic_write_text(path, card_markdown(name, searched))
        written.append(path)
    return written
