"""The mechanism and orthogonality study: margins against one competitor by hand, the frequency-
pair split, the term ablations and γ → 0, the t interval over seeds, the command on a tiny sweep,
and the README block it renders."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_history_sweep
from scipy import stats

from momentum_interp.analysis.spectral import high_frequency_channels
from momentum_interp.analysis.statistics import t_interval
from momentum_interp.analysis.tracing import (
    competitors,
    default_induction_task,
    head_score_terms,
    induction_keys,
    induction_margins,
)
from momentum_interp.analysis.tracing.mechanism import measure_mechanism, token_match_shares
from momentum_interp.model.shear import TERM_NAMES
from momentum_interp.paths import REPO_ROOT

INF = float("inf")


def test_margins_against_earlier_occurrence_and_strongest_competitor_by_hand():
    """Two queries worked out by hand: t = 2 (token 1, s′ = 0, s* = 1) and t = 3 (token 2,
    s′ = 1, s* = 2), on two terms that add up to the scores."""
    tokens = torch.tensor([[1, 2, 1, 2]])
    loss_mask = torch.tensor([[False, False, True, True]])
    a = torch.tensor([[[0.0, 9, 9, 9], [0, 0, 9, 9], [1.0, 0.5, 2.0, 9], [0.0, 0.1, 4.0, 0.2]]])
    b = torch.tensor([[[0.0, 9, 9, 9], [0, 0, 9, 9], [-0.5, 1.5, 1.0, 9], [0.1, 0.1, 1.0, 0.1]]])
    scores = a + b  # row 2: [0.5, 2.0, 3.0]; row 3: [0.1, 0.2, 5.0, 0.3] (s* = 2 the highest)
    scores = torch.where(torch.ones(4, 4, dtype=torch.bool).tril(), scores, -INF)
    query_mask, key_index = induction_keys(tokens, loss_mask)
    assert key_index[0, 2:].tolist() == [1, 2]
    against = competitors(scores, key_index)
    assert against["earlier_occurrence"][0, 2:].tolist() == [0, 1]
    # the strongest other key: s = 2 for t = 2 (3.0, not s* = 1); for t = 3 s* = 2 is the
    # highest, so the strongest *other* key is s = 3 (0.3); above-diagonal 9s never count
    assert against["strongest"][0, 2:].tolist() == [2, 3]
    expected = {
        "earlier_occurrence": {"a": [-0.5, 4.0 - 0.1], "b": [2.0, 1.0 - 0.1], "total": [1.5, 4.8]},
        "strongest": {"a": [-1.5, 3.8], "b": [0.5, 0.9], "total": [-1.0, 4.7]},
        "mean_other": {"a": [-1.0, 4.0 - 0.1], "b": [1.25, 0.9], "total": [0.25, 4.8]},
    }
    for reference, competitor in against.items():
        found = induction_margins({"a": a, "b": b}, scores, query_mask, key_index, competitor)
        for name, values in expected[reference].items():
            assert found[name].tolist() == pytest.approx(values), (reference, name)


@pytest.mark.parametrize(
    "overrides, shares",
    [
        (dict(shear="qk", gamma=1.0), [4 / 7, 2 / 7, 0, 1 / 7]),
        (dict(shear="k", gamma=1.0), [2 / 3, 1 / 3, 0, 0]),
        (dict(shear="none", smeared_key=True, smear_init=0.2), None),  # α = 0.2
        (dict(shear="none"), [1, 0, 0, 0]),
    ],
    ids=["qk", "k", "smeared", "none"],
)
def test_token_match_prediction_follows_the_coefficients(make_model, overrides, shares):
    model = make_model(**overrides)
    attn = model.blocks[0].attn
    if shares is None:
        alpha = float(torch.sigmoid(attn.smear_logit.detach()[1]))
        shares = [-alpha / (1 - 2 * alpha), (1 - alpha) / (1 - 2 * alpha), 0, 0]
    found = token_match_shares(attn, 1)
    assert [found[name] for name in TERM_NAMES] == pytest.approx(shares)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(positional_embedding_type="rotary", shear="qk"),
        dict(positional_embedding_type="rotary", shear="qk", shear_placement="pre_rope"),
        dict(positional_embedding_type="rotary", shear="k", d_head=8, rotary_dim=4),
        dict(positional_embedding_type="standard", shear="qk"),
    ],
    ids=["post_rope", "pre_rope", "partial", "learned_positions"],
)
def test_frequency_pair_split_adds_up_to_every_term(make_model, overrides):
    """The fast and slow pairs' parts of each term add up to the term: no cross terms."""
    model = make_model(gamma=0.7, **overrides)
    tokens = torch.randint(0, model.cfg.d_vocab, (3, model.cfg.n_ctx))
    _, cache = model.run_with_cache(tokens)
    high = high_frequency_channels(model.cfg)
    whole = head_score_terms(model, cache, 1, 1)
    fast = head_score_terms(model, cache, 1, 1, channels=high)
    slow = head_score_terms(model, cache, 1, 1, channels=~high)
    for name in TERM_NAMES:
        torch.testing.assert_close(fast[name] + slow[name], whole[name])
    assert min(fast["current_current"].abs().max(), slow["current_current"].abs().max()) > 1e-4


def test_high_frequency_channels_are_whole_fast_pairs(make_model):
    # d_head 8, rotary_dim 8: pairs (j, j + 4) at θ = 1, 0.1, 0.01, 0.001: the two fastest
    assert high_frequency_channels(make_model(d_head=8).cfg).tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    # rotary_dim 4 of d_head 8: pairs (0, 2) θ = 1 and (1, 3) θ = 0.01; channels 4-7 do not rotate
    partial = make_model(d_head=8, rotary_dim=4).cfg
    assert high_frequency_channels(partial).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]


def test_ablations_and_gamma_zero_on_models_with_and_without_momentum(make_model):
    """Without momentum the score is one term: removing current·previous-key changes nothing,
    removing both equals removing current·current, γ → 0 equals clean. With momentum the four
    removals differ, and γ → 0 is the same model with set_gamma(0)."""
    plain = make_model(shear="none", n_ctx=24, d_vocab=30)
    task = default_induction_task(plain.cfg)
    found = measure_mechanism(plain, 1, 0, task, 16, 3)
    effects = found.ablations
    assert effects["remove_current_prev_key"] == effects["clean"]
    assert effects["gamma_zero"] == effects["clean"]
    assert effects["remove_both"] == effects["remove_current_current"]
    assert found.shares["earlier_occurrence"]["current_current"] == pytest.approx(1.0)

    momentum = make_model(shear="qk", gamma=1.0, n_ctx=24, d_vocab=30)
    found = measure_mechanism(momentum, 1, 0, task, 16, 3)
    effects = found.ablations
    head_level = ["clean", "remove_current_current", "remove_current_prev_key", "remove_both"]
    attention = {effects[name].induction_attention for name in [*head_level, "gamma_zero"]}
    assert len(attention) == 5  # every ablation changes this head's pattern
    for name in head_level[1:]:  # the other heads of its layer do not change its pattern...
        layer = effects[f"layer_{name}"]
        assert layer.induction_attention == pytest.approx(effects[name].induction_attention)
        assert layer.loss != effects[name].loss  # ...but they change the output
    for reference in ("mean_other", "earlier_occurrence", "strongest"):
        margins = found.margins[reference]
        assert sum(margins[n] for n in TERM_NAMES) == pytest.approx(margins["total"])
    zero = copy.deepcopy(momentum)
    zero.set_gamma(0.0)
    clean_zero = measure_mechanism(zero, 1, 0, task, 16, 3).ablations["clean"]
    assert (effects["gamma_zero"].loss, effects["gamma_zero"].induction_attention) == (
        pytest.approx(clean_zero.loss),
        pytest.approx(clean_zero.induction_attention),
    )
    assert found.ablations["clean"].delta_accuracy == 0.0
    assert 0.0 <= found.top_fraction <= 1.0 and found.n_sequences == 16


def test_t_interval_matches_scipy():
    values = [0.21, 0.48, 0.33]
    found = t_interval(values)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (found.value, found.low, found.high) == pytest.approx((np.mean(values), low, high))
    assert found.high - found.value == pytest.approx(4.302652 * np.std(values, ddof=1) / 3**0.5)
    assert t_interval([0.5, 0.5, 0.5]).to_dict() == {
        "value": 0.5,
        "low": 0.5,
        "high": 0.5,
        "confidence": 0.95,
    }
    assert np.isnan(t_interval([0.5]).low) and np.isnan(t_interval([0.1, np.nan]).high)


def test_mechanism_of_a_sweep_writes_one_table_per_run_and_the_summary(tmp_path, capsys):
    """Two arms × two training seeds: one table per run, resumed when rerun, and per arm the
    per-seed values with their mean and t interval; a wrong path or runs directory is refused."""
    from momentum_interp.cli import main

    out, runs = tiny_history_sweep(tmp_path, steps=12, seeds=[0, 1])
    assert main(["mechanism", str(runs), "--sequences", "8"]) == 2  # not a sweep's --out
    assert "results.jsonl" in capsys.readouterr().err
    assert main(["mechanism", str(out), "--sequences", "8"]) == 2  # runs elsewhere: told so
    assert "--runs-dir" in capsys.readouterr().err
    argv = ["mechanism", str(out), "--runs-dir", str(runs), "--sequences", "8", "--quiet"]
    assert main(argv) == 0
    tables = {p.name: p for p in (out / "mechanism").glob("*.json")}
    names = ["mom-seed0.json", "mom-seed1.json", "plain-seed0.json", "plain-seed1.json"]
    assert sorted(tables) == [*names, "summary.json"]
    summary = json.loads(tables["summary.json"].read_text())
    assert [(a["variant"], a["role"], a["seeds"]) for a in summary["arms"]] == [
        ("mom", "momentum", [0, 1]),
        ("plain", "baseline_1l", [0, 1]),
    ]
    assert summary["provenance"]["command"].startswith("momentum-interp mechanism")
    key = "ablations.remove_current_prev_key.delta_accuracy"
    per_run = [
        json.loads(tables[f"mom-seed{s}.json"].read_text())["measurement"]["ablations"]
        for s in (0, 1)
    ]
    cell = summary["arms"][0]["summary"][key]
    assert cell["values"] == [r["remove_current_prev_key"]["delta_accuracy"] for r in per_run]
    interval = t_interval(cell["values"])
    assert (cell["value"], cell["low"], cell["high"]) == pytest.approx(
        (interval.value, interval.low, interval.high), nan_ok=True
    )
    written = tables["mom-seed0.json"].stat().st_mtime_ns
    assert main(argv) == 0  # resumed: the run's table is kept, not measured again
    assert tables["mom-seed0.json"].stat().st_mtime_ns == written


def test_readme_mechanism_wording_follows_the_summary(tmp_path):
    """If removing current·current cost nothing in the paper's model, the bullet would say the
    mechanism is the paper's; the committed numbers say what they say."""
    from momentum_interp.narrative import readme as narrative_readme
    from momentum_interp.narrative.mechanism import PAPER_MODEL, mechanism_headline

    results = tmp_path / "results"
    shutil.copytree(narrative_readme.RESULTS, results)
    path = results / "zoo_history" / "mechanism" / "summary.json"
    summary = json.loads(path.read_text())
    readme = (REPO_ROOT / "README.md").read_text()
    assert mechanism_headline(summary) in " ".join(readme.split())
    paper = next(a for a in summary["arms"] if a["variant"] == PAPER_MODEL)
    paper["summary"]["ablations.layer_remove_current_current.delta_accuracy"].update(
        value=0.001, low=-0.002, high=0.004
    )
    paper["summary"]["ablations.layer_remove_current_prev_key.delta_accuracy"].update(
        value=-0.3, low=-0.35, high=-0.25
    )
    path.write_text(json.dumps(summary))
    changed = " ".join(narrative_readme.render_readme(readme, results).split())
    assert "**The mechanism is the one the paper names.**" in changed
    assert "from every head costs 30.0 [25.0, 35.0] points" in changed


def test_committed_study_covers_three_training_seeds_per_configuration():
    summary = json.loads((REPO_ROOT / "results/zoo_history/mechanism/summary.json").read_text())
    assert len(summary["arms"]) == 6
    assert all(arm["seeds"] == [0, 1, 2] for arm in summary["arms"])
    assert Path(
        REPO_ROOT / "results/zoo_history/mechanism/induction-1l-momentum-seed2.json"
    ).is_file()
