"""Count the aten operators a piece of code dispatches: a CPU-checkable proxy for GPU kernels.

`count_ops(fn)` runs `fn()` under a `TorchDispatchMode` and returns how often each aten overload
packet ran. `MATMULS` are the matmul kernels (`mm`, `addmm`, `bmm`, `baddbmm`), `HOST_SYNCS` the
op that copies a device scalar to the host (what `.item()`, `int(t)` and `bool(t)` call).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from torch.utils._python_dispatch import TorchDispatchMode

MATMULS = ("mm", "addmm", "bmm", "baddbmm")
HOST_SYNCS = ("_local_scalar_dense",)


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> Counter[str]:
    """aten overload-packet name → number of calls while `fn()` runs (forward and backward)."""
    with _OpCounter() as counter:
        fn()
    return counter.counts


def total(counts: Counter[str], names: tuple[str, ...]) -> int:
    """Sum of `counts` over `names` (e.g. `MATMULS`)."""
    return sum(counts[name] for name in names)
