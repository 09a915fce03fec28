"""The fair LM study: its rate search, its statistics against hand computations and scipy, and
one smoke run of the whole protocol on CPU."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import lm_study  # noqa: E402
from momentum_interp.analysis.lm_study import METRICS as lm_study_metrics  # noqa: E402
from momentum_interp.analysis.lm_study import analyse_lm_study  # noqa: E402


def test_best_rate_takes_the_lowest_finite_loss_and_the_smaller_rate_on_ties():
    assert lm_study.best_rate([1e-3, 1e-2], {1e-3: 2.0, 1e-2: 1.5}) == 1e-2
    assert lm_study.best_rate([1e-3, 1e-2], {1e-3: 1.5, 1e-2: 1.5}) == 1e-3
    assert lm_study.best_rate([1e-3, 1e-2], {1e-3: None, 1e-2: 3.0}) == 1e-2
    assert lm_study.best_rate([1e-3, 1e-2], {1e-3: None, 1e-2: None}) is None


def test_search_widens_past_an_end_that_is_best_until_interior_or_the_ladder_ends():
    first = list(lm_study.FIRST_RATES)
    assert lm_study.searched_rates({}) == first  # nothing trained yet
    interior = {1e-3: 3.0, 3.162e-3: 2.0, 1e-2: 2.5}
    assert lm_study.searched_rates(interior) == first
    # the top rate is best: one step up; still best there: up to the ladder's end, and no further
    rising = {1e-3: 3.0, 3.162e-3: 2.5, 1e-2: 2.0}
    assert lm_study.searched_rates(rising) == [*first, 3.162e-2]
    assert lm_study.searched_rates(rising | {3.162e-2: 1.0}) == [*first, 3.162e-2]
    assert lm_study.searched_rates(rising | {3.162e-2: 2.2}) == [*first, 3.162e-2]
    # the bottom rate is best: down the ladder to 1e-4, where it stops
    falling = {1e-3: 1.0, 3.162e-3: 2.0, 1e-2: 3.0}
    assert lm_study.searched_rates(falling) == [3.162e-4, *first]
    assert lm_study.searched_rates(falling | {3.162e-4: 0.5}) == [1e-4, 3.162e-4, *first]
    deepest = falling | {3.162e-4: 0.5, 1e-4: 0.4}
    assert lm_study.searched_rates(deepest) == list(lm_study.LADDER[:5])


def _row(arm, seed, val, lr=1e-3, status="done"):
    metrics = {"val_loss": val, "induction_loss": val - 0.5, "icl_score": -0.1 * val}
    return {"arm": arm, "seed": seed, "lr": lr, "status": status, "tokens": 10,
            "tokens_planned": 10, "metrics": metrics}  # fmt: skip


def test_study_statistics_match_hand_computations_and_scipy():
    ref, small, mom = [3.0, 3.2, 3.1], [3.6, 3.7, 3.65], [3.3, 3.5, 3.35]
    rows = [_row("baseline-3S", s, v) for s, v in enumerate(ref)]
    rows += [_row("baseline-S", s, v) for s, v in enumerate(small)]
    rows += [_row("momentum-S", s, v) for s, v in enumerate(mom)]
    rows += [_row("momentum-S", 3, 9.9), _row("baseline-S", 3, math.nan, status="diverged")]
    rows.append(_row("momentum-S", 0, 1.0, lr=1e-2))  # another rate: not the arm's pick
    rates = {"baseline-S": 1e-3, "baseline-3S": 1e-3, "momentum-S": 1e-3}
    study = analyse_lm_study(rows, rates)
    assert study.seeds == [0, 1, 2]  # seed 3 lacks the reference and a finished baseline-S
    assert study.not_compared == [
        {"arm": "baseline-S", "seed": 3, "why": "status", "detail": "diverged"},
        {"arm": "momentum-S", "seed": 0, "why": "other_rate", "detail": 1e-2},
    ]
    arm = study.arm("momentum-S")
    gaps = np.array(mom) / np.array(ref) - 1
    assert arm.gap["val_loss"].value == pytest.approx(gaps.mean())
    half = stats.t.ppf(0.975, 2) * gaps.std(ddof=1) / math.sqrt(3)
    assert arm.gap["val_loss"].high == pytest.approx(gaps.mean() + half)
    # fraction closed, seed 0 by hand: (3.6 − 3.3) / (3.6 − 3.0) = 0.5
    closed = [(s - m) / (s - r) for s, m, r in zip(small, mom, ref, strict=True)]
    assert closed[0] == pytest.approx(0.5)
    assert arm.fraction_closed.value == pytest.approx(np.mean(closed))
    test = stats.ttest_rel(mom, small)
    assert arm.vs_small.p_value == pytest.approx(test.pvalue)
    assert arm.vs_small.p_holm == pytest.approx(test.pvalue)  # one S arm: Holm leaves it
    assert study.arm("baseline-S").fraction_closed is None
    assert study.arm("baseline-3S").gap == {}
    # momentum's gap of 8-14 % and the S baseline's of 16-20 %: both wholly above 2.9 %
    assert study.gap_verdict("baseline-S") == "not_within"
    assert study.momentum_verdict() == "not_within"
    with pytest.raises(ValueError, match="baseline-3S"):
        analyse_lm_study(rows, {"baseline-S": 1e-3})


def _study(arms: dict[str, list[float]]):
    rows = [_row(arm, seed, v) for arm, values in arms.items() for seed, v in enumerate(values)]
    return analyse_lm_study(rows, dict.fromkeys(arms, 1e-3))


def test_verdicts_need_the_s_baseline_itself_outside_the_papers_gap():
    ref, small = [3.0, 3.1, 3.05], [3.6, 3.7, 3.65]  # S baseline ~19 % above 3×S
    within = _study({"baseline-3S": ref, "baseline-S": small, "momentum-S": [3.03, 3.12, 3.07]})
    assert within.momentum_verdict() == "within"  # gap ≈ 0.6 % with a tight interval
    straddle = [3.0, 3.4, 3.05]  # gaps 0 %, 9.7 %, 0 %: the interval straddles 2.9 %
    assert (
        _study({"baseline-3S": ref, "baseline-S": small, "momentum-S": straddle}).momentum_verdict()
        == "undecided"
    )
    close = [3.02, 3.13, 3.08]  # the S baseline itself within 2.9 %: momentum cannot be tested
    study = _study({"baseline-3S": ref, "baseline-S": close, "momentum-S": [3.01, 3.1, 3.05]})
    assert study.gap_verdict("baseline-S") == "within"
    assert study.momentum_verdict() == "uninformative"


def test_three_arms_are_holm_corrected_together_and_bad_runs_are_listed():
    ref, small = [3.0, 3.1, 3.05], [3.6, 3.7, 3.65]
    others = {
        "momentum-S": [3.5, 3.62, 3.55],
        "smeared-key-S": [3.2, 3.3, 3.28],
        "keys-only-S": [3.61, 3.69, 3.66],
    }
    rows = [_row("baseline-3S", s, v) for s, v in enumerate(ref)]
    rows += [_row("baseline-S", s, v) for s, v in enumerate(small)]
    rows += [_row(arm, s, v) for arm, vs in others.items() for s, v in enumerate(vs)]
    rows.append(_row("keys-only-S", 3, math.nan))  # "done" but not finite: left out, listed
    rates = dict.fromkeys(["baseline-S", "baseline-3S", *others], 1e-3)
    study = analyse_lm_study(rows, rates)
    p = {arm: stats.ttest_rel(v, small).pvalue for arm, v in others.items()}
    ranked = sorted(p, key=p.get)  # Holm by hand: × 3, × 2, × 1, kept monotone
    expected, running = {}, 0.0
    for k, arm in enumerate(ranked):
        running = max(running, min(1.0, (3 - k) * p[arm]))
        expected[arm] = running
    for arm in others:
        assert study.arm(arm).vs_small.p_holm == pytest.approx(expected[arm])
    assert study.not_compared == [
        {"arm": "keys-only-S", "seed": 3, "why": "not_finite", "detail": list(lm_study_metrics)}
    ]
    from momentum_interp.narrative.lm import lm_study_summary

    data = {
        **study.to_dict(),
        "selection": {
            "selection_seed": 100,
            "arms": {a: {"rates": [1e-3], "at_ladder_end": False} for a in rates},
        },
        "command": "python -m benchmarks.lm_study out",
        "shape": "cpu",
        "complete": True,
        "fresh_seeds": [0, 1, 2],
        "corpus": {"train_tokens": 1000},
        "n_params": {"momentum-S": 10, "baseline-3S": 30},
        "tokens_per_run": 100,
    }
    text = " ".join(lm_study_summary(data).split())
    assert "keys-only-S seed 3 (not finite: val_loss, induction_loss, icl_score)" in text
    assert text.startswith("# Fair LM comparison on the code corpus (complete)")
    partial = lm_study_summary({**data, "complete": False, "seeds": [0, 1]})
    # a paired test whose differences never vary has no p-value: JSON's null reads as "–"
    for arm in data["arms"]:
        if arm["vs_small"]:
            arm["vs_small"] = dict.fromkeys(arm["vs_small"])
    assert "| – [–, –] | – |" in lm_study_summary(data)
    assert partial.startswith("# Fair LM comparison on the code corpus (partial: seeds 0, 1 of 0")
    # 3×S no better than S on one seed: the fraction closed is undefined, not a number
    flipped = [*ref[:2], 3.7]
    rows = [_row("baseline-3S", s, v) for s, v in enumerate(flipped)]
    rows += [_row("baseline-S", s, v) for s, v in enumerate(small)]
    rows += [_row("momentum-S", s, v) for s, v in enumerate(others["momentum-S"])]
    study = analyse_lm_study(rows, dict.fromkeys(["baseline-S", "baseline-3S", "momentum-S"], 1e-3))
    assert math.isnan(study.arm("momentum-S").fraction_closed.value)


def test_smoke_study_runs_every_stage_resumes_and_refuses_another_protocol(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = [str(out), "--shape", "smoke", "--workers", "0", "--runs-dir", str(runs)]
    assert lm_study.main(argv) == 0
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    selection = json.loads((out / "selection.json").read_text())
    assert selection["complete"]
    n_select = sum(len(a["rates"]) for a in selection["arms"].values())
    assert len(rows) == n_select + 5 * 3  # every searched rate on seed 100, then 3 fresh seeds
    for row in rows:
        if row["seed"] in lm_study.FRESH_SEEDS:
            assert row["lr"] == selection["arms"][row["arm"]]["chosen"]
    study = json.loads((out / "study.json").read_text())
    assert study["complete"] and study["seeds"] == [0, 1, 2]
    assert list((runs / "resume").glob("*/*/*")) == []  # a run's checkpoints go with its row
    summary = (out / "summary.md").read_text()
    for arm in lm_study.ARMS:
        assert f"| {arm} |" in summary
    from momentum_interp.narrative.lm import lm_fair_block

    block = lm_fair_block(study, "RULES.md", "CMD")  # the README shows summary.md's table
    table = next(p for p in summary.split("\n\n") if p.startswith("| arm |"))
    assert table in block.split("\n\n") and block.startswith("Complete (fresh seeds 0, 1, 2)")
    assert "Training (`CMD`" in lm_fair_block(None, "RULES.md", "CMD")
    before = (out / "runs.jsonl").read_bytes()
    assert lm_study.main(argv) == 0  # nothing left to train
    assert (out / "runs.jsonl").read_bytes() == before
    # a study cut short mid-way through the fresh stage trains only the runs it lacks
    lines = before.decode().splitlines(keepends=True)
    (out / "runs.jsonl").write_text("".join(lines[:-4]))
    assert lm_study.main(argv) == 0
    again = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["run_id"] for r in again[:-4]] == [r["run_id"] for r in rows[:-4]]
    assert {r["run_id"] for r in again[-4:]} == {r["run_id"] for r in rows[-4:]}
    capsys.readouterr()
    assert lm_study.main([str(out), "--shape", "cpu", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "another protocol ['smoke-" in err and lm_study.fingerprint("cpu") in err


def test_fresh_stage_refuses_before_selection_and_missing_corpus_exits_2(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    argv = [str(out), "--shape", "smoke", "--workers", "0", "--stage", "fresh"]
    assert lm_study.main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "select stage is not complete" in capsys.readouterr().err
    assert not out.exists()  # refused before any work
    monkeypatch.setattr(lm_study.lm, "CORPUS_PATH", tmp_path / "nope.jsonl.xz")
    assert lm_study.main([str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl.xz" in err and "momentum-interp corpus build" in err
    assert not (tmp_path / "other").exists()


def test_the_parameter_counts_quoted_are_the_cpu_shapes():
    import torch

    from momentum_interp.data import TokenStreamTask

    task = TokenStreamTask(torch.zeros(300, dtype=torch.int32), d_vocab=8192, seq_len=256)
    counts = {}
    for arm in ("baseline-S", "baseline-3S"):
        size, filt = lm_study.ARMS[arm]
        run = lm_study.lm.run_config(arm, size, filt, lm_study.CPU)
        model = lm_study.lm.build_model(run, task, torch.device("cpu"))
        counts[arm] = (
            sum(p.numel() for p in model.parameters()),
            lm_study.lm.non_embedding_parameters(model),
        )
    assert counts == {"baseline-S": (2_502_144, 396_800), "baseline-3S": (7_362_048, 3_159_552)}
    rules = (Path(__file__).resolve().parents[1] / "results/lm_fair/README.md").read_text()
    for total, inner in counts.values():
        assert f"{total:,}" in rules and f"{inner:,}" in rules
    assert "2,502,144" in lm_study.__doc__ and "7,362,048" in lm_study.__doc__


def test_a_run_cut_off_resumes_exactly_where_it_was(tmp_path, monkeypatch):
    """A resumable run killed after its first checkpoint, then started again, ends with the
    same weights and last loss as one never cut off (model, optimiser and data stream restored);
    the row says where it resumed."""
    import torch

    from momentum_interp.data import TokenStreamTask
    from momentum_interp.training.state import RunDirectory

    gpu_lm = lm_study.lm
    shape = gpu_lm.SMOKE | {"steps": 12, "log_every": 3}
    tokens = torch.randint(0, 64, (5000,), generator=torch.Generator().manual_seed(0))
    task = TokenStreamTask(tokens.to(torch.int32), d_vocab=64, seq_len=shape["seq_len"])
    run = gpu_lm.run_config("momentum-S", "S", {"shear": "qk", "gamma": 1.0}, shape, lr=1e-2)

    def train(resume=None):
        model = gpu_lm.build_model(run, task, torch.device("cpu"))
        budget = lm_study.Budget(math.inf)
        log = gpu_lm.Log(tmp_path / "log.jsonl", budget)
        return model, gpu_lm.train(model, run, task, shape, budget, log, resume)

    whole, whole_out = train()
    monkeypatch.setattr(gpu_lm, "CHECKPOINT_EVERY_S", 0.0)
    save = RunDirectory.save_checkpoint

    def save_then_die(self, step, *args):
        save(self, step, *args)
        raise KeyboardInterrupt(f"killed after the checkpoint of step {step}")

    monkeypatch.setattr(RunDirectory, "save_checkpoint", save_then_die)
    resume = RunDirectory(tmp_path / "resume")
    with pytest.raises(KeyboardInterrupt, match="step 3"):
        train(resume)
    monkeypatch.setattr(RunDirectory, "save_checkpoint", save)
    resumed, resumed_out = train(resume)
    assert resumed_out["resumed_at_step"] == 3 and resumed_out["steps"] == 12
    assert resumed_out["train_loss"] == whole_out["train_loss"]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_the_committed_study_recomputes_from_its_rows_and_says_each_paired_test_in_words():
    """`results/lm_fair/study.json` against its own `runs.jsonl`: each S arm's paired test
    against baseline-S recomputed with scipy and Holm by hand, and the words the README shows."""
    from momentum_interp.narrative.lm import versus_small

    root = Path(__file__).resolve().parents[1] / "results" / "lm_fair"
    study = json.loads((root / "study.json").read_text())
    rows = [json.loads(line) for line in (root / "runs.jsonl").read_text().splitlines()]
    rates = {arm: s["chosen"] for arm, s in study["selection"]["arms"].items()}
    seeds = study["seeds"]
    assert study["complete"] and seeds == [0, 1, 2]

    def losses(arm):
        by_seed = {
            r["seed"]: r["metrics"]["val_loss"]
            for r in rows
            if r["arm"] == arm and r["lr"] == rates[arm] and r["seed"] in seeds
        }
        assert all(r["tokens"] >= 5_000_000 for r in rows if r["arm"] == arm)
        return np.array([by_seed[s] for s in seeds])

    small = losses("baseline-S")
    tested = ["momentum-S", "smeared-key-S", "keys-only-S"]
    p = [stats.ttest_rel(losses(arm), small).pvalue for arm in tested]
    order = np.argsort(p)  # Holm by hand: step-down, monotone
    holm, running = [0.0] * 3, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * p[i]))
        holm[i] = running
    said = versus_small(study["arms"])
    for arm, adjusted in zip(tested, holm, strict=True):
        versus = next(a for a in study["arms"] if a["arm"] == arm)["vs_small"]
        difference = float(np.mean(losses(arm) - small))
        assert versus["mean_difference"] == pytest.approx(difference, rel=1e-9)
        assert versus["p_holm"] == pytest.approx(adjusted, rel=1e-9)
        words = (
            "no difference detected"
            if adjusted >= 0.05
            else ("worse" if difference > 0 else "better")
        )
        assert f"{arm} {words} ({difference:+.3f} nats, Holm p = {adjusted:.3g})" in said
    assert versus_small([a for a in study["arms"] if a["vs_small"] is None]) is None


def test_a_study_cut_off_mid_stage_leaves_its_outputs_current(tmp_path, monkeypatch):
    """The outputs are rewritten after every finished run, not only when a stage ends: a study
    interrupted in its fresh stage has `study.json` as soon as two fresh seeds have every arm."""
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = [str(out), "--shape", "smoke", "--workers", "0", "--runs-dir", str(runs)]
    train, fresh_runs = lm_study.train_one, []

    def train_then_interrupt(job):
        if job["seed"] in lm_study.FRESH_SEEDS and len(fresh_runs) == 2 * len(lm_study.ARMS):
            raise KeyboardInterrupt  # seeds 0 and 1 finished; seed 2 never starts
        row = train(job)
        fresh_runs.extend([row] if job["seed"] in lm_study.FRESH_SEEDS else [])
        return row

    monkeypatch.setattr(lm_study, "train_one", train_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        lm_study.main(argv)
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    study = json.loads((out / "study.json").read_text())
    assert study["seeds"] == [0, 1] and not study["complete"]
    assert sorted(r["run_id"] for r in fresh_runs) == sorted(
        r["run_id"] for r in rows if r["seed"] in lm_study.FRESH_SEEDS
    )
    assert json.loads((out / "selection.json").read_text())["complete"]
    assert "| baseline-S |" in (out / "summary.md").read_text()
