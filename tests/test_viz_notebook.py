"""Figures survive a notebook's HTML export offline: a notebook made here is executed, exported
with `jupyter nbconvert --to html` and with `viz.notebook.export_html`, and each page is drawn
in headless Chromium with the network refused. Every plotly figure draws an SVG, the circuitsvis
view renders, the maths is typeset, and the offline export requests nothing remote. Progress bars
are the notebook's widget, never a text bar on stderr."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from browser import dump_dom, remote_requests, require_chromium

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("nbconvert")

from momentum_interp.viz import notebook  # noqa: E402

CELLS = [
    ("code", "from momentum_interp.viz import notebook\nnotebook.setup()"),
    ("markdown", "The shear is $\\hat q_t = q_t + \\gamma (q_t - q_{t-1})$."),
    (
        "code",
        "import plotly.graph_objects as go\n"
        "go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]), layout_title_text='as a value')",
    ),
    ("code", "go.Figure(go.Scatter(y=[3, 1, 2])).show()"),
    (
        "code",
        "import torch\nfrom momentum_interp.viz.attention import attention_patterns_html\n"
        "attention_patterns_html(torch.eye(3)[None], ['1 ', '2 ', '3 '], ['L0H0'])",
    ),
    ("code", "from momentum_interp.sweeps import runner  # imports tqdm.auto"),
    (
        "code",
        "from momentum_interp import HookedMomentumTransformer, MomentumConfig\n"
        "from momentum_interp.analysis.scoring import score_heads\n"
        "cfg = MomentumConfig(d_model=16, d_head=4, n_layers=1, n_ctx=16, d_vocab=23)\n"
        "_ = score_heads(HookedMomentumTransformer(cfg), n_sequences=4, batch_size=1, progress=True)",
    ),
]
N_FIGURES = 2
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb") / "figures.ipynb"
    nb = nbformat.v4.new_notebook()
    for kind, source in CELLS:
        maker = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(maker(source))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    nbformat.write(nb, str(path))
    return path, nb


def test_notebook_runs_without_tqdm_warning(executed):
    _, nb = executed
    stderr = [
        o["text"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    ]
    assert not any("TqdmWarning" in text or "IProgress" in text for text in stderr), stderr
    # progress shows as the notebook's widget (tqdm.auto), never as a text bar on stderr
    assert not any(re.search(r"\d+%\|", text) for text in stderr), stderr
    widgets = [o for c in nb.cells for o in c.get("outputs", []) if WIDGET in o.get("data", {})]
    assert widgets, "score_heads(progress=True) showed no progress widget"
    figures = [
        o for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})
    ]
    # Each plotly figure keeps plotly's JSON for JupyterLab next to the HTML nbconvert uses.
    assert sum("application/vnd.plotly.v1+json" in o["data"] for o in figures) == N_FIGURES


def _check_drawn(dom: str) -> None:
    assert dom.count('class="main-svg"') >= N_FIGURES  # plotly draws 2 SVG layers per figure
    assert dom.count('class="plotly-graph-div js-plotly-plot"') == N_FIGURES, "a figure is blank"
    assert "Head Selector" in dom, "the circuitsvis view did not render"
    assert 'class="MathJax' in dom, "the maths was not typeset"


@pytest.mark.parametrize("exporter", ["nbconvert", "export_html"])
def test_exported_notebook_draws_every_figure_offline(executed, tmp_path, exporter):
    require_chromium()
    path, _ = executed
    page = tmp_path / "figures.html"
    if exporter == "nbconvert":
        subprocess.run(
            [
                sys.executable,
                "-m",
                "jupyter",
                "nbconvert",
                "--to",
                "html",
                str(path),
                "--output-dir",
                str(tmp_path),
            ],
            check=True,
            capture_output=True,
        )
    else:
        notebook.export_html(path, page)
    html = page.read_text()
    assert html.count("window.Plotly") >= 1 and html.count("MathJax.Hub") >= 1
    assert html.count(notebook.plotly_js()) == 1, "plotly.js is embedded once per document"
    dom = dump_dom(page, tmp_path / "profile")
    _check_drawn(dom)
    if exporter == "export_html":
        assert remote_requests(dom) == []
        assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)


def test_saved_page_draws_offline(tmp_path):
    require_chromium()
    import plotly.graph_objects as go
    import plotly.io as pio

    figures = [go.Figure(go.Bar(y=[1, 2])), go.Figure(go.Scatter(y=[1, 0], name="$\\gamma$"))]
    body = "".join(pio.to_html(f, include_plotlyjs=False, full_html=False) for f in figures)
    page = tmp_path / "page.html"
    page.write_text(notebook.page(body))
    dom = dump_dom(page, tmp_path / "profile")
    assert dom.count('class="plotly-graph-div js-plotly-plot"') == 2
    assert remote_requests(dom) == []
