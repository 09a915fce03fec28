"""Self-contained HTML reports: plotly.js inlined once, circuitsvis from its bundled JavaScript."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from momentum_interp.io import atomic_write_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .6em 1em; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


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

    def table(self, header: list[str], rows: list[list[object]]) -> Report:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
            for row in rows
        )
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def figure(self, fig: go.Figure) -> Report:
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
        return self

    def raw(self, fragment: str) -> Report:
        """Trusted HTML, e.g. a circuitsvis `local_src` fragment."""
        self.parts.append(fragment)
        return self

    def to_html(self) -> str:
        """The whole page; plotly.js is embedded once so the page renders with no network."""
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
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
