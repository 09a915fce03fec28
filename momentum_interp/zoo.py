"""The bundled single-layer-induction zoo: which checkpoint plays which role in every comparison."""

from __future__ import annotations

import json

from momentum_interp.model.checkpoint import resolve

ZOO: dict[str, str] = {
    "induction-1l-baseline": "1-layer baseline (negative control)",
    "induction-2l-baseline": "2-layer baseline (the depth momentum claims to replace)",
    "induction-1l-smeared-key": "1-layer smeared key (Olsson et al. control)",
    "induction-1l-momentum": "1-layer momentum, q/k shear post-RoPE, γ=1 (the paper)",
    "induction-1l-momentum-best": "best 1-layer momentum variant found (see its card)",
}

PAPER_SINGLE_LAYER_PEAK_ACCURACY = 0.834  # figure caption of arXiv 2602.04902


def run_config(name: str) -> dict:
    """The training run config saved beside a bundled checkpoint."""
    return json.loads((resolve(name) / "run_config.json").read_text())
