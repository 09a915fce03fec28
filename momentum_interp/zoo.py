"""The bundled zoo: which checkpoint plays which role in every comparison (its model cards are
written by `narrative.cards`).

`ZOO` holds the single-layer-induction models (integer tokens); `TEXT_ZOO` the small language
models of the LM comparison (Python standard library text, with their BPE tokenizers)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from momentum_interp.model.checkpoint import resolve
from momentum_interp.paths import REPO_ROOT
from momentum_interp.training.state import load_metrics

ZOO: dict[str, str] = {
    "induction-1l-baseline": "1-layer baseline (negative control)",
    "induction-2l-baseline": "2-layer baseline (the depth momentum claims to replace)",
    "induction-1l-smeared-key": "1-layer smeared key (Olsson et al. control)",
    "induction-1l-momentum": "1-layer momentum, q/k shear post-RoPE, γ=1 (the paper)",
    "induction-1l-momentum-best": "best 1-layer momentum variant found: keys-only shear, γ=1 (see its card)",
}

TEXT_ZOO: dict[str, str] = {
    "lm-baseline-S": "2-layer language model on the Python standard library, no momentum (baseline)",
    "lm-momentum-S": "the same with momentum: q/k shear post-RoPE, γ = 1 (the paper's)",
    "lm-smeared-key-S": "the same with a smeared key (Olsson et al. control)",
}
LM_COMPARISON = REPO_ROOT / "results" / "lm" / "comparison.csv"
# The zoo's configs retrained with a checkpoint history, 3 seeds (configs/studies/zoo_history.toml),
# measured by `momentum-interp formation results/zoo_history --runs-dir runs/studies/zoo_history`.
ZOO_FORMATION = REPO_ROOT / "results" / "zoo_history" / "formation"
# The fair γ*(N) study (configs/studies/fair_gamma_star_n*.toml), one study.json per depth decided
# by `momentum-interp study`: the γ*(N) section of the demo and model reports.
FAIR_GAMMA_STUDY = REPO_ROOT / "results" / "fair_gamma_star"


def bundled_gamma_studies() -> list[dict]:
    """Every committed depth of the fair γ*(N) study (its `study.json` files), by depth."""
    return [json.loads(path.read_text()) for path in sorted(FAIR_GAMMA_STUDY.glob("n*/study.json"))]


LM_REFERENCE = "lm-baseline-3S"

PAPER_SINGLE_LAYER_PEAK_ACCURACY = 0.834  # figure caption of arXiv 2602.04902


def run_config(name: str) -> dict:
    """The training run config saved beside a bundled checkpoint."""
    return json.loads((resolve(name) / "run_config.json").read_text())


def final_eval(directory: Path) -> dict:
    """The last held-out evaluation recorded in a run's `metrics.json`."""
    return load_metrics(directory)["eval"][-1]


def variant_record(name: str, run_dir: Path, config: str) -> dict:
    """One variant's run record: its attention variant and last held-out evaluation."""
    return {
        "name": name,
        "config": config,
        "model": json.loads((Path(run_dir) / "run_config.json").read_text())["model"],
        "final_eval": final_eval(run_dir),
        "source": str(run_dir),
    }


def arm_role(model_config: Mapping[str, Any]) -> str:
    """Which of the zoo's roles a model config plays, read from the config (not its name):
    `smeared_key`, `momentum` (any shear), `baseline_1l` or `baseline_deeper`."""
    if model_config.get("smeared_key"):
        return "smeared_key"
    if model_config.get("shear", "none") != "none":
        return "momentum"
    return "baseline_1l" if model_config.get("n_layers", 1) == 1 else "baseline_deeper"
