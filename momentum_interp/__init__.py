"""momentum_interp: mechanistic interpretability of Momentum Attention (arXiv 2602.04902)."""

__version__ = "0.1.0"

from momentum_interp.config import MomentumConfig
from momentum_interp.model.checkpoint import CheckpointError, bundled_names
from momentum_interp.model.transformer import HookedMomentumTransformer

__all__ = [
    "CheckpointError",
    "HookedMomentumTransformer",
    "MomentumConfig",
    "__version__",
    "bundled_names",
]
