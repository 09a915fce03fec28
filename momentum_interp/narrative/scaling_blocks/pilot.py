"""The README blocks of one-seed γ*(N) studies: a sweep's design with its pilot and floor run,
and a longer-budget probe at one depth beside the sweep's runs."""

from __future__ import annotations

import pandas as pd

from momentum_interp.analysis.scaling import GAMMA, TIE_TOL
from momentum_interp.narrative.scaling import FLOOR, only_value
from momentum_interp.prose import bullets, pct, wrap
from momentum_interp.tables import markdown_table
from momentum_interp.viz.scaling import SMEARED_LABEL


def pilot_block(pilot: pd.DataFrame, floor: pd.DataFrame, spec: dict, sweep_done: int) -> str:
    """The README's paragraph and bullets on the harder recall study: the sweep's design (`spec`,
    its `sweep_spec.json`) and progress, the one-layer pilot (`pilot`, the 8-pair rows of
    `pilot_stage2/results.csv`) and the floor run (`floor`, `pilot/results.csv`)."""
    if pilot.empty or floor.empty:
        raise ValueError("the pilot records hold no rows for the README's bullets")
    by_auc = pilot.sort_values("auc_accuracy", ascending=False)
    aucs = ", ".join(
        f"{auc:.2f} at γ = {g:g}"
        for g, auc in zip(by_auc[GAMMA], by_auc["auc_accuracy"], strict=True)
    )
    chance = 2 / only_value(floor, "task.d_vocab")  # values come from half of the vocabulary
    smoothing_first = by_auc[GAMMA].iloc[0] < 0
    items = [
        f"**The pilot**, {pilot['train.seed'].nunique()} seed at "
        f"{only_value(pilot, 'model.n_layers')} layer ({only_value(pilot, 'task.n_pairs')} pairs, "
        f"{only_value(pilot, 'train.steps')} steps). "
        + (
            "No γ saturated"
            if pilot["final_accuracy"].max() < 1 - TIE_TOL
            else "A γ reached the ceiling"
        )
        + f" (best {pct(pilot['final_accuracy'].max(), 0)} final accuracy), and the AUC "
        f"separated the γ values: {aucs}. At {only_value(floor, 'task.n_pairs')} pairs and "
        f"{only_value(floor, 'train.steps')} steps no γ learned at N = "
        f"{' or '.join(str(n) for n in sorted(set(floor['model.n_layers'])))} (best final "
        f"accuracy {pct(floor['final_accuracy'].max())}, chance {pct(chance)}: a floor).",
        f"The {spec['n_runs']}-run sweep "
        + (
            f"is complete: all {spec['n_runs']} runs are committed (below)."
            if sweep_done >= spec["n_runs"]
            else "is started and resumable with the command in `results/scaling_mqar/README.md`; "
            f"its committed record holds {sweep_done} of the {spec['n_runs']} runs (below)."
        ),
        "The pilot rules the law neither in nor out."
        + (
            " The one-layer pilot hinted that a *smoothing* q/k shear learns this task faster "
            "than a sharpening one, on one seed; the sweep "
            + ("tested it over seeds (below)." if sweep_done >= spec["n_runs"] else "tests it.")
            if smoothing_first
            else ""
        ),
    ]
    return f"{wrap(_sweep_design(spec))}\n\n{bullets(items)}"


def _sweep_design(spec: dict) -> str:
    """One sentence on a γ*(N) sweep's design from its `sweep_spec.json`."""
    task, grid = spec["base"]["task"], spec["grid"]
    gammas, depths = grid["model.gamma"], sorted(grid["model.n_layers"])
    keys = sorted(v["model.n_layers"] for v in spec["variants"] if v.get("model.shear") == "k")
    smeared = [v for v in spec["variants"] if v.get("model.smeared_key")]
    return (
        f"The sweep (`{spec['source']}`): `{task['name']}` with {task['seq_len']} tokens, a "
        f"{task['d_vocab']}-token vocabulary and {task['n_pairs']} pairs; γ from {min(gammas):g} "
        f"to {max(gammas):g} ({len(gammas)} values, smoothing and sharpening) at depths N ∈ "
        f"{{{', '.join(map(str, depths))}}}"
        + (f", keys-only shear at N = {' and '.join(map(str, keys))}" if keys else "")
        + (" and the smeared key at every depth" if smeared else "")
        + f"; {len(grid['train.seed'])} seeds, {spec['base']['train']['steps']} steps, "
        f"{spec['n_runs']} runs."
    )


def mqar_pilot_block(
    pilot: pd.DataFrame,
    floor: pd.DataFrame,
    spec: dict,
    sweep: pd.DataFrame | None,
    n_pairs: int,
) -> str:
    """`pilot_block` of the pilot's rows at the adopted `n_pairs`, the sweep's runs so far."""
    done = 0 if sweep is None else len(sweep)
    return pilot_block(pilot[pilot["task.n_pairs"] == n_pairs], floor, spec, done)


def probe_block(probe: pd.DataFrame, sweep: pd.DataFrame, config: str, out: str) -> str:
    """The README's one-seed probe of a longer budget at one depth (`probe`, its results table)
    beside the same depth and seed in the 600-step sweep (`sweep`): final accuracy and AUC per γ,
    and the smeared key; `config` and `out` are the probe's sweep file and results folder."""
    depth, seed = only_value(probe, "model.n_layers"), only_value(probe, "train.seed")
    steps = only_value(probe, "train.steps")
    same = sweep[(sweep["model.n_layers"] == depth) & (sweep["train.seed"] == seed)]

    def rows_of(table: pd.DataFrame) -> dict[str, pd.Series]:
        smeared = table["model.smeared_key"].astype(bool)
        qk = table[~smeared & (table["model.shear"] == "qk")]
        out = {f"{g:g}": row for g, row in qk.set_index(GAMMA).sort_index().iterrows()}
        if smeared.any():
            out[SMEARED_LABEL] = table[smeared].iloc[0]
        return out

    long, short = rows_of(probe), rows_of(same)
    short_steps = only_value(same, "train.steps") if len(same) else None
    header = ["γ", f"final accuracy, {steps} steps", "AUC", f"final accuracy, {short_steps} steps"]
    rows = [
        [
            label,
            pct(row["final_accuracy"]),
            f"{row['auc_accuracy']:.3f}",
            pct(short[label]["final_accuracy"]) if label in short else "—",
        ]
        for label, row in long.items()
    ]
    momentum = {k: v for k, v in long.items() if k != SMEARED_LABEL}
    learned = [k for k, v in momentum.items() if v["final_accuracy"] >= FLOOR]
    best = max(momentum, key=lambda k: momentum[k]["auc_accuracy"])
    intro = (
        f"A one-seed probe of a longer budget (`{config}`, "
        f"`{out}`): the sweep's model and task at N = {depth}, seed "
        f"{seed}, trained {steps} steps instead of {short_steps}, every γ of the grid and the "
        "smeared key."
    )
    items = [
        (
            f"{len(learned)} of {len(momentum)} q/k γ reach {pct(FLOOR, 0)} final accuracy "
            f"(γ ∈ {{{', '.join(learned)}}})"
            if learned
            else f"No q/k γ reaches {pct(FLOOR, 0)} final accuracy"
        )
        + f"; the highest AUC is at γ = {best} ({momentum[best]['auc_accuracy']:.3f}, against "
        f"{momentum['0']['auc_accuracy']:.3f} at γ = 0"
        + (
            f" and {long[SMEARED_LABEL]['auc_accuracy']:.3f} for the smeared key)."
            if SMEARED_LABEL in long
            else ")."
        ),
        "One seed: a hint for the GPU part's budget (`benchmarks/gpu/sweep.py`), not a γ* and "
        "not a verdict.",
    ]
    return f"{wrap(intro)}\n\n{markdown_table(header, rows)}\n\n{bullets(items)}"


def mqar_probe_block(
    probe: pd.DataFrame | None, sweep: pd.DataFrame, config: str, out: str, command: str
) -> str:
    """`probe_block`, or the command that runs the probe while it has not run."""
    if probe is None:
        return f"The longer-budget probe has not run (`{command}`)."
    return probe_block(probe, sweep, config, out)
