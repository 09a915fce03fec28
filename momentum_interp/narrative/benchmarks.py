"""The README's performance blocks, rendered from the benchmark records `python -m benchmarks
throughput` wrote (`benchmarks/results/`): the CPU ratios and the one GPU run."""

from __future__ import annotations

from momentum_interp.prose import bullets, pct, span, wrap
from momentum_interp.tables import markdown_table

MIB = 2**20
KERNEL_THRESHOLD = 0.02  # a shear costing more than this share of a step would earn a kernel
VARIANTS = {"gamma1": "ours γ=1", "gamma0": "ours γ=0", "analysis": "ours γ=1, analysis path"}


def _ratio(config: dict, name: str, interval: bool = False) -> str:
    r = config["ratios"][name]
    return f"{r['ratio']:.3f}" + (f" [{r['p10']:.2f}, {r['p90']:.2f}]" if interval else "")


def _shape(config: dict) -> str:
    s = config["shape"]
    return f"{config['preset']} ({s['n_layers']} layers, d {s['d_model']})"


def _mib(config: dict, variant: str) -> str:
    return f"{config['variants'][variant]['peak_memory_bytes'] / MIB:.0f} MiB"


def cpu_block(record: dict, source: str) -> str:
    """The CPU throughput paragraph, table and bullets from one `throughput` record at `source`."""
    meta, configs = record["meta"], record["configs"]
    loads = [c[k][0] for c in configs for k in ("load_average_before", "load_average_after")]
    (autocast,) = {c["autocast"] for c in configs}
    intro = (
        f"Measured on CPU: {meta['device_name']}, {meta['cpu_count']} cores (load average "
        f"{span(loads, '.1f')}), {meta['torch_threads']} torch thread(s), torch {meta['torch']}, "
        f"{autocast or 'float32'}, {meta['date']} (`{source}`). Each number is the median of "
        f"{span([c['rounds'] for c in configs], 'd')} per-round paired ratios; the "
        "10th–90th percentile range is shown for γ=1/γ=0, the others' are in the file. γ = 0 is "
        '`shear="none"`, which skips the velocity and shear entirely.'
    )
    header = ["preset", "T", "batch", "compiled", "γ=1 / γ=0 [p10, p90]"]
    header += ["ours γ=1 / reference", "ours γ=0 / reference", "fast / analysis path"]
    rows = [
        [_shape(c), c["seq_len"], c["batch"], "yes" if c["compile"] else "no"]
        + [_ratio(c, "gamma1_over_gamma0", True), _ratio(c, "gamma1_over_reference")]
        + [_ratio(c, "gamma0_over_reference"), _ratio(c, "fast_over_analysis")]
        for c in configs
    ]
    eager = [c for c in configs if not c["compile"]]
    largest = max(c["shape"]["n_layers"] * c["shape"]["d_model"] for c in configs)
    big = [c for c in eager if c["shape"]["n_layers"] * c["shape"]["d_model"] == largest]
    small_eager = [c for c in eager if c not in big]
    compiled = [c for c in configs if c["compile"]]
    cost = lambda cs: [1 - c["ratios"]["gamma1_over_gamma0"]["ratio"] for c in cs]  # noqa: E731
    vs_ref = lambda cs: [c["ratios"]["gamma1_over_reference"]["ratio"] - 1 for c in cs]  # noqa: E731
    percent = lambda xs, digits: span([100 * x for x in xs], f".{digits}f") + " %"  # noqa: E731
    longest = max(small_eager, key=lambda c: c["seq_len"])
    items = [
        f"**The shear's cost.** In eager mode it costs {percent(cost(small_eager), 1)} of a "
        f"training step on the {' and '.join(dict.fromkeys(c['preset'] for c in small_eager))} presets; "
        f"compiled, {percent(cost(compiled), 1)}: "
        + ("under" if max(cost(compiled)) < KERNEL_THRESHOLD else "over")
        + f" the {pct(KERNEL_THRESHOLD, 0)} that would call for a hand-written kernel. "
        + " ".join(
            f"The {c['preset']} row ({c['n_params'] / 1e6:.0f}M parameters) is one "
            f"{c['variants']['gamma1']['ms_per_step'] / 1000:.1f} s step per round with four "
            "such models in memory, and its spread is wide "
            f"({_ratio(c, 'gamma1_over_gamma0', True)})."
            for c in big
        ),
        f"**Against the reference GPT.** In eager mode ours is "
        f"{percent([-x for x in vs_ref(small_eager)], 0)} "
        + ("slower" if max(vs_ref(small_eager)) < 0 else "slower or faster")
        + " (measured before q/k/v were fused into one projection: then more, smaller ops than "
        "the reference's fused qkv `Linear`; `python -m benchmarks overheads` counts them). "
        f"Compiled, ours is {percent(vs_ref(compiled), 0)} "
        + ("faster." if min(vs_ref(compiled)) > 0 else "faster or slower."),
        f"**Sequence length.** The fast path's cost grows like the reference's. The analysis "
        f"path materialises the `[head, T, T]` scores and pattern: "
        f"{longest['ratios']['fast_over_analysis']['ratio']:.1f} times slower and "
        f"{_mib(longest, 'analysis')} at T = {longest['seq_len']}, against "
        f"{_mib(longest, 'gamma1')} for the fast path ({longest['preset']} preset, batch "
        f"{longest['batch']}; peak memory as defined above).",
    ]
    return f"{wrap(intro)}\n\n{markdown_table(header, rows, align='lrrlllll')}\n\n{bullets(items)}"


def gpu_block(compiled: dict, eager: dict, source: str) -> str:
    """The GPU run's paragraph, table and measured targets from its compiled and eager records."""
    (c,), (e,) = compiled["configs"], eager["configs"]
    meta = compiled["meta"]
    intro = (
        f"One {meta['device_name']} measured the {c['preset']} shape ({c['n_params'] / 1e6:.0f}M "
        f"parameters with an untied unembedding, T = {c['seq_len']}, batch {c['batch']}, "
        f"{c['autocast']} autocast, {c['optimizer']}) on {meta['date']} with torch "
        f"{meta['torch']} (`{source}`; its README gives the commit, from *before* the fused "
        "projection, the chunked loss and the fair benchmark above). MFU uses the benchmark's "
        f"formula and a {meta['peak_tflops']:g} TFLOP/s dense bf16 peak."
    )
    header = ["variant", "compiled tok/s", "MFU", "eager tok/s"]
    reference = "reference GPT (its loss then outside `torch.compile`)"
    labels = {"gamma1": VARIANTS["gamma1"], "gamma0": VARIANTS["gamma0"], "reference": reference}
    labels["analysis"] = VARIANTS["analysis"]
    rows = [
        [
            label,
            f"{c['variants'][v]['tokens_per_s']:,.0f}",
            pct(c["variants"][v]["mfu"]),
            f"{e['variants'][v]['tokens_per_s']:,.0f}",
        ]
        for v, label in labels.items()
    ]
    g1g0, g1 = c["ratios"]["gamma1_over_gamma0"]["ratio"], c["variants"]["gamma1"]
    targets = [
        ["compiled γ=1 / γ=0 ≥ 0.98", _met(g1g0, 0.98, f"{g1g0:.3f}")],
        ["compiled γ=1 MFU ≥ 40 %", _met(g1["mfu"], 0.40, pct(g1["mfu"]))],
        [
            "eager γ=1 / reference ≥ 0.90",
            _met(
                e["ratios"]["gamma1_over_reference"]["ratio"],
                0.90,
                _ratio(e, "gamma1_over_reference"),
            ),
        ],
        [
            "host syncs per eager γ=1 step = 0",
            _met(
                -e["variants"]["gamma1"]["host_syncs_per_step"],
                0,
                str(e["variants"]["gamma1"]["host_syncs_per_step"]),
            ),
        ],
    ]
    return (
        f"{wrap(intro)}\n\n{markdown_table(header, rows, align='lrrr')}\n\n"
        "Targets (issue 13) that these records measure:\n\n"
        + markdown_table(
            ["target", "measured on the GPU (before the changes)", "now"],
            [t + ["unmeasured"] for t in targets],
        )
    )


def _met(value: float, target: float, shown: str) -> str:
    return f"{shown}: {'met' if value >= target else 'missed'}"


def demo_block(record: dict, source: str) -> str:
    """Where the demo's cold pass spends its time, from a `demo_timing` record at `source`."""
    meta, runs = record["meta"], record["summary"].values()
    imports = {k: [r["imports"][k]["median"] for r in runs] for k in DEMO_IMPORTS}
    text = (
        f"`momentum-interp demo`'s pieces add up to "
        f"{span([r['totals']['sum_of_pieces_s']['median'] for r in runs], '.1f')} s on "
        f"{meta['cpu_count']} cores (cold pass, median of {meta['repeats']} runs per thread "
        f"count, {meta['date']}, `{source}`). Of that, "
        f"{span([r['cold']['import']['median'] for r in runs], '.1f')} s is imports: "
        + ", ".join(f"{DEMO_IMPORTS[k]} {span(v, '.1f')} s" for k, v in imports.items())
        + ". We cannot avoid the TransformerLens part while we subclass its `HookedRootModule`."
    )
    return wrap(text)


DEMO_IMPORTS = {
    "torch": "torch",
    "transformer_lens": "TransformerLens (it loads `transformers` and `datasets`)",
    "scipy.stats": "`scipy.stats` (the demo's bootstrap intervals need it)",
    "pandas": "pandas",
}
