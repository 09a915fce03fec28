"""The circuit explorer: `momentum-interp explore` writes a self-contained page, and in real
Chromium (driven through chromedriver) clicking a token and moving the γ slider shows the
attention row of the 1-layer model run with that γ (computed here by the model, to 1e-4)."""

from __future__ import annotations

import re

import pytest
import torch
from browser import chromedriver

from momentum_interp import HookedMomentumTransformer
from momentum_interp.analysis.explorer import explorer_data
from momentum_interp.cli import main
from momentum_interp.viz.explorer import Explorer

MODELS = ["induction-1l-momentum", "induction-1l-baseline", "induction-1l-smeared-key"]
# Ten random tokens, then their repeat: queries 10… have induction keys.
TOKENS = "5 17 42 8 33 61 2 29 50 11 5 17 42 8 33 61 2 29 50 11"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("explorer")
    assert main(["explore", *MODELS, "--tokens", TOKENS, "--out", str(out)]) == 0
    return out / "index.html"


def test_explore_writes_a_self_contained_page(page):
    html = page.read_text()
    assert all(name in html for name in MODELS)
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)


def test_explore_rejects_bad_input_with_status_2(tmp_path, capsys):
    assert (
        main(["explore", MODELS[0], "--text", "1 2", "--tokens", "1 2", "--out", str(tmp_path)])
        == 2
    )
    assert main(["explore", MODELS[0], "--tokens", "1 999", "--out", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()


def test_explorer_shows_inline_in_a_notebook():
    shown = Explorer(
        explorer_data({"m": HookedMomentumTransformer.from_pretrained(MODELS[0])}, TOKENS)
    )
    inline = shown._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and "&lt;script" in inline


def test_the_inline_frame_sizes_to_its_content(tmp_path, browser):
    """In a notebook's output the explorer's frame is as tall as its page, also after a later
    query makes the per-key table longer: nothing is cut off inside the frame."""
    shown = Explorer(
        explorer_data({"m": HookedMomentumTransformer.from_pretrained(MODELS[0])}, TOKENS)
    )
    cell = tmp_path / "cell.html"
    cell.write_text(f"<!DOCTYPE html><html><body>{shown._repr_html_()}</body></html>")
    browser.get(cell.as_uri())
    frame = browser.find_element("tag name", "iframe")

    def fits() -> bool:
        outer = frame.size["height"]
        browser.switch_to.frame(frame)
        inner = browser.execute_script("return document.documentElement.scrollHeight;")
        browser.switch_to.default_content()
        return inner <= outer

    assert fits()
    browser.switch_to.frame(frame)
    browser.find_element(
        "css selector", f'#strip span[data-query="{len(TOKENS.split()) - 1}"]'
    ).click()
    browser.switch_to.default_content()
    assert fits()


def _pattern(name: str, gamma: float | None, layer: int = 0, head: int = 0) -> torch.Tensor:
    model = HookedMomentumTransformer.from_pretrained(name)
    if gamma is not None:
        model.set_gamma(gamma)
    tokens = torch.tensor([[int(t) for t in TOKENS.split()]])
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    return cache["pattern", 0][0, head].double()  # [q_pos, k_pos]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromedriver(tmp_path_factory.mktemp("profile")) as driver:
        yield driver


def _shown_row(driver) -> torch.Tensor:
    cells = driver.find_elements("css selector", "#row-table td.attn")
    return torch.tensor([float(c.get_attribute("data-value")) for c in cells], dtype=torch.float64)


def _check_row(driver, name, gamma, layer, head, query) -> None:
    """The attention row on the page is the model's (run with `gamma`) to 1e-4."""
    expected = _pattern(name, gamma, layer, head)[query, : query + 1]
    torch.testing.assert_close(_shown_row(driver), expected, atol=1e-4, rtol=0)


def _head(driver) -> tuple[int, int]:
    button = driver.find_element("css selector", "#heads button.on")
    return int(button.get_attribute("data-layer")), int(button.get_attribute("data-head"))


def test_clicking_a_token_and_moving_the_slider_shows_the_model_run_at_that_gamma(page, browser):
    from selenium.webdriver.common.keys import Keys

    browser.get(page.as_uri())
    query = 13  # the repeat of token 8 (position 3): its induction key is 4
    browser.find_element("css selector", f'#strip span[data-query="{query}"]').click()
    assert "s* = 4" in browser.find_element("id", "row-title").text
    layer, head = _head(browser)
    slider = browser.find_element("id", "gamma")
    assert float(slider.get_attribute("value")) == 1.0  # the paper model's own γ

    slider.send_keys(*[Keys.ARROW_LEFT] * 20)  # step 0.05: from γ = 1 to γ = 0
    assert float(slider.get_attribute("value")) == 0.0
    _check_row(browser, MODELS[0], 0.0, layer, head, query)
    slider.send_keys(*[Keys.ARROW_RIGHT] * 20)  # back to γ = 1
    assert float(slider.get_attribute("value")) == 1.0
    _check_row(browser, MODELS[0], 1.0, layer, head, query)
    # Typing a γ works too, and the row follows the model at that γ.
    box = browser.find_element("id", "gamma-value")
    box.clear()
    box.send_keys("0.5", Keys.ENTER)
    _check_row(browser, MODELS[0], 0.5, layer, head, query)


def test_switching_model_and_head_shows_that_head(page, browser):
    from selenium.webdriver.support.ui import Select

    browser.get(page.as_uri())
    Select(browser.find_element("id", "model")).select_by_visible_text(MODELS[1])
    browser.find_element("css selector", '#heads button[data-head="2"]').click()
    query = 15
    browser.find_element("css selector", f'#strip span[data-query="{query}"]').click()
    assert float(browser.find_element("id", "gamma").get_attribute("value")) == 0.0  # baseline
    _check_row(browser, MODELS[1], None, 0, 2, query)
    note = browser.find_element("id", "note").text
    assert "trained without a shear" in note


def test_the_page_recomputes_a_gain_normalised_model_at_any_gamma(tmp_path, browser):
    """The page's JavaScript divides by the RMS gain like the model: typed γ = 2 gives the row
    of the normalised model run with γ = 2."""
    from selenium.webdriver.common.keys import Keys

    from momentum_interp.config import MomentumConfig

    cfg = MomentumConfig(
        n_layers=1, d_model=32, n_heads=2, d_head=16, d_vocab=64, n_ctx=32, attn_only=True,
        positional_embedding_type="rotary", shear_norm=True, gamma=0.5, seed=1,
    )  # fmt: skip
    model = HookedMomentumTransformer(cfg)
    model.save_pretrained(tmp_path / "normalised")
    out = tmp_path / "page"
    assert (
        main(["explore", str(tmp_path / "normalised"), "--tokens", TOKENS, "--out", str(out)]) == 0
    )
    browser.get((out / "index.html").as_uri())
    query = 13
    browser.find_element("css selector", f'#strip span[data-query="{query}"]').click()
    layer, head = _head(browser)
    box = browser.find_element("id", "gamma-value")
    box.clear()
    box.send_keys("2", Keys.ENTER)
    model.set_gamma(2.0)
    tokens = torch.tensor([[int(t) for t in TOKENS.split()]])
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    expected = cache["pattern", 0][0, head].double()[query, : query + 1]
    torch.testing.assert_close(_shown_row(browser), expected, atol=1e-4, rtol=0)


def test_the_demo_explorer_opens_where_the_evidence_is(tmp_path, browser):
    """The demo's explorer (the zoo, paper model first) opens on each model's top induction head
    by `score`'s ranking, at the query whose attention on s* is largest; on the paper model that
    attention is its row's maximum; the page states the head's mean over all induction queries
    and its median query is one click away."""
    from momentum_interp.analysis.heads import induction_heads_to_trace
    from momentum_interp.demo import zoo_names
    from momentum_interp.narrative.zoo import PAPER_MODEL
    from momentum_interp.viz.explorer import write_explorer

    names = sorted(zoo_names(), key=lambda name: name != PAPER_MODEL)
    models = {name: HookedMomentumTransformer.from_pretrained(name) for name in names}
    data = explorer_data(models, seed=0)
    browser.get(write_explorer(data, tmp_path).as_uri())
    from selenium.webdriver.support.ui import Select

    for index, (name, model) in enumerate(models.items()):
        Select(browser.find_element("id", "model")).select_by_index(index)
        assert _head(browser) == induction_heads_to_trace(model).top
        keys = data.induction_keys
        title = browser.find_element("id", "row-title").text
        query = int(re.match(r"Query (\d+)", title).group(1))
        row = _shown_row(browser)
        # Every induction query's attention on s*, as the page computes its rows.
        shown = browser.execute_script(
            "return D.induction_keys.map((s, t) => (s >= 0 ? row(t).attn[s] : null));"
        )
        on_star = {t: v for t, v in enumerate(shown) if v is not None}
        assert on_star[query] == max(on_star.values())
        if name == PAPER_MODEL:
            assert int(row.argmax()) == keys[query]
        text = browser.find_element("id", "opening-text").text
        mean = sum(on_star.values()) / len(on_star)
        assert f"{mean:.3f}" in text and f"{len(on_star)} queries" in text
        browser.find_element("id", "typical").click()
        typical = int(re.match(r"Query (\d+)", browser.find_element("id", "row-title").text)[1])
        assert sorted(on_star.values())[(len(on_star) - 1) // 2] == on_star[typical]
