"""Spectral forensics: the filter each head applies (`bode`), the spectra it meets (`spectra`),
and band separation (`orthogonality`), gathered by `report` into a `SpectralResult`.

The maths of the shear lives in `momentum_interp.model.shear` (`frequency_response`,
`gain_squared`, `gain_db`, `phase`; docs/maths.md, "The shear as a filter"); this package only
evaluates it per head and measures activations against it. Figures and HTML are in
`momentum_interp.viz.spectral`.
"""

from momentum_interp.analysis.spectral.bode import (
    BODE_COLUMNS,
    bode_summary,
    bode_table,
    head_gammas,
    nyquist_gain_db,
    omega_grid,
)
from momentum_interp.analysis.spectral.orthogonality import (
    BAND_TERMS,
    OUTCOMES,
    SEPARATION_FACTOR,
    BandShare,
    Separation,
    band_orthogonality,
    band_split,
    channel_frequencies,
    high_frequency_channels,
    orthogonality_summary,
    score_band_terms,
)
from momentum_interp.analysis.spectral.result import SpectralResult, spectral_report
from momentum_interp.analysis.spectral.spectra import (
    BANDS,
    SIGNALS,
    SignalSpectra,
    frequencies,
    hook_names,
    parseval_weights,
    power_spectrum,
    signal_spectra,
)
from momentum_interp.architecture import model_label

__all__ = [
    "BANDS",
    "BAND_TERMS",
    "BODE_COLUMNS",
    "OUTCOMES",
    "SEPARATION_FACTOR",
    "SIGNALS",
    "BandShare",
    "Separation",
    "SignalSpectra",
    "SpectralResult",
    "band_orthogonality",
    "band_split",
    "channel_frequencies",
    "bode_summary",
    "bode_table",
    "frequencies",
    "head_gammas",
    "high_frequency_channels",
    "hook_names",
    "model_label",
    "nyquist_gain_db",
    "omega_grid",
    "orthogonality_summary",
    "parseval_weights",
    "power_spectrum",
    "score_band_terms",
    "signal_spectra",
    "spectral_report",
]
