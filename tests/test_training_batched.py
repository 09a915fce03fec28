"""Batched training (stacked parameters + vmap) against the sequential loop, run by run."""

import json

import numpy as np
import pytest
import torch

from momentum_interp.training.batched import group_key, train_batched
from momentum_interp.training.config import RunConfig
from momentum_interp.training.loop import TrainingDiverged, train
from momentum_interp.training.state import METRICS_FILE


def run_config(gamma: float, **train_overrides) -> RunConfig:
    return RunConfig.from_dict(
        {
            "name": f"g{gamma}",
            "model": {
                "d_model": 16,
                "d_head": 8,
                "n_heads": 2,
                "n_layers": 2,
                "attn_only": True,
                "positional_embedding_type": "rotary",
                "gamma": gamma,
            },
            "task": {"name": "mqar", "d_vocab": 32, "n_pairs": 6, "n_queries": 4, "seq_len": 24},
            "train": {
                "steps": 50,
                "batch_size": 8,
                "lr": 3e-3,
                "warmup_steps": 5,
                "eval_every": 25,
                "eval_batches": 2,
                "checkpoint_every": 50,
                "device": "cpu",
                "seed": 3,
                **train_overrides,
            },
        }
    )


def test_batched_runs_match_sequential_runs(tmp_path):
    torch.set_num_threads(1)
    runs = [run_config(g) for g in (-0.5, 0.0, 1.0)]
    batched = train_batched(runs, [tmp_path / f"b{i}" for i in range(3)], progress=False)
    for index, run in enumerate(runs):
        root = train(run, tmp_path / f"s{index}", progress=False)
        sequential = json.loads((root / METRICS_FILE).read_text())
        ours, theirs = batched[index], sequential
        loss_b = np.array([e["loss"] for e in ours["train"]])
        loss_s = np.array([e["loss"] for e in theirs["train"]])
        assert len(loss_b) == len(loss_s) == 50
        np.testing.assert_allclose(loss_b, loss_s, rtol=1e-5)
        np.testing.assert_allclose(
            [e["grad_norm"] for e in ours["train"]],
            [e["grad_norm"] for e in theirs["train"]],
            rtol=1e-4,
        )
        for e_b, e_s in zip(ours["eval"], theirs["eval"], strict=True):
            assert e_b["step"] == e_s["step"] and e_b["correct"] == e_s["correct"]
            assert e_b["loss"] == pytest.approx(e_s["loss"], rel=1e-5)
        # The run directory holds the same final weights as the sequential run's.
        saved = json.loads((tmp_path / f"b{index}" / METRICS_FILE).read_text())
        assert saved["eval"][-1]["accuracy"] == ours["eval"][-1]["accuracy"]
    # The runs did differ: γ changes the trajectory.
    assert batched[0]["train"][-1]["loss"] != batched[2]["train"][-1]["loss"]


def test_a_diverging_run_is_frozen_alone_and_the_others_match_sequential_runs(tmp_path):
    """γ = 1e30 overflows the attention scores at once; γ = 0 and 1 share its group."""
    torch.set_num_threads(1)
    runs = [run_config(g, steps=20, eval_every=10) for g in (0.0, 1e30, 1.0)]
    batched = train_batched(runs, [tmp_path / f"b{i}" for i in range(3)], progress=False)

    diverged = batched[1]
    assert diverged["completed"] is False and diverged["diverged"]["step"] == 1
    assert diverged["train"] == [] and diverged["eval"] == []  # never logged nor evaluated
    saved = json.loads((tmp_path / "b1" / METRICS_FILE).read_text())
    assert saved["diverged"] == diverged["diverged"] and saved["completed"] is False
    assert not (tmp_path / "b1" / "model.safetensors").exists()
    with pytest.raises(TrainingDiverged) as sequential:  # the loop stops it at the same step
        train(runs[1], tmp_path / "s1", progress=False)
    assert sequential.value.record == diverged["diverged"]

    for index in (0, 2):
        root = train(runs[index], tmp_path / f"s{index}", progress=False)
        theirs = json.loads((root / METRICS_FILE).read_text())
        ours = batched[index]
        assert "diverged" not in ours and len(ours["train"]) == 20
        np.testing.assert_allclose(
            [e["loss"] for e in ours["train"]], [e["loss"] for e in theirs["train"]], rtol=1e-5
        )
        for e_b, e_s in zip(ours["eval"], theirs["eval"], strict=True):
            assert e_b["step"] == e_s["step"] and e_b["correct"] == e_s["correct"]
        assert (tmp_path / f"b{index}" / "model.safetensors").is_file()


def test_groups_and_their_errors():
    a, b = run_config(0.5).to_dict(), run_config(1.0).to_dict()
    assert group_key(a) == group_key(b)
    assert group_key(a) != group_key(run_config(0.5, seed=4).to_dict())
    with pytest.raises(ValueError, match="differ only in model.gamma"):
        train_batched([run_config(0.5), run_config(0.5, seed=4)], progress=False)
