"""The token-level QK circuit of one score term: how strongly a query token matches a key token
through one of the four terms, from the weights alone (docs/maths.md, "Token-level QK circuit")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from momentum_interp.analysis.tracing.inputs import check_momentum_head
from momentum_interp.analysis.tracing.terms import term_coefficients
from momentum_interp.model.shear import TERM_NAMES

# Largest vocabulary whose full token-level QK circuit is computed (d_vocab² floats).
QK_MAX_TOKENS = 4096


@torch.no_grad()
def qk_circuit(
    model, layer: int, head: int, term: str = "current_prev_key", tokens=None
) -> np.ndarray:
    """Token-level QK circuit of one score term, `[n_tokens, n_tokens]` (float64).

    `M[a, b] = c · (ê_a W_Q + b_Q)·(ê_b W_K + b_K) / √d_head` with `ê = ln1(W_E)` and c the term's
    coefficient for this head: for ``current_prev_key`` a is the query's current token and b the
    key's previous token, `c = −(1+γq)γk`; for ``current_current`` both are current tokens,
    `c = (1+γq)(1+γk)`. Positional embeddings, earlier layers and rotary rotation are ignored
    (docs/maths.md, section 4). `tokens` selects rows/columns (default: the first
    `QK_MAX_TOKENS` ids).
    """
    check_momentum_head(model, layer, head)
    if term not in TERM_NAMES:
        raise ValueError(f"unknown term {term!r}; choose from {list(TERM_NAMES)}.")
    block = model.blocks[layer]
    if tokens is None:
        tokens = torch.arange(min(model.cfg.d_vocab, QK_MAX_TOKENS))
    tokens = torch.as_tensor(tokens, dtype=torch.long, device=model.W_E.device)
    embed = block.ln1(model.W_E[tokens]).double()
    attn = block.attn
    q = embed @ attn.W_Q[head].double() + attn.b_Q[head].double()
    k = embed @ attn.W_K[head].double() + attn.b_K[head].double()
    coeff = term_coefficients(attn, slice(head, head + 1))[term][0]
    return (coeff * (q @ k.T) / math.sqrt(model.cfg.d_head)).cpu().numpy()


def diagonal_scores(matrix: np.ndarray) -> tuple[float, float]:
    """`(top1, z)` over rows with any spread: the fraction whose diagonal entry is the row
    maximum, and the mean z-score of the diagonal entry within its row.

    Constant rows say nothing about matching (a head with no momentum has an all-zero
    `current_prev_key` circuit), so they are skipped; with no informative row both are NaN.
    """
    matrix = np.asarray(matrix, dtype=float)
    std = matrix.std(axis=1)
    ok = std > 0
    if not ok.any():
        return float("nan"), float("nan")
    diag = np.diag(matrix)[ok]
    top1 = float(np.mean(diag >= matrix.max(axis=1)[ok]))
    z = (diag - matrix.mean(axis=1)[ok]) / std[ok]
    return top1, float(z.mean())


@dataclass
class QKCircuit:
    """One term's token-level QK circuit and how diagonal it is (`diagonal_scores`)."""

    term: str
    matrix: np.ndarray  # [n_tokens, n_tokens]
    labels: list[str]  # the tokens of the rows and columns
    diagonal_top1: float
    diagonal_z: float

    @classmethod
    def measure(cls, model, layer: int, head: int, term: str, tokens, labels: list[str]):
        """`qk_circuit` of `term` on `tokens` with its diagonal scores."""
        matrix = qk_circuit(model, layer, head, term, tokens)
        return cls(term, matrix, labels, *diagonal_scores(matrix))
