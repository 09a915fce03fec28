"""Training-step throughput of momentum attention against γ = 0, a plain-PyTorch GPT and the analysis path.

    python -m benchmarks throughput [--device cpu|cuda] [--preset tiny|small|gpt2-small[,...]]
        [--seq-lens 256,512,...] [--batch B] [--steps N] [--warmup N] [--compile]
        [--out benchmarks/results]

For every (preset, sequence length) it builds four models of the same shape and times one
training step each (forward, `next_token_loss`, backward, AdamW step, `zero_grad`):

    gamma1     ours, γ = 1: shear "qk", post-RoPE, rotary (the paper's model), fast path
    gamma0     ours, `shear="none"` (γ = 0), fast path
    reference  `benchmarks.reference_gpt.ReferenceGPT`: fused qkv Linear, RoPE, SDPA(is_causal),
               nn.LayerNorm, GELU MLP; same shape, parameter count asserted equal within 1 %
    analysis   ours, γ = 1, with a no-op hook on every `hook_pattern`, which forces the
               materialised-scores analysis path

With `--compile`, each variant's forward and loss are compiled together (`step_loss`), so every
variant is compiled alike. On CUDA the step runs under bf16 autocast with fused AdamW and `torch.cuda.synchronize()` around
each timing; on CPU it is float32 with plain AdamW. The variants are timed interleaved
(round r runs every variant once, in an order rotated by r), so load that drifts during a run
hits all of them alike; the ratios are medians of the per-round paired ratios.

Model FLOPs per token use the standard estimate (Kaplan et al. 2020; PaLM, Chowdhery et al. 2022,
appendix B; nanoGPT's `estimate_mfu`): `6 N + 12 · n_layers · d_model · T`, where N counts every
trainable parameter except the input embedding table (a gather, no matmul; the unembedding is
untied here and is counted), and the attention term counts the full T×T score and value
matmuls (causal masking is not discounted). All four variants are charged the same FLOPs, so
their FLOP/s ratios equal their throughput ratios.
"""

from __future__ import annotations

import argparse
import gc
import math
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

from benchmarks import common
from benchmarks.reference_gpt import count_parameters, from_momentum
from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.evaluation import next_token_loss

VARIANTS = ("gamma1", "gamma0", "reference", "analysis")
LABELS = {
    "gamma1": "ours γ=1 (shear qk, post-RoPE)",
    "gamma0": "ours γ=0 (shear='none')",
    "reference": "reference GPT (plain PyTorch)",
    "analysis": "ours γ=1, analysis path",
}
TARGETS = {"gamma1_over_gamma0": 0.98, "gamma1_over_reference": 0.95}
FLOPS_FORMULA = (
    "6*N + 12*n_layers*d_model*T per token; N = trainable parameters minus the input embedding "
    "table (unembedding untied, counted); attention term not discounted for causal masking"
)


@dataclass(frozen=True)
class Preset:
    """A model shape and the batch it is timed at; other sequence lengths keep tokens/step fixed."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    d_vocab: int
    seq_len: int
    batch: int
    seq_lens_cpu: tuple[int, ...]
    seq_lens_cuda: tuple[int, ...]

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.seq_len

    def batch_for(self, seq_len: int) -> int:
        return max(1, self.tokens_per_step // seq_len)

    def config(self, n_ctx: int, momentum: bool, seed: int = 0) -> MomentumConfig:
        return MomentumConfig(
            n_layers=self.n_layers,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_head=self.d_model // self.n_heads,
            d_mlp=self.d_mlp,
            d_vocab=self.d_vocab,
            n_ctx=n_ctx,
            attn_only=False,
            act_fn="gelu",
            normalization_type="LN",
            positional_embedding_type="rotary",
            shear="qk" if momentum else "none",
            gamma=1.0 if momentum else 0.0,
            shear_placement="post_rope",
            seed=seed,
            device="cpu",
        )


PRESETS = {
    "tiny": Preset("tiny", 2, 128, 4, 512, 1024, 128, 8, (64, 128, 256, 512), (256, 512, 1024)),
    "small": Preset("small", 4, 256, 4, 1024, 4096, 256, 4, (128, 256), (256, 512, 1024, 2048)),
    "gpt2-small": Preset(
        "gpt2-small", 12, 768, 12, 3072, 50304, 1024, 16, (256,), (256, 512, 1024, 2048, 4096)
    ),
}

# Dense bf16 tensor-core peaks (the "with sparsity" figures halved), matched against
# torch.cuda.get_device_name() in order: first regex that matches wins.
CUDA_PEAK_BF16_TFLOPS: list[tuple[str, float, str]] = [
    (
        r"GH200",
        989.4,
        "NVIDIA GH200 Grace Hopper datasheet: H100-class GPU, BF16 1,979 TFLOPS with sparsity",
    ),
    (r"H200.*NVL", 835.5, "NVIDIA H200 datasheet, H200 NVL: BF16 1,671 TFLOPS with sparsity"),
    (r"H200", 989.4, "NVIDIA H200 datasheet, H200 SXM: BF16 1,979 TFLOPS with sparsity"),
    (r"H100.*PCIe", 756.5, "NVIDIA H100 datasheet, H100 PCIe: BF16 1,513 TFLOPS with sparsity"),
    (r"H100.*NVL", 835.5, "NVIDIA H100 NVL datasheet: BF16 1,671 TFLOPS with sparsity"),
    (
        r"H100",
        989.4,
        "NVIDIA H100 datasheet, H100 SXM: BF16 1,979 TFLOPS with sparsity (dense 989.4)",
    ),
    (r"A100", 312.0, "NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS (624 with sparsity)"),
    (r"L40S", 362.05, "NVIDIA L40S datasheet: BF16 362.05 TFLOPS (733 with sparsity)"),
    (r"\bL4\b", 121.0, "NVIDIA L4 datasheet: BF16 242 TFLOPS with sparsity"),
    (r"\bA10\b", 125.0, "NVIDIA A10 datasheet: BF16 125 TFLOPS (250 with sparsity)"),
    (
        r"RTX 4090",
        165.2,
        "NVIDIA Ada Lovelace architecture whitepaper, RTX 4090: BF16 tensor with FP32 accumulate 165.2 TFLOPS",
    ),
]


def peak_tflops(device_name: str) -> tuple[float | None, str]:
    """Dense bf16 peak of a CUDA device by name, and its source; (None, reason) when unknown."""
    for pattern, tflops, source in CUDA_PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return tflops, source
    return None, f"no peak known for {device_name!r}; pass --peak-tflops"


def flop_parameters(model: nn.Module) -> int:
    """N of the FLOP estimate: trainable parameters minus the input embedding table."""
    embedding = model.embed.W_E if hasattr(model, "embed") else model.wte.weight
    return count_parameters(model) - embedding.numel()


def model_flops_per_token(n_params: int, n_layers: int, d_model: int, seq_len: int) -> int:
    """`6 N + 12 · n_layers · d_model · T` (forward + backward, matmuls only)."""
    return 6 * n_params + 12 * n_layers * d_model * seq_len


def _noop_hook(x: torch.Tensor, hook) -> torch.Tensor:
    return x


def build_models(preset: Preset, seq_len: int, device: torch.device) -> dict[str, nn.Module]:
    """The four variants, with identical weights (same seed; the reference copies γ=0's)."""
    gamma1 = HookedMomentumTransformer(preset.config(seq_len, momentum=True)).to(device)
    gamma0 = HookedMomentumTransformer(preset.config(seq_len, momentum=False)).to(device)
    reference = from_momentum(gamma0)
    analysis = HookedMomentumTransformer(preset.config(seq_len, momentum=True)).to(device)
    analysis.add_hook(lambda name: name.endswith("hook_pattern"), _noop_hook)
    assert all(block.attn.uses_fast_path for block in gamma1.blocks)
    assert not any(block.attn.uses_fast_path for block in analysis.blocks)
    ours, ref = count_parameters(gamma1), count_parameters(reference)
    if abs(ours - ref) > 0.01 * ours:
        raise AssertionError(
            f"parameter counts differ by more than 1 %: ours {ours}, reference {ref}"
        )
    return {"gamma1": gamma1, "gamma0": gamma0, "reference": reference, "analysis": analysis}


def step_loss(name: str, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A variant's forward + next-token loss: the unit `Trainer` compiles, alike for every variant."""
    if name == "nanogpt":  # nanoGPT's convention: targets are the inputs shifted by one
        return lambda tokens: model(tokens[:, :-1], tokens[:, 1:])[1]
    if name == "reference":
        return lambda tokens: next_token_loss(model(tokens), tokens)
    return lambda tokens: model(tokens, return_type="loss")


class Trainer:
    """One model, its optimizer and a closure doing one training step (forward and loss compiled
    together when `compile_`)."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        device: torch.device,
        compile_: bool,
        backend: str = "inductor",
    ):
        self.name = name
        self.model = model.train()
        self.device = device
        loss = step_loss(name, model)
        self.loss_fn = torch.compile(loss, dynamic=False, backend=backend) if compile_ else loss
        cuda = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
        self.times: list[float] = []
        self.memory: dict[str, int | None] = {}
        self.status = "ok"
        self.error: str | None = None
        self.loss: float | None = None
        self.host_syncs: int | None = None

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            loss = self.loss_fn(tokens)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def fail(self, error: BaseException) -> None:
        """Mark this variant out of memory and give its memory back to the others."""
        self.status, self.error = "oom", str(error).splitlines()[0]
        self.times.clear()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer.state.clear()
        self.model.to("cpu")
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def state_bytes(self) -> int:
        """Parameters plus optimizer state (what stays allocated between steps)."""
        total = sum(p.numel() * p.element_size() for p in self.model.parameters())
        for state in self.optimizer.state.values():
            total += sum(
                v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor)
            )
        return total


def saved_bytes(model, name: str, tokens: torch.Tensor, bf16: bool) -> dict:
    """Bytes of distinct non-parameter storages autograd saves for backward in one forward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, tuple[int, str]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = (storage.nbytes(), str(t.dtype).removeprefix("torch."))
        return t

    autocast = (
        torch.autocast(tokens.device.type, dtype=torch.bfloat16)
        if bf16
        else torch.autocast(tokens.device.type, enabled=False)
    )
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        loss = step_loss(name, model)(tokens)
    del loss
    by_dtype: dict[str, int] = {}
    for nbytes, dtype in storages.values():
        by_dtype[dtype] = by_dtype.get(dtype, 0) + nbytes
    return {"total_bytes": sum(by_dtype.values()), "by_dtype": by_dtype}


def count_host_syncs(trainer: Trainer, tokens: torch.Tensor) -> int | None:
    """CUDA only: host-device synchronisations in one training step (sync debug mode "warn").

    A sync stalls the CPU until the GPU drains its queue, so the next kernels cannot be queued
    ahead; eager `check_tokens` (int(tokens.min()), int(tokens.max())) is one such source.
    """
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                trainer.step(tokens)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)
    except RuntimeError:
        return None


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued kernels, so a wall-clock reading covers them (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(trainer: Trainer, tokens: torch.Tensor) -> None:
    """One training step, its wall time appended to `trainer.times` (and, on CUDA, its peak
    transient memory recorded)."""
    device = trainer.device
    if device.type == "cuda":
        sync_device(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        loss = trainer.step(tokens)
        sync_device(device)
        elapsed = time.perf_counter() - start
        transient = torch.cuda.max_memory_allocated(device) - base
        key = "step_peak_transient_bytes"
        trainer.memory[key] = max(trainer.memory.get(key) or 0, transient)
    else:
        start = time.perf_counter()
        loss = trainer.step(tokens)
        elapsed = time.perf_counter() - start
    trainer.times.append(elapsed)
    trainer.loss = loss


def _warm(trainer: Trainer, tokens: torch.Tensor, warmup: int) -> None:
    for _ in range(warmup):
        trainer.step(tokens)
        sync_device(trainer.device)


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error)


def _paired_ratio(a: Trainer, b: Trainer) -> dict[str, float] | None:
    """tokens/s of a over tokens/s of b: per round time_b / time_a, then median and spread."""
    if a.status != "ok" or b.status != "ok":
        return None
    per_round = [tb / ta for ta, tb in zip(a.times, b.times, strict=True)]
    q = common.quantiles(per_round)
    ratio_of_medians = common.quantiles(b.times)["median"] / common.quantiles(a.times)["median"]
    return {
        "ratio": round(q["median"], 4),
        "p10": round(q["p10"], 4),
        "p90": round(q["p90"], 4),
        "ratio_of_medians": round(ratio_of_medians, 4),
    }


def run_config(
    preset: Preset,
    seq_len: int,
    device: torch.device,
    steps: int,
    warmup: int,
    compile_: bool = False,
    peak: float | None = None,
    peak_source: str = "",
    batch: int | None = None,
) -> dict:
    """Time the four variants at one (preset, T); returns a JSON-ready record."""
    load_before = common.load_average()
    started = common.now()
    batch = batch or preset.batch_for(seq_len)
    models = build_models(preset, seq_len, device)
    gen = torch.Generator().manual_seed(seq_len)
    tokens = torch.randint(0, preset.d_vocab, (batch, seq_len), generator=gen).to(device)
    n_params = count_parameters(models["gamma1"])
    n_flop = flop_parameters(models["gamma1"])
    flops_token = model_flops_per_token(n_flop, preset.n_layers, preset.d_model, seq_len)
    trainers = {name: Trainer(name, model, device, compile_) for name, model in models.items()}
    del models

    for trainer in trainers.values():
        try:
            _warm(trainer, tokens, warmup)
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if not _is_oom(error):
                raise
            trainer.fail(error)
    for name, trainer in trainers.items():
        if trainer.status == "ok":
            try:
                saved = saved_bytes(trainer.model, name, tokens, bf16=device.type == "cuda")
                trainer.memory["saved_for_backward_bytes"] = saved["total_bytes"]
            except (RuntimeError, torch.OutOfMemoryError) as error:
                if not _is_oom(error):
                    raise
                trainer.memory["saved_for_backward_bytes"] = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            if device.type == "cuda":
                trainer.host_syncs = count_host_syncs(trainer, tokens)
    live = [t for t in trainers.values() if t.status == "ok"]
    for round_ in range(steps):
        shift = round_ % len(live) if live else 0
        for trainer in live[shift:] + live[:shift]:
            if trainer.status != "ok":
                continue
            try:
                timed_step(trainer, tokens)
            except (RuntimeError, torch.OutOfMemoryError) as error:
                if not _is_oom(error):
                    raise
                trainer.fail(error)

    variants = {}
    for name, trainer in trainers.items():
        record = {"label": LABELS[name], "status": trainer.status}
        if trainer.status != "ok":
            record["error"] = trainer.error
            variants[name] = record
            continue
        loss = float(trainer.loss)
        if not math.isfinite(loss):
            raise RuntimeError(f"{name}: non-finite loss {loss} at T={seq_len}")
        step_s = common.quantiles(trainer.times)
        tokens_per_s = batch * seq_len / step_s["median"]
        achieved = tokens_per_s * flops_token
        if device.type == "cpu":  # one extra, profiled step: untimed, the profiler slows it
            trainer.memory["step_peak_transient_bytes"] = common.cpu_peak_allocated_bytes(
                partial(trainer.step, tokens)
            )
        memory = dict(trainer.memory)
        memory["state_bytes"] = trainer.state_bytes()
        memory["peak_memory_bytes"] = memory["state_bytes"] + memory["step_peak_transient_bytes"]
        record.update(
            {
                "tokens_per_s": round(tokens_per_s, 1),
                "ms_per_step": round(1e3 * step_s["median"], 3),
                "ms_per_step_p10": round(1e3 * step_s["p10"], 3),
                "ms_per_step_p90": round(1e3 * step_s["p90"], 3),
                "timed_steps": len(trainer.times),
                "achieved_tflops": round(achieved / 1e12, 6),
                "achieved_gflops": round(achieved / 1e9, 3),
                "mfu": round(achieved / (peak * 1e12), 4) if peak else None,
                "final_loss": round(loss, 4),
                "host_syncs_per_step": trainer.host_syncs,
                **memory,
            }
        )
        variants[name] = record

    t = trainers
    ratios = {
        "gamma1_over_gamma0": _paired_ratio(t["gamma1"], t["gamma0"]),
        "gamma1_over_reference": _paired_ratio(t["gamma1"], t["reference"]),
        "gamma0_over_reference": _paired_ratio(t["gamma0"], t["reference"]),
        "fast_over_analysis": _paired_ratio(t["gamma1"], t["analysis"]),
    }
    del trainers
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "preset": preset.name,
        "shape": asdict(preset) | {"d_head": preset.d_model // preset.n_heads},
        "seq_len": seq_len,
        "batch": batch,
        "tokens_per_step": batch * seq_len,
        "compile": compile_,
        "warmup": warmup,
        "rounds": steps,
        "autocast": "bf16" if device.type == "cuda" else None,
        "optimizer": "AdamW(fused=True)" if device.type == "cuda" else "AdamW (foreach)",
        "n_params": n_params,
        "n_params_flops": n_flop,
        "flops_per_token": flops_token,
        "peak_tflops": peak,
        "peak_source": peak_source,
        "started": started,
        "load_average_before": load_before,
        "load_average_after": common.load_average(),
        "variants": variants,
        "ratios": ratios,
    }


def memory_note(cuda: bool) -> str:
    """What the memory fields mean on this device."""
    if cuda:
        transient = (
            "the largest transient allocation of a timed step (torch.cuda.max_memory_allocated "
            "minus the allocation at step start)"
        )
    else:
        transient = (
            "the peak of torch's live CPU allocations during one extra, profiled step, above "
            "those live at its start (torch.profiler memory events, op granularity; not RSS, so "
            "neither the allocator's cache nor the other variants count)"
        )
    note = (
        f"peak_memory_bytes = parameters + AdamW state + {transient}: what the variant needs alone."
    )
    return note + (
        " saved_for_backward_bytes (both devices) adds up the distinct non-parameter storages "
        "autograd saves in one forward of the eager model (torch.autograd.graph."
        "saved_tensors_hooks; under bf16 autocast on CUDA; with --compile still the eager "
        "model's): the activation memory a step holds at its peak, without allocator caching "
        "or other processes in the way."
    )


def run_throughput(
    device: str = "cpu",
    presets: list[str] | None = None,
    seq_lens: list[int] | None = None,
    batch: int | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    compile_: bool = False,
    threads: int | None = 1,
    peak_tflops_override: float | None = None,
    verbose: bool = False,
) -> dict:
    """Run every (preset, T) config; returns `{"meta": ..., "configs": [...]}`."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda but torch.cuda.is_available() is False")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif threads is not None:
        torch.set_num_threads(threads)
    steps = steps if steps is not None else (20 if dev.type == "cuda" else 8)
    warmup = warmup if warmup is not None else (5 if dev.type == "cuda" else 2)
    meta = common.machine(dev)
    if dev.type == "cuda":
        peak, peak_source = peak_tflops(meta["device_name"])
    else:
        peak, peak_source = None, "CPU: no honest peak for a shared, throttled CPU; MFU is null"
    if peak_tflops_override is not None:
        peak, peak_source = peak_tflops_override, "given with --peak-tflops"
    meta.update(
        {
            "date": common.today(),
            "started": common.now(),
            "flops_formula": FLOPS_FORMULA,
            "peak_tflops": peak,
            "peak_source": peak_source,
            "targets": TARGETS,
            "timing": (
                "warm-up steps per variant, then timed rounds (counts per config: `warmup`, "
                "`rounds`); each round times every variant once (order rotated per round); "
                "tokens/s from the median step time; ratios are medians of per-round paired ratios"
            ),
            "memory_note": memory_note(dev.type == "cuda"),
        }
    )
    configs = []
    for name in presets or ["tiny"]:
        preset = PRESETS[name]
        lens = seq_lens or list(preset.seq_lens_cuda if dev.type == "cuda" else preset.seq_lens_cpu)
        for seq_len in lens:
            record = run_config(
                preset, seq_len, dev, steps, warmup, compile_, peak, peak_source, batch
            )
            configs.append(record)
            if verbose:
                print(format_config_lines(record), flush=True)
    meta["finished"] = common.now()
    meta["load_average_after"] = common.load_average()
    return {"meta": meta, "configs": configs}


# ------------------------------------------------------------------------ output


def _fmt_ratio(r: dict | None) -> str:
    if r is None:
        return "n/a"
    return f"{r['ratio']:.3f} [{r['p10']:.2f}, {r['p90']:.2f}]"


def format_config_lines(config: dict) -> str:
    tag = f"{config['preset']} T={config['seq_len']} B={config['batch']}"
    parts = []
    for name, v in config["variants"].items():
        parts.append(f"{name}: {v.get('tokens_per_s', v['status'])} tok/s")
    return (
        f"[{tag}, load {config['load_average_before'][0]}→{config['load_average_after'][0]}] "
        + (", ".join(parts))
    )


def markdown(result: dict) -> str:
    meta = result["meta"]
    cuda = meta["device"].startswith("cuda")
    unit = "TFLOP/s" if cuda else "GFLOP/s"
    lines = [
        f"# Training-step throughput on {meta['device_name']} ({meta['device']})",
        "",
        f"torch {meta['torch']}, {meta['cpu_count']} CPUs, {meta['torch_threads']} torch threads, "
        f"run {meta['started']} → {meta['finished']}. Load average (1/5/15 min) before: "
        f"{meta['load_average']}, after: {meta['load_average_after']}.",
        "",
        f"FLOPs per token: {meta['flops_formula']}. Peak: {meta['peak_tflops']} "
        f"({meta['peak_source']}).",
        "",
        f"Timing: {meta['timing']}.",
        "",
    ]
    if meta.get("merged_runs"):
        lines += [
            f"This file merges {len(meta['merged_runs'])} invocations on the same day "
            "(`meta.merged_runs` in the JSON has each one's times and load; each row below "
            "carries its own load).",
            "",
        ]
    if not cuda:
        lines += [
            "**CPU numbers are noisy**: the machine's cores are shared with other jobs (see the "
            "load averages per row; a load above the core count means time-slicing). The ratios "
            "are paired per round and are the meaningful numbers; absolute tokens/s are not. "
            "The GPU targets (γ1/γ0 ≥ 0.98, ours/reference ≥ 0.95) are for CUDA bf16.",
            "",
        ]
    header = [
        "preset",
        "T",
        "batch",
        "compile",
        "variant",
        "tokens/s",
        "ms/step [p10, p90]",
        unit,
        "MFU",
        "peak mem",
        "saved for backward",
        "load before→after",
    ]
    rows = []
    for c in result["configs"]:
        for name, v in c["variants"].items():
            if v["status"] != "ok":
                rows.append(
                    [c["preset"], c["seq_len"], c["batch"], c["compile"], name, v["status"]]
                    + [""] * 6
                )
                continue
            flops = v["achieved_tflops"] if cuda else v["achieved_gflops"]
            rows.append(
                [
                    c["preset"],
                    c["seq_len"],
                    c["batch"],
                    c["compile"],
                    LABELS[name],
                    f"{v['tokens_per_s']:,.0f}",
                    f"{v['ms_per_step']:.1f} [{v['ms_per_step_p10']:.1f}, {v['ms_per_step_p90']:.1f}]",
                    f"{flops:.3g}",
                    "null" if v["mfu"] is None else f"{v['mfu']:.1%}",
                    common.fmt_bytes(v.get("peak_memory_bytes")),
                    common.fmt_bytes(v.get("saved_for_backward_bytes")),
                    f"{c['load_average_before'][0]}→{c['load_average_after'][0]}",
                ]
            )
    lines += [common.markdown_table(header, rows), ""]
    lines += [
        "Ratios of tokens/s within one run: median of per-round paired ratios [p10, p90].",
        "",
    ]
    header = [
        "preset",
        "T",
        "compile",
        "warm-up / rounds",
        "FLOPs/token",
        "γ1 / γ0",
        "γ1 / reference",
        "γ0 / reference",
        "fast / analysis",
    ]
    rows = [
        [
            c["preset"],
            c["seq_len"],
            c["compile"],
            f"{c.get('warmup')} / {c.get('rounds')}",
            f"{c['flops_per_token'] / 1e6:.2f} M",
            _fmt_ratio(c["ratios"]["gamma1_over_gamma0"]),
            _fmt_ratio(c["ratios"]["gamma1_over_reference"]),
            _fmt_ratio(c["ratios"]["gamma0_over_reference"]),
            _fmt_ratio(c["ratios"]["fast_over_analysis"]),
        ]
        for c in result["configs"]
    ]
    lines += [common.markdown_table(header, rows), ""]
    lines += ["Memory: " + meta["memory_note"], ""]
    rows = [
        [
            c["preset"],
            c["seq_len"],
            c["compile"],
            LABELS[name],
            common.fmt_bytes(v.get("state_bytes")),
            common.fmt_bytes(v.get("step_peak_transient_bytes")),
            common.fmt_bytes(v.get("saved_for_backward_bytes")),
            "–" if v.get("host_syncs_per_step") is None else v["host_syncs_per_step"],
        ]
        for c in result["configs"]
        for name, v in c["variants"].items()
        if v["status"] == "ok"
    ]
    header = [
        "preset",
        "T",
        "compile",
        "variant",
        "params + AdamW state",
        "step transient peak",
        "saved for backward (bf16 autocast)" if cuda else "saved for backward",
        "host syncs / step",
    ]
    lines += [common.markdown_table(header, rows), ""]
    return "\n".join(lines)


def _config_key(config: dict) -> tuple:
    return (config["preset"], config["seq_len"], config["batch"], config["compile"])


def merge_previous(path: Path, result: dict) -> dict:
    """Keep configs of an earlier run written to the same file (same device and date) that this
    run did not repeat, if measured the same way; each config carries its own load and start."""
    if not path.exists():
        return result
    import json

    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return result
    same = ("device_name", "memory_note", "flops_formula")  # rows measured the same way
    if any(previous.get("meta", {}).get(k) != result["meta"][k] for k in same):
        return result
    fresh = {_config_key(c) for c in result["configs"]}
    kept = [c for c in previous.get("configs", []) if _config_key(c) not in fresh]
    if not kept:
        return result
    merged = dict(result)
    merged["configs"] = kept + result["configs"]
    merged["meta"] = dict(result["meta"])
    merged["meta"]["merged_runs"] = previous["meta"].get(
        "merged_runs",
        [
            {
                k: previous["meta"].get(k)
                for k in ("started", "finished", "load_average", "load_average_after")
            }
        ],
    ) + [
        {
            k: result["meta"].get(k)
            for k in ("started", "finished", "load_average", "load_average_after")
        }
    ]
    merged["meta"]["started"] = min(previous["meta"]["started"], result["meta"]["started"])
    merged["meta"]["load_average"] = previous["meta"]["load_average"]
    return merged


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--preset",
        default="tiny",
        help=f"comma-separated presets among {list(PRESETS)} (default tiny)",
    )
    parser.add_argument("--seq-lens", help="comma-separated sequence lengths (default: per preset)")
    parser.add_argument(
        "--batch", type=int, help="batch at every T (default: the preset's tokens/step ÷ T)"
    )
    parser.add_argument("--steps", type=int, help="timed rounds (default 8 on CPU, 20 on CUDA)")
    parser.add_argument("--warmup", type=int, help="warm-up steps per variant (2 CPU, 5 CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every variant")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU torch threads (default 1; 0 = torch's default)"
    )
    parser.add_argument("--peak-tflops", type=float, help="override the device's peak for MFU")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR, help="output directory")
    parser.add_argument("--no-merge", action="store_true", help="overwrite an existing result file")


def main(args: argparse.Namespace) -> dict:
    presets = [p.strip() for p in args.preset.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise SystemExit(f"unknown preset(s) {unknown}; choose from {list(PRESETS)}")
    seq_lens = [int(s) for s in args.seq_lens.split(",")] if args.seq_lens else None
    result = run_throughput(
        device=args.device,
        presets=presets,
        seq_lens=seq_lens,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        compile_=args.compile,
        threads=args.threads or None,
        peak_tflops_override=args.peak_tflops,
        verbose=True,
    )
    device = torch.device(args.device).type
    stem = f"throughput_{device}_{result['meta']['date']}"
    json_path = args.out / f"{stem}.json"
    if not args.no_merge:
        result = merge_previous(json_path, result)
    common.write_json(json_path, result)
    text = markdown(result)
    common.write_text(args.out / f"{stem}.md", text + "\n")
    print(text)
    print(f"wrote {json_path} and {json_path.with_suffix('.md')}")
    return result
