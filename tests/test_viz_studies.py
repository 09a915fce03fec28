"""The figures of the two study notebooks: the criterion against γ per depth (both shears, the
smeared-key control) and the loss by position; every trace carries the numbers it was given."""

import itertools

import numpy as np
import pandas as pd
import pytest

from momentum_interp.analysis.scaling import fit_scaling
from momentum_interp.viz.lm import loss_by_position
from momentum_interp.viz.scaling import criterion_by_depth


def _table() -> pd.DataFrame:
    """Two depths, three γ, two seeds, both shears, and a smeared-key run per depth and seed."""
    rows = []
    for shear, depth, gamma, seed in itertools.product(
        ("qk", "k"), (1, 2), (-0.5, 0.0, 0.5), (0, 1)
    ):
        auc = 0.5 + 0.2 * gamma * depth - 0.1 * (shear == "k") + 0.01 * seed
        rows.append((shear, False, depth, gamma, seed, auc))
    for depth, seed in itertools.product((1, 2), (0, 1)):
        rows.append(("none", True, depth, 0.0, seed, 0.3 + 0.02 * seed))
    columns = ["model.shear", "model.smeared_key", "model.n_layers", "model.gamma", "train.seed"]
    table = pd.DataFrame(rows, columns=[*columns, "auc_accuracy"])
    return table.assign(final_loss=1 - table["auc_accuracy"])


def test_criterion_by_depth_draws_each_shear_and_the_control_per_depth():
    table = _table()
    fits = {s: fit_scaling(table, metric="auc_accuracy", shear=s, n_boot=50) for s in ("qk", "k")}
    fig = criterion_by_depth(fits, columns=3)
    assert [a.text for a in fig.layout.annotations] == ["N = 1", "N = 2"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    for shear, fit in fits.items():
        for depth, xaxis in zip(fit.depths, ("x", "x2"), strict=True):
            (line,) = [t for t in lines if t.name == shear and t.xaxis == xaxis]
            assert list(line.x) == depth.grid
            assert np.allclose(line.y, depth.criterion_mean)
            stars = [g for g, s in zip(line.x, line.marker.symbol, strict=True) if s == "star"]
            assert stars == [depth.gamma_star]
            # the band runs along the interval's upper ends, then back along the lower ones
            (band,) = [
                t
                for t in fig.data
                if t.fill == "toself"
                and t.xaxis == xaxis
                and list(t.x[: len(depth.grid)]) == depth.grid
                and np.allclose(t.y[: len(depth.grid)], [hi for _, hi in depth.mean_interval])
            ]
            assert np.allclose(
                band.y[len(depth.grid) :], [lo for lo, _ in depth.mean_interval][::-1]
            )
    controls = [t for t in fig.data if t.mode == "lines"]
    assert [c.y[0] for c in controls] == pytest.approx([0.31, 0.31])  # mean of 0.30 and 0.32
    assert [t.name for t in fig.data if t.showlegend is not False] == [
        "qk",
        "k",
        "smeared key (control)",
    ]


def test_criterion_by_depth_needs_a_fit():
    with pytest.raises(ValueError, match="at least one fit"):
        criterion_by_depth({})


def test_loss_by_position_plots_each_curve_at_its_positions():
    curves = {"a": [3.0, 2.5, 2.0], "b": [3.0, 2.9, 2.8]}
    fig = loss_by_position(curves, {"late": (0.75, 1.0)})
    for trace, (name, curve) in zip(fig.data, curves.items(), strict=True):
        assert trace.name == name and list(trace.x) == [1, 2, 3] and list(trace.y) == curve
    (shape,) = fig.layout.shapes
    assert (shape.x0, shape.x1) == (3.0, 4.0)  # fractions of the 4-token window
    with pytest.raises(ValueError, match="at least one curve"):
        loss_by_position({})


def test_gpu_lm_block_with_a_reference_that_did_not_finish():
    # A GPU run whose reference stopped early has no gaps: the block still renders, shows every
    # run's status and numbers, and says the run decides nothing (rather than raising).
    import json
    from pathlib import Path

    from momentum_interp.narrative.lm import gpu_lm_block

    root = Path(__file__).resolve().parents[1]
    manifest = json.loads((root / "assets" / "code_corpus" / "manifest.json").read_text())
    metrics = {"val_loss": 3.25, "induction_loss": 2.5, "icl_score": -0.75}
    run = {
        "status": "done",
        "n_params": 7_362_048,
        "n_params_non_embedding": 3_162_112,
        "metrics": metrics,
    }
    record = {
        "reference": "baseline-3S",
        "paper_gap": 0.029,
        "started": "2026-12-01T10:00:00+00:00",
        "machine": {"device_name": "NVIDIA H200", "torch": "2.11.0"},
        "token_budget": {"tokens_per_model": 50_331_648, "epochs": 1.64},
        "runs": {
            "baseline-S": run,
            "baseline-3S": {"status": "wall-clock budget: stopped at step 900", "n_params": 1},
            "momentum-S": {"status": "skipped: would not finish"},
        },
        "gaps": {},
        "no_gaps": "the reference baseline-3S: stopped at step 900",
    }
    block = gpu_lm_block(manifest, record)
    rows = {r.split(" | ")[0]: r.split(" | ") for r in block.splitlines() if r.startswith("| `")}
    assert rows["| `baseline-S`"][4:6] == ["3.250", "—"]  # a loss, no gap
    assert rows["| `baseline-S`"][3] == "7.36M (3.16M)"
    assert rows["| `momentum-S`"][2].startswith("skipped")
    assert (
        "(the reference baseline-3S: stopped at step 900), so this run decides nothing"
        in " ".join(block.split())
    )
