"""The README's language-model blocks: the CPU comparison (`results/lm/`) and the GPU-scale
comparison (the corpus manifest and, once committed, the GPU suite's `lm.json`)."""

from __future__ import annotations

import json

import pandas as pd

from momentum_interp.analysis.lm import LOSSES, PAPER_GAP, LMComparison, summarise
from momentum_interp.architecture import attention_variant
from momentum_interp.prose import bullets, interval, number, p_label, pct, wrap
from momentum_interp.tables import markdown_table


def _config_of(comparison: LMComparison, config: str) -> dict:
    """The run_config shared by every run of `config` (its seeds differ only in `train.seed`)."""
    runs = comparison.table.loc[comparison.table["config"] == config, "run"]
    shared = {
        json.dumps({**cfg, "train": {**cfg["train"], "seed": None}}, sort_keys=True)
        for run, cfg in comparison.run_configs.items()
        if run in set(runs)
    }
    if len(shared) != 1:
        raise ValueError(f"the runs of {config} have {len(shared)} different configs in runs.json")
    return json.loads(shared.pop())


def _the_config(configs: dict[str, dict], role: str, matches) -> str:
    """The one config name whose model config `matches`, for the README's prose."""
    found = [name for name, cfg in configs.items() if matches(cfg["model"])]
    if len(found) != 1:
        raise ValueError(f"the comparison needs one {role} config, found {found}")
    return found[0]


def lm_block(comparison: LMComparison) -> str:
    """The README's language-model section: setup facts, the table and its bullets, every number
    read from the committed comparison (`results/lm/`)."""
    summary = summarise(comparison.table).set_index("config")
    configs = {name: _config_of(comparison, name) for name in summary.index}
    ref = comparison.reference
    small = {k: v for k, v in configs.items() if k != ref}
    base = _the_config(small, "baseline", lambda m: attention_variant(m) == "no momentum")
    paper = _the_config(small, "q/k momentum", lambda m: m.get("shear") == "qk")
    keys = _the_config(small, "keys-only momentum", lambda m: m.get("shear") == "k")
    smear = _the_config(small, "smeared-key", lambda m: m.get("smeared_key", False))
    budgets = {
        (c["train"]["steps"], c["train"]["batch_size"], c["task"]["seq_len"])
        for c in configs.values()
    }
    if len(budgets) != 1:
        raise ValueError(f"the configs have different token budgets {budgets}; not comparable")
    steps, batch, seq_len = budgets.pop()
    vocab = {c["task"]["tokenizer_vocab_size"] for c in configs.values()}.pop()
    (n_tokens,) = set(comparison.table["n_tokens"])
    (fraction,) = set(comparison.table["induction_fraction"])

    def size(name: str) -> str:
        m, n_params = configs[name]["model"], summary.loc[name, "n_params"]
        return (
            f"{m['n_layers']} layers at d_model {m['d_model']} ({n_params / 1e6:.2f}M parameters)"
        )

    setup = (
        f"Every run has the same token budget ({steps:,} steps × {batch} × {seq_len} = "
        f"{steps * batch * seq_len / 1e6:.1f}M tokens) and the same schedule, with a "
        f"{vocab:,}-token byte-level BPE. `{base}` is {size(base)}; the reference `{ref}` is "
        f'{size(ref)}. Losses are on {n_tokens:,} held-out tokens. "Repeated-span" positions '
        f"are the {pct(fraction, 0)} of tokens that continue a span seen earlier in the window."
    )

    def cell(name: str, loss: str) -> str:
        sd = summary.loc[name, f"{loss}_sd"]
        return f"{summary.loc[name, loss]:.3f}" + ("" if pd.isna(sd) else f" ({sd:.3f})")

    header = ["config", "attention", "seeds", "val loss (sd)", f"gap to {ref}"]
    header += ["repeated-span loss (sd)", f"gap to {ref}"]
    rows = [
        [f"`{name}`", attention_variant(configs[name]["model"]), summary.loc[name, "n_seeds"]]
        + [
            x
            for loss in LOSSES
            for x in (cell(name, loss), pct(summary.loc[name, f"{loss}_gap"], sign=True))
        ]
        for name in summary.index
    ]

    loss = summary["val_loss"]
    cost = loss[paper] / loss[base] - 1
    noise = max(summary.loc[paper, "val_loss_sd"], summary.loc[base, "val_loss_sd"])
    gap = summary["val_loss_gap"]
    best = loss.drop(ref).idxmin()
    rep = summary["induction_loss"]
    items = [
        f"**Momentum does not help here; {'it hurts' if cost > 0 else 'it helps'}.** The paper's "
        f"shear changes the baseline's loss by {pct(cost, sign=True)}, "
        f"{abs(loss[paper] - loss[base]) / noise:.1f} times the larger seed-to-seed standard "
        f"deviation of the two. Keys-only momentum changes it by "
        f"{pct(loss[keys] / loss[base] - 1, sign=True)}.",
        f'**The paper\'s "within {pct(PAPER_GAP)} of a 3× larger model" '
        f"{'does not show' if gap[paper] > PAPER_GAP else 'shows'}.** `{paper}` is "
        f"{pct(gap[paper])} behind `{ref}`, "
        f"{'further behind than' if gap[paper] > gap[base] else 'closer than'} the plain "
        f"`{base}` ({pct(gap[base])}).",
        f"**The older one-layer fix {'does help' if loss[smear] < loss[base] else 'does not help'}"
        f".** "
        + ("The smeared key is the best small model" if best == smear else f"`{best}` is best")
        + f"; its gain over `{base}` is {pct(1 - rep[smear] / rep[base])} on "
        f"repeated spans ({rep[smear]:.2f} against {rep[base]:.2f}) and "
        f"{pct(1 - loss[smear] / loss[base])} overall.",
        f"This is a small scale: {summary['n_params'].min() / 1e6:.1f}M to "
        f"{summary['n_params'].max() / 1e6:.1f}M-parameter models, "
        f"{steps * batch * seq_len / 1e6:.1f}M tokens. The paper's 125M/350M setting and its "
        "data are unknown. `results/lm/` holds the tables and every run's config and curve; "
        "`momentum-interp lm-compare` writes them with a self-contained page (`report.html`, "
        "not committed: 4.6 MiB, mostly plotly.js). The demo report shows the same section.",
    ]
    return f"{wrap(setup)}\n\n{markdown_table(header, rows, align='llrlrlr')}\n\n{bullets(items)}"


GPU_RUNS = {  # the GPU suite's `lm` runs (benchmarks/gpu/lm.py) and what each one changes
    "baseline-S": "no momentum",
    "momentum-S": "momentum on q and k, γ = 1 (the paper's)",
    "keys-only-S": "momentum on keys only, γ = 1",
    "smeared-key-S": "smeared key (learned per-head α)",
    "baseline-3S": "no momentum, 3× the parameters (reference)",
}


def gpu_lm_block(manifest: dict, record: dict | None) -> str:
    """The README's GPU-scale LM comparison: the corpus (`assets/code_corpus/manifest.json`)
    and, once a GPU run is committed, its `lm.json` (`record`) as a table with gaps."""
    corpus, tokenizer = manifest["corpus"], manifest["tokenizer"]
    names = ", ".join(p["name"] for p in manifest["packages"])
    intro = (
        "`scripts/gpu_suite.sh lm OUT_DIR` (`benchmarks/gpu/lm.py`) trains five models on one "
        "token budget and schedule: baseline, the paper's momentum, keys-only momentum and the "
        "smeared key at size S (as large as a bf16 checkpoint under 16 MiB allows) and a "
        "baseline at 3×S, then reports validation loss, loss on repeated-span positions and the "
        "in-context-learning score, with gaps to 3×S. Its corpus is the `.py` "
        f"source of {len(manifest['packages'])} pinned PyPI sdists ({names}): "
        f"{corpus['documents']:,} files, {corpus['text_bytes'] / 1e6:.1f} MB of text, "
        f"{manifest['tokens'] / 1e6:.1f}M tokens with a byte-level BPE of "
        f"{tokenizer['vocab_size']:,} tokens "
        "(`assets/code_corpus/manifest.json`, built by `momentum-interp corpus build`, "
        "`scripts/README.md`)."
    )
    if record is None:
        return f"{wrap(intro)}\n\n" + bullets(
            [
                "**Not run on a GPU yet.** A run's `lm.json`, `summary.md` and log will be "
                "committed under `results/lm_gpu/` and rendered here. Until then the LM "
                "evidence is the two CPU comparisons above, of models of a few million "
                "parameters, which say nothing about the paper's 125M/350M scale."
            ]
        )
    budget, ref = record["token_budget"], record["reference"]
    header = ["run", "attention", "status", "parameters (non-embedding)", "val loss", "gap"]
    header += ["repeated-span loss", "gap", "ICL score", "minus the reference's"]
    gaps = record.get("gaps") or {}
    rows = []
    for name, run in record["runs"].items():
        status = run.get("status", "—")
        m, g = run.get("metrics") or {}, gaps.get(name) or {}
        compared = "val_loss" in g
        size = (
            f"{run['n_params'] / 1e6:.2f}M ({run['n_params_non_embedding'] / 1e6:.2f}M)"
            if "n_params" in run and "n_params_non_embedding" in run
            else "—"
        )
        rows.append(
            [
                f"`{name}`",
                GPU_RUNS.get(name, ""),
                status if len(status) < 40 else status[:37] + "…",
                size,
                f"{m['val_loss']:.3f}" if "val_loss" in m else "—",
                pct(g["val_loss"], sign=True) if compared else "—",
                f"{m['induction_loss']:.3f}" if "induction_loss" in m else "—",
                pct(g["induction_loss"], sign=True) if compared else "—",
                f"{m['icl_score']:+.3f}" if "icl_score" in m else "—",
                f"{g['icl_score_diff']:+.3f}" if compared else "—",
            ]
        )
    machine = record["machine"]
    measured = (
        f"Measured on {machine['device_name']} ({record['started'][:10]}, torch "
        f"{machine['torch']}), {budget['tokens_per_model'] / 1e6:.1f}M tokens per model "
        f"({budget['epochs']:.2f} passes over the training split), gaps relative to `{ref}`, "
        f"from `results/lm_gpu/lm.json`."
    )
    momentum = gaps.get("momentum-S") or {}
    verdict = (
        f"momentum-S is {pct(momentum['val_loss'], sign=True)} from `{ref}` on validation "
        f"loss, {'within' if momentum['val_loss'] <= record['paper_gap'] else 'outside'} the "
        f"paper's {pct(record['paper_gap'])}"
        if "val_loss" in momentum
        else f"momentum-S has no comparison with `{ref}` ("
        + (
            record.get("no_gaps")
            or (gaps.get("momentum-S") or {}).get("not_compared", "see status")
        )
        + "), so this run decides nothing"
    )
    return f"{wrap(intro)}\n\n{wrap(measured)}\n\n{markdown_table(header, rows)}\n\n" + bullets(
        [f"At this scale {verdict}."]
    )


LM_STUDY_VERDICTS = {
    "within": "within the paper's {paper}: the whole interval lies below it",
    "not_within": "not within the paper's {paper}: the whole interval lies above it",
    "undecided": "undecided against the paper's {paper}: the interval straddles it",
    "uninformative": "no test of the paper's {paper}, since the S baseline's own gap is {small} "
    "{paper}, so lying within it would say nothing about momentum; the fraction of the gap "
    "closed and the paired test against baseline-S carry the comparison",
}
LEFT_OUT = {
    "other_rate": "trained at lr {:g}, not its arm's pick",
    "status": "{}",
    "short_budget": "trained {:,} tokens, short of the budget",
    "not_finite": "not finite: {}",
}
PAIRED = ("mean_difference", "ci_low", "ci_high")  # a paired comparison's numbers, as shown
SMALL_GAP = {"within": "wholly below", "undecided": "not wholly above", "not_within": "above"}
SCALES = {
    "cpu": "a scale two CPU cores train",
    "gpu": "the GPU suite's scale",
    "smoke": "a smoke run's scale (its numbers mean nothing)",
}


def _millions(count: int) -> str:
    """`count` exactly and in millions, as prose quotes it: "2,502,144 (2.5M)"."""
    return f"{count:,} ({count / 1e6:.1f}M)"


def _lm_study_body(study: dict) -> list[str]:
    """The fair LM study's table, its notes and what it decides (paragraphs), every number read
    from `study.json`; `summary.md` and the README block both show it."""
    arms, search = study["arms"], study["selection"]["arms"]
    header = ["arm", "rate", "searched", "val loss", "repeated-span loss", "ICL score"]
    header += ["val gap to 3×S", "S gap closed", "− baseline-S", "p (Holm)"]
    rows = []
    for arm in arms:
        name, mean, gap = arm["arm"], arm["mean"], arm["gap"]
        versus, closed = arm["vs_small"], arm["fraction_closed"]
        tried = ", ".join(f"{r:g}" for r in search[name]["rates"])
        flag = " (ladder end)" if search[name]["at_ladder_end"] else ""
        rows.append(
            [name, f"{arm['lr']:g}{flag}", tried, interval(mean["val_loss"], ".4f"),
             interval(mean["induction_loss"], ".4f"), interval(mean["icl_score"], "+.4f"),
             interval(gap["val_loss"], "+.2%") if gap else "reference",
             interval(closed, ".2f") if closed else "–",
             "{} [{}, {}]".format(*(number(versus[k], "+.4f") for k in PAIRED)) if versus else "–",
             number(versus["p_holm"], ".3g") if versus else "–"]
        )  # fmt: skip
    momentum = next(a for a in arms if a["arm"] == "momentum-S")
    verdict = LM_STUDY_VERDICTS[study["momentum_verdict"]].format(
        paper=pct(study["paper_gap"]), small=SMALL_GAP[study["small_verdict"]]
    )
    corpus = study["corpus"]
    return [
        markdown_table(header, rows, "lllrrrrrrr"),
        *(
            [wrap(f"Against baseline-S (paired over seeds): {said}.")]
            if (said := versus_small(arms))
            else []
        ),
        wrap(
            "Means over seeds with 95 % t intervals (n − 1 degrees of freedom). Val gap: the "
            "arm's validation loss over baseline-3S's, minus 1, per seed. S gap closed: "
            "(baseline-S − arm) / (baseline-S − baseline-3S) in validation loss, per seed (0: no "
            "better than the S baseline; 1: as good as 3×S; – where 3×S is not better than the S "
            "baseline on every seed). − baseline-S: the paired difference "
            "in validation loss (negative: better), Holm-corrected over the S arms. Repeated-span "
            "loss: positions whose next token continues a span seen earlier in the window; ICL "
            "score: late minus early per-token loss (negative: later context helps)."
        ),
        wrap(
            f"Momentum-S's validation-loss gap to 3×S is "
            f"{interval(momentum['gap']['val_loss'], '+.2%')}: {verdict}. The paper's "
            "number is for 125M against 350M parameters on its own corpus; these models have "
            f"{_millions(study['n_params']['momentum-S'])} and "
            f"{_millions(study['n_params']['baseline-3S'])} parameters, trained on "
            f"{_millions(study['tokens_per_run'])} tokens each of "
            f"{corpus['train_tokens']:,} training tokens of Python, so the comparison is of the "
            f"claim's shape at {SCALES[study['shape']]}, not of its number."
        ),
        *(
            [
                wrap(
                    "Left out (no comparison uses them): "
                    + "; ".join(
                        f"{r['arm']} seed {r['seed']} ("
                        + LEFT_OUT[r["why"]].format(
                            ", ".join(r["detail"]) if r["why"] == "not_finite" else r["detail"]
                        )
                        + ")"
                        for r in study["not_compared"]
                    )
                    + "."
                )
            ]
            if study["not_compared"]
            else []
        ),
        *(f"Warning: {w}." for w in corpus.get("warnings", [])),
    ]


def versus_small(arms: list[dict]) -> str | None:
    """Each S arm against the S baseline in words: better or worse only where the Holm-adjusted
    paired test says so, otherwise "no difference detected" (never "equivalent"); None when no
    arm was compared."""
    said = []
    for arm in arms:
        versus = arm["vs_small"]
        if versus is None:
            continue
        if not versus["significant"]:
            words = "no difference detected"
        else:
            words = "worse" if versus["mean_difference"] > 0 else "better"
        said.append(
            f"{arm['arm']} {words} ({number(versus['mean_difference'], '+.3f')} nats, "
            f"{p_label(versus)})"
        )
    return "; ".join(said) or None


def _lm_study_state(study: dict) -> str:
    """`complete`, or which fresh seeds a partial study holds."""
    if study["complete"]:
        return "complete"
    seeds = ", ".join(map(str, study["seeds"]))
    return f"partial: seeds {seeds} of {', '.join(map(str, study['fresh_seeds']))}"


def lm_study_summary(study: dict) -> str:
    """`results/lm_fair/summary.md`: the fair LM study's table (each arm at its own rate, fresh
    seeds), its rate search, and what it decides, every number read from `study.json`."""
    corpus_name = (
        "standard-library files (smoke)" if study["shape"] == "smoke" else "the code corpus"
    )
    seeds = ", ".join(map(str, study["seeds"]))
    lines = [
        f"# Fair LM comparison on {corpus_name} ({_lm_study_state(study)})",
        "",
        f"Written by `{study['command']}` (shape `{study['shape']}`). Fresh seeds {seeds}; each "
        f"arm at the rate it chose on selection seed {study['selection']['selection_seed']} "
        "(lowest validation loss; `searched`: every rate it trained there).",
    ]
    return "\n\n".join(["\n".join(lines), *_lm_study_body(study)]) + "\n"


def lm_fair_block(study: dict | None, rules: str, command: str) -> str:
    """The README's fair LM comparison: the study's table and verdict from its `study.json`,
    or, while it trains, where its rules are and what will appear."""
    if study is None:
        return wrap(
            f"Training (`{command}`, rules fixed before its first run in `{rules}`): each arm's "
            "rate is chosen on a selection seed, then every arm trains on 3 fresh seeds. Nothing "
            "is reported until two fresh seeds have every arm; then `study.json` and "
            "`summary.md` appear beside its `runs.jsonl` and this block shows their table."
        )
    intro = wrap(
        f"{_lm_study_state(study).capitalize()} (fresh seeds "
        f"{', '.join(map(str, study['seeds']))}), from `study.json` written by `{command}`; "
        f"rules fixed before its first run in `{rules}`. Each arm trained at the rate with the "
        "lowest validation loss on selection seed "
        f"{study['selection']['selection_seed']} (`searched`: the rates it trained there); only "
        "fresh seeds are reported."
    )
    return "\n\n".join([intro, *_lm_study_body(study)])
