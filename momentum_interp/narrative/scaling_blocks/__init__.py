"""The README's γ*(N) blocks, one module per kind of study: `fit` (a sweep fitted to a power
law), `pilot` (a pilot and a longer-budget probe), `sweep` (the two-sided sweep). Each renderer
takes the loaded result files and the study's facts (paths, commands) that
`narrative.readme.blocks()` passes it; none knows a study's paths."""

from momentum_interp.narrative.scaling_blocks.fit import readme_block, scaling_block
from momentum_interp.narrative.scaling_blocks.pilot import (
    mqar_pilot_block,
    mqar_probe_block,
    pilot_block,
    probe_block,
)
from momentum_interp.narrative.scaling_blocks.sweep import (
    mqar_sweep_block,
    saturation_sentence,
    sweep_block,
    sweep_depth_rows,
)

__all__ = [
    "mqar_pilot_block",
    "mqar_probe_block",
    "mqar_sweep_block",
    "pilot_block",
    "probe_block",
    "readme_block",
    "saturation_sentence",
    "scaling_block",
    "sweep_block",
    "sweep_depth_rows",
]
