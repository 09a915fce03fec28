"""The training loop: AdamW, warmup + cosine, clipping, bf16 on GPU, DDP under torchrun, exact resume.

A run stops at the first step whose loss or gradient norm is NaN or ±inf (`TrainingDiverged`):
both are read on the host each step anyway (the logged loss and grad norm), so the check adds no
device synchronisation. Nothing from that step on is saved; `metrics.json` records where it
diverged and the last good checkpoint stays.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from momentum_interp.config import check_device
from momentum_interp.data import make_task
from momentum_interp.evaluation import TRAIN_STREAM, evaluate, seeded_generator
from momentum_interp.io import atomic_write_json
from momentum_interp.model.transformer import HookedMomentumTransformer
from momentum_interp.training.config import RunConfig
from momentum_interp.training.history import CheckpointHistory, history_schedule
from momentum_interp.training.schedule import lr_at
from momentum_interp.training.state import METRICS_FILE, RunDirectory, load_metrics


@dataclass
class Distributed:
    """This process's place in a torchrun launch (rank 0 of 1 when run directly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(requested: str, ddp: Distributed) -> torch.device:
    """`auto` picks CUDA when present; under DDP each process takes its local GPU. A device this
    machine lacks (e.g. "cuda:7" with fewer GPUs) is a ValueError naming the ones it has."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and ddp.world_size > 1:
        requested = f"cuda:{ddp.local_rank}"
    return check_device(requested)


class TrainingDiverged(RuntimeError):
    """A run's loss or gradient norm went NaN or ±inf; `record` is `metrics.json`'s "diverged"
    entry (`step`, `what`, `value`). The command line exits with status 1 on it."""

    def __init__(self, message: str, record: dict):
        super().__init__(message)
        self.record = record


def divergence(step: int, loss: float, grad_norm: float) -> dict | None:
    """The "diverged" record of a step whose loss or gradient norm is not finite, else None."""
    for what, value in (("loss", loss), ("grad_norm", grad_norm)):
        if not math.isfinite(value):
            return {"step": step, "what": what, "value": str(value)}
    return None


def diverged_metrics(name: str, record: dict, history: dict) -> dict:
    """`metrics.json` of a diverged run: its history up to the last finite step, and where it
    diverged; no evaluation of the diverged weights."""
    return {"name": name, "completed": False, "diverged": record, **history}


def make_optimizer(model: torch.nn.Module, run: RunConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not biases, norms, γ or α)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if name.split(".")[-1].startswith("W_") else no_decay).append(param)
    opt = run.train
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": opt.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=opt.lr,
        betas=opt.betas,
        fused=torch.cuda.is_available() and next(model.parameters()).is_cuda,
    )


def train(
    run: RunConfig,
    out_dir: str | Path,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Train (or resume) the run in `out_dir`; returns the directory holding the final model."""
    ddp = Distributed.from_env()
    opt = run.train
    device = resolve_device(opt.device, ddp)
    owns_group = ddp.world_size > 1 and not dist.is_initialized()
    if owns_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL collectives (barrier) must use this rank's GPU
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(run, out_dir, overwrite, progress, ddp, device)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    run: RunConfig,
    out_dir: str | Path,
    overwrite: bool,
    progress: bool,
    ddp: Distributed,
    device: torch.device,
) -> Path:
    opt = run.train
    task = make_task(**run.task)
    eval_task = make_task(**{**run.task, "split": "val"}) if task.name == "text" else task
    cfg = run.model_config(task.d_vocab, task.seq_len)
    cfg.device = str(device)
    if cfg.model_name == "custom":
        cfg.model_name = run.name
    if cfg.seed is None:
        cfg.seed = opt.seed
    model = HookedMomentumTransformer(cfg, tokenizer=getattr(task, "tokenizer", None))
    optimizer = make_optimizer(model, run)

    run_dir = RunDirectory(out_dir)
    if ddp.is_main:
        run_dir.claim(run.to_dict(), overwrite)
    if ddp.world_size > 1:
        dist.barrier()
    latest = run_dir.latest_checkpoint()
    finished = (run_dir.root / METRICS_FILE).is_file() and latest is None
    if finished and "diverged" not in load_metrics(run_dir.root):  # a diverged run trains again
        if ddp.is_main:
            print(f"{run_dir.root} already holds the finished run; nothing to do.")
        return run_dir.root
    if ddp.is_main:
        run_dir.check_space(
            model, opt.steps, len(history_schedule(opt.steps, opt.history_checkpoints))
        )

    step, history, saved = 0, {"train": [], "eval": []}, None  # saved: last checkpoint's step
    if latest is not None:
        step, history = run_dir.load_checkpoint(latest, model, optimizer)
        saved = step
        if ddp.is_main:
            print(f"Resuming {run.name} from {latest.name} (step {step}).")

    snapshots = CheckpointHistory(run_dir.root)
    if ddp.is_main:
        snapshots.discard_after(step)
    snapshot_steps = set(history_schedule(opt.steps, opt.history_checkpoints))
    trainee = DistributedDataParallel(model) if ddp.world_size > 1 else model
    if opt.compile:
        trainee = torch.compile(trainee)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if opt.bf16 and device.type == "cuda"
        else nullcontext()
    )
    tokens_per_step = opt.batch_size * task.seq_len * ddp.world_size
    bar = tqdm(total=opt.steps, initial=step, desc=run.name, disable=not (progress and ddp.is_main))
    postfix = {"eval_acc": f"{history['eval'][-1]['accuracy']:.3f}"} if history["eval"] else {}
    model.train()
    diverged = None
    while step < opt.steps:
        started = time.perf_counter()
        lr = lr_at(step, opt)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = task.sample(
            opt.batch_size, seeded_generator(device, opt.seed, TRAIN_STREAM, ddp.rank, step)
        )
        with autocast:
            loss = trainee(batch.tokens, return_type="loss", loss_mask=batch.loss_mask)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opt.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        logged = loss.detach().float().clone()
        if ddp.world_size > 1:  # record the global batch's loss, not rank 0's share of it
            dist.all_reduce(logged)
            logged /= ddp.world_size
        loss_value, grad_value = logged.item(), float(grad_norm)  # the step's host reads
        diverged = divergence(step, loss_value, grad_value)
        if diverged is not None:
            break
        tokens_per_s = tokens_per_step / (time.perf_counter() - started)
        history["train"].append(
            {"step": step, "loss": loss_value, "lr": lr, "grad_norm": grad_value}
        )
        if ddp.is_main and (step % opt.eval_every == 0 or step == opt.steps):
            metrics = evaluate(model, eval_task, opt.eval_batches, opt.batch_size, seed=opt.seed)
            history["eval"].append({"step": step, **metrics})
            postfix["eval_acc"] = f"{metrics['accuracy']:.3f}"
        postfix.update(loss=f"{loss_value:.3f}", tok_s=f"{tokens_per_s:,.0f}")
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)
        if ddp.is_main and step in snapshot_steps:
            snapshots.keep(step, model)
        if ddp.is_main and step % opt.checkpoint_every == 0 and step < opt.steps:
            run_dir.save_checkpoint(step, model, optimizer, history)
            saved = step
    bar.close()
    if diverged is not None:
        _stop_diverged(run, run_dir, ddp, diverged, history, saved)

    if ddp.is_main:
        run_dir.finish(model, {"name": run.name, "completed": True, **history})
    if ddp.world_size > 1:
        dist.barrier()  # no rank returns before rank 0 has written the final model
    return run_dir.root


def _stop_diverged(
    run: RunConfig,
    run_dir: RunDirectory,
    ddp: Distributed,
    record: dict,
    history: dict,
    saved: int | None,
) -> None:
    """Record the divergence in `metrics.json` (rank 0), keep the checkpoints, and raise."""
    metrics = run_dir.root / METRICS_FILE
    if ddp.is_main:
        atomic_write_json(metrics, diverged_metrics(run.name, record, history))
    if ddp.world_size > 1:
        dist.barrier()  # every rank stops at the same step: loss and grad norm are global
    kept = (
        f"the last good checkpoint (step {saved}) stays in {run_dir.checkpoints}"
        if saved is not None
        else "no checkpoint had been saved before it"
    )
    raise TrainingDiverged(
        f"run {run.name} diverged at step {record['step']}: its {record['what']} is "
        f"{record['value']}. Nothing from that step on was saved; {kept}, and {metrics} records "
        f"the divergence. Lower [train] lr (now {run.train.lr:g}), lengthen warmup_steps, or "
        "clip gradients harder (grad_clip).",
        record,
    )
