"""Any analysis result rendered: its section of a report, or a page of its own."""

from __future__ import annotations

from typing import Any

from momentum_interp.analysis.lm import LMComparison
from momentum_interp.analysis.scaling import ScalingFit
from momentum_interp.analysis.spectral import SpectralResult
from momentum_interp.analysis.tracing import InductionTrace
from momentum_interp.viz.captions import spectral_title, trace_title
from momentum_interp.viz.lm import add_lm_comparison
from momentum_interp.viz.report import Report
from momentum_interp.viz.scaling import ScalingSection
from momentum_interp.viz.spectral import add_spectral
from momentum_interp.viz.tracing import add_trace


def add_section(report: Report, result: Any, heading: bool = True) -> Report:
    """Append `result`'s sections to `report` with the renderer of its type."""
    if isinstance(result, InductionTrace):
        return add_trace(report, result, heading)
    if isinstance(result, SpectralResult):
        return add_spectral(report, result, heading)
    if isinstance(result, LMComparison):
        return add_lm_comparison(report, result, heading)
    if isinstance(result, ScalingFit):
        return ScalingSection(result).add_to(report, heading)
    raise TypeError(f"No renderer for {type(result).__name__}; add one to viz.sections.")


def title(result: Any) -> str:
    """The heading of `result`'s section."""
    if isinstance(result, InductionTrace):
        return trace_title(result)
    if isinstance(result, SpectralResult):
        return spectral_title(result)
    if isinstance(result, ScalingFit):
        return ScalingSection.title
    return result.title


def page_html(result: Any) -> str:
    """A self-contained page holding only `result` (plotly.js inlined by `Report`)."""
    return add_section(Report(title(result)), result, heading=False).to_html()
