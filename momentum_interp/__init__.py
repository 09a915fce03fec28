"""momentum_interp: mechanistic interpretability of Momentum Attention (arXiv 2602.04902)."""

from momentum_interp.config import MomentumConfig
from momentum_interp.model.checkpoint import CheckpointError, bundled_names
from momentum_interp.model.transformer import HookedMomentumTransformer
from momentum_interp.version import __version__

__all__ = [
    "CheckpointError",
    "HookedMomentumTransformer",
    "MomentumConfig",
    "__version__",
    "bundled_names",
]
