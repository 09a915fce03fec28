"""Learning-rate schedule: linear warmup, then cosine decay to a floor (as in nanoGPT)."""

from __future__ import annotations

import math

from momentum_interp.training.config import OptimConfig


def lr_at(step: int, opt: OptimConfig) -> float:
    """Learning rate for optimiser step `step` (0-based); a pure function of the step, so resume is exact."""
    if step < opt.warmup_steps:
        return opt.lr * (step + 1) / opt.warmup_steps
    # The last step (steps - 1) is where the decay ends, so the final update uses the floor.
    progress = (step - opt.warmup_steps) / max(1, opt.steps - 1 - opt.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return opt.lr * (opt.min_lr_ratio + (1.0 - opt.min_lr_ratio) * cosine)
