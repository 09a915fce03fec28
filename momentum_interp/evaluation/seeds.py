"""Seed streams: every random draw of the package comes from `seeded_generator(device, seed,
stream, ...)`, so training, held-out and example data never share a sequence."""

from __future__ import annotations

import numpy as np
import torch

TRAIN_STREAM = 0  # training batches
EVAL_STREAM = 1  # held-out evaluation batches
PATTERN_STREAM = 7  # example sequences shown in reports (attention patterns, spectra)
MEAN_STREAM = 11  # batches estimating a head's mean output for mean-ablation


def seeded_generator(device: torch.device | str, *entropy: int) -> torch.Generator:
    """A generator on `device` whose seed is a hash of `entropy` (distinct streams never collide)."""
    seed = int(np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(seed)
