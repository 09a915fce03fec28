"""Tolerances for numbers computed two ways, derived from the rounding error of a sum.

Two evaluations of one expression in the same precision differ only in the order of their sums:
another SIMD width (ATen's avx512 / avx2 / default kernels, MKL's), another split across
threads, or an equivalent formula (folded weights, a cached forward, a float64 reference). A
float sum of n terms, in any order, lies within γ(n − 1)·Σ|xᵢ| of the exact sum, where
γ(k) = k·u / (1 − k·u) ≈ k·u and u = eps/2 is the unit roundoff (Higham, Accuracy and Stability
of Numerical Algorithms, 2nd ed. 2002, §4.2); so two orders differ by at most (n − 1)·eps·Σ|xᵢ|.
"""

from __future__ import annotations

import torch


def sum_tolerance(n_terms: int, dtype: torch.dtype = torch.float32) -> float:
    """Relative bound, to Σ|xᵢ|, on the difference of two sums of the same `n_terms` terms."""
    return (n_terms - 1) * torch.finfo(dtype).eps


def forward_reductions(cfg) -> list[int]:
    """Lengths of the chain of sums a transformer's outputs (attention patterns, logits) go
    through: per layer, LayerNorm's mean and variance, the q/k/v projection, q·k, the softmax
    denominator, pattern·v (over at most `n_ctx` keys), the output projection over heads and,
    with MLPs, the second LayerNorm, W_in and W_out; then the final LayerNorm and the unembed."""
    attention = [cfg.d_model, cfg.d_model, cfg.d_model, cfg.d_head, cfg.n_ctx, cfg.n_ctx]
    attention.append(cfg.n_heads * cfg.d_head)
    mlp = [] if cfg.attn_only else [cfg.d_model, cfg.d_model, cfg.d_model, cfg.d_mlp]
    return (attention + mlp) * cfg.n_layers + [cfg.d_model, cfg.d_model, cfg.d_model]


def forward_tolerance(
    *cfgs, dtype: torch.dtype = torch.float32, processed: bool = False, then: tuple[int, ...] = ()
) -> float:
    """Bound on how far a forward pass's outputs move between two orders of its sums: to first
    order (products of rounding errors dropped) the relative errors of chained sums add, and
    each output of the two is within half of it of the exact value, which leaves room for the
    elementwise operations (one rounding each). `processed`: one side runs on weights folded
    and centred in this precision (TransformerLens's `process_weights`), each a d_model-term
    mean away from exact; the q/k/v, output, MLP-in/out and unembedding weights add one such sum
    to the chain. `then`: the lengths of further sums over the outputs (a decomposition of the
    residual stream summed over its components).

    Relative to the magnitude of the summed terms, which embeddings and LayerNorm keep of order
    one in these small models, so it serves as both the absolute and the relative tolerance. For
    several models, the largest of their bounds.
    """
    return max(_forward_tolerance(cfg, dtype, processed, then) for cfg in cfgs)


def _forward_tolerance(cfg, dtype: torch.dtype, processed: bool, then: tuple[int, ...]) -> float:
    reductions = forward_reductions(cfg) + list(then)
    if processed:
        per_layer = 2 if cfg.attn_only else 4  # q/k/v projection, W_O (+ W_in, W_out)
        reductions += [cfg.d_model] * (per_layer * cfg.n_layers + 1)
    return sum(sum_tolerance(n, dtype) for n in reductions)


def forward_tol(*cfgs, **options) -> dict[str, float]:
    """`forward_tolerance` as `torch.testing.assert_close`'s keyword arguments."""
    tol = forward_tolerance(*cfgs, **options)
    return {"atol": tol, "rtol": tol}
