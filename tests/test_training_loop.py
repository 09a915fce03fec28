"""The training loop end to end: outputs, schedule, determinism, exact resume after a kill, eval."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from momentum_interp import HookedMomentumTransformer, cli
from momentum_interp.data import make_task
from momentum_interp.evaluation import (
    EVAL_STREAM,
    evaluate,
    per_sequence_metrics,
    seeded_generator,
)
from momentum_interp.lock import LOCK_FILE
from momentum_interp.training import state
from momentum_interp.training.config import OptimConfig, RunConfig, load_run_config
from momentum_interp.training.loop import TrainingDiverged, make_optimizer, train
from momentum_interp.training.schedule import lr_at
from momentum_interp.training.state import optimizer_from_files, optimizer_to_files

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny"
FINAL_FILES = {"model.safetensors", "config.json", "metrics.json", "run_config.json"}


def tiny_run(name: str = "induction", **train_overrides) -> RunConfig:
    """A run config from configs/tiny/, with [train] fields replaced (and re-validated)."""
    run = load_run_config(TINY / f"{name}.toml")
    run.train = dataclasses.replace(run.train, **train_overrides)
    return run


def metrics_of(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def weights_of(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


# ----------------------------------------------------------------------------- end to end


def test_train_writes_a_complete_loadable_run(tmp_path, capsys):
    run = tiny_run()
    out = train(run, tmp_path / "run", progress=False)

    assert out == tmp_path / "run"
    assert {p.name for p in out.iterdir()} == FINAL_FILES  # checkpoints/ removed at the end
    assert json.loads((out / "run_config.json").read_text()) == json.loads(
        json.dumps(run.to_dict())
    )

    metrics = metrics_of(out)
    opt = run.train
    assert metrics["name"] == run.name and metrics["completed"] is True
    assert [e["step"] for e in metrics["train"]] == list(range(1, opt.steps + 1))
    for entry in metrics["train"]:
        assert math.isfinite(entry["loss"]) and entry["loss"] > 0
        assert math.isfinite(entry["grad_norm"]) and entry["grad_norm"] > 0
    # The logged lr of step s (1-based) is the schedule's value for optimiser step s - 1.
    assert [e["lr"] for e in metrics["train"]] == [lr_at(s, opt) for s in range(opt.steps)]
    assert [e["step"] for e in metrics["eval"]] == [10, 20]
    for entry in metrics["eval"]:
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["n_positions"] > 0

    model = HookedMomentumTransformer.from_pretrained(out, device="cpu")
    task = make_task(**run.task)
    assert (model.cfg.d_vocab, model.cfg.n_ctx) == (task.d_vocab, task.seq_len)
    assert (model.cfg.d_model, model.cfg.n_layers, model.cfg.shear) == (16, 1, "qk")
    # The saved weights are the final ones: re-evaluating them reproduces the last eval entry.
    final_eval = evaluate(model, task, opt.eval_batches, opt.batch_size, seed=opt.seed)
    assert {"step": opt.steps, **final_eval} == metrics["eval"][-1]

    # Running the finished run again is a no-op that leaves its files alone.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert train(run, out, progress=False) == out
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_training_loss_decreases_on_an_easy_task(tmp_path):
    run = tiny_run("repeated_tokens")
    metrics = metrics_of(train(run, tmp_path / "run", progress=False))
    losses = [e["loss"] for e in metrics["train"]]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert first - last > 0.3, (first, last)
    chance = 1 / run.task["d_vocab"]
    assert metrics["eval"][-1]["accuracy"] > 2 * chance  # it copies, beyond guessing


def test_a_diverging_run_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    """lr = 1e3 is finite (so valid) but blows the weights up within a few steps."""
    run = tiny_run(lr=1e3, checkpoint_every=2)
    out = tmp_path / "run"
    with pytest.raises(
        TrainingDiverged, match=r"diverged at step (\d+): its (loss|grad_norm)"
    ) as e:
        train(run, out, progress=False)
    step = e.value.record["step"]
    assert 2 < step < run.train.steps  # the setup: it diverges after a checkpoint, mid-run
    kept = (step - 1) // 2 * 2  # the last checkpoint before the divergence
    assert f"last good checkpoint (step {kept})" in str(e.value)

    metrics = metrics_of(out)
    assert metrics["completed"] is False and metrics["diverged"] == e.value.record
    assert [entry["step"] for entry in metrics["train"]] == list(range(1, step))
    assert all(math.isfinite(entry["loss"]) for entry in metrics["train"])  # no null losses
    assert all(entry["step"] < step for entry in metrics["eval"])  # no eval of diverged weights
    assert not (out / "model.safetensors").exists()  # the NaN state is nowhere on disk
    latest = out / "checkpoints" / (out / "checkpoints" / "LATEST").read_text()
    assert latest.name == f"step-{kept:07d}"
    model = HookedMomentumTransformer.from_pretrained(latest)
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())

    # Run again, it resumes from the good checkpoint and diverges at the same step.
    capsys.readouterr()
    with pytest.raises(TrainingDiverged) as again:
        train(run, out, progress=False)
    assert f"(step {kept})" in capsys.readouterr().out and again.value.record == e.value.record

    # The command line: one line naming the step, exit status 1.
    config = tmp_path / "diverges.toml"
    text = (TINY / "induction.toml").read_text()
    config.write_text(
        text.replace("lr = 3e-3", "lr = 1e3\ncheckpoint_every = 2").replace(
            "checkpoint_every = 10\n", ""
        )
    )
    capsys.readouterr()
    assert (
        cli.main(["train", "--config", str(config), "--out", str(tmp_path / "cli"), "--quiet"]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"diverged at step {step}" in err[0], err


# ----------------------------------------------------------------------------- lr schedule


def test_lr_schedule_warms_up_linearly_then_cosine_decays_to_the_floor():
    opt = OptimConfig(steps=101, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    floor = opt.lr * opt.min_lr_ratio

    def reference(step: int) -> float:
        if step < 10:
            return 1e-3 * (step + 1) / 10
        progress = (step - 10) / (101 - 1 - 10)  # 0 at the end of warmup, 1 at the last step
        return floor + (1e-3 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    for step in (0, 1, 4, 9, 10, 11, 30, 55, 77, 99, 100):
        assert lr_at(step, opt) == pytest.approx(reference(step), rel=1e-12, abs=0), step
    assert lr_at(0, opt) == pytest.approx(1e-4)  # first warmup step
    assert lr_at(9, opt) == pytest.approx(1e-3)  # warmup ends at the peak
    assert lr_at(55, opt) == pytest.approx(floor + (1e-3 - floor) / 2)  # cosine midpoint
    assert lr_at(100, opt) == pytest.approx(floor)  # the last step uses the floor
    lrs = [lr_at(s, opt) for s in range(101)]
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10], strict=False))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert min(lrs) == pytest.approx(floor)

    no_warmup = OptimConfig(steps=5, warmup_steps=0, lr=2.0, min_lr_ratio=0.25)
    assert lr_at(0, no_warmup) == 2.0
    assert lr_at(4, no_warmup) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_is_bit_identical_and_another_seed_is_not(tmp_path):
    a = train(tiny_run(), tmp_path / "a", progress=False)
    b = train(tiny_run(), tmp_path / "b", progress=False)
    c = train(tiny_run(seed=1), tmp_path / "c", progress=False)

    strip = lambda m: {k: m[k] for k in ("train", "eval")}
    assert strip(metrics_of(a)) == strip(metrics_of(b))
    assert_same_weights(weights_of(a), weights_of(b))

    assert [e["loss"] for e in metrics_of(a)["train"]] != [
        e["loss"] for e in metrics_of(c)["train"]
    ]
    wa, wc = weights_of(a), weights_of(c)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


# ----------------------------------------------------------------------------- exact resume


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def test_run_killed_between_checkpoints_resumes_exactly(tmp_path, capsys):
    config = TINY / "induction_long.toml"
    run = load_run_config(config)
    opt = run.train
    reference = train(run, tmp_path / "uninterrupted", progress=False)

    out = tmp_path / "interrupted"
    latest = out / "checkpoints" / "LATEST"
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "momentum_interp.cli", "train"]
            + ["--config", str(config), "--out", str(out), "--quiet"],
            cwd=REPO,
            env=_clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 120
        while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        # Let it train some steps past the checkpoint (~8 ms each), so the kill loses work.
        time.sleep(0.1)
    finally:
        proc.kill()  # SIGKILL: no handler, no cleanup; a no-op if it already exited
        proc.wait(timeout=60)
    killed = proc.returncode == -signal.SIGKILL
    assert killed or proc.returncode == 0, log.read_text()
    mid_run = not (out / "metrics.json").exists()

    capsys.readouterr()
    train(run, out, progress=False)
    printed = capsys.readouterr().out
    if mid_run:  # the usual case: it died between checkpoints and this call resumed it
        assert "Resuming" in printed, printed
        resumed_from = int(printed.split("(step ")[1].split(")")[0])
        assert 0 < resumed_from < opt.steps and resumed_from % opt.checkpoint_every == 0
    else:  # it finished before the kill landed: this call must see a finished run
        assert "nothing to do" in printed

    # The killed command could not remove its one-writer lock file (no longer locked: harmless).
    assert {p.name for p in out.iterdir()} - {LOCK_FILE} == FINAL_FILES
    resumed, uninterrupted = metrics_of(out), metrics_of(reference)
    assert len(resumed["train"]) == opt.steps
    # Every step's loss, lr and grad norm, before and after the checkpoint, float-for-float.
    assert resumed["train"] == uninterrupted["train"]
    assert resumed["eval"] == uninterrupted["eval"]
    assert_same_weights(weights_of(out), weights_of(reference))


def test_kill_during_final_cleanup_leaves_a_finished_run(tmp_path, monkeypatch, capsys):
    """`finish` deletes checkpoints/ after writing the model; dying midway must not wedge the run."""

    class Killed(BaseException):
        pass

    real_rmtree = shutil.rmtree

    def rmtree_then_die(path, *args, **kwargs):
        path = Path(path)
        if path.name == "checkpoints":  # the final cleanup: remove the step folders, then die
            for child in path.glob("step-*"):
                real_rmtree(child)
            raise Killed
        return real_rmtree(path, *args, **kwargs)

    run = tiny_run()
    out = tmp_path / "run"
    monkeypatch.setattr(state.shutil, "rmtree", rmtree_then_die)
    with pytest.raises(Killed):
        train(run, out, progress=False)
    monkeypatch.undo()

    capsys.readouterr()
    train(run, out, progress=False)  # must not fail on a dangling checkpoints/LATEST
    assert "nothing to do" in capsys.readouterr().out
    assert len(metrics_of(out)["train"]) == run.train.steps
    HookedMomentumTransformer.from_pretrained(out, device="cpu")


# ----------------------------------------------------------------------------- optimiser state


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path):
    run = tiny_run()
    task = make_task(**run.task)
    cfg = run.model_config(task.d_vocab, task.seq_len)
    cfg.device, cfg.seed = "cpu", 0

    def fresh():
        model = HookedMomentumTransformer(cfg)
        return model, make_optimizer(model, run)

    model, optimizer = fresh()
    for step in range(3):
        batch = task.sample(8, seeded_generator("cpu", 0, 0, 0, step))
        model(batch.tokens, return_type="loss", loss_mask=batch.loss_mask).backward()
        optimizer.step()
        optimizer.zero_grad()
    original = optimizer.state_dict()
    assert original["state"], "the optimiser should hold moments after stepping"

    tensors, meta = optimizer_to_files(optimizer)
    save_file(tensors, str(tmp_path / "optimizer.safetensors"))
    meta = json.loads(json.dumps(meta))
    restored = optimizer_from_files(load_file(str(tmp_path / "optimizer.safetensors")), meta)

    assert restored["param_groups"] == original["param_groups"]
    assert restored["state"].keys() == original["state"].keys()
    for index, param_state in original["state"].items():
        assert restored["state"][index].keys() == param_state.keys()
        for key, value in param_state.items():
            got = restored["state"][index][key]
            if isinstance(value, torch.Tensor):
                assert got.dtype == value.dtype and torch.equal(got, value), (index, key)
            else:
                assert got == value, (index, key)

    # Loaded into a fresh optimiser over the same weights, the next update is identical.
    clone, clone_optimizer = fresh()
    clone.load_state_dict(model.state_dict())
    clone_optimizer.load_state_dict(restored)
    batch = task.sample(8, seeded_generator("cpu", 0, 0, 0, 99))
    for m, o in ((model, optimizer), (clone, clone_optimizer)):
        m(batch.tokens, return_type="loss", loss_mask=batch.loss_mask).backward()
        o.step()
    for (name, a), b in zip(model.state_dict().items(), clone.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# ----------------------------------------------------------------------------- evaluation


class _FixedPredictor(HookedMomentumTransformer):
    """Logits = scale · one_hot(next token + shift): shift 0 always right, shift 1 always wrong."""

    shift = 0
    scale = 50.0

    def forward(self, input, return_type="logits", loss_mask=None):
        assert return_type == "logits"
        target = torch.roll(input, -1, dims=1)  # the last position's guess is never scored
        return F.one_hot((target + self.shift) % self.cfg.d_vocab, self.cfg.d_vocab) * self.scale


def _task_and_cfg():
    run = tiny_run()
    task = make_task(**run.task)
    cfg = run.model_config(task.d_vocab, task.seq_len)
    cfg.device, cfg.seed = "cpu", 0
    return task, cfg


def test_evaluate_scores_a_perfect_predictor_as_perfect_and_a_wrong_one_as_wrong():
    task, cfg = _task_and_cfg()
    oracle = _FixedPredictor(cfg)
    metrics = evaluate(oracle, task, n_batches=3, batch_size=16, seed=5)
    assert metrics["accuracy"] == 1.0
    assert metrics["correct"] == metrics["n_positions"] > 0
    assert metrics["loss"] < 1e-6

    # The scored positions are exactly the task's loss_mask on the fresh eval-stream batches.
    expected = sum(
        int(task.sample(16, seeded_generator("cpu", 5, EVAL_STREAM, i)).loss_mask[:, :-1].sum())
        for i in range(3)
    )
    assert metrics["n_positions"] == expected

    wrong = _FixedPredictor(cfg)
    wrong.shift = 1
    metrics = evaluate(wrong, task, n_batches=3, batch_size=16, seed=5)
    assert metrics["accuracy"] == 0.0 and metrics["correct"] == 0
    # Cross-entropy of a target 50 nats below the top logit (+ log of the near-zero rest).
    assert metrics["loss"] == pytest.approx(50.0, rel=1e-6)


def test_evaluate_a_random_model_is_near_chance_and_matches_per_sequence_sums():
    task, cfg = _task_and_cfg()
    model = HookedMomentumTransformer(cfg).train()
    metrics = evaluate(model, task, n_batches=4, batch_size=32, seed=0)
    assert model.training, "evaluate must restore the training mode"
    chance = 1 / task.d_vocab
    assert metrics["accuracy"] < 3 * chance
    # Predictions that ignore the (uniformly random) answer cannot beat ln(d_vocab) on average.
    assert math.log(task.d_vocab) - 0.15 < metrics["loss"] < math.log(task.d_vocab) + 1.0

    per_seq = per_sequence_metrics(model, task, n_batches=4, batch_size=32, seed=0)
    assert {k: v.shape for k, v in per_seq.items()} == {
        "correct": (128,),
        "n_positions": (128,),
        "loss_sum": (128,),
    }
    assert (per_seq["correct"] <= per_seq["n_positions"]).all()
    assert int(per_seq["correct"].sum()) == metrics["correct"]
    assert int(per_seq["n_positions"].sum()) == metrics["n_positions"]
    assert per_seq["loss_sum"].sum() / metrics["n_positions"] == pytest.approx(metrics["loss"])
    assert metrics["accuracy"] == metrics["correct"] / metrics["n_positions"]

    other_seed = evaluate(model, task, n_batches=4, batch_size=32, seed=1)
    assert other_seed["loss"] != metrics["loss"]  # a different seed draws different batches


def test_text_run_saves_its_tokenizer_and_reads_text(tmp_path):
    """A text task end to end: BPE trained on local files, saved beside the model, used on load."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"m{i}.py").write_text(
            "".join(f"def function_{j}(x):\n    return x + {j}\n\n" for j in range(60 * (i + 1)))
        )
    run = RunConfig.from_dict(
        {
            "name": "text-tiny",
            "model": {"d_model": 32, "d_head": 8, "n_layers": 1, "attn_only": True},
            "task": {
                "name": "text",
                "sources": [str(corpus)],
                "tokenizer_vocab_size": 300,
                "cache_dir": str(tmp_path / "cache"),
                "seq_len": 32,
            },
            "train": {
                "steps": 4,
                "batch_size": 4,
                "warmup_steps": 1,
                "eval_every": 2,
                "eval_batches": 1,
                "device": "cpu",
            },
        }
    )
    out = train(run, tmp_path / "run", progress=False)
    assert (out / "tokenizer.json").is_file()
    model = HookedMomentumTransformer.from_pretrained(out)
    tokens = model.to_tokens("def function_3(x):", prepend_bos=False)
    assert model.to_string(tokens[0]) == "def function_3(x):"
    assert model(tokens).shape == (1, tokens.shape[1], model.cfg.d_vocab)


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in (Path(__file__).parents[1] / "configs").rglob("*.toml")
        if not {"sweeps", "studies", "corpus"} & set(p.parts)  # sweep specs, corpus pins
    ),
    ids=lambda p: p.stem,
)
def test_every_committed_run_config_loads(path):
    run = load_run_config(path)
    if "zoo" in path.parts:  # zoo runs are named after their config, as assets/<name> are
        assert run.name == path.stem
    if (
        run.task["name"] != "text"
    ):  # text tasks would build a tokenizer; their model is checked below
        task = make_task(**run.task)
        run.model_config(task.d_vocab, task.seq_len)
    else:
        run.model_config(run.task["tokenizer_vocab_size"], run.task["seq_len"])
