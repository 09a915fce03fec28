"""Time the pieces of `momentum-interp demo` on CPU, with OMP_NUM_THREADS=1 and =2.

    python -m benchmarks demo_timing [--threads 1,2] [--repeats 2] [--out benchmarks/results]

Each thread count runs in a fresh interpreter (OMP_NUM_THREADS must be set before torch is
imported; the worker also calls `torch.set_num_threads`), alternating thread counts across
repeats so drifting load hits both. The worker times, with `time.perf_counter`, the functions
`momentum_interp.demo.run_demo` is made of, called the way `run_demo` calls them: importing the
stack (package by package), loading the zoo (`from_pretrained` per model), evaluation
(`per_sequence_metrics` + `pooled_ratio_ci`), `rank_heads_ci`, `trace_single_layer_induction` (every tied head),
`spectral_report` (with `report.example_tokens`), the page's own measurements (`demo_page`: the
heads' patterns, also timed alone as `best_head_patterns`, the training curves and the
explorer's data), drawing the page (`build_report`: plotly figures and the circuitsvis view) and
writing the HTML, the JSON and the explorer. The first ("cold") pass is what the CLI pays; a second
("warm") pass in the same process shows steady-state cost, and `run_demo` end to end (warm)
cross-checks the sum. Writes `demo_timing_cpu.json` and `.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# exclusive pieces, in the order run_demo runs them; their sum is compared with run_demo's time
PIECES = (
    "import",
    "load_zoo",
    "evaluate",
    "rank_heads",
    "trace_single_layer_induction",
    "spectral_report",
    "demo_page",
    "build_report",
    "write_html",
    "write_json",
    "write_explorer",
)
INCLUDED = {"best_head_patterns": "demo_page"}  # timed alone as well, part of demo_page


IMPORTS = (
    "torch",
    "pandas",
    "scipy.stats",
    "transformer_lens",
    "plotly.graph_objects",
    "circuitsvis.attention",
    "momentum_interp.demo",
)


def _time_imports() -> dict[str, float]:
    """Import the demo's stack one package at a time (each after those before it)."""
    import importlib

    out = {}
    for name in IMPORTS:
        start = time.perf_counter()
        importlib.import_module(name)
        out[name] = round(time.perf_counter() - start, 4)
    return out


def _pieces(out_dir: Path, cold: bool) -> dict:
    """One pass over run_demo's pieces, called as run_demo calls them; seconds per piece and per
    model."""
    from momentum_interp import demo
    from momentum_interp.analysis.heads import rank_heads_ci
    from momentum_interp.analysis.spectral import spectral_report
    from momentum_interp.analysis.statistics import pooled_ratio_ci
    from momentum_interp.analysis.tracing import trace_single_layer_induction
    from momentum_interp.data import make_task
    from momentum_interp.defaults import (
        DEFAULT_SEED,
        EVAL_SEQUENCES,
        SCORE_SEQUENCES,
        TRACE_SEQUENCES,
    )
    from momentum_interp.evaluation import batching, per_sequence_metrics, pooled
    from momentum_interp.io import atomic_write_json
    from momentum_interp.model.transformer import HookedMomentumTransformer
    from momentum_interp.naming import head_label
    from momentum_interp.report import example_tokens
    from momentum_interp.viz.explorer import write_explorer
    from momentum_interp.zoo import ZOO, run_config

    times: dict[str, float] = {}
    per_model: dict[str, dict[str, float]] = {}
    n_sequences, seed = EVAL_SEQUENCES, DEFAULT_SEED  # run_demo's defaults

    def timed(key: str, model: str | None, fn, *args, **kwargs):
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        elapsed = time.perf_counter() - start
        times[key] = times.get(key, 0.0) + elapsed
        if model is not None:
            per_model.setdefault(model, {})[key] = round(elapsed, 4)
        return value

    names = demo.zoo_names()
    models = {
        name: timed("load_zoo", name, HookedMomentumTransformer.from_pretrained, name, device="cpu")
        for name in names
    }

    def evaluate(name, model):
        task = make_task(**run_config(name)["task"])
        n_batches, batch_size = batching(n_sequences, demo.EVAL_BATCH)
        per_seq = per_sequence_metrics(model, task, n_batches, batch_size, seed=seed)
        accuracy = pooled_ratio_ci(per_seq["correct"], per_seq["n_positions"], seed=seed)
        return accuracy, pooled(per_seq)["loss"], len(per_seq["correct"])

    results = []
    for name, model in models.items():
        accuracy, loss, n_seq = timed("evaluate", name, evaluate, name, model)
        ranking = timed(
            "rank_heads", name, rank_heads_ci, model, "induction", SCORE_SEQUENCES, seed
        )
        results.append(demo.ZooResult(name, ZOO[name], model, accuracy, loss, n_seq, ranking))

    analyses = {}
    paper = next((r for r in results if r.name == demo.PAPER_MODEL), None)
    if paper is not None:
        for head in paper.induction.tied:  # every tied head, as the demo traces them
            analyses[f"trace_{head_label(*head)}"] = timed(
                "trace_single_layer_induction",
                None,
                trace_single_layer_induction,
                paper.model,
                *head,
                n_sequences=TRACE_SEQUENCES,
                seed=seed,
            )

        def spectral():
            return spectral_report(paper.model, example_tokens(paper.model, seed, batch=32))

        analyses["spectral"] = timed("spectral_report", None, spectral)

    timed("best_head_patterns", None, demo.best_head_patterns, results, seed)
    record = demo.zoo_record(results, analyses, n_sequences, seed, "demo_timing")
    page = timed("demo_page", None, demo.demo_page, results, seed)
    report = timed("build_report", None, demo.build_report, results, record, analyses, page, 0.0)
    sub = out_dir / ("cold" if cold else "warm")
    timed("write_html", None, report.save, sub / "report.html")

    def write_json():
        atomic_write_json(
            sub / "results.json",
            {
                "models": [r.to_dict() for r in results],
                **{name: a.to_dict() for name, a in analyses.items()},
            },
        )

    timed("write_json", None, write_json)

    timed("write_explorer", None, write_explorer, page.explorer, sub)
    return {"seconds": {k: round(v, 4) for k, v in times.items()}, "per_model_seconds": per_model}


def worker(threads: int, out_dir: Path) -> dict:
    """Run in a fresh interpreter with OMP_NUM_THREADS=threads; returns the timings.

    The first ("cold") pass is what `momentum-interp demo` pays: imports, then every piece
    called for the first time (lazy initialisation included). A second ("warm") pass in the same
    process shows the steady-state cost; `run_demo` end to end (also warm) cross-checks the sum.
    """
    start = time.perf_counter()
    imports = _time_imports()
    import_s = time.perf_counter() - start
    import torch

    from momentum_interp import demo

    torch.set_num_threads(threads)
    cold = _pieces(out_dir, cold=True)
    cold["seconds"] = {"import": round(import_s, 4), **cold["seconds"]}
    warm = _pieces(out_dir, cold=False)
    with contextlib.redirect_stdout(io.StringIO()):  # run_demo prints its table
        start = time.perf_counter()
        demo.run_demo(out_dir / "end_to_end")
        end_to_end = time.perf_counter() - start
    return {
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "models": demo.zoo_names(),
        "imports_s": imports,
        "seconds": cold["seconds"],
        "per_model_seconds": cold["per_model_seconds"],
        "warm_seconds": warm["seconds"],
        "sum_of_pieces_s": round(sum(cold["seconds"].get(k, 0.0) for k in PIECES), 4),
        "warm_sum_of_pieces_s": round(sum(warm["seconds"].get(k, 0.0) for k in PIECES), 4),
        "run_demo_end_to_end_s": round(end_to_end, 4),
    }


def run_worker_process(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    repo = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.demo_timing",
                "--worker",
                str(threads),
                "--tmp",
                tmp,
            ],
            env=env,
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"demo_timing worker failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(wall, 4)
    return result


def _stats(values: list[float]) -> dict:
    import statistics

    return {"median": round(statistics.median(values), 4), "min": min(values), "all": values}


def summarise(runs: list[dict]) -> dict:
    """Per thread count: median / min / all values of each piece (cold and warm) over repeats."""
    summary = {}
    for threads in sorted({r["threads"] for r in runs}):
        mine = [r for r in runs if r["threads"] == threads]
        cold, warm, imports = {}, {}, {}
        for key in [*PIECES, *INCLUDED]:
            values = [r["seconds"][key] for r in mine if key in r["seconds"]]
            if values:
                cold[key] = _stats(values)
            values = [r["warm_seconds"][key] for r in mine if key in r["warm_seconds"]]
            if values:
                warm[key] = _stats(values)
        for key in IMPORTS:
            imports[key] = _stats([r["imports_s"][key] for r in mine])
        totals = {
            key: _stats([r[key] for r in mine])
            for key in (
                "sum_of_pieces_s",
                "warm_sum_of_pieces_s",
                "run_demo_end_to_end_s",
                "process_wall_s",
            )
        }
        total = totals["sum_of_pieces_s"]["median"]
        shares = {k: round(cold[k]["median"] / total, 4) for k in PIECES if k in cold}
        warm_total = totals["warm_sum_of_pieces_s"]["median"]
        warm_shares = {k: round(warm[k]["median"] / warm_total, 4) for k in PIECES if k in warm}
        summary[str(threads)] = {
            "cold": cold,
            "warm": warm,
            "imports": imports,
            "totals": totals,
            "share_of_sum": shares,
            "warm_share_of_sum": warm_shares,
            "dominant": [k for k, _ in sorted(shares.items(), key=lambda kv: -kv[1])[:3]],
            "warm_dominant": [k for k, _ in sorted(warm_shares.items(), key=lambda kv: -kv[1])[:3]],
        }
    return summary


def markdown(payload: dict) -> str:
    from benchmarks.common import markdown_table

    meta = payload["meta"]
    summary = payload["summary"]
    threads = list(summary)
    lines = [
        "# Where `momentum-interp demo` spends its time (CPU)",
        "",
        f"{meta['device_name']}, {meta['cpu_count']} CPUs, torch {meta['torch']}, {meta['date']}. "
        f"Load average (1/5/15 min) before: {meta['load_average']}, after: "
        f"{meta['load_average_after']} (per run in the JSON). **The 2 cores are shared with other "
        "jobs**, so seconds are noisy: medians over "
        f"{meta['repeats']} repeats per thread count, all values in the JSON.",
        "",
        "Each thread count runs in a fresh interpreter with OMP_NUM_THREADS set before torch is "
        "imported. Pieces are `run_demo`'s own functions, called as `run_demo` calls them. "
        "*Cold* is the first pass, which is what `momentum-interp demo` pays (imports and "
        "first-call initialisation included); *warm* repeats every piece in the same process.",
        "",
    ]
    header = ["piece"]
    for t in threads:
        header += [f"{t} thr cold s (share)", f"{t} thr warm s"]
    rows = []
    for key in [*PIECES, *INCLUDED]:
        row = [key if key not in INCLUDED else f"{key} (inside {INCLUDED[key]})"]
        for t in threads:
            s = summary[t]
            cold, warm = s["cold"].get(key), s["warm"].get(key)
            share = s["share_of_sum"].get(key)
            row.append(
                "n/a"
                if cold is None
                else f"{cold['median']:.2f}" + (f" ({share:.0%})" if share is not None else "")
            )
            row.append("–" if warm is None else f"{warm['median']:.2f}")
        rows.append(row)
    for key, label in (
        ("sum_of_pieces_s", "sum of pieces"),
        ("run_demo_end_to_end_s", "run_demo end to end (warm process)"),
        ("process_wall_s", "worker process wall time (interpreter start to exit)"),
    ):
        row = [f"**{label}**"]
        for t in threads:
            totals = summary[t]["totals"]
            row.append(f"{totals[key]['median']:.2f}")
            row.append(
                f"{totals['warm_sum_of_pieces_s']['median']:.2f}"
                if key == "sum_of_pieces_s"
                else ""
            )
        rows.append(row)
    lines += [markdown_table(header, rows), ""]

    lines += ["Imports (each after the ones above it, so each row is that package's own cost):", ""]
    rows = [
        [name, *(f"{summary[t]['imports'][name]['median']:.2f}" for t in threads)]
        for name in IMPORTS
    ]
    lines += [markdown_table(["import", *(f"{t} thr s" for t in threads)], rows), ""]

    lines += ["Per model, cold pass (median over repeats, 1st thread count):", ""]
    per_model = {}
    for run in payload["runs"]:
        if str(run["threads"]) == threads[0]:
            for name, pieces in run["per_model_seconds"].items():
                for key, value in pieces.items():
                    per_model.setdefault(name, {}).setdefault(key, []).append(value)
    header = ["model", "load_zoo", "evaluate", "rank_heads"]
    rows = [
        [name, *(f"{_stats(per_model[name][k])['median']:.2f}" for k in header[1:])]
        for name in per_model
    ]
    lines += [markdown_table(header, rows), ""]
    lines += [f"**What dominates:** {payload['verdict']}", ""]
    return "\n".join(lines)


def verdict(summary: dict) -> str:
    parts = []
    for threads, s in summary.items():
        cold, warm = s["share_of_sum"], s["warm_share_of_sum"]
        total = s["totals"]["sum_of_pieces_s"]["median"]
        warm_total = s["totals"]["warm_sum_of_pieces_s"]["median"]
        parts.append(
            f"{threads} thread(s): cold {total:.1f} s, led by "
            + ", ".join(f"{k} {cold[k]:.0%}" for k in s["dominant"])
            + f"; warm {warm_total:.1f} s, led by "
            + ", ".join(f"{k} {warm[k]:.0%}" for k in s["warm_dominant"])
        )
    return "; ".join(parts) + "."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmarks.common import RESULTS_DIR

    parser.add_argument("--threads", default="1,2", help="comma-separated OMP_NUM_THREADS values")
    parser.add_argument("--repeats", type=int, default=2, help="runs per thread count")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output directory")


def main(args: argparse.Namespace) -> dict:
    import torch

    from benchmarks import common

    thread_counts = [int(t) for t in args.threads.split(",")]
    meta = common.machine(torch.device("cpu"))
    meta.update({"date": common.today(), "started": common.now()})
    runs = []
    for repeat in range(args.repeats):
        for threads in thread_counts:  # alternate thread counts so load drift hits both
            load = common.load_average()
            run = run_worker_process(threads)
            run.update(
                {
                    "repeat": repeat,
                    "load_average_before": load,
                    "load_average_after": common.load_average(),
                }
            )
            print(
                f"threads={threads} repeat={repeat}: sum {run['sum_of_pieces_s']:.2f} s, "
                f"run_demo {run['run_demo_end_to_end_s']:.2f} s, load {load[0]}→{run['load_average_after'][0]}",
                flush=True,
            )
            runs.append(run)
    meta["finished"] = common.now()
    meta["repeats"] = args.repeats
    meta["load_average_after"] = common.load_average()
    summary = summarise(runs)
    payload = {"meta": meta, "summary": summary, "verdict": verdict(summary), "runs": runs}
    common.write_json(args.out / "demo_timing_cpu.json", payload)
    text = markdown(payload)
    common.write_text(args.out / "demo_timing_cpu.md", text + "\n")
    print(text)
    return payload


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--tmp", type=Path, required=True)
    ns = parser.parse_args()
    print(json.dumps(worker(ns.worker, ns.tmp)))
