"""Induction over training: the checkpoint-history schedule, snapshots kept once across a kill
and resume, the phase-change statistic on hand-made curves, and `formation` on a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from momentum_interp.analysis.formation import ABRUPTNESS, MIN_TOTAL_DROP, phase_change
from momentum_interp.training.history import history_schedule


def test_schedule_is_dense_early_spread_late_and_ends_at_the_last_step():
    steps = history_schedule(2000, 50)
    assert len(steps) >= 50 and steps == sorted(set(steps))
    assert steps[0] == 1 and steps[-1] == 2000
    assert sum(s <= 20 for s in steps) >= 5  # log-spaced: several snapshots in the first 1 %
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert max(gaps) <= 2000 / 25  # evenly spaced half: no gap wider than two even steps
    assert history_schedule(30, 50) == list(range(1, 31))  # fewer steps than snapshots: all
    assert history_schedule(100, 0) == []


def test_phase_change_by_hand():
    steps = [1, 2, 4, 8, 16, 32, 64, 128]
    sudden = [4.0, 4.0, 4.0, 3.9, 1.0, 0.9, 0.9, 0.9]  # 2.9 of 3.1 within 8 -> 16
    found = phase_change(steps, sudden)
    assert found.total_drop == pytest.approx(3.1)
    assert found.window == (8, 16) and found.largest_window_drop == pytest.approx(2.9)
    assert found.abruptness == pytest.approx(2.9 / 3.1) and found.detected
    gradual = [4.0, 3.6, 3.2, 2.8, 2.4, 2.0, 1.6, 1.2]  # 0.4 per doubling of 2.8 in all
    slow = phase_change(steps, gradual)
    assert slow.abruptness == pytest.approx(0.4 / 2.8) and not slow.detected
    flat = phase_change(steps, [4.0, 3.99, 3.98, 3.9, 3.85, 3.85, 3.84, 3.84])
    assert flat.total_drop < MIN_TOTAL_DROP and not flat.detected  # a baseline: nothing to test
    assert ABRUPTNESS == 0.5


def test_history_survives_a_kill_and_keeps_each_scheduled_step_once(tmp_path, monkeypatch):
    import dataclasses

    from safetensors.torch import load_file

    from momentum_interp.training import history as history_module
    from momentum_interp.training.config import load_run_config
    from momentum_interp.training.loop import train

    run = load_run_config(
        Path(__file__).resolve().parents[1] / "configs" / "tiny" / "induction.toml"
    )
    run.train = dataclasses.replace(
        run.train, steps=40, checkpoint_every=10, eval_every=20, history_checkpoints=12
    )
    schedule = history_module.history_schedule(40, 12)
    reference = train(run, tmp_path / "reference", progress=False)

    class Killed(BaseException):
        pass

    writes: list[int] = []
    real_keep = history_module.CheckpointHistory.keep

    def keep_then_die(self, step, model):
        if step > 25 and not killed:
            killed.append(step)
            raise Killed  # dies between the checkpoint at 20 and the next
        wrote = real_keep(self, step, model)
        if wrote:
            writes.append(step)
        return wrote

    killed: list[int] = []
    monkeypatch.setattr(history_module.CheckpointHistory, "keep", keep_then_die)
    out = tmp_path / "interrupted"
    with pytest.raises(Killed):
        train(run, out, progress=False)
    assert not (out / "metrics.json").exists()
    train(run, out, progress=False)  # resumes from step 20, replays 21..40

    assert sorted(writes) == schedule  # each scheduled step written exactly once
    kept = history_module.CheckpointHistory(out)
    assert kept.steps() == schedule and kept.index()["steps"] == schedule
    for step in schedule:  # and each equals the uninterrupted run's snapshot
        a = load_file(str(kept.path(step) / "model.safetensors"))
        b = load_file(
            str(history_module.CheckpointHistory(reference).path(step) / "model.safetensors")
        )
        assert all(torch.equal(a[k], b[k]) for k in a), step
    assert not list(kept.root.glob(".*partial"))


def test_formation_reproduces_the_committed_tiny_table(tmp_path):
    """`configs/tiny/formation.toml` trained, then `formation` on its history: the committed
    table (`tests/fixtures/formation_tiny.json`, written by the command in the config) again,
    to float32 rounding across CPUs (scores are means of 32 × 20 softmax rows)."""
    import json

    from momentum_interp.cli import main

    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(repo / "configs/tiny/formation.toml"),
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["formation", str(run), "--sequences", "32", "--quiet"]) == 0
    got = json.loads((run / "formation" / "formation.json").read_text())
    want = json.loads((repo / "tests/fixtures/formation_tiny.json").read_text())
    assert [r["step"] for r in got["rows"]] == [r["step"] for r in want["rows"]]
    assert got["phase_change"]["detected"] == want["phase_change"]["detected"]
    for mine, theirs in zip(got["rows"], want["rows"], strict=True):
        assert mine["top_head"] == theirs["top_head"]
        for key, value in theirs.items():
            if isinstance(value, float | dict):
                assert mine[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (mine["step"], key)


def test_formation_refuses_a_run_without_history(tmp_path, capsys):
    from momentum_interp.cli import main

    (tmp_path / "run").mkdir()
    assert main(["formation", str(tmp_path / "run")]) == 2
    assert "history_checkpoints" in capsys.readouterr().err
