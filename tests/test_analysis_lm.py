"""Language-model comparison: losses against a direct computation, gaps against the reference."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from momentum_interp import HookedMomentumTransformer
from momentum_interp.analysis.lm import (
    LMComparison,
    compare_runs,
    icl_score,
    lm_losses,
    relative_gap,
    summarise,
)
from momentum_interp.data import make_task, repeated_span_mask
from momentum_interp.evaluation import EVAL_STREAM, seeded_generator
from momentum_interp.training.config import RunConfig
from momentum_interp.training.loop import train
from momentum_interp.viz.lm import write_comparison


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"m{i}.py").write_text(
            "".join(f"x_{j} = compute(x_{j - 1}, {j % 7})\n" for j in range(1, 300 * (i + 1)))
        )
    task = {
        "name": "text",
        "sources": [str(corpus)],
        "tokenizer_vocab_size": 300,
        "cache_dir": str(root / "cache"),
        "seq_len": 32,
    }
    train_cfg = {
        "steps": 6,
        "batch_size": 4,
        "warmup_steps": 1,
        "eval_every": 3,
        "eval_batches": 1,
        "device": "cpu",
    }
    dirs = []
    for name, seed, model in [
        ("small", 0, {"d_model": 32, "d_head": 8, "n_layers": 1, "shear": "none"}),
        ("momentum", 0, {"d_model": 32, "d_head": 8, "n_layers": 1, "shear": "qk"}),
        ("small", 1, {"d_model": 32, "d_head": 8, "n_layers": 1, "shear": "none"}),
    ]:
        run = RunConfig.from_dict(
            {"name": name, "model": model, "task": task, "train": {**train_cfg, "seed": seed}}
        )
        dirs.append(train(run, root / f"{name}-seed{seed}", progress=False))
    return dirs


def test_lm_losses_match_a_direct_computation(text_runs):
    run_dir = text_runs[0]
    model = HookedMomentumTransformer.from_pretrained(run_dir)
    task = make_task(
        **{**json.loads((run_dir / "run_config.json").read_text())["task"], "split": "val"}
    )
    early, late = (2, 6), (20, 31)
    got = lm_losses(model, task, n_batches=2, batch_size=4, seed=3, icl_windows=(early, late))
    losses, masks, rows = [], [], []
    for index in range(2):
        tokens = task.sample(4, seeded_generator("cpu", 3, EVAL_STREAM, index)).tokens
        with torch.no_grad():
            logits = model(tokens)
        for b in range(4):
            rows.append([])
            for t in range(tokens.shape[1] - 1):
                losses.append(float(F.cross_entropy(logits[b, t], tokens[b, t + 1])))
                masks.append(bool(repeated_span_mask(tokens)[b, t]))
                rows[-1].append(losses[-1])
    losses_t, masks_t = torch.tensor(losses), torch.tensor(masks)
    assert got["val_loss"] == pytest.approx(float(losses_t.mean()), rel=1e-5)
    assert masks_t.any()
    assert got["induction_loss"] == pytest.approx(float(losses_t[masks_t].mean()), rel=1e-5)
    assert got["induction_fraction"] == pytest.approx(float(masks_t.float().mean()))
    by_position = torch.tensor(rows)  # [sequence, position]
    late_mean = by_position[:, late[0] : late[1]].mean()
    early_mean = by_position[:, early[0] : early[1]].mean()
    assert got["icl_score"] == pytest.approx(float(late_mean - early_mean), rel=1e-5)


def test_icl_score_on_a_hand_made_loss_curve():
    # loss falls from 4 to 2 over the first 10 positions, then stays at 2
    position_loss = torch.tensor([4.0 - 0.2 * t for t in range(10)] + [2.0] * 10)
    # early window: positions 2, 3, 4 -> 3.6, 3.4, 3.2 (mean 3.4); late: 15..19 -> 2.0
    assert icl_score(position_loss, early=(2, 5), late=(15, 20)) == pytest.approx(2.0 - 3.4)
    flat = torch.full((20,), 3.0)
    assert icl_score(flat, (0, 5), (10, 20)) == 0.0  # no in-context gain
    with pytest.raises(ValueError, match=r"late window \[15, 21\) does not lie inside the 20"):
        icl_score(position_loss, (2, 5), (15, 21))
    with pytest.raises(ValueError, match="early window"):
        icl_score(position_loss, (5, 5), (15, 20))


def test_relative_gap():
    assert relative_gap(3.09, 3.0) == pytest.approx(0.03)
    assert relative_gap(-0.6, -0.5) == pytest.approx(0.2)  # a larger ICL drop than the reference


def test_comparison_gaps_are_relative_to_the_reference(text_runs, tmp_path):
    table = compare_runs(text_runs, reference="small", n_batches=2).set_index("run")
    assert table["config"].tolist() == ["small", "momentum", "small"]
    assert table["seed"].tolist() == [0, 0, 1]
    small = table.loc[["small-seed0", "small-seed1"], "val_loss"]
    assert small.iloc[0] != small.iloc[1]  # the seed changes the run
    expected = table.loc["momentum-seed0", "val_loss"] / small.mean() - 1
    assert table.loc["momentum-seed0", "val_loss_gap"] == pytest.approx(expected)
    # against one run by its directory name instead of the config's mean
    by_run = compare_runs(text_runs, reference="small-seed1", n_batches=2).set_index("run")
    assert by_run.loc["small-seed1", "val_loss_gap"] == 0.0
    with pytest.raises(ValueError, match="reference 'nope' is neither"):
        compare_runs(text_runs, reference="nope", n_batches=1)

    summary = summarise(table.reset_index()).set_index("config")
    assert summary.loc["small", "n_seeds"] == 2 and summary.loc["momentum", "n_seeds"] == 1
    assert summary.loc["small", "val_loss"] == pytest.approx(small.mean())
    assert summary.loc["small", "val_loss_sd"] == pytest.approx(small.std(ddof=1))
    assert summary.loc["small", "val_loss_gap"] == pytest.approx(0.0, abs=1e-12)

    paths = write_comparison(text_runs, "small", tmp_path / "out")
    assert paths["markdown"].read_text().startswith("Mean over seeds per config:")
    records = json.loads(paths["records"].read_text())
    assert records["reference"] == "small"
    assert set(records["runs"]) == {"small-seed0", "small-seed1", "momentum-seed0"}
    page = paths["page"].read_text()
    assert "Plotly.newPlot" in page and "<script src=" not in page
    assert "momentum" in page and "Held-out loss during training" in page
    loaded = LMComparison.load(tmp_path / "out")  # what the demo reads back from results/lm
    assert loaded.reference == "small" and loaded.histories.keys() == set(records["runs"])
    assert loaded.table["val_loss"].tolist() == pytest.approx(
        pd.read_csv(paths["table"])["val_loss"].tolist()
    )
