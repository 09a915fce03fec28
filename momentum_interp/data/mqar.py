"""Harder multi-query associative recall (Zoology's MQAR, Arora et al. 2023): many pairs, long
sequences, queries scattered through filler, so that small models do not saturate.

Layout of one sequence of `seq_len` tokens:

    k1 v1 k2 v2 ... kn vn | f f kq vq f f f f kq' vq' f f ...

The first `2 n_pairs` tokens bind distinct keys to values. The rest is split into two-token
slots; `n_queries` slots, chosen uniformly, re-ask distinct bound keys (each key is asked at most
once) and are followed by the bound value; every other slot holds filler tokens. Keys come from
[0, d_vocab // 2), values and filler from [d_vocab // 2, d_vocab): a key never appears except at
its binding and at its query, so no key is rebound or overwritten within a sequence (Zoology's
generator could draw a key again as filler). `n_pairs` is the difficulty knob: the number of
bindings the model must hold at once.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch

from momentum_interp.data.batch import TaskBatch


@dataclass
class MQARTask:
    """`n_pairs` key–value bindings, then `n_queries` queries in random slots among filler."""

    name: ClassVar[str] = "mqar"
    d_vocab: int = 256
    n_pairs: int = 32
    n_queries: int | None = None  # default: every bound key is asked once
    seq_len: int = 128

    def __post_init__(self) -> None:
        if self.n_queries is None:
            self.n_queries = self.n_pairs
        if self.n_pairs < 1 or self.n_queries < 1:
            raise ValueError(
                f"n_pairs and n_queries must be >= 1, got {self.n_pairs} and {self.n_queries}."
            )
        if self.n_queries > self.n_pairs:
            raise ValueError(
                f"n_queries={self.n_queries} > n_pairs={self.n_pairs}: each bound key is asked "
                "at most once; lower n_queries or raise n_pairs."
            )
        if self.n_pairs > self.d_vocab // 2:
            raise ValueError(
                f"n_pairs={self.n_pairs} distinct keys need d_vocab >= {2 * self.n_pairs} "
                f"(keys are [0, d_vocab // 2)), got d_vocab={self.d_vocab}."
            )
        if self.n_slots < self.n_queries:
            raise ValueError(
                f"seq_len={self.seq_len} leaves {self.n_slots} query slots after "
                f"{self.n_pairs} pairs, fewer than n_queries={self.n_queries}; raise seq_len to "
                f"at least {2 * (self.n_pairs + self.n_queries)}."
            )

    @property
    def n_slots(self) -> int:
        """Two-token slots after the bindings (an odd leftover position is filler)."""
        return (self.seq_len - 2 * self.n_pairs) // 2

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        device = generator.device
        n_keys = self.d_vocab // 2

        def permutation_prefix(n: int, k: int) -> torch.Tensor:  # [batch, k], distinct per row
            return torch.rand(batch_size, n, generator=generator, device=device).argsort(1)[:, :k]

        keys = permutation_prefix(n_keys, self.n_pairs)  # [batch, pair]
        values = torch.randint(
            n_keys, self.d_vocab, (batch_size, self.n_pairs), generator=generator, device=device
        )
        asked = permutation_prefix(self.n_pairs, self.n_queries)  # [batch, query], distinct
        slots = permutation_prefix(self.n_slots, self.n_queries)  # [batch, query], distinct
        tail_len = self.seq_len - 2 * self.n_pairs
        tail = torch.randint(
            n_keys, self.d_vocab, (batch_size, tail_len), generator=generator, device=device
        )
        tail.scatter_(1, 2 * slots, keys.gather(1, asked))
        tail.scatter_(1, 2 * slots + 1, values.gather(1, asked))
        context = torch.stack([keys, values], dim=2).flatten(1)  # k1 v1 k2 v2 ...
        tokens = torch.cat([context, tail], dim=1)
        loss_mask = torch.zeros_like(tokens, dtype=torch.bool)
        loss_mask.scatter_(1, 2 * self.n_pairs + 2 * slots, True)
        return TaskBatch(tokens=tokens, loss_mask=loss_mask)
