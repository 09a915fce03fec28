"""Figures that render offline in a live notebook, in its `jupyter nbconvert --to html` export and
in a saved page: plotly.js and MathJax come from installed packages, embedded once per document.

Call `setup()` once at the top of a notebook. The output it displays carries plotly.js (from the plotly
package) and MathJax 2.7 (from `jupyter-server-mathjax`), and every later plotly figure is output
as HTML that draws with them, as well as plotly's own JSON for JupyterLab. `export_html` writes a
notebook's page without the CDN `<script>` tags of nbconvert's template.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from momentum_interp.viz.security import CSP_META

RENDERER = "momentum_interp"

# MathJax 2 settings: `$…$` inline maths, no web or image fonts (they would be fetched by URL),
# so it typesets with the system's Unicode fonts.
MATHJAX_CONFIG = {
    "messageStyle": "none",
    "tex2jax": {
        "inlineMath": [["$", "$"], ["\\(", "\\)"]],
        "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
        "processEscapes": True,
    },
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": None, "imageFont": None},
}


def _script(source: str) -> str:
    # A literal "</script>" inside the source would end the tag early.
    return "<script>" + source.replace("</script>", "<\\/script>") + "</script>"


@cache
def plotly_js() -> str:
    """plotly.min.js as one `<script>` that defines `window.Plotly`, also where require.js is
    loaded (nbconvert's template loads it; plotly would then register as an AMD module)."""
    return _script(
        "if (!window.Plotly) { (function (define, module, exports) {\n"
        + get_plotlyjs()
        + "\n}).call(window); }"
    )


@cache
def mathjax_js() -> str:
    """MathJax 2.7 and its TeX/HTML-CSS bundle as one `<script>`, run only where the page has no
    MathJax yet (a live classic notebook has its own)."""
    static = resources.files("jupyter_server_mathjax") / "static"
    core = (static / "MathJax.js").read_text(encoding="utf-8")
    bundle = (static / "config" / "TeX-AMS-MML_HTMLorMML-full.js").read_text(encoding="utf-8")
    return _script(
        "if (!window.MathJax) { window.MathJax = "
        + json.dumps(MATHJAX_CONFIG)
        + ";\n"
        + core
        + "\n"
        + bundle
        + "\n}"
    )


def head_scripts() -> str:
    """The scripts a page or notebook needs once, before its first figure."""
    return plotly_js() + mathjax_js()


class _OfflineRenderer(pio.base_renderers.MimetypeRenderer):
    """plotly's JSON (live JupyterLab draws it) plus an HTML `<div>` drawn by the plotly.js that
    `setup()` embedded (nbconvert keeps the HTML; it cannot represent the JSON)."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        bundle = pio.base_renderers.PlotlyRenderer().to_mimebundle(fig_dict)
        bundle["text/html"] = pio.to_html(
            fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False
        )
        return bundle


def register_renderer() -> None:
    """Make `RENDERER` plotly's default, so `fig.show()` and a figure as a cell's value use it."""
    pio.renderers[RENDERER] = _OfflineRenderer()
    pio.renderers.default = RENDERER


class _Scripts:
    """Notebook output holding `head_scripts()`; shows nothing itself."""

    def _repr_html_(self) -> str:
        return head_scripts()


def setup() -> None:
    """Call once at the top of a notebook: registers the offline renderer and displays the
    output that embeds plotly.js and MathJax for the whole notebook.

    Example: `from momentum_interp.viz import notebook; notebook.setup()`
    """
    register_renderer()
    from IPython import get_ipython
    from IPython.display import display

    if get_ipython() is not None:
        display(_Scripts())


def page(body: str, title: str = "momentum_interp") -> str:
    """A self-contained HTML page: `body` (trusted HTML) after the scripts, nothing fetched
    (its Content-Security-Policy allows no load)."""
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8">{CSP_META}'
        f"<title>{html.escape(title)}</title></head>"
        f"<body>{head_scripts()}{body}</body></html>"
    )


# nbconvert's lab template with its CDN script blocks (require.js, MathJax, Mermaid, and the
# widget manager it loads from unpkg when the notebook saved widget state, e.g. TransformerLens's
# tqdm bars) emptied: the notebook's own `setup()` output carries the scripts; widget outputs
# stay undrawn.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def export_html(notebook: str | Path, out: str | Path) -> Path:
    """Write an (already executed) notebook as an HTML page that references no CDN."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_file="offline.html.j2",
        extra_loaders=[DictLoader({"offline.html.j2": _OFFLINE_TEMPLATE})],
    )
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    out = Path(out)
    out.write_text(body, encoding="utf-8")
    return out
