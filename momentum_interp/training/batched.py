"""Train many small same-shaped runs at once: parameters stacked with `torch.func.stack_module_state`,
one `vmap`-ed forward and backward per step, one AdamW over the stacked tensors.

A group is runs whose configs agree in everything but the shear strength `model.gamma` (a
buffer, so it stacks like a weight). They then share the initial weights and the data stream of
`train.seed`, and step `k` of every run sees the same batch as the sequential loop would give it.
AdamW is elementwise and the gradient of a sum of per-run losses is each run's own gradient, so
each run follows the sequential loop's trajectory (gradients clipped per run, by its own norm).
Evaluation copies each run's weights into its own model and calls the same `evaluate`.

A run whose loss or gradient norm goes NaN or ±inf is marked diverged at that step (checked
on the per-run numbers the step reads on the host anyway) and frozen: its gradients are zeroed
and its weights restored after every later update, so it neither moves nor touches the others;
it is not evaluated again and its run directory gets the divergence record, no model.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from momentum_interp.data import make_task
from momentum_interp.evaluation import TRAIN_STREAM, evaluate, next_token_loss, seeded_generator
from momentum_interp.io import atomic_write_json
from momentum_interp.model.transformer import HookedMomentumTransformer
from momentum_interp.training.config import RunConfig
from momentum_interp.training.loop import (
    Distributed,
    diverged_metrics,
    divergence,
    resolve_device,
)
from momentum_interp.training.schedule import lr_at
from momentum_interp.training.state import METRICS_FILE, RunDirectory

BATCHED_FIELD = ("model", "gamma")  # the one config field allowed to differ within a group


def group_key(config: dict) -> str:
    """Runs with equal keys can train together: their configs differ at most in `model.gamma`."""
    shape = copy.deepcopy({t: config.get(t, {}) for t in ("model", "task", "train")})
    shape[BATCHED_FIELD[0]].pop(BATCHED_FIELD[1], None)
    return json.dumps(shape, sort_keys=True, default=str)


def _check_group(runs: Sequence[RunConfig]) -> None:
    if not runs:
        raise ValueError("train_batched needs at least one run.")
    keys = {group_key(r.to_dict()) for r in runs}
    if len(keys) > 1:
        raise ValueError(
            "Runs trained together must differ only in model.gamma (same model shape, task, "
            "optimiser and seed); group them with training.batched.group_key."
        )
    if runs[0].train.compile:
        raise ValueError("train_batched does not compile; set [train] compile = false.")


def _build_models(runs: Sequence[RunConfig], device: torch.device, task) -> list:
    models = []
    for run in runs:
        cfg = run.model_config(task.d_vocab, task.seq_len)
        cfg.device = str(device)
        if cfg.model_name == "custom":
            cfg.model_name = run.name
        if cfg.seed is None:
            cfg.seed = run.train.seed
        models.append(HookedMomentumTransformer(cfg, tokenizer=getattr(task, "tokenizer", None)))
    return models


def _clip_per_run(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`clip_grad_norm_` applied to each run (leading dim) separately; returns the norms `[run]`."""
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))))
    return norms


def train_batched(
    runs: Sequence[RunConfig],
    out_dirs: Sequence[str | Path] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train `runs` (one group, see `group_key`) together; return each run's metrics history
    (a diverged run's as `train` records it: "diverged", "completed": False).

    With `out_dirs`, each run's final model and `metrics.json` go to its own run directory, as
    `train` writes them (no intermediate checkpoints: a killed group starts again).
    """
    runs = list(runs)
    _check_group(runs)
    opt = runs[0].train
    device = resolve_device(opt.device, Distributed())
    task = make_task(**runs[0].task)
    eval_task = make_task(**{**runs[0].task, "split": "val"}) if task.name == "text" else task
    models = _build_models(runs, device, task)
    params, buffers = stack_module_state(models)  # {name: [run, ...]}
    base = copy.deepcopy(models[0]).to("meta")
    decay = [p for name, p in params.items() if name.split(".")[-1].startswith("W_")]
    no_decay = [p for name, p in params.items() if not name.split(".")[-1].startswith("W_")]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": opt.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=opt.lr,
        betas=opt.betas,
    )

    def loss_of(p, b, tokens, loss_mask):
        # logits, then the plain loss: the chunked loss's autograd.Function has no vmap rule
        logits = functional_call(base, (p, b), (tokens,))
        return next_token_loss(logits, tokens, loss_mask)

    batched_loss = vmap(loss_of, in_dims=(0, 0, None, None))
    # SDPA has no vmap batching rule on CPU yet: torch loops over the runs there, and says so.
    warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
    histories = [{"train": [], "eval": []} for _ in runs]
    diverged: list[dict | None] = [None for _ in runs]  # each run's divergence record
    bar = tqdm(total=opt.steps, desc=f"{len(runs)} runs", disable=not progress)
    for step in range(opt.steps):
        lr = lr_at(step, opt)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = task.sample(
            opt.batch_size, seeded_generator(device, opt.seed, TRAIN_STREAM, 0, step)
        )
        losses = batched_loss(params, buffers, batch.tokens, batch.loss_mask)  # [run]
        losses.sum().backward()
        grads = [p.grad for p in params.values()]
        norms = _clip_per_run(grads, opt.max_grad_norm)
        step_losses, step_norms = losses.tolist(), norms.tolist()  # the step's host reads
        for index, (loss, norm) in enumerate(zip(step_losses, step_norms, strict=True)):
            if diverged[index] is not None:
                continue
            diverged[index] = divergence(step + 1, loss, norm)
            if diverged[index] is None:
                entry = {"step": step + 1, "loss": loss, "lr": lr, "grad_norm": norm}
                histories[index]["train"].append(entry)
        frozen = [index for index, record in enumerate(diverged) if record is not None]
        with _frozen(params, grads, frozen):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % opt.eval_every == 0 or step + 1 == opt.steps:
            _load_into(models, params)
            for model, history, record in zip(models, histories, diverged, strict=True):
                if record is None:
                    metrics = evaluate(model, eval_task, opt.eval_batches, opt.batch_size, opt.seed)
                    history["eval"].append({"step": step + 1, **metrics})
        bar.update(1)
    bar.close()
    _load_into(models, params)
    if out_dirs is not None:
        for run, model, history, record, out in zip(
            runs, models, histories, diverged, out_dirs, strict=True
        ):
            run_dir = RunDirectory(out)
            run_dir.claim(run.to_dict(), overwrite=True)
            if record is None:
                run_dir.finish(model, {"name": run.name, "completed": True, **history})
            else:
                atomic_write_json(
                    run_dir.root / METRICS_FILE, diverged_metrics(run.name, record, history)
                )
    return [
        history if record is None else diverged_metrics(run.name, record, history)
        for run, history, record in zip(runs, histories, diverged, strict=True)
    ]


@contextmanager
def _frozen(params: dict[str, torch.Tensor], grads: list[torch.Tensor], runs: list[int]):
    """Inside, the optimiser step leaves runs `runs` (indices into the leading dim) as they
    were: their gradients (NaN after a divergence) are zeroed, their weights put back after."""
    if not runs:
        yield
        return
    index = torch.tensor(runs, device=grads[0].device)
    for grad in grads:
        grad.index_fill_(0, index, 0.0)
    kept = [p.detach()[index].clone() for p in params.values()]
    yield
    with torch.no_grad():
        for param, old in zip(params.values(), kept, strict=True):
            param.index_copy_(0, index, old)


@torch.no_grad()
def _load_into(models: list[HookedMomentumTransformer], params: dict[str, torch.Tensor]) -> None:
    for index, model in enumerate(models):
        for name, param in model.named_parameters():
            param.copy_(params[name][index])
