"""An `ActivationCache` whose shorthand and full names also reach the hooks that TransformerLens
names differently (`compat.hook_names`): the momentum hooks (`cache["q_velocity", 0]`,
`cache["k_sheared", 1]`) and TransformerBridge's aliases (`cache["blocks.0.hook_in"]`, what
`get_act_name("in", 0)` gives), with errors that say why a name is missing.
"""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache
from transformer_lens.utilities import get_act_name

from momentum_interp.compat.hook_names import missing_hook_error, resolve


class MomentumActivationCache(ActivationCache):
    """TransformerLens's `ActivationCache`, plus the momentum hooks and the bridge's aliases in
    the shorthand, and errors that say why a name is missing."""

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, str) and key in self.cache_dict:
            return self.cache_dict[key]
        n_layers = self.model.cfg.n_layers
        if isinstance(key, tuple):
            key = list(key)
            if len(key) > 1 and isinstance(key[1], int) and key[1] < 0:
                key[1] += n_layers
            name = get_act_name(*key)
        else:
            name = get_act_name(key)
        name = resolve(name, n_layers)
        if name not in self.cache_dict:
            raise missing_hook_error(name, self.model.cfg)
        return self.cache_dict[name]
