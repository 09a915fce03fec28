"""momentum_interp: mechanistic interpretability of Momentum Attention (arXiv 2602.04902).

The exports load lazily, so `momentum-interp` can check its arguments before importing torch.
"""

from __future__ import annotations

import importlib

from momentum_interp.version import __version__

_EXPORTS = {
    "CheckpointError": "momentum_interp.model.locate",
    "HookedMomentumTransformer": "momentum_interp.model.transformer",
    "MomentumConfig": "momentum_interp.config",
    "bundled_names": "momentum_interp.model.locate",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'momentum_interp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
