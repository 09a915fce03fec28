"""Training run configs: one TOML file holds the model, the task and the optimiser settings."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from momentum_interp.config import MomentumConfig, is_finite_real
from momentum_interp.data.registry import check_task
from momentum_interp.naming import unknown_names
from momentum_interp.toml_config import load_toml

TOP_LEVEL = ("model", "task", "train", "name")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to `min_lr_ratio × lr`, and gradient clipping
    at `grad_clip` (0: off, as in nanoGPT). `device`: "auto", "cpu", "cuda", "cuda:1", ..."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 200
    device: str = "auto"
    compile: bool = False
    bf16: bool = True
    history_checkpoints: int = 0  # weights kept at ~this many steps (training/history.py)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(
                    f"[train] {name} must be a positive integer, got {getattr(self, name)!r}."
                )
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(
                f"[train] warmup_steps must lie in [0, steps={self.steps}], got {self.warmup_steps}."
            )
        if not isinstance(self.history_checkpoints, int) or self.history_checkpoints < 0:
            raise ValueError(
                "[train] history_checkpoints must be a non-negative integer (0: keep none; 50 or "
                f"more to resolve a transition), got {self.history_checkpoints!r}."
            )
        if not is_finite_real(self.lr) or self.lr <= 0:
            raise ValueError(
                f"[train] lr must be a finite positive number, got {self.lr!r}; use e.g. lr = 1e-3."
            )
        for name in ("weight_decay", "grad_clip", "min_lr_ratio"):
            if not is_finite_real(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(
                    f"[train] {name} must be a finite number >= 0, got {getattr(self, name)!r}."
                )
        if len(self.betas) != 2 or not all(is_finite_real(b) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"[train] betas must be two numbers in [0, 1), got {self.betas!r}.")

    @property
    def max_grad_norm(self) -> float:
        """The clipping threshold: `grad_clip`, or no clipping (inf) when it is 0."""
        return self.grad_clip or math.inf


@dataclass
class RunConfig:
    """Everything that defines a training run: `[model]`, `[task]` and `[train]` tables."""

    model: dict[str, Any]
    task: dict[str, Any]
    train: OptimConfig = field(default_factory=OptimConfig)
    name: str = "run"

    def __post_init__(self) -> None:
        if "name" not in self.task:
            raise ValueError('[task] needs a name, e.g. name = "induction".')
        model_options = {f.name for f in dataclasses.fields(MomentumConfig)}
        if set(self.model) - model_options:
            raise ValueError(
                unknown_names("[model] option(s)", set(self.model) - model_options, model_options)
            )
        check_task(self.task["name"], {k: v for k, v in self.task.items() if k != "name"})

    def model_config(self, d_vocab: int, n_ctx: int) -> MomentumConfig:
        """The model config; `d_vocab` and `n_ctx` default to the task's when the file omits them.

        A [model] table may enlarge either, never shrink it below what the task feeds the model.
        """
        cfg = MomentumConfig.from_dict({"d_vocab": d_vocab, "n_ctx": n_ctx, **self.model})
        for key, needed, what in (
            ("n_ctx", n_ctx, "the task's sequence length ([task] seq_len)"),
            ("d_vocab", d_vocab, "the task's vocabulary"),
        ):
            if getattr(cfg, key) < needed:
                raise ValueError(
                    f"[model] {key} = {getattr(cfg, key)} is smaller than {what}, {needed}; "
                    f"raise [model] {key} to at least {needed}, or remove it to use the task's."
                )
        return cfg

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train"]["betas"] = list(self.train.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        unknown = set(data) - set(TOP_LEVEL)
        if unknown:
            raise ValueError(unknown_names("top-level table(s)", unknown, TOP_LEVEL))
        for table in ("model", "task"):
            if not isinstance(data.get(table), dict):
                raise ValueError(f"The run config needs a [{table}] table.")
        train = data.get("train", {})
        valid = {f.name for f in dataclasses.fields(OptimConfig)}
        if set(train) - valid:
            raise ValueError(unknown_names("[train] option(s)", set(train) - valid, valid))
        return cls(
            model=dict(data["model"]),
            task=dict(data["task"]),
            train=OptimConfig(**train),
            name=data.get("name", "run"),
        )


def load_run_config(path: str | Path) -> RunConfig:
    """Read a TOML run config, with errors that name the file and the problem."""
    return load_toml(path, "Run config", "configs/ for examples", RunConfig.from_dict)
