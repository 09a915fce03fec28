"""Language-model comparison: validation loss overall and on induction-heavy positions.

"Induction-heavy" positions are those whose next token continues a span that already occurred
earlier in the window (`data.repeated_span_mask`): copying predicts them, so they isolate the
in-context part of the loss that momentum is meant to help. The in-context-learning score
(`icl_score`, Olsson et al. 2022) is the same idea without a mask: how much lower the loss is late
in the context than early.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from momentum_interp.analysis.scoring import Window, icl_score
from momentum_interp.data import make_task, repeated_span_mask
from momentum_interp.evaluation import held_out_batches, per_token_loss
from momentum_interp.model.checkpoint import check_finite
from momentum_interp.model.transformer import HookedMomentumTransformer
from momentum_interp.paths import REPO_ROOT

TABLE, RECORDS = "comparison.csv", "runs.json"
LOSSES = ("val_loss", "induction_loss")
PAPER_GAP = 0.029  # the paper: its 125M momentum model within 2.9 % of a 350M baseline's loss


def relative_gap(value: float, reference: float) -> float:
    """`value / reference − 1`: the gap the paper quotes (for losses: how much worse than the
    reference; for ICL scores, both negative: how much larger the late-context drop)."""
    return value / reference - 1.0


@torch.no_grad()
def lm_losses(
    model: HookedMomentumTransformer,
    task,
    n_batches: int = 16,
    batch_size: int = 16,
    seed: int = 0,
    min_match: int = 2,
    icl_windows: tuple[Window, Window] | None = None,
) -> dict[str, float]:
    """Mean next-token loss on held-out windows, overall and on repeated-span positions, and
    with `icl_windows = (early, late)` the `icl_score` of the mean loss at each position."""
    model.eval()
    induction = 0.0
    n_induction = n_sequences = 0
    position_total = torch.zeros(task.seq_len - 1, dtype=torch.float64)
    for batch in held_out_batches(task, n_batches, batch_size, seed, model.W_E.device):
        tokens = batch.tokens
        loss = per_token_loss(model(tokens), tokens)  # [batch, pos-1]
        mask = repeated_span_mask(tokens, min_match)[:, :-1]
        position_total += loss.sum(0).cpu().double()
        n_sequences += loss.shape[0]
        induction += float(loss[mask].sum())
        n_induction += int(mask.sum())
    n_total = n_sequences * (task.seq_len - 1)
    out = {
        "val_loss": float(position_total.sum()) / n_total,
        "induction_loss": induction / max(n_induction, 1),
        "induction_fraction": n_induction / n_total,
        "n_tokens": n_total,
    }
    if icl_windows is not None:
        out["icl_score"] = icl_score(position_total / n_sequences, *icl_windows)
    return out


def compare_runs(
    run_dirs: list[str | Path], reference: str, n_batches: int = 16, seed: int = 0
) -> pd.DataFrame:
    """One row per run (its directory, config name and seed), with gaps relative to `reference`:
    a config name (the mean over its seeds' runs) or one run's directory name.

    Every run is evaluated on the same validation windows of its own task config (the runs of a
    comparison share one corpus and tokenizer, which is checked).
    """
    rows, task_configs = [], set()
    for run_dir in map(Path, run_dirs):
        run = json.loads((run_dir / "run_config.json").read_text())
        task_configs.add(json.dumps(run["task"], sort_keys=True))
        task = make_task(**{**run["task"], "split": "val"})
        model = HookedMomentumTransformer.from_pretrained(run_dir, device="cpu")
        check_finite(model, run_dir)
        rows.append(
            {
                "run": run_dir.name,
                "config": run["name"],
                "seed": run["train"]["seed"],
                "n_params": sum(p.numel() for p in model.parameters()),
                **lm_losses(model, task, n_batches, seed=seed),
            }
        )
    if len(task_configs) > 1:
        raise ValueError("The runs were trained on different task configs; compare like with like.")
    table = pd.DataFrame(rows)
    ref = table[(table["config"] == reference) | (table["run"] == reference)]
    if ref.empty:
        raise ValueError(
            f"reference {reference!r} is neither a config nor a run among "
            f"{sorted(set(table['config']) | set(table['run']))}"
        )
    for column in LOSSES:
        table[f"{column}_gap"] = relative_gap(table[column], ref[column].mean())
    return table


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """One row per config: the mean over its seeds of each loss and gap, and the seeds' standard
    deviation of each loss (NaN with one seed)."""
    aggregations = {"n_seeds": ("seed", "nunique"), "n_params": ("n_params", "first")}
    for column in LOSSES:
        aggregations[column] = (column, "mean")
        aggregations[f"{column}_sd"] = (column, "std")
        aggregations[f"{column}_gap"] = (f"{column}_gap", "mean")
    return table.groupby("config", sort=False).agg(**aggregations).reset_index()


@dataclass
class LMComparison:
    """The comparison table and every run's validation-loss curve (rendered by `viz.lm`)."""

    table: pd.DataFrame  # one row per run, from `compare_runs`
    histories: dict[str, dict]  # run name -> its `metrics.json` history ("eval" entries)
    reference: str
    run_configs: dict[str, dict] = field(default_factory=dict)  # run name -> its run_config

    title = "Language-model comparison"

    def to_dict(self) -> dict:
        return {
            "reference": self.reference,
            "configs": summarise(self.table).to_dict(orient="records"),
            "runs": self.table.to_dict(orient="records"),
        }

    @classmethod
    def load(cls, out_dir: str | Path) -> LMComparison:
        """A comparison written by `write_comparison` (its table and run records)."""
        out_dir = Path(out_dir)
        records = json.loads((out_dir / RECORDS).read_text())
        return cls(
            table=pd.read_csv(out_dir / TABLE),
            histories={name: {"eval": run["eval"]} for name, run in records["runs"].items()},
            reference=records["reference"],
            run_configs={name: run["run_config"] for name, run in records["runs"].items()},
        )


def bundled_comparison() -> Path | None:
    """The committed comparison (`results/lm/`), if this checkout has it."""
    path = REPO_ROOT / "results" / "lm"
    return path if (path / TABLE).is_file() and (path / RECORDS).is_file() else None
