"""Names as people read them: the head label `L{layer}H{head}`, and error messages for unknown
option names (the nearest valid name, then the full list)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_names(kind: str, unknown: Iterable[str], valid: Iterable[str]) -> str:
    """'Unknown {kind} 'gama' (did you mean 'gamma'?). Valid: ...' for one or more typos; the
    nearest name is found ignoring case, so 'Induction-1L' finds 'induction-1l'."""
    valid = sorted(valid)
    by_folded = {name.casefold(): name for name in valid}
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name.casefold(), list(by_folded), n=1, cutoff=0.6)
        hint = f" (did you mean {by_folded[close[0]]!r}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    return f"Unknown {kind} {', '.join(parts)}. Valid: {', '.join(valid)}."


def head_label(layer: int, head: int) -> str:
    """`L{layer}H{head}`: how every table, figure and sentence names an attention head."""
    return f"L{layer}H{head}"


def parse_head_label(label: str) -> tuple[int, int]:
    """`(layer, head)` from `L{layer}H{head}` (the inverse of `head_label`)."""
    layer, head = label.removeprefix("L").split("H")
    return int(layer), int(head)


def study_table_name(variant: str, seed: int) -> str:
    """The file name of one run's table in a per-run study's folder (`formation`, `mechanism`)."""
    return f"{variant}-seed{seed}.json"
