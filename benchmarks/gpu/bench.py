"""GPU suite part `bench`: issue 13's throughput targets and interpretability timings, one command.

    python -m benchmarks.gpu.bench OUT_DIR [--smoke] [--budget-s 390]

On the GPT-2-small shape (12 × 768, d_vocab 50,304, T = 1024, batch 16, bf16 autocast, fused
AdamW) it times one whole training step (forward, next-token loss, backward, optimizer) of

    gamma1     ours, γ = 1 (shear qk, post-RoPE), fast path
    gamma0     ours, shear = "none"
    reference  `benchmarks.reference_gpt.ReferenceGPT` with `next_token_loss`
    nanogpt    `benchmarks.nanogpt.GPT`, a plain nanoGPT with its loss inside its forward
    analysis   ours, γ = 1, with a no-op `hook_pattern` hook (the materialised analysis path)

first compiled (each variant's whole forward + loss in one `torch.compile`, so all are compiled
alike), then eager, interleaved round by round. Then host syncs per step, `run_with_cache`
(every hook, and patterns only) against a plain forward, `score_heads` (144 heads × 100
sequences) and `trace_single_layer_induction`. Every result is written to `OUT_DIR/bench.json`
as soon as it exists; a wall-clock budget (default 390 s after start-up) stops measuring early and
records what was skipped. `--smoke` runs the same code on a tiny CPU model in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn as nn

from benchmarks import common, nanogpt, op_counts
from benchmarks.gpu_part import Budget, Recorder, parse_args
from benchmarks.reference_gpt import count_parameters, from_momentum
from benchmarks.throughput import (
    PRESETS,
    Trainer,
    count_host_syncs,
    flop_parameters,
    model_flops_per_token,
    peak_tflops,
    sync_device,
    timed_step,
)
from momentum_interp import HookedMomentumTransformer
from momentum_interp.analysis.scoring import score_heads
from momentum_interp.analysis.tracing import default_induction_task, trace_single_layer_induction

VARIANTS = ("gamma1", "nanogpt", "gamma0", "reference", "analysis")
FULL = dict(preset="gpt2-small", seq_len=1024, batch=16, rounds=20, warmup=3, interp_batch=8)
FULL["backend"] = "inductor"
# the smoke run traces with dynamo but skips inductor's code generation (minutes on a CPU)
SMOKE = dict(preset="tiny", seq_len=64, batch=2, rounds=2, warmup=1, interp_batch=2)
SMOKE["backend"] = "eager"
COMPILE_ESTIMATE_S = {"compiled": 60.0, "eager": 5.0}  # per variant, to decide what still fits


def _noop_hook(x: torch.Tensor, hook) -> torch.Tensor:
    return x


def build_variants(preset, seq_len: int, device: torch.device) -> dict[str, nn.Module]:
    """The five variants with the same weights (the references copy γ = 0's)."""
    gamma1 = HookedMomentumTransformer(preset.config(seq_len, momentum=True)).to(device)
    gamma0 = HookedMomentumTransformer(preset.config(seq_len, momentum=False)).to(device)
    analysis = HookedMomentumTransformer(preset.config(seq_len, momentum=True)).to(device)
    analysis.add_hook(lambda name: name.endswith("hook_pattern"), _noop_hook)
    return {
        "gamma1": gamma1,
        "nanogpt": nanogpt.from_momentum(gamma0),
        "gamma0": gamma0,
        "reference": from_momentum(gamma0),
        "analysis": analysis,
    }


def host_syncs(trainer: Trainer, tokens: torch.Tensor) -> dict:
    """Host-device syncs in one step: CUDA's sync debug mode on a GPU; on the CPU the
    `.item()`-like ops of forward, loss and backward (the CPU optimizer reads its step count)."""
    if trainer.device.type == "cuda":
        return {"cuda_sync_warnings": count_host_syncs(trainer, tokens)}
    with trainer.autocast:
        counted = op_counts.count_ops(lambda: trainer.loss_fn(tokens).backward())
    trainer.optimizer.zero_grad(set_to_none=True)
    return {"local_scalar_dense": op_counts.total(counted, op_counts.HOST_SYNCS)}


def median(values: list[float]) -> float:
    return common.quantiles(values)["median"]


def paired_ratio(a: list[float], b: list[float]) -> float | None:
    """tokens/s of a over b: median over rounds of time_b / time_a."""
    n = min(len(a), len(b))
    return round(median([b[i] / a[i] for i in range(n)]), 4) if n else None


def throughput(mode: str, shape: dict, device, budget: Budget, rec: Recorder, peak) -> None:
    """Warm then time every variant in `mode` ("compiled" or "eager"), recording as it goes."""
    preset = PRESETS[shape["preset"]]
    seq_len, batch = shape["seq_len"], shape["batch"]
    models = build_variants(preset, seq_len, device)
    n_flop = flop_parameters(models["gamma1"])
    flops_token = model_flops_per_token(n_flop, preset.n_layers, preset.d_model, seq_len)
    gen = torch.Generator().manual_seed(seq_len)
    tokens = torch.randint(0, preset.d_vocab, (batch, seq_len), generator=gen).to(device)
    section = rec.data.setdefault(mode, {"variants": {}, "ratios": {}})
    section["flops_per_token"] = flops_token
    section["n_params"] = {name: count_parameters(m) for name, m in models.items()}
    steppers: dict[str, Trainer] = {}
    for name, model in models.items():
        if budget.left() < COMPILE_ESTIMATE_S[mode] * (1 if device.type == "cuda" else 0.01):
            section["variants"][name] = {"status": "skipped: wall-clock budget"}
            continue
        start = time.perf_counter()
        stepper = Trainer(name, model, device, mode == "compiled", shape["backend"])
        for _ in range(shape["warmup"]):
            loss = stepper.step(tokens)
        sync_device(device)
        section["variants"][name] = {
            "status": "ok",
            "warmup_s": round(time.perf_counter() - start, 2),
            "loss_after_warmup": round(float(loss), 4),
            "host_syncs_per_step": host_syncs(stepper, tokens),
        }
        steppers[name] = stepper
        rec.write()
    names = list(steppers)
    for round_ in range(shape["rounds"]):
        if budget.left() <= 0:
            section["stopped"] = f"wall-clock budget after {round_} rounds"
            break
        shift = round_ % max(len(names), 1)
        for name in names[shift:] + names[:shift]:
            timed_step(steppers[name], tokens)
        for name, stepper in steppers.items():
            tok_s = batch * seq_len / median(stepper.times)
            achieved = tok_s * flops_token
            section["variants"][name].update(
                rounds=len(stepper.times),
                ms_per_step=round(1e3 * median(stepper.times), 3),
                tokens_per_s=round(tok_s, 1),
                mfu=round(achieved / (peak * 1e12), 4) if peak else None,
            )
        section["ratios"] = {
            f"{a}_over_{b}": paired_ratio(steppers[a].times, steppers[b].times)
            for a, b in (
                ("gamma1", "gamma0"),
                ("gamma1", "nanogpt"),
                ("gamma1", "reference"),
                ("reference", "nanogpt"),
                ("gamma1", "analysis"),
            )
            if a in steppers and b in steppers
        }
        rec.write()
    del steppers, models
    if device.type == "cuda":
        torch.cuda.empty_cache()


def timed_call(fn: Callable[[], object], device, repeats: int) -> dict:
    """First call and the median of `repeats` further calls, in seconds (+ peak memory on CUDA)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync_device(device)
    start = time.perf_counter()
    fn()
    sync_device(device)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync_device(device)
        times.append(time.perf_counter() - start)
    out = {"first_s": round(first, 4), "median_s": round(median(times), 4) if times else None}
    if device.type == "cuda":
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    return out


def interpretability(shape: dict, device, budget: Budget, rec: Recorder, smoke: bool) -> None:
    """`run_with_cache` vs a plain forward, `score_heads`, tracing, on the γ = 1 model."""
    preset = PRESETS[shape["preset"]]
    seq_len = shape["seq_len"]
    model = HookedMomentumTransformer(preset.config(seq_len, momentum=True)).to(device).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, preset.d_vocab, (shape["interp_batch"], seq_len), generator=gen)
    x = x.to(device)
    section = rec.data.setdefault("interpretability", {})
    section["shape"] = {"batch": shape["interp_batch"], "seq_len": seq_len}
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    )
    calls = {
        "forward": lambda: model(x),
        "run_with_cache_every_hook": lambda: model.run_with_cache(x),
        "run_with_cache_patterns": lambda: model.run_with_cache(
            x, names_filter=lambda name: name.endswith("hook_pattern")
        ),
        "score_heads_100_sequences": lambda: score_heads(model, n_sequences=100, progress=False),
        "trace_single_layer_induction": lambda: trace_single_layer_induction(
            model, 0, 0, task=default_induction_task(model.cfg, min(seq_len, 128)), n_sequences=64
        ),
    }
    repeats = dict.fromkeys(list(calls)[:3], 1 if smoke else 5) | {
        "score_heads_100_sequences": 0 if smoke else 1,
        "trace_single_layer_induction": 0,
    }
    for name, fn in calls.items():
        if budget.left() <= 0:
            section[name] = {"status": "skipped: wall-clock budget"}
            continue
        try:
            with torch.no_grad(), autocast:
                section[name] = timed_call(fn, device, repeats[name])
        except (RuntimeError, ValueError, torch.OutOfMemoryError) as error:
            section[name] = {"status": f"failed: {str(error).splitlines()[0][:300]}"}
        if name.startswith("run_with_cache") and "median_s" in section.get("forward", {}):
            ratio = section[name]["median_s"] / section["forward"]["median_s"]
            section[name]["over_forward"] = round(ratio, 3)
        rec.write()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args("bench", __doc__, argv)
    rec = Recorder(args.out_dir, "bench")
    budget = Budget(args.budget_s)
    shape = SMOKE if args.smoke else FULL
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    peak, peak_source = (
        peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else (None, "")
    )
    rec.data.update(
        machine=common.machine(device),
        smoke=args.smoke,
        shape=shape,
        peak_tflops=peak,
        peak_source=peak_source,
        autocast="bf16" if device.type == "cuda" else None,
        budget_s=args.budget_s,
    )
    rec.write()
    for mode in ("compiled", "eager"):
        throughput(mode, shape, device, budget, rec, peak)
    interpretability(shape, device, budget, rec, args.smoke)
    rec.data["elapsed_s"] = round(budget.elapsed(), 1)
    rec.write()
    return rec.data


if __name__ == "__main__":
    main()
