"""The data a head ranking was measured on, in words: for the README's zoo block, the `score`
command and the report."""

from __future__ import annotations

from typing import Any


def ranking_data(ranking: dict[str, Any]) -> str:
    """`repeated random tokens (32 uniform ids, then the same ids again)`, of a
    `HeadRanking.to_dict()`. A record written before rankings kept `half_len` was scored without
    a BOS token, so its sequences are `2 · half_len` long."""
    half_len = ranking.get("half_len", ranking["seq_len"] // 2)
    return f"repeated random tokens ({half_len} uniform ids, then the same ids again)"


def data_statement(ranking: dict[str, Any]) -> str:
    """The data and seed of a `HeadRanking.to_dict()`, for every output that quotes its scores."""
    return (
        f"{ranking_data(ranking)}; {ranking['n_sequences']} sequences of {ranking['seq_len']} "
        f"tokens, seed {ranking['seed']}"
    )
