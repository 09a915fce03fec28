"""One seed convention: for each bundled model, `score`, `trace`, the demo and the committed
results (which the README and notebook 01 show) name the same top head(s) with the same numbers."""

from __future__ import annotations

import json

import pytest

from momentum_interp.analysis.heads import induction_heads_to_trace
from momentum_interp.cli import main
from momentum_interp.defaults import DEFAULT_SEED
from momentum_interp.demo import measure_zoo
from momentum_interp.model.checkpoint import bundled_names
from momentum_interp.results import PAPER_MODEL, ZOO_DIR, ZOO_RECORD
from momentum_interp.zoo import ZOO

RECORD = json.loads((ZOO_DIR / ZOO_RECORD).read_text())
COMMITTED = {m["name"]: m for m in RECORD["models"]}
MODELS = [name for name in ZOO if name in bundled_names()]


def _heads(ranking: dict) -> list[tuple]:
    return [(h["layer"], h["head"], h["value"], h["low"], h["high"]) for h in ranking["heads"]]


def _same_ranking(a: dict, b: dict) -> None:
    assert a["tied"] == b["tied"]
    assert (a["seed"], a["n_sequences"], a["seq_len"]) == (
        b["seed"],
        b["n_sequences"],
        b["seq_len"],
    )
    for x, y in zip(_heads(a), _heads(b), strict=True):
        assert x[:2] == y[:2] and x[2:] == pytest.approx(y[2:], abs=1e-9)


@pytest.fixture(scope="module")
def demo():
    assert RECORD["provenance"]["seed"] == DEFAULT_SEED
    measured = measure_zoo(n_sequences=RECORD["data"]["n_sequences"])
    return {r.name: r for r in measured}


@pytest.mark.parametrize("name", MODELS)
def test_score_demo_and_committed_results_agree(name, demo, tmp_path, capsys):
    assert main(["score", name, "--out", str(tmp_path)]) == 0
    score = json.loads((tmp_path / "score.json").read_text())
    printed = capsys.readouterr().out
    tied = ", ".join(f"L{layer}H{head}" for layer, head in score["tied"])
    assert tied in printed
    _same_ranking(score, demo[name].induction.to_dict())
    _same_ranking(score, COMMITTED[name]["induction_ranking"])
    # the demo's accuracy is the committed one, on the same seed and sequences
    committed = COMMITTED[name]["accuracy"]
    accuracy = demo[name].accuracy.to_dict()
    assert [accuracy[k] for k in ("value", "low", "high")] == pytest.approx(
        [committed[k] for k in ("value", "low", "high")], abs=1e-9
    )
    # `trace` chooses by a rule that ignores its own --seed: the same heads as `score`'s defaults
    assert [list(h) for h in induction_heads_to_trace(demo[name].model).tied] == score["tied"]


def test_trace_follows_the_tied_heads_whatever_its_seed(tmp_path):
    out = tmp_path / "trace"
    assert main(["trace", PAPER_MODEL, "--sequences", "64", "--seed", "7", "--out", str(out)]) == 0
    numbers = json.loads((out / "trace.json").read_text())
    tied = COMMITTED[PAPER_MODEL]["induction_ranking"]["tied"]
    assert numbers["ranking"]["tied"] == tied
    assert [h["head"] for h in numbers["headlines"]] == tied
    assert [h["head"] for h in RECORD["trace"]["heads"]] == tied  # and the demo traced them
    assert numbers["provenance"]["seed"] == 7
