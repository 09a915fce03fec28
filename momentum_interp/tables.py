"""Markdown tables: the one writer every README block, card, benchmark and CLI table uses."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A GitHub Markdown table; `align` holds one of `l`, `r` per column (default: left)."""
    rule = {"l": "---", "r": "---:"}
    marks = [rule[a] for a in align] if align else ["---"] * len(header)
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def frame_rows(frame, float_format: str = "{:.3f}") -> list[list[object]]:
    """A DataFrame's rows as table cells, floats formatted with `float_format`."""
    return [
        [float_format.format(v) if isinstance(v, float) else v for v in row]
        for row in frame.itertuples(index=False)
    ]
