"""Layout rules every figure and table follows, as small functions with one rule each.

Long token axes show at most `MAX_TICKS` labels; legends sit below the plot, clear of colour
bars; text blocks wrap; colours come from one colour-blind-safe palette (Okabe–Ito), lines past its
end also change dash, runs of one arm share its colour in shades by seed; log axes label 1-2-5
steps, never crowded minor ticks; a heatmap's colour bar lies under the plot, legible however few
rows it has; tables left-align text and right-align numbers, with "—" for a missing value; integer
tokens stay apart (`"37 43 12"`); maths is written in Unicode (`xₜ₋₁`), never TeX.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from plotly.colors import hex_to_rgb

from momentum_interp.viz.security import plotly_text

MAX_TICKS = 20

# Okabe & Ito's colour-blind-safe colours, fixed order (yellow, faint on white, last), so line i
# has the same colour in every figure.
PALETTE = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
)  # fmt: skip
# Dashes that tell apart lines past the palette's end (line i: colour i mod 8, dash i div 8).
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")

# Blocks of preformatted text (a trace's summary, a verdict) wrap inside their column.
WRAP_CSS = (
    "pre, .wrap { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%; }\n"
    "table.mi-table { border-collapse: collapse; font-variant-numeric: tabular-nums; }\n"
    "table.mi-table th, table.mi-table td { padding: 2px 8px; border-bottom: 1px solid #ddd; }\n"
    "table.mi-table .text { text-align: left; } table.mi-table .num { text-align: right; }\n"
)

MISSING = "—"


def palette(n: int) -> list[str]:
    """The first `n` colours of `PALETTE`; an error rather than a repeated colour past its end
    (`line_styles` draws more lines)."""
    if not 0 <= n <= len(PALETTE):
        raise ValueError(
            f"{n} lines need more than the palette's {len(PALETTE)} distinct colours; "
            "use style.line_styles, which also varies the dash."
        )
    return list(PALETTE[:n])


def line_styles(n: int) -> list[dict[str, str]]:
    """Plotly `line` settings for `n` lines, each pair distinct: the palette's colours in order,
    then again with the next of `DASHES`."""
    if not 0 <= n <= len(PALETTE) * len(DASHES):
        raise ValueError(f"{n} lines are more than {len(PALETTE) * len(DASHES)} distinct styles.")
    return [
        {"color": PALETTE[i % len(PALETTE)], "dash": DASHES[i // len(PALETTE)]} for i in range(n)
    ]


def shades(colour: str, n: int) -> list[str]:
    """`n` shades of one `#rrggbb` colour (one per seed of an arm): the colour itself first, then
    lighter ones, mixed with up to 60 % white."""
    rgb = np.array(hex_to_rgb(colour), dtype=float)
    mixes = np.linspace(0.0, 0.6, n) if n > 1 else [0.0]
    return ["#" + "".join(f"{round(c):02X}" for c in rgb + t * (255 - rgb)) for t in mixes]


def colorbar_below(plot_px: float, title: str) -> dict:
    """Plotly `colorbar` settings: horizontal, under the plot's x-axis title (`plot_px`: the plot
    area's height in pixels), so its tick labels never crowd, however few rows the plot has."""
    return {
        "title": {"text": title, "side": "top"},
        "orientation": "h",
        "x": 0.5,
        "xanchor": "center",
        "len": 0.6,
        "thickness": 12,
        "y": -70 / plot_px,
        "yanchor": "top",
    }


def thinned_ticks(n: int, max_ticks: int = MAX_TICKS) -> list[int]:
    """Positions `0, k, 2k, …` labelled on an axis of `n` categories, `k` the smallest stride that
    keeps at most `max_ticks` labels."""
    if n < 0 or max_ticks < 1:
        raise ValueError(f"need n >= 0 and max_ticks >= 1, got n={n}, max_ticks={max_ticks}.")
    return list(range(0, n, max(1, math.ceil(n / max_ticks))))


def token_axis(labels: Sequence[str], max_ticks: int = MAX_TICKS) -> dict:
    """Plotly axis settings for a token axis plotted at positions `0…n−1`: at most `max_ticks`
    labelled ticks, each `label` at its own position (repeated tokens stay separate), shown as
    written (`security.plotly_text`)."""
    positions = thinned_ticks(len(labels), max_ticks)
    return {
        "tickmode": "array",
        "tickvals": positions,
        "ticktext": [plotly_text(labels[i]) for i in positions],
        "tickangle": 0 if len(positions) <= 10 else -60,
    }


def legend_below() -> dict:
    """Plotly layout: a horizontal legend under the plot, so it never covers a colour bar."""
    return {
        "legend": {
            "orientation": "h",
            "x": 0.0,
            "xanchor": "left",
            "y": -0.18,
            "yanchor": "top",
        },
        "margin": {"b": 110},
    }


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 tick values covering `[low, high]` (both > 0): a few labels per decade, not nine."""
    if not 0 < low <= high:
        raise ValueError(f"a log axis needs 0 < low <= high, got {low}, {high}.")
    ticks = []
    for decade in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = float(f"{mantissa}e{decade}")
            if low <= value * (1 + 1e-12) and value <= high * (1 + 1e-12):
                ticks.append(value)
    if len(ticks) > MAX_TICKS // 2:  # many decades: powers of ten only
        ticks = [t for t in ticks if f"{t:e}".startswith("1")]
    return ticks


def format_number(value: float) -> str:
    """A tick or table number in full (`0.3`, `2000`, `1e-05`), never a bare mantissa."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.4g}"


def log_axis(low: float, high: float) -> dict:
    """Plotly settings for a log axis spanning `[low, high]`: 1-2-5 labels, no minor labels."""
    ticks = log_ticks(low, high)
    return {
        "type": "log",
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [format_number(t) for t in ticks],
        "minor": {"showgrid": False, "ticks": ""},
    }


def header_html(name: object) -> str:
    """A column name, escaped, that may break after its underscores (`delta_<wbr>accuracy`): a
    table of snake_case headers then fits its column instead of running past it."""
    return html.escape(str(name)).replace("_", "_<wbr>")


def table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as an HTML table: text columns left, numeric right, "—" for NaN/None."""
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}

    def cell(column, value) -> str:
        if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
            text = MISSING
        elif numeric[column] and isinstance(value, float | np.floating):
            text = f"{value:.{digits}f}"
        else:
            text = str(value)
        kind = "num" if numeric[column] else "text"
        return f'<td class="{kind}">{html.escape(text)}</td>'

    head = "".join(
        f'<th class="{"num" if numeric[c] else "text"}">{header_html(c)}</th>'
        for c in frame.columns
    )
    rows = "".join(
        "<tr>" + "".join(cell(c, v) for c, v in zip(frame.columns, row, strict=True)) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<table class="mi-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def token_labels(str_tokens: Sequence[str]) -> list[str]:
    """Tokens as shown in a token strip: integer tokens (`"37"`) end in a space so neighbours do
    not run together (`"37 43 12 "`, not `"374312"`); text tokens are left as they are."""
    if all(token.strip().isdigit() for token in str_tokens):
        return [f"{token.strip()} " for token in str_tokens]
    return list(str_tokens)


def axis_labels(str_tokens: Sequence[str]) -> list[str]:
    """Axis labels, one per token: the token and its position (`"37 ·5"`), unique even when a
    token repeats, with blank tokens made visible."""
    return [f"{token.strip() or repr(token)} ·{i}" for i, token in enumerate(str_tokens)]
