"""Self-contained HTML reports: plotly.js inlined once, circuitsvis from its bundled JavaScript."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from momentum_interp.io import atomic_write_text
from momentum_interp.viz.security import CSP_META
from momentum_interp.viz.style import MISSING, WRAP_CSS, header_html, table_html

STYLE = (
    """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; }
th { background: #f4f4f4; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .6em 1em; }
code { background: #f4f4f4; padding: 0 .2em; }
pre { background: #f8f8f8; padding: .6em 1em; }
.table-scroll { overflow-x: auto; max-width: 100%; }
table.mi-table td.text { white-space: nowrap; } table.mi-table td.long { white-space: normal; }
table.mi-table tr > :first-child { position: sticky; left: 0; background: #fff; }
table.mi-table th:first-child { background: #f4f4f4; }
"""
    + WRAP_CSS
)


def _is_number(cell: object) -> bool:
    """A cell that reads as one number (`3`, `0.834`, `+1.2e-3`), so it is right-aligned."""
    if isinstance(cell, bool):
        return False
    try:
        float(str(cell))
    except ValueError:
        return False
    return True


# A text cell longer than this, or one with spaces outside the first column, is prose (a
# description) and wraps; a name (`lm-momentum-S-seed0`) stays on one line; headers break after
# underscores; a table still wider than the column scrolls under a sticky first column.
LONG_TEXT = 40


def _scrolling(table: str) -> str:
    return f'<div class="table-scroll">{table}</div>'


def _is_missing(cell: object) -> bool:
    return cell is None or str(cell).strip().lower() in {"nan", "none", ""}


@dataclass
class Report:
    """An HTML page built from sections of prose, tables, plotly figures and raw HTML."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> Report:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, note: bool = False) -> Report:
        css = ' class="note"' if note else ""
        self.parts.append(f"<p{css}>{html.escape(text)}</p>")
        return self

    def link(self, before: str, href: str, label: str, after: str = "") -> Report:
        """A paragraph with one relative link: `before`, then `label` linking `href`, `after`."""
        text, target = html.escape(label), html.escape(href, quote=True)
        self.parts.append(
            f'<p>{html.escape(before)}<a href="{target}">{text}</a>{html.escape(after)}</p>'
        )
        return self

    def table(self, header: list[str], rows: list[list[object]]) -> Report:
        """A table in the style of `style.table_html`: a column of numbers right-aligned, any
        other column left-aligned, a missing value (None, NaN) shown as "—"."""
        numeric = [
            all(_is_missing(row[i]) or _is_number(row[i]) for row in rows)
            for i in range(len(header))
        ]
        kinds = ["num" if n else "text" for n in numeric]

        def cell(i: int, value: object) -> str:
            text = MISSING if _is_missing(value) else str(value)
            prose = len(text) > LONG_TEXT or (i > 0 and kinds[i] == "text" and " " in text)
            kind = f"{kinds[i]} long" if prose else kinds[i]
            return f'<td class="{kind}">{html.escape(text)}</td>'

        head = "".join(
            f'<th class="{kinds[i]}">{header_html(h)}</th>' for i, h in enumerate(header)
        )
        body = "".join(
            "<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
        )
        self.parts.append(
            _scrolling(
                f'<table class="mi-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            )
        )
        return self

    def dataframe(self, frame: pd.DataFrame, digits: int = 4) -> Report:
        """A DataFrame as a table (`style.table_html`): numbers to `digits` places, "—" for NaN."""
        self.parts.append(_scrolling(table_html(frame, digits)))
        return self

    def preformatted(self, text: str) -> Report:
        """A block of preformatted text (a trace's summary) that wraps inside the column."""
        self.parts.append(f'<pre class="wrap">{html.escape(text)}</pre>')
        return self

    def figure(self, fig: go.Figure) -> Report:
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
        return self

    def raw(self, fragment: str) -> Report:
        """Trusted HTML, e.g. a circuitsvis `local_src` fragment."""
        self.parts.append(fragment)
        return self

    def to_html(self) -> str:
        """The whole page; plotly.js is embedded once so the page renders with no network (its
        Content-Security-Policy allows none)."""
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'>{CSP_META}"
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{''.join(self.parts)}</body></html>"
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.to_html())
        return path


class ReportSection:
    """A result that appends its sections to a `Report`, or renders as a page of its own."""

    title: str

    def add_to(self, report: Report, heading: bool = True) -> Report:
        raise NotImplementedError

    def to_html(self) -> str:
        """A self-contained page (plotly.js inlined by `Report`)."""
        return self.add_to(Report(self.title), heading=False).to_html()
