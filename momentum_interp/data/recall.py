"""Multi-query associative recall (Zoology's MQAR): look up the value bound to a key earlier."""

from dataclasses import dataclass
from typing import ClassVar

import torch

from momentum_interp.data.batch import TaskBatch


@dataclass
class AssociativeRecallTask:
    """`k1 v1 ... kn vn` then `n_queries` pairs `kq vq` re-asking uniformly chosen earlier keys.

    Keys come from [0, d_vocab // 2) and are distinct within a sequence; values come from
    [d_vocab // 2, d_vocab) with replacement. `loss_mask` is True at each query key, where the
    next token is that key's value. `seq_len` is always 2 * (n_pairs + n_queries); passing it
    only checks that it matches.
    """

    name: ClassVar[str] = "associative_recall"
    d_vocab: int = 128
    n_pairs: int = 8
    n_queries: int = 8
    seq_len: int | None = None

    def __post_init__(self) -> None:
        n_keys = self.d_vocab // 2
        if self.n_pairs < 1 or self.n_queries < 1:
            raise ValueError(
                f"n_pairs and n_queries must be >= 1, got {self.n_pairs} and {self.n_queries}"
            )
        if self.n_pairs > n_keys:
            raise ValueError(
                f"n_pairs={self.n_pairs} distinct keys need d_vocab >= {2 * self.n_pairs} "
                f"(keys are [0, d_vocab // 2)), got d_vocab={self.d_vocab}"
            )
        expected = 2 * (self.n_pairs + self.n_queries)
        if self.seq_len is None:
            self.seq_len = expected
        elif self.seq_len != expected:
            raise ValueError(
                f"seq_len={self.seq_len} but 2 * (n_pairs + n_queries) = {expected}; "
                f"leave seq_len=None or change n_pairs / n_queries"
            )

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        device = generator.device
        n_keys = self.d_vocab // 2
        keys = torch.rand(batch_size, n_keys, generator=generator, device=device).argsort(1)
        keys = keys[:, : self.n_pairs]  # [batch, pair], distinct per row
        values = torch.randint(
            n_keys, self.d_vocab, (batch_size, self.n_pairs), generator=generator, device=device
        )
        asked = torch.randint(
            0, self.n_pairs, (batch_size, self.n_queries), generator=generator, device=device
        )
        queries = keys.gather(1, asked)  # [batch, query]
        answers = values.gather(1, asked)

        context = torch.stack([keys, values], dim=2).flatten(1)  # k1 v1 k2 v2 ...
        questions = torch.stack([queries, answers], dim=2).flatten(1)
        tokens = torch.cat([context, questions], dim=1)
        pos = torch.arange(tokens.shape[1], device=device)
        is_query = (pos >= 2 * self.n_pairs) & (pos % 2 == 0)
        return TaskBatch(tokens=tokens, loss_mask=is_query.expand(batch_size, -1).clone())
