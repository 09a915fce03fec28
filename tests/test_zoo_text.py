"""The bundled text models: the LM comparison's seed-0 runs, with their tokenizers and cards."""

from __future__ import annotations

import json

import pytest

from momentum_interp import HookedMomentumTransformer, bundled_names
from momentum_interp.model.checkpoint import resolve
from momentum_interp.narrative.cards import lm_comparison_row, text_card_markdown
from momentum_interp.paths import REPO_ROOT
from momentum_interp.zoo import TEXT_ZOO, run_config

CODE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.mark.parametrize("name", list(TEXT_ZOO))
def test_text_model_is_the_committed_comparison_run(name):
    """Its training record is the one `results/lm/runs.json` holds for `<name>-seed0`: the same
    held-out counts at every evaluation, the losses to float32 re-run rounding."""
    assert name in bundled_names()
    committed = json.loads((REPO_ROOT / "results" / "lm" / "runs.json").read_text())["runs"]
    record = committed[f"{name}-seed0"]
    bundled = json.loads((resolve(name) / "metrics.json").read_text())["eval"]
    assert [e["correct"] for e in bundled] == [e["correct"] for e in record["eval"]]
    for mine, theirs in zip(bundled, record["eval"], strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-6)
    assert run_config(name)["model"] == record["run_config"]["model"]


@pytest.mark.parametrize("name", list(TEXT_ZOO))
def test_text_model_reads_code_with_its_tokenizer(name):
    model = HookedMomentumTransformer.from_pretrained(name)
    tokens = model.to_tokens(CODE)
    assert model.to_string(tokens[0, 1:]) == CODE  # BOS, then a lossless round trip
    loss = model(tokens, return_type="loss").item()
    # the second function repeats the first's shape: far below a uniform guess (ln 2048 = 7.6)
    assert loss < 4.0, loss
    _, cache = model.run_with_cache(tokens)
    assert cache["pattern", 1].shape == (1, model.cfg.n_heads, tokens.shape[1], tokens.shape[1])
    assert not model.cfg.attn_only and "blocks.1.hook_mlp_out" in model.hook_dict


def test_text_cards_quote_the_committed_comparison():
    card = text_card_markdown("lm-momentum-S")
    row = lm_comparison_row("lm-momentum-S-seed0")
    assert f"**{float(row['val_loss']):.3f}**" in card
    assert f"{100 * float(row['val_loss_gap']):+.1f} %" in card
