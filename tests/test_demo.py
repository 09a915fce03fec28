"""The main job: `momentum-interp demo` writes a self-contained report that renders offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from browser import dump_dom, remote_requests

from momentum_interp.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAPER = "induction-1l-momentum"
REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.IGNORECASE)
REMOTE_SOURCE = re.compile(r"<(script|link)[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//", re.I)
REMOTE_IMPORT = re.compile(r"import[^;]*from\s*[\"']https?://", re.IGNORECASE)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--sequences", "128"]) == 0
    return out


def test_demo_writes_report_and_numbers(demo_out, capsys):
    numbers = json.loads((demo_out / "results.json").read_text())
    models = {m["name"]: m for m in numbers["models"]}
    assert models["induction-1l-baseline"]["accuracy"]["value"] < 0.1
    assert models["induction-2l-baseline"]["accuracy"]["value"] > 0.95
    for model in models.values():
        accuracy = model["accuracy"]
        assert accuracy["low"] <= accuracy["value"] <= accuracy["high"]
    traced = [key for key in numbers if key.startswith("trace_")]
    assert traced and "spectral" in numbers and numbers["provenance"]["seed"] == 0
    paper = next(m for m in numbers["headline"]["models"] if m["name"] == "induction-1l-momentum")
    tied = paper["induction_ranking"]["tied"]
    assert traced == [f"trace_L{layer}H{head}" for layer, head in tied]
    assert numbers["comparison"].startswith("The paper reports 83.4%")
    assert "induction-1l-momentum reaches" in numbers["comparison"]
    # the γ*(N) section is the decided fair study's (every committed study.json), not the first
    # sweep's, which decides nothing
    studies = sorted((ROOT / "results" / "fair_gamma_star").glob("n*/study.json"))
    assert studies and "scaling" not in numbers
    assert numbers["gamma_studies"] == [json.loads(p.read_text())["provenance"] for p in studies]
    # the language-model section is read back from the committed comparison
    comparison = pd.read_csv(ROOT / "results" / "lm" / "comparison.csv")
    lm = numbers["language_models"]
    assert [r["run"] for r in lm["runs"]] == comparison["run"].tolist()
    assert {c["config"] for c in lm["configs"]} == set(comparison["config"])


def test_the_circuitsvis_view_opens_on_the_paper_models_top_head(demo_out):
    """The report's circuitsvis view opens (its first head) on the paper model's top induction
    head, chosen by the rule every trace and the explorer use, not on a negative control."""
    from momentum_interp import HookedMomentumTransformer
    from momentum_interp.analysis.heads import induction_heads_to_trace
    from momentum_interp.naming import head_label

    html = (demo_out / "report.html").read_text()
    first = re.search(r'<ul class="mi-head-key"[^>]*><li><b>#1</b> ([^<]+)</li>', html).group(1)
    top = induction_heads_to_trace(HookedMomentumTransformer.from_pretrained(PAPER)).tied[0]
    assert first.startswith(f"{PAPER} {head_label(*top)} ")


def test_demo_html_is_self_contained(demo_out):
    html = (demo_out / "report.html").read_text()
    assert not REMOTE_SCRIPT.search(html), "a <script src> points at the network"
    assert not REMOTE_IMPORT.search(html), "a module import points at the network"
    assert "Plotly" in html and "CircuitsVis.render" in html
    assert (
        "Language-model comparison" in html and "decided with each arm&#x27;s learning rate" in html
    )
    assert "the best momentum against depth" not in html  # the saturated sweep's section
    for name in ("induction-1l-baseline", "induction-2l-baseline", "induction-1l-momentum"):
        assert name in html


def test_demo_links_its_self_contained_explorer(demo_out):
    """The report links the zoo's circuit explorer, written beside it with every zoo model."""
    html = (demo_out / "report.html").read_text()
    (href,) = re.findall(r'<p>Circuit explorer: <a href="([^"]+)">', html)
    assert "γ slider" in html
    page = demo_out / href
    assert page.is_file(), f"the report links {href}, which the demo did not write"
    explorer = page.read_text()
    assert not REMOTE_SOURCE.search(explorer), "the explorer loads a script or style by URL"
    assert not REMOTE_IMPORT.search(explorer)
    numbers = json.loads((demo_out / "results.json").read_text())
    data = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', explorer)
    payload = json.loads(data.group(1))
    assert sorted(m["name"] for m in payload["models"]) == sorted(
        m["name"] for m in numbers["models"]
    )
    assert payload["models"][0]["name"] == "induction-1l-momentum"  # opens on the paper's model


def test_report_renders_offline_in_headless_chromium(demo_out, tmp_path):
    """A real browser renders every figure and the circuitsvis view, fetching nothing remote."""
    html = (demo_out / "report.html").read_text()
    page = tmp_path / "report.html"
    page.write_text(html)
    dom = dump_dom(page, tmp_path / "profile")
    # circuitsvis renders React components into its (initially empty) div.
    rendered = re.search(r'<div id="circuits-vis-[^"]+"[^>]*>(.*?)</div>', dom, re.DOTALL)
    assert rendered and rendered.group(1).strip(), "the circuitsvis element did not render"
    assert "Head Selector" in dom
    n_figures = html.count("Plotly.newPlot(")
    assert n_figures >= 5
    assert dom.count('class="plotly-graph-div js-plotly-plot"') == n_figures, (
        "a chart did not render"
    )
    remote = remote_requests(dom)
    assert remote == [], f"the page requested {remote[:5]}"


def test_report_tables_fit_their_column(demo_out, tmp_path):
    """In Chromium at a desktop width every table of the report (the ablation and LM tables
    included) lies inside the page's column: no cell's box runs past it, nothing hides behind a
    sideways scroll."""
    from browser import chromedriver

    with chromedriver(tmp_path / "profile") as driver:
        driver.set_window_size(1400, 1000)
        driver.get((demo_out / "report.html").as_uri())
        outside = driver.execute_script(
            """
            const column = document.body.getBoundingClientRect();
            return Array.from(document.querySelectorAll("table.mi-table th, table.mi-table td"))
              .filter((cell) => cell.getBoundingClientRect().right > column.right + 1)
              .map((cell) => cell.closest("table").querySelector("th").textContent + ": " +
                   cell.textContent);
            """
        )
        n_tables = driver.execute_script("return document.querySelectorAll('table').length;")
    assert n_tables >= 5
    assert outside == [], f"{len(outside)} cells run past the column: {outside[:5]}"


def test_report_figures_read_at_first_sight(demo_out, tmp_path):
    """Every figure of the demo report as Chromium draws it: colour-bar labels apart, every trace
    with a mark a reader can see, legends that show each trace's mark and run in the order of
    stacked bars, and no raw TeX (`^{`, `_{`) anywhere in the page's text."""
    from browser import (
        chromedriver,
        figure_layouts,
        hidden_traces,
        legend_and_stack,
        legend_mismatches,
        overlapping_labels,
        raw_tex,
    )

    with chromedriver(tmp_path / "profile") as driver:
        driver.set_window_size(1400, 1000)
        layouts = figure_layouts(driver, demo_out / "report.html")
        prose = driver.execute_script("return document.body.innerText;")
    assert len(layouts) >= 20
    faults = {}
    for i, layout in enumerate(layouts):
        legend, stacked = legend_and_stack(layout)
        found = {
            "colour-bar labels overlap": overlapping_labels(layout["colorbar_ticks"]),
            "hidden traces": hidden_traces(layout),
            "legend shows another mark": legend_mismatches(layout),
            "legend against the stack": [] if legend == stacked else [legend, stacked],
            "raw TeX": raw_tex(layout["texts"]),
        }
        faults.update({f"figure {i}: {k}": v for k, v in found.items() if v})
    assert faults == {}
    assert raw_tex(prose.splitlines()) == []


def test_demo_report_shows_the_fair_gamma_study(demo_out):
    """The γ*(N) section: per committed depth, each shear family's row (its best γ, rate and
    vertex γ*) as study.json has it, the paper's verdict, and the AUC-against-γ figure."""
    html = (demo_out / "report.html").read_text()
    section = html[html.index("decided with each arm&#x27;s") :]
    for path in sorted((ROOT / "results" / "fair_gamma_star").glob("n*/study.json")):
        for depth in json.loads(path.read_text())["depths"]:
            for family in depth["families"]:
                vertex = f"{family['gamma_star']:.3g}"
                assert re.search(rf"<td[^>]*>{family['best_gamma']:g}</td>", section)
                assert vertex in section, (family["family"], vertex)
            assert f"N = {depth['n_layers']}: AUC of held-out accuracy against" in section
    # closed by the depths side by side and the law's statement for each q/k shear
    across = section[section.index("Across depths") :][:20000]  # the table and its notes
    assert "q/k raw: γ* [95 % bootstrap]" in across and "no law a·N^b" in across


def test_demo_report_shows_formation_from_the_committed_tables(demo_out):
    """The report's "Induction over training" section: the study's table (one row per arm, its
    phase-change count) and figures, drawn from results/zoo_history/formation/."""
    from momentum_interp.analysis.formation_study import load_formation
    from momentum_interp.zoo import ZOO_FORMATION

    summary, arms = load_formation(ZOO_FORMATION)
    html = (demo_out / "report.html").read_text()
    section = html[html.index("Induction over training") :]
    for arm in summary["arms"]:
        row = re.search(rf"<td[^>]*>{re.escape(arm['variant'])}</td><td[^>]*>([^<]+)</td>", section)
        assert row and row.group(1) == f"{arm['n_detected']}/{arm['n_seeds']}", arm["variant"]
    n_patterns = section.count("attention over training")
    assert n_patterns == len(arms)  # one small-multiples figure per arm


def test_the_page_is_drawn_from_measurements_alone():
    """`build_report` only draws: handed the committed record and measurements (no model: every
    `ZooResult.model` is None), it writes the page, linking the explorer with the seed that drew
    its tokens; so the demo measures everything before it renders."""
    import torch

    from momentum_interp.analysis.explorer import ExplorerData
    from momentum_interp.analysis.statistics import Estimate
    from momentum_interp.demo import DemoPage, HeadPatterns, ZooResult, build_report

    record = json.loads((ROOT / "results" / "zoo" / "zoo.json").read_text())
    results = [
        ZooResult(m["name"], m["role"], None, Estimate(**m["accuracy"]), m["loss"], 512, None)
        for m in record["models"]
    ]
    tokens = ["a", "b", "a", "b"]
    page = DemoPage(
        patterns=HeadPatterns(torch.full((1, 4, 4), 0.25).tril(), tokens, ["head"]),
        histories={r.name: {"eval": [{"step": 0, "accuracy": 0.5}]} for r in results},
        explorer=ExplorerData([1, 2, 1, 2], tokens, [-1, -1, 1, 2], [], seed=7),
        seed=7,
    )
    html = build_report(results, record, {}, page, elapsed=1.0).to_html()
    assert "on one repeated random sequence (seed 7)" in html
    assert all(m["name"] in html for m in record["models"])
