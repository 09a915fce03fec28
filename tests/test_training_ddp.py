"""DDP under torchrun on CPU (gloo, 2 processes): it completes, and it averages both ranks' grads.

The check on gradient synchronisation is exact: an in-process simulation of 2-rank data
parallelism (each rank's batch seeded by its rank, gradients averaged, one clipped AdamW step)
must reproduce the torchrun run's final weights bit for bit, while the same simulation with one
rank (which also reproduces single-process `train()` exactly) must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from momentum_interp import HookedMomentumTransformer
from momentum_interp.data import make_task
from momentum_interp.evaluation import TRAIN_STREAM, seeded_generator
from momentum_interp.training.config import RunConfig, load_run_config
from momentum_interp.training.loop import make_optimizer, train
from momentum_interp.training.schedule import lr_at

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tiny" / "induction.toml"
WORLD_SIZE = 2


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ddp") / "run"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        + ["--nproc_per_node", str(WORLD_SIZE), "-m", "momentum_interp.cli", "train"]
        + ["--config", str(CONFIG), "--out", str(out), "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out, proc


def simulate_data_parallel(run: RunConfig, world_size: int) -> tuple[dict, list[float]]:
    """What `train` under DDP computes, in one process: final weights and per-step mean losses."""
    opt = run.train
    task = make_task(**run.task)
    cfg = run.model_config(task.d_vocab, task.seq_len)
    cfg.device, cfg.seed = "cpu", opt.seed
    model = HookedMomentumTransformer(cfg).train()
    optimizer = make_optimizer(model, run)
    params = list(model.parameters())
    losses = []
    for step in range(opt.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, opt)
        rank_losses, rank_grads = [], []
        for rank in range(world_size):
            generator = seeded_generator("cpu", opt.seed, TRAIN_STREAM, rank, step)
            batch = task.sample(opt.batch_size, generator)
            loss = model(batch.tokens, return_type="loss", loss_mask=batch.loss_mask)
            loss.backward()  # (not autograd.grad: .grad's memory layout steers the clip norm)
            rank_grads.append([param.grad for param in params])
            model.zero_grad(set_to_none=True)
            rank_losses.append(loss.detach())
        for param, *grads in zip(params, *rank_grads, strict=True):
            param.grad = sum(g / world_size for g in grads)  # DDP: all-reduce of grad / world
        torch.nn.utils.clip_grad_norm_(params, opt.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append((sum(rank_losses) / world_size).item())
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, losses


def test_ddp_run_completes_and_rank0_writes_the_run(ddp_run):
    out, proc = ddp_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Model written to") == 1  # only rank 0 reports
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "config.json",
        "metrics.json",
        "run_config.json",
    }
    run = load_run_config(CONFIG)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["completed"] is True
    assert [e["step"] for e in metrics["train"]] == list(range(1, run.train.steps + 1))
    assert [e["step"] for e in metrics["eval"]] == [10, 20]
    model = HookedMomentumTransformer.from_pretrained(out, device="cpu")
    assert model.cfg.d_vocab == run.task["d_vocab"]


def test_ddp_averages_gradients_over_both_ranks(ddp_run, tmp_path):
    out, proc = ddp_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = load_run_config(CONFIG)
    ddp_weights = load_file(str(out / "model.safetensors"))
    ddp_losses = [e["loss"] for e in json.loads((out / "metrics.json").read_text())["train"]]

    # The simulation is faithful: with one rank it is exactly single-process train().
    single_out = train(run, tmp_path / "single", progress=False)
    single_weights = load_file(str(single_out / "model.safetensors"))
    one_rank, _ = simulate_data_parallel(run, world_size=1)
    for name, value in single_weights.items():
        assert torch.equal(one_rank[name], value), name

    two_ranks, two_rank_losses = simulate_data_parallel(run, world_size=WORLD_SIZE)
    assert ddp_weights.keys() == two_ranks.keys()
    for name, value in ddp_weights.items():
        assert torch.equal(two_ranks[name], value), name
    # The history records the loss of the global batch (mean over ranks), not rank 0's alone.
    assert ddp_losses == two_rank_losses

    # Rank 1's data mattered: the result is not what rank 0 alone would have trained.
    assert not all(torch.equal(single_weights[k], ddp_weights[k]) for k in ddp_weights)
