"""Numbers in sentences: the formatting every README block and card shares (percentages, ranges,
intervals, the README's 100-column wrap)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any


def wrap(paragraph: str, indent: str = "") -> str:
    """A paragraph wrapped at the README's 100 columns (continuation lines indented), never
    between a number and its `%`."""
    text = textwrap.fill(
        paragraph.replace(" %", "\0%"),
        100,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return text.replace("\0%", " %")


def bullets(items: Sequence[str]) -> str:
    """A Markdown bullet list, each item wrapped with its continuation lines indented."""
    return "\n".join(wrap(f"- {item}", "  ") for item in items)


def pct(x: float, digits: int = 1, sign: bool = False) -> str:
    """A fraction as a percentage, `0.0753` → `7.5 %` (`+7.5 %` with `sign`)."""
    return f"{100 * x:{'+' if sign else ''}.{digits}f} %"


def number(value: float | None, fmt: str = ".3f") -> str:
    """`value` formatted with `fmt`; `–` where it is not defined (NaN, or None as JSON stores
    it: an interval over fewer than two seeds, a test of differences that never vary)."""
    return "–" if value is None or math.isnan(value) else format(value, fmt)


def p_label(comparison: Mapping[str, Any], fmt: str = ".3g") -> str:
    """A paired comparison's p as the decision uses it: `Holm p = …` where it was Holm-adjusted,
    `p = …` where only the raw p exists (files written before the adjustment)."""
    if comparison.get("p_holm") is not None:
        return f"Holm p = {number(comparison['p_holm'], fmt)}"
    return f"p = {number(comparison['p_value'], fmt)}"


def interval(estimate: Mapping[str, float], fmt: str = ".3f") -> str:
    """`value [low, high]` of an `Estimate.to_dict()`, each formatted by `number`."""
    value, low, high = (number(estimate[k], fmt) for k in ("value", "low", "high"))
    return f"{value} [{low}, {high}]"


def span(values: Sequence[float], fmt: str) -> str:
    """`low to high` of `values` formatted with `fmt`, or one number when both agree."""
    lo, hi = (format(v, fmt) for v in (min(values), max(values)))
    return lo if lo == hi else f"{lo} to {hi}"


NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def count(n: int) -> str:
    """A count in a sentence: in words below ten (`6` → `six`), in digits from ten on."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def sci(x: float) -> str:
    """A value in short scientific notation, as the README writes rates: `0.0001` → `1e-4`,
    `0.03162` → `3.162e-2`."""
    mantissa, exponent = f"{x:.12e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
