"""Induction over training: the checkpoint-history schedule, snapshots kept once across a kill
and resume, the phase-change statistic on hand-made curves, and `formation` on a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_history_sweep

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
    before = list(writes)
    assert before == [s for s in schedule if s < killed[0]] and before[-1] > 20
    writes.clear()
    train(run, out, progress=False)  # resumes from step 20, replays 21..40

    # the snapshots past the resume point belong to the killed trajectory: replaced, not kept twice
    assert writes == [s for s in schedule if s > 20]
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
    assert got["phase_change"]["window"] == want["phase_change"]["window"]
    for key in ("total_drop", "largest_window_drop"):
        assert got["phase_change"][key] == pytest.approx(want["phase_change"][key], abs=1e-4)
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


def test_leading_term_is_the_term_that_rose_most_across_the_window():
    from momentum_interp.analysis.formation import CheckpointRow, leading_term

    def row(step, margins):
        return CheckpointRow(
            step, "L0H0", 0, 0, 0, 0, 0, 0, "L0H0", {}, {}, 0, 0, 0, margins, sum(margins.values()),
            None, None, None, None,
        )  # fmt: skip

    names = ("current_current", "current_prev_key", "prev_query_current", "prev_prev")
    rows = [
        row(1, dict(zip(names, (0.0, 0.0, 0.0, 0.0), strict=True))),
        row(10, dict(zip(names, (0.1, 0.2, 0.0, 0.0), strict=True))),
        row(20, dict(zip(names, (0.3, 2.0, 0.0, 0.1), strict=True))),
        row(40, dict(zip(names, (3.0, 2.1, 0.0, 0.1), strict=True))),  # late rise of another term
    ]
    assert leading_term(rows, (10, 20)) == "current_prev_key"  # +1.8 against +0.2
    assert leading_term(rows, None) == "current_current"  # over the whole run: +3.0
    rows[0].term_margins = None
    assert leading_term(rows, None) is None


def _table(head, detected, half_step, leading=None):
    return {
        "head": head,
        "leading_term": leading,
        "phase_change": {
            "detected": detected,
            "abruptness": 0.7 if detected else 0.1,
            "total_drop": 2.0,
            "window": [100, 200] if detected else None,
            "half_step": half_step,
            "threshold": 0.5,
            "min_total_drop": 0.25,
            "window_factor": 2.0,
        },
        "n_sequences": 64,
        "seed": 0,
        "rows": [{"step": 2000, "induction": 0.5, "loss_repeat": 1.0}],
    }


def test_formation_study_by_hand():
    from momentum_interp.analysis.formation_study import formation_study

    plain, deeper = {"n_layers": 1, "shear": "none"}, {"n_layers": 2, "shear": "none"}
    momentum = {"n_layers": 1, "shear": "qk"}
    runs = [
        ("base", plain, 1, "a1", _table("L0H0", False, None)),
        ("base", plain, 0, "a0", _table("L0H1", False, 900)),
        ("two", deeper, 0, "b0", _table("L1H0", True, 400)),
        ("two", deeper, 1, "b1", _table("L1H2", True, 300)),
        ("mom", momentum, 0, "c0", _table("L0H3", True, 200, "current_prev_key")),
        ("mom", momentum, 1, "c1", _table("L0H3", False, 500, "current_current")),
    ]
    study = formation_study(runs)
    assert [a.variant for a in study.arms] == ["base", "two", "mom"]
    assert [a.role for a in study.arms] == ["baseline_1l", "baseline_deeper", "momentum"]
    assert [r.seed for r in study.arms[0].runs] == [0, 1]
    assert study.baseline_clean() is True
    # only seeds where both runs passed the test are paired: mom seed 1 (no pass) is left out
    assert study.against_deeper("mom") == {"earlier": 1, "same": 0, "later": 0}  # 200 < 400
    assert study.against_deeper("base") == {"earlier": 0, "same": 0, "later": 0}
    out = study.to_dict()
    assert out["rule"] == {"threshold": 0.5, "min_total_drop": 0.25, "window_factor": 2.0}
    assert (out["n_sequences"], out["seed"]) == (64, 0)
    mom = out["arms"][2]
    assert mom["n_detected"] == 1 and mom["half_step_median"] == 350.0
    assert mom["half_step_range"] == [200, 500]
    assert mom["leading_terms"] == {"current_prev_key": 1, "current_current": 1}
    runs[0] = ("base", plain, 1, "a1", _table("L0H0", True, 100))
    assert formation_study(runs).baseline_clean() is False


def test_formation_of_a_sweep_writes_one_table_per_run_and_the_comparison(tmp_path, capsys):
    """A two-arm sweep trained with history: `formation OUT --runs-dir RUNS` measures each run
    (the same table as `formation RUN`), resumes from its tables, and compares the arms."""
    import json

    from momentum_interp.cli import main

    out, runs = tiny_history_sweep(tmp_path, steps=24, seeds=[0])
    assert main(["formation", str(out), "--sequences", "16"]) == 2  # runs elsewhere: told so
    assert "--runs-dir" in capsys.readouterr().err
    argv = ["formation", str(out), "--runs-dir", str(runs), "--sequences", "16", "--quiet"]
    assert main(argv) == 0
    tables = {p.name: p for p in (out / "formation").glob("*.json")}
    assert sorted(tables) == ["mom-seed0.json", "plain-seed0.json", "summary.json"]
    summary = json.loads(tables["summary.json"].read_text())
    assert [(a["variant"], a["role"]) for a in summary["arms"]] == [
        ("mom", "momentum"),
        ("plain", "baseline_1l"),
    ]
    mom = json.loads(tables["mom-seed0.json"].read_text())
    assert mom["leading_term"] is not None and mom["rows"][-1]["term_margins"] is not None
    single = tmp_path / "single"
    run_dir = runs / mom["run"]
    assert (
        main(["formation", str(run_dir), "--out", str(single), "--sequences", "16", "--quiet"]) == 0
    )
    alone = json.loads((single / "formation.json").read_text())
    assert alone["rows"] == mom["rows"] and alone["phase_change"] == mom["phase_change"]
    written = tables["mom-seed0.json"].stat().st_mtime_ns
    assert main(argv) == 0  # resumed: the run's table is kept, not measured again
    assert tables["mom-seed0.json"].stat().st_mtime_ns == written
