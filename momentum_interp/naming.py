"""Error messages for unknown option names: the nearest valid name, then the full list."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_names(kind: str, unknown: Iterable[str], valid: Iterable[str]) -> str:
    """'Unknown {kind} 'gama' (did you mean 'gamma'?). Valid: ...' for one or more typos."""
    valid = sorted(valid)
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    return f"Unknown {kind} {', '.join(parts)}. Valid: {', '.join(valid)}."
