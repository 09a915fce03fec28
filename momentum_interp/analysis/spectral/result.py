"""The spectral analysis of one model: Bode data, per-layer spectra and band orthogonality, as
data (`SpectralResult.to_dict()`); `momentum_interp.viz.spectral` renders it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from momentum_interp.analysis.spectral.bode import bode_summary, bode_table
from momentum_interp.analysis.spectral.orthogonality import (
    Separation,
    band_orthogonality,
    orthogonality_summary,
)
from momentum_interp.analysis.spectral.spectra import (
    BANDS,
    SignalSpectra,
    json_records,
    signal_spectra,
)
from momentum_interp.architecture import model_label


@dataclass
class SpectralResult:
    """Bode data, per-layer spectra and band orthogonality of one model on one token batch."""

    label: str
    bode: pd.DataFrame
    spectra: dict[int, SignalSpectra]
    orthogonality: pd.DataFrame
    separation: Separation  # what `orthogonality` shows against the paper's prediction
    cutoff: float = math.pi / 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-able numbers (non-finite values as None)."""
        return {
            "label": self.label,
            "cutoff": float(self.cutoff),
            "bands": {name: list(edges) for name, edges in BANDS.items()},
            "bode": json_records(bode_summary(self.bode)),
            "spectra": {str(layer): s.to_dict() for layer, s in self.spectra.items()},
            "orthogonality": json_records(self.orthogonality),
            "separation": self.separation.to_dict(),
        }


def spectral_report(
    model,
    tokens,
    layer: int | None = None,
    cutoff: float = math.pi / 2,
    controls: Mapping[str, Any] | None = None,
    window: str | None = "hann",
    n_points: int = 200,
) -> SpectralResult:
    """Bode data, spectra (one layer, or every layer when `layer` is None) and band orthogonality.

    `controls`: optional `{label: model}` run through `band_orthogonality` on the same tokens
    (e.g. a non-rotary twin), so the verdict compares rotary with non-rotary measurements.
    """
    layers = range(model.cfg.n_layers) if layer is None else [layer]
    label = model_label(model)
    frames = [band_orthogonality(model, tokens, lyr, cutoff, label=label) for lyr in layers]
    for name, other in (controls or {}).items():
        other_layers = [lyr for lyr in layers if lyr < other.cfg.n_layers]
        frames += [
            band_orthogonality(other, tokens, lyr, cutoff, label=name) for lyr in other_layers
        ]
    ortho = pd.concat(frames, ignore_index=True)
    return SpectralResult(
        label=label,
        bode=bode_table(model, n_points),
        spectra={lyr: signal_spectra(model, tokens, lyr, window) for lyr in layers},
        orthogonality=ortho,
        separation=orthogonality_summary(ortho),
        cutoff=cutoff,
    )
