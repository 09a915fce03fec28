"""The zoo's model cards (`assets/<name>/card.md`): each from the checkpoint's own run config and
metrics, the best variant's from the committed variants record, a text model's from the
committed LM comparison. Nothing in them is typed in."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from momentum_interp.architecture import attention_variant as architecture
from momentum_interp.model.checkpoint import resolve
from momentum_interp.tables import markdown_table
from momentum_interp.training.state import load_metrics
from momentum_interp.zoo import (
    LM_COMPARISON,
    LM_REFERENCE,
    TEXT_ZOO,
    ZOO,
    run_config,
)


def card_markdown(name: str, variants: dict | None = None) -> str:
    """A model card from the checkpoint's own run config and metrics history, and (for the best
    variant) the committed variants record `results/zoo/variants.json` (nothing typed in)."""
    directory = resolve(name)
    run = run_config(name)
    metrics = load_metrics(directory)
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
        markdown_table(
            ["step", "held-out accuracy", "held-out loss"],
            [[e["step"], f"{e['accuracy']:.3f}", f"{e['loss']:.3f}"] for e in curve],
            align="rrr",
        ),
    ]
    if variants:
        lines += [
            "",
            "## Variants tried (same task, budget and seed)",
            "",
            "From the committed record `results/zoo/variants.json` (last held-out evaluation of "
            "each training run):",
            "",
            _variants_table(
                variants["variants"], "final_eval", "final held-out", "record", "`{source}`"
            ),
        ]
        if variants.get("unrecorded"):
            lines += [
                "",
                "**Not backed by a committed record.** These variants' run directories were never "
                f"committed; {variants['unrecorded_note']} What an earlier version of this card "
                "reported for them:",
                "",
                _variants_table(
                    variants["unrecorded"],
                    "reported",
                    "reported",
                    "rerun with",
                    "`momentum-interp train --config {config} --out runs/variants/{name}`",
                ),
                "",
                "`python -m momentum_interp.results record-variants NAME=runs/variants/NAME …` then "
                "records retrained variants, and `python -m momentum_interp.results render` "
                "re-renders this card.",
            ]
    return "\n".join(lines) + "\n"


def _variants_table(
    entries: list[dict], result: str, label: str, last_header: str, last_cell: str
) -> str:
    """Variants, best first: attention, accuracy and loss of `entry[result]`, and `last_cell`
    (a format string over the entry's fields)."""
    rows = [
        [
            v["name"],
            architecture(v["model"]),
            f"{v[result]['accuracy']:.3f}",
            f"{v[result]['loss']:.3f}",
            last_cell.format(**v),
        ]
        for v in sorted(entries, key=lambda v: -v[result]["accuracy"])
    ]
    header = ["variant", "attention", f"{label} accuracy", f"{label} loss", last_header]
    return markdown_table(header, rows, align="llrrl")


def card_paths_and_text(variants: dict) -> dict[Path, str]:
    """`card.md` path and text of every bundled zoo model; the best variant's lists the search."""
    from momentum_interp.model.checkpoint import bundled_names

    present = bundled_names()
    cards = {
        resolve(name) / "card.md": card_markdown(
            name, variants if name == "induction-1l-momentum-best" else None
        )
        for name in ZOO
        if name in present
    }
    cards.update({resolve(n) / "card.md": text_card_markdown(n) for n in TEXT_ZOO if n in present})
    return cards


def lm_comparison_row(run: str) -> dict[str, str]:
    """One run's row of the committed LM comparison (`results/lm/comparison.csv`)."""
    with LM_COMPARISON.open() as f:
        rows = {row["run"]: row for row in csv.DictReader(f)}
    if run not in rows:
        raise ValueError(f"{run!r} is not in {LM_COMPARISON}; rerun scripts/lm_comparison.sh.")
    return rows[run]


def text_card_markdown(name: str) -> str:
    """A text model's card: its run config, and its losses as the committed LM comparison
    measured them for the same run (config `name`, seed 0)."""
    run = run_config(name)
    model, task, train = run["model"], run["task"], run["train"]
    row = lm_comparison_row(f"{name}-seed{train['seed']}")
    val, span = float(row["val_loss"]), float(row["induction_loss"])
    lines = [
        f"# {name}",
        "",
        f"Role: {TEXT_ZOO[name]}.",
        "",
        f"- Architecture: {model['n_layers']} layers with MLPs (d_mlp {model['d_mlp']}), "
        f"{model['n_heads']} heads, d_model {model['d_model']}, d_head {model['d_head']}, "
        f"{model.get('normalization_type', 'LN')} norm, {model.get('positional_embedding_type')} "
        f"positions; {architecture(model)}; {int(row['n_params']):,} parameters.",
        f"- Data: the Python standard library's source, a {task['tokenizer_vocab_size']}-token "
        f"byte-level BPE trained on it (`tokenizer.json`, beside the weights), windows of "
        f"{task['seq_len']} tokens.",
        f"- Training: {train['steps']} steps × {train['batch_size']} windows, AdamW lr "
        f"{train['lr']} (warmup {train['warmup_steps']}, cosine), seed {train['seed']}.",
        f"- Rebuild: `momentum-interp train --config configs/lm/{name}.toml --seed "
        f"{train['seed']} --out assets/{name}` (the same run as the comparison's).",
        "",
        f"Held-out next-token loss ({int(row['n_tokens']):,} validation tokens, from the "
        f"committed `results/lm/comparison.csv`, run `{row['run']}`): **{val:.3f}**, "
        f"{100 * float(row['val_loss_gap']):+.1f} % against the {LM_REFERENCE} baseline; on "
        f"repeated-span positions ({100 * float(row['induction_fraction']):.0f} % of tokens) "
        f"{span:.3f} ({100 * float(row['induction_loss_gap']):+.1f} %). "
        "`momentum-interp lm-compare` re-measures it. That comparison trained every arm at one "
        "shared, untuned learning rate; `results/lm_fair/` redoes it with each arm's rate tuned.",
        "",
        "```python",
        "from momentum_interp import HookedMomentumTransformer",
        f'model = HookedMomentumTransformer.from_pretrained("{name}")',
        'logits, cache = model.run_with_cache("def add(a, b):\\n    return a + b")',
        "```",
    ]
    return "\n".join(lines) + "\n"
