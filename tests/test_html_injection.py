"""Nothing from data runs as script. A checkpoint saved under a path ending in markup
(`browser.HOSTILE`), whose every token is markup, is explored with a prompt of those tokens,
reported and traced, and shown inline as a notebook would; in Chromium each page shows the markup
as text, runs none of it, and carries a Content-Security-Policy that refuses the network and
blocks nothing the page draws with."""

from __future__ import annotations

import json

import pytest
from browser import (
    HOSTILE,
    chromedriver,
    csp_violations,
    injected_script_ran,
    refuses_network,
)
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.analysis.explorer import explorer_data
from momentum_interp.cli import main
from momentum_interp.compat.tokenizer import BOS_TOKEN
from momentum_interp.viz import notebook
from momentum_interp.viz.explorer import Explorer
from momentum_interp.viz.security import CSP, script_json

TOKENS = [f"{HOSTILE}{i}" for i in range(8)]
PROMPT = "".join(TOKENS[i] for i in (1, 2, 3, 4, 1, 2, 3, 4))
TINY = dict(d_model=16, d_head=4, n_layers=1, n_ctx=16, attn_only=True, seed=0, device="cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model saved under `…/HOSTILE`, its tokens `HOSTILE0`…`HOSTILE7`."""
    tokenizer = Tokenizer(WordLevel({BOS_TOKEN: 0}, unk_token=BOS_TOKEN))
    tokenizer.add_tokens(TOKENS)
    cfg = MomentumConfig(**TINY, d_vocab=tokenizer.get_vocab_size())
    path = tmp_path_factory.mktemp("ckpt") / HOSTILE
    return HookedMomentumTransformer(cfg, tokenizer=tokenizer).save_pretrained(path)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    with chromedriver(tmp_path_factory.mktemp("profile")) as driver:
        yield driver


# MathJax declares web fonts at URLs the page never holds (it typesets with system fonts,
# `notebook.MATHJAX_CONFIG`); the policy refuses them where they would otherwise fail to load.
MATHJAX_FONTS = {"font-src file", "font-src about"}


def _safe_here(driver) -> None:
    """In the document in view: no markup from data ran, the policy sits in its head, and it
    blocked nothing the page draws with."""
    assert not injected_script_ran(driver), "markup from data ran as script"
    meta = 'head > meta[http-equiv="Content-Security-Policy"]'
    assert driver.execute_script(f"return document.querySelector('{meta}')?.content") == CSP
    assert set(csp_violations(driver)) <= MATHJAX_FONTS, "the policy blocked what the page uses"


def _open_safely(driver, page) -> str:
    """Open `page`, check it (`_safe_here`) and that it refuses the network; its text as shown."""
    driver.get(page.as_uri())
    _safe_here(driver)
    assert refuses_network(driver)
    return driver.execute_script("return document.body.innerText")


def _check_explorer(driver, model_name: str) -> None:
    """The explorer in view shows the model's name and every token as text."""
    option = driver.find_element("css selector", "#model option")
    assert option.text == model_name
    strip = driver.find_element("id", "strip").text
    table = driver.find_element("id", "row-table").text
    assert strip.count(HOSTILE) > 1 and table.count(HOSTILE) > 1


def test_explore_page_shows_markup_in_names_and_prompt_as_text(checkpoint, tmp_path, driver):
    assert main(["explore", str(checkpoint), "--text", PROMPT, "--out", str(tmp_path)]) == 0
    _open_safely(driver, tmp_path / "index.html")
    _check_explorer(driver, str(checkpoint))
    assert driver.find_element("id", "strip").text.count(TOKENS[3]) == 2


def _drawn(driver, html: str) -> None:
    """Every plotly figure of the page drew (under its policy)."""
    figures = driver.find_elements("css selector", ".plotly-graph-div.js-plotly-plot")
    assert len(figures) == html.count("Plotly.newPlot(") > 0, "a figure did not draw"


def test_report_and_its_explorer_show_markup_as_text(checkpoint, tmp_path, driver):
    args = ["report", str(checkpoint), "--sequences", "16", "--no-scaling"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    text = _open_safely(driver, tmp_path / "report.html")
    assert f"Head scores: {checkpoint}" in text
    view = driver.find_element("css selector", '[id^="circuits-vis-"]')  # tokens: on a canvas
    assert "Head Selector" in view.text, "the circuitsvis view did not render"
    _drawn(driver, (tmp_path / "report.html").read_text())
    _open_safely(driver, tmp_path / "explorer" / "index.html")
    _check_explorer(driver, str(checkpoint))


def test_trace_page_shows_markup_as_text(checkpoint, tmp_path, driver):
    args = ["trace", str(checkpoint), "--layer", "0", "--head", "0", "--sequences", "16"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    text = _open_safely(driver, tmp_path / "trace.html")
    assert f"Single-layer induction trace: {checkpoint}" in text
    _drawn(driver, (tmp_path / "trace.html").read_text())
    ticks = [t.text for t in driver.find_elements("css selector", ".xtick text")]
    assert any(HOSTILE in tick for tick in ticks), "the QK circuit's token labels"


def test_notebook_inline_explorer_shows_markup_as_text(checkpoint, tmp_path, driver):
    model = HookedMomentumTransformer.from_pretrained(checkpoint)
    inline = Explorer(explorer_data({str(checkpoint): model}, PROMPT))._repr_html_()
    page = tmp_path / "notebook.html"
    page.write_text(notebook.page("<p>$x^2$</p>" + inline, title=HOSTILE), encoding="utf-8")
    _open_safely(driver, page)
    assert driver.title == HOSTILE
    assert driver.find_elements("css selector", ".MathJax"), "the maths was not typeset"
    driver.switch_to.frame(0)
    try:
        _safe_here(driver)
        _check_explorer(driver, str(checkpoint))
    finally:
        driver.switch_to.default_content()


def test_json_in_a_script_block_cannot_end_it():
    value = {"token": HOSTILE, "separators": "\u2028\u2029", "ok": [1, 2.5, None]}
    text = script_json(value)
    assert json.loads(text) == value
    assert not set("<>&\u2028\u2029") & set(text)
