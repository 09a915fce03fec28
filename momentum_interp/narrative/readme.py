"""The README's result blocks (between `<!-- results:NAME:start -->` and
`<!-- results:NAME:end -->`) and the zoo's model cards, rendered from committed records.

`blocks()` is the table that configures them: each block names the files it reads (relative to the
repository, each with the command that writes it) and the renderer it hands them to, with the
study's facts the prose quotes (paths, commands, settings). The renderers know no study's paths:
a new README block is one row here and one renderer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from momentum_interp.paths import REPO_ROOT

RESULTS = REPO_ROOT / "results"
BENCHMARKS = REPO_ROOT / "benchmarks" / "results"
README = REPO_ROOT / "README.md"


def _marker(name: str, end: str) -> str:
    return f"<!-- results:{name}:{end} -->"


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    """`text` with the body between each block's start and end markers replaced."""
    for name, body in blocks.items():
        pattern = re.compile(
            re.escape(_marker(name, "start")) + r"\n.*?" + re.escape(_marker(name, "end")),
            re.DOTALL,
        )
        if not pattern.search(text):
            raise ValueError(f"README has no {_marker(name, 'start')} … {_marker(name, 'end')}.")
        start, end = pattern.search(text).span()
        text = f"{text[:start]}{_marker(name, 'start')}\n{body}\n{_marker(name, 'end')}{text[end:]}"
    return text


@dataclass(frozen=True)
class Source:
    """One file a block reads: its path from the repository root, the command that writes it
    (None: optional, the renderer gets None while it is missing) and how to load it (by default
    JSON as a dict, a `.csv` or `.jsonl` results table as a DataFrame)."""

    path: str
    writer: str | None
    load: Callable[[Path], Any] | None = None


VARIANTS = Source("results/zoo/variants.json", "python -m momentum_interp.results record-variants")


@dataclass(frozen=True)
class Block:
    """A README block: the renderer, the files it takes (argument name -> `Source`) and the
    study's facts it quotes (argument name -> value)."""

    render: Callable[..., str]
    sources: Mapping[str, Source]
    facts: Mapping[str, Any] = field(default_factory=dict)


def _lm_comparison(path: Path) -> Any:
    from momentum_interp.analysis.lm import LMComparison

    return LMComparison.load(path)


def blocks() -> dict[str, Block]:
    """The table of README blocks (imported when rendering: the renderers pull in pandas)."""
    from momentum_interp.narrative import (
        benchmarks,
        formation,
        gamma_depths,
        gamma_study,
        lm,
        mechanism,
        scaling_blocks,
        zoo,
    )

    mqar_fit = (
        "momentum-interp scaling results/scaling_mqar/sweep/results.jsonl --metric auc_accuracy"
    )
    sweep = "momentum-interp sweep"
    lm_study = "python -m benchmarks.lm_study results/lm_fair"
    throughput = "python -m benchmarks throughput"
    cpu_run, gpu_run = "throughput_cpu_2026-11-24", "cuda_2026-11-30"  # the runs the README quotes
    zoo_record = Source("results/zoo/zoo.json", "momentum-interp demo --results results/zoo")
    seeds_study = Source(
        "results/zoo_history/mechanism/summary.json",
        "momentum-interp mechanism results/zoo_history --runs-dir runs/studies/zoo_history",
    )
    return {
        "zoo": Block(zoo.zoo_block, {"record": zoo_record}),
        "induction": Block(
            zoo.induction_bullets,
            {"record": zoo_record, "variants": VARIANTS, "mechanism": seeds_study},
        ),
        "mechanism-seeds": Block(mechanism.mechanism_block, {"summary": seeds_study}),
        "lm": Block(
            lm.lm_block,
            {"comparison": Source("results/lm", "momentum-interp lm-compare", _lm_comparison)},
        ),
        "lm-fair": Block(
            lm.lm_fair_block,
            {"study": Source("results/lm_fair/study.json", None)},
            {"rules": "results/lm_fair/README.md", "command": lm_study},
        ),
        "lm-gpu": Block(
            lm.gpu_lm_block,
            {
                "manifest": Source(
                    "assets/code_corpus/manifest.json", "momentum-interp corpus build"
                ),
                "record": Source("results/lm_gpu/lm.json", None),
            },
        ),
        "scaling": Block(
            scaling_blocks.scaling_block,
            {
                "fit": Source("results/scaling/fit.json", "momentum-interp scaling RESULTS_CSV"),
                "table": Source("results/scaling/results.csv", sweep),
            },
            {"config": "configs/sweeps/gamma_star.toml", "out": "results/scaling/"},
        ),
        "mqar-pilot": Block(
            scaling_blocks.mqar_pilot_block,
            {
                "pilot": Source("results/scaling_mqar/pilot_stage2/results.csv", sweep),
                "floor": Source("results/scaling_mqar/pilot/results.csv", sweep),
                "spec": Source("results/scaling_mqar/sweep/sweep_spec.json", sweep),
                "sweep": Source("results/scaling_mqar/sweep/results.jsonl", None),
            },
            {"n_pairs": 8},  # the pilot setting the sweep adopted
        ),
        "mqar-sweep": Block(
            scaling_blocks.mqar_sweep_block,
            {
                "qk": Source("results/scaling_mqar/sweep/fit.json", None),
                "keys_only": Source("results/scaling_mqar/sweep/keys_only/fit.json", None),
                "spec": Source("results/scaling_mqar/sweep/sweep_spec.json", sweep),
                "table": Source("results/scaling_mqar/sweep/results.jsonl", None),
            },
            {"fit_command": mqar_fit},
        ),
        "mqar-probe": Block(
            scaling_blocks.mqar_probe_block,
            {
                "probe": Source("results/scaling_mqar/depth2_long/results.jsonl", None),
                "sweep": Source("results/scaling_mqar/sweep/results.jsonl", sweep),
            },
            {
                "config": "configs/sweeps/mqar_depth2_long.toml",
                "out": "results/scaling_mqar/depth2_long/",
                "command": "momentum-interp sweep configs/sweeps/mqar_depth2_long.toml --out "
                "results/scaling_mqar/depth2_long --workers 2 --batch-runs 7",
            },
        ),
        "formation": Block(
            formation.readme_block,
            {
                "summary": Source(
                    "results/zoo_history/formation/summary.json",
                    "momentum-interp formation results/zoo_history --runs-dir "
                    "runs/studies/zoo_history",
                )
            },
        ),
        **{
            f"fair-gamma{suffix}": Block(
                gamma_study.readme_block,
                {
                    "study": Source(
                        f"results/fair_gamma_star/n{depth}/study.json",
                        f"momentum-interp study configs/studies/fair_gamma_star_n{depth}.toml "
                        f"--results results/fair_gamma_star/n{depth}",
                    )
                },
            )
            for depth, suffix in ((1, ""), (2, "-n2"))
        },
        "fair-gamma-n3": Block(
            gamma_study.pending_depth_block,
            {
                "study": Source("results/fair_gamma_star/n3/study.json", None),
                "selection": Source("results/fair_gamma_star/n3/selection.json", None),
                "runs": Source("results/fair_gamma_star/n3/results.jsonl", None),
            },
            {
                "n_layers": 3,
                "command": "momentum-interp sweep configs/studies/fair_gamma_star_n3.toml --out "
                "results/fair_gamma_star/n3 --runs-dir runs/studies/fair_gamma_star_n3 "
                "--workers 2 --batch-runs 10",
            },
        ),
        "fair-gamma-across": Block(
            gamma_depths.across_depths_block,
            {
                f"n{depth}": Source(
                    f"results/fair_gamma_star/n{depth}/study.json",
                    None
                    if depth == 3
                    else f"momentum-interp study configs/studies/fair_gamma_star_n{depth}.toml "
                    f"--results results/fair_gamma_star/n{depth}",
                )
                for depth in (1, 2, 3)
            },
        ),
        "perf-cpu": Block(
            benchmarks.cpu_block,
            {"record": Source(f"benchmarks/results/{cpu_run}.json", throughput)},
            {"source": f"benchmarks/results/{cpu_run}.md"},
        ),
        "perf-gpu": Block(
            benchmarks.gpu_block,
            {
                "compiled": Source(
                    f"benchmarks/results/{gpu_run}/throughput_cuda_compiled.json", throughput
                ),
                "eager": Source(
                    f"benchmarks/results/{gpu_run}/throughput_cuda_eager.json", throughput
                ),
            },
            {"source": f"benchmarks/results/{gpu_run}/"},
        ),
        "perf-demo": Block(
            benchmarks.demo_block,
            {
                "record": Source(
                    "benchmarks/results/demo_timing_cpu.json", "python -m benchmarks demo_timing"
                )
            },
            {"source": "benchmarks/results/demo_timing_cpu.md"},
        ),
    }


def located(path: str, results: Path, benchmarks: Path) -> Path:
    """`path` (from the repository root) with `results/` and `benchmarks/results/` re-rooted."""
    for prefix, root in (("results/", results), ("benchmarks/results/", benchmarks)):
        if path.startswith(prefix):
            return Path(root) / path.removeprefix(prefix)
    return REPO_ROOT / path


def _load(source: Source, path: Path) -> Any:
    """`source` read from `path`; None for a missing optional file, a clear error otherwise."""
    if not path.exists():
        if source.writer is None:
            return None
        raise FileNotFoundError(f"{path} does not exist; write it with `{source.writer}`.")
    if source.load is not None:
        return source.load(path)
    if path.suffix in (".csv", ".jsonl"):
        from momentum_interp.sweeps.tables import load_table

        return load_table(path)
    return json.loads(path.read_text())


def readme_blocks(results: Path = RESULTS, benchmarks: Path = BENCHMARKS) -> dict[str, str]:
    """Every README block of `blocks()`, its files read under `results` and `benchmarks`."""
    return {
        name: block.render(
            **{k: _load(s, located(s.path, results, benchmarks)) for k, s in block.sources.items()},
            **block.facts,
        )
        for name, block in blocks().items()
    }


def render_readme(text: str, results: Path = RESULTS, benchmarks: Path = BENCHMARKS) -> str:
    """The README text with its result blocks re-rendered from `results` and `benchmarks`."""
    return replace_blocks(text, readme_blocks(results, benchmarks))


def rendered_cards(results: Path = RESULTS) -> dict[Path, str]:
    """`assets/<name>/card.md` for every bundled zoo model, as rendered from the records."""
    from momentum_interp.narrative.cards import card_paths_and_text

    return card_paths_and_text(_load(VARIANTS, located(VARIANTS.path, results, BENCHMARKS)))


def rendered_summaries(results: Path = RESULTS) -> dict[Path, str]:
    """Each select-then-fresh study's `summary.md` (the fair γ* study's depths, the fair LM
    study), as rendered from the `study.json` beside it."""
    from momentum_interp.narrative.gamma_study import summary_markdown
    from momentum_interp.narrative.lm import lm_study_summary

    studies = [(p, summary_markdown) for p in sorted(results.glob("fair_gamma_star/*/study.json"))]
    studies += [(p, lm_study_summary) for p in results.glob("lm_fair/study.json")]
    return {p.with_name("summary.md"): write(json.loads(p.read_text())) for p, write in studies}


def render(check: bool = False, readme: Path = README, results: Path = RESULTS) -> list[Path]:
    """Re-render the README blocks, the model cards and the studies' summaries; with `check`,
    return the stale files instead of writing them."""
    from momentum_interp.io import atomic_write_text

    wanted = {Path(readme): render_readme(Path(readme).read_text(), results)}
    wanted.update(rendered_cards(Path(results)))
    wanted.update(rendered_summaries(Path(results)))
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    if not check:
        for path in stale:
            atomic_write_text(path, wanted[path])
    return stale
