"""Synthetic induction tasks: a copied segment with a by-construction answer, and repeated tokens.

`earlier_occurrence_mask` is the brute-force definition of "the induction rule predicts the next
token"; tests check that the tasks' masks agree with it.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch

from momentum_interp.data.batch import TaskBatch


def _randint_between(
    low: torch.Tensor, high: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Uniform integers in [low, high] elementwise (torch.randint only takes scalar bounds)."""
    u = torch.rand(low.shape, generator=generator, device=generator.device, dtype=torch.float64)
    return low + (u * (high - low + 1)).long().clamp(max=high - low)


@dataclass
class InductionTask:
    """Random distinct tokens with one segment of length L copied P >= L positions later.

    L, the source start a and the period P vary per sequence, so position alone cannot tell where
    the copy is. Every non-copied token is distinct from all others, so the copy is the only
    repetition and `loss_mask` is exactly t in [b, b + L - 2] with b = a + P: inside the copy,
    with the next token also inside it.
    """

    name: ClassVar[str] = "induction"
    d_vocab: int = 64
    seq_len: int = 64
    min_repeat: int = 4
    max_repeat: int = 16

    def __post_init__(self) -> None:
        if not 2 <= self.min_repeat <= self.max_repeat:
            raise ValueError(
                f"need 2 <= min_repeat <= max_repeat (a length-1 copy scores no position), "
                f"got min_repeat={self.min_repeat}, max_repeat={self.max_repeat}"
            )
        if self.seq_len < 2 * self.max_repeat + 1:
            raise ValueError(
                f"seq_len={self.seq_len} cannot hold a segment of max_repeat={self.max_repeat} "
                f"and its copy; use seq_len >= {2 * self.max_repeat + 1} or a smaller max_repeat"
            )
        if self.seq_len - self.min_repeat > self.d_vocab:
            raise ValueError(
                f"each sequence needs seq_len - min_repeat = {self.seq_len - self.min_repeat} "
                f"distinct tokens but d_vocab={self.d_vocab}; use d_vocab >= "
                f"{self.seq_len - self.min_repeat}, or lower seq_len / raise min_repeat"
            )

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        device = generator.device
        length = torch.randint(  # [batch, 1], like period and the starts
            self.min_repeat,
            self.max_repeat + 1,
            (batch_size, 1),
            generator=generator,
            device=device,
        )
        period = _randint_between(length, self.seq_len - length, generator)
        src_start = _randint_between(
            torch.zeros_like(length), self.seq_len - length - period, generator
        )
        dst_start = src_start + period

        pos = torch.arange(self.seq_len, device=device).expand(batch_size, -1)  # [batch, pos]
        copied = (pos >= dst_start) & (pos < dst_start + length)
        # Non-copied position j takes the rank(j)-th token of a per-sequence vocab permutation;
        # copied position j takes the same token as position j - P.
        rank = (~copied).long().cumsum(dim=1) - 1
        rank = torch.where(copied, rank.gather(1, (pos - period).clamp(min=0)), rank)
        perm = torch.rand(batch_size, self.d_vocab, generator=generator, device=device).argsort(1)
        tokens = perm.gather(1, rank)
        loss_mask = copied & (pos < dst_start + length - 1)
        return TaskBatch(tokens=tokens, loss_mask=loss_mask)


@dataclass
class RepeatedTokensTask:
    """Uniform random tokens (with replacement) followed by their exact repeat (TransformerLens).

    The mask covers second-half positions whose next token is also in the second half. With
    `bos_token` set, every sequence starts with it and random tokens never equal it.
    """

    name: ClassVar[str] = "repeated_tokens"
    d_vocab: int = 64
    half_len: int = 32
    bos_token: int | None = None

    def __post_init__(self) -> None:
        if self.half_len < 2:
            raise ValueError(f"half_len must be >= 2, got {self.half_len}")
        if self.d_vocab < 1 + self.offset:
            raise ValueError(f"d_vocab={self.d_vocab} leaves no tokens besides the BOS")
        if self.bos_token is not None and not 0 <= self.bos_token < self.d_vocab:
            raise ValueError(f"bos_token={self.bos_token} must lie in [0, d_vocab={self.d_vocab})")

    @property
    def offset(self) -> int:
        """Number of prefix tokens (1 with a BOS) before the first random half."""
        return int(self.bos_token is not None)

    @property
    def seq_len(self) -> int:
        return self.offset + 2 * self.half_len

    def sample(self, batch_size: int, generator: torch.Generator) -> TaskBatch:
        device = generator.device
        if self.bos_token is None:
            half = torch.randint(
                0, self.d_vocab, (batch_size, self.half_len), generator=generator, device=device
            )
            prefix = half[:, :0]
        else:
            half = torch.randint(
                0, self.d_vocab - 1, (batch_size, self.half_len), generator=generator, device=device
            )
            half = half + (half >= self.bos_token).long()  # skip over the BOS id
            prefix = torch.full((batch_size, 1), self.bos_token, device=device)
        tokens = torch.cat([prefix, half, half], dim=1)
        pos = torch.arange(self.seq_len, device=device)
        second_half = (pos >= self.offset + self.half_len) & (pos < self.seq_len - 1)
        return TaskBatch(tokens=tokens, loss_mask=second_half.expand(batch_size, -1).clone())


def earlier_occurrence_mask(tokens: torch.Tensor) -> torch.Tensor:
    """Brute-force reference: True at t iff tokens[t] occurred before and every earlier occurrence
    s has tokens[s + 1] == tokens[t + 1] (induction predicts the next token unambiguously).

    tokens: [batch, pos] -> [batch, pos] bool. Pure Python, for tests and diagnostics.
    """
    rows = tokens.tolist()
    mask = [[False] * len(row) for row in rows]
    for row, row_mask in zip(rows, mask, strict=True):
        for t in range(len(row) - 1):
            nexts = {row[s + 1] for s in range(t) if row[s] == row[t]}
            row_mask[t] = nexts == {row[t + 1]}
    return torch.tensor(mask, dtype=torch.bool, device=tokens.device).reshape(tokens.shape)
