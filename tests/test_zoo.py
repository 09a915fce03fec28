"""The bundled zoo: loadable, small, and showing the headline result beside its controls."""

from __future__ import annotations

import json

import pytest

from momentum_interp import HookedMomentumTransformer, bundled_names
from momentum_interp.analysis import score_heads, trace_single_layer_induction
from momentum_interp.data import make_task
from momentum_interp.evaluation import evaluate
from momentum_interp.model.checkpoint import resolve
from momentum_interp.zoo import ZOO, run_config

REQUIRED = [
    "induction-1l-baseline",
    "induction-2l-baseline",
    "induction-1l-smeared-key",
    "induction-1l-momentum",
    "induction-1l-momentum-best",
]


@pytest.fixture(scope="module")
def zoo():
    return {
        name: HookedMomentumTransformer.from_pretrained(name, device="cpu") for name in REQUIRED
    }


@pytest.fixture(scope="module")
def scores(zoo):
    return {name: score_heads(model, n_sequences=64, seed=3) for name, model in zoo.items()}


def test_every_zoo_checkpoint_is_bundled_small_and_documented():
    assert set(REQUIRED) <= set(bundled_names())
    assert set(REQUIRED) == set(ZOO)
    for name in REQUIRED:
        directory = resolve(name)
        assert (directory / "model.safetensors").stat().st_size < 5_000_000
        for file in ("config.json", "run_config.json", "metrics.json"):
            assert (directory / file).is_file(), f"{name} lacks {file}"
        metrics = json.loads((directory / "metrics.json").read_text())
        assert metrics["completed"] and metrics["eval"], name


def test_zoo_shares_one_task_and_budget():
    configs = [run_config(name) for name in REQUIRED]
    assert all(c["task"] == configs[0]["task"] for c in configs)
    assert all(c["train"] == configs[0]["train"] for c in configs)


def _accuracy(model, name: str) -> float:
    task = make_task(**run_config(name)["task"])
    return evaluate(model, task, n_batches=4, batch_size=64, seed=99)["accuracy"]


def test_controls_behave_as_expected(zoo):
    assert _accuracy(zoo["induction-1l-baseline"], "induction-1l-baseline") < 0.1
    assert _accuracy(zoo["induction-2l-baseline"], "induction-2l-baseline") > 0.95
    assert _accuracy(zoo["induction-1l-smeared-key"], "induction-1l-smeared-key") > 0.9


def test_one_layer_momentum_head_scores_far_above_every_baseline_head(scores):
    baseline_best = scores["induction-1l-baseline"]["induction"].max()
    momentum_best = scores["induction-1l-momentum"]["induction"].max()
    # Four momentum heads share the induction attention (about 0.2 each on s*), so "far above"
    # is a ratio: the baseline's best head sits at the uniform-attention level.
    assert momentum_best > 4 * baseline_best and momentum_best > baseline_best + 0.1, (
        momentum_best,
        baseline_best,
    )


def test_gamma_zero_ablation_drops_momentum_to_near_baseline(zoo, scores):
    name = "induction-1l-momentum"
    best = scores[name].sort_values("induction").iloc[-1]
    trace = trace_single_layer_induction(
        zoo[name], int(best["layer"]), int(best["head"]), n_sequences=128, seed=5
    )
    rows = trace.ablations.set_index("ablation")
    baseline = _accuracy(zoo["induction-1l-baseline"], "induction-1l-baseline")
    assert rows.loc["clean", "accuracy"] > 0.7
    assert rows.loc["gamma_zero", "accuracy"] < baseline + 0.1


def test_two_layer_baseline_has_previous_token_then_induction_head(scores):
    table = scores["induction-2l-baseline"]
    assert int(table.sort_values("previous_token").iloc[-1]["layer"]) == 0
    assert int(table.sort_values("induction").iloc[-1]["layer"]) == 1
