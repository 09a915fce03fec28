"""Report sections with their sentences: `viz.sections.add_section`, the γ*(N) fit's statement
written above its table."""

from __future__ import annotations

from typing import Any

from momentum_interp.analysis.scaling import ScalingFit
from momentum_interp.narrative.scaling import scaling_notes
from momentum_interp.viz import sections
from momentum_interp.viz.report import Report
from momentum_interp.viz.scaling import ScalingSection


def add_section(report: Report, result: Any, heading: bool = True) -> Report:
    """Append `result`'s section to `report`; a γ*(N) fit opens with its statement."""
    if isinstance(result, ScalingFit):
        return ScalingSection(result, scaling_notes(result)).add_to(report, heading)
    return sections.add_section(report, result, heading)
