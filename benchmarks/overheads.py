"""Where ours loses time against the reference GPT: op counts, bf16 activation bytes, ablations.

    python -m benchmarks overheads [--preset tiny,small] [--seq-len 256] [--steps 12]

Three measurements of the same training step as `benchmarks.throughput`, for the variants
γ=1, γ=0, reference and analysis path:

1. **Op counts** (torch.profiler, device-independent): leaf aten ops per phase (forward + loss,
   backward, AdamW step), with pure view/metadata ops counted apart. On a GPU nearly every
   non-view leaf op is one kernel launch, so this is what launch overhead scales with.
2. **Bytes saved for backward** (`torch.autograd.graph.saved_tensors_hooks`, parameters
   excluded), in float32 and under bf16 autocast (CPU autocast: the same type-promotion rules
   as CUDA autocast), plus the dtype each of our hooks sees under bf16 autocast. This is the
   activation memory a step holds at its peak, without an allocator in the way.
3. **Ablations** (interleaved paired timing on CPU): the γ=0 and γ=1 models with the one
   remaining overhead removed by a per-instance patch, checked to give the same loss first:
   `fused_proj` (one `F.linear` for q/k/v and one for the output instead of four einops einsums
   plus separate bias adds). The earlier `skip_shear` and `fused_ln` ablations are now what the
   model itself does (unfiltered signals skip the shear; unhooked norms are `F.layer_norm`).
   The patch lives here; nothing in `momentum_interp` is changed. Timings on a shared CPU are
   noisy: the ratios are paired.
"""

from __future__ import annotations

import argparse
import gc
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks import common
from benchmarks.throughput import PRESETS, Trainer, build_models, saved_bytes

VIEW_OPS = {
    "aten::view",
    "aten::reshape",
    "aten::_reshape_alias",
    "aten::as_strided",
    "aten::permute",
    "aten::transpose",
    "aten::t",
    "aten::numpy_T",
    "aten::expand",
    "aten::expand_as",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::slice",
    "aten::select",
    "aten::narrow",
    "aten::_unsafe_view",
    "aten::alias",
    "aten::detach",
    "aten::empty",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::unbind",
    "aten::split",
    "aten::split_with_sizes",
    "aten::chunk",
    "aten::lift_fresh",
    "aten::resolve_conj",
    "aten::resolve_neg",
    "aten::result_type",
    "aten::flatten",
    "aten::unflatten",
    "aten::view_as",
    "aten::contiguous",
    "aten::to",
    "aten::_to_copy",
    "aten::set_",
    "aten::is_nonzero",
    "aten::_has_compatible_shallow_copy_type",
}


# ------------------------------------------------------------------ 1. op counts


def _leaf_counts(prof) -> dict[str, int]:
    leaves = [
        e
        for e in prof.events()
        if e.name.startswith("aten::")
        and not any(c.name.startswith("aten::") for c in e.cpu_children)
    ]
    compute = [e for e in leaves if e.name not in VIEW_OPS]
    by_name: dict[str, int] = {}
    for e in compute:
        by_name[e.name] = by_name.get(e.name, 0) + 1
    return {
        "leaf_ops": len(leaves),
        "non_view_ops": len(compute),
        "top": dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:8]),
    }


def op_counts(trainer: Trainer, tokens: torch.Tensor) -> dict[str, dict]:
    """Leaf aten ops of one training step, per phase."""
    from torch.profiler import ProfilerActivity, profile

    trainer.step(tokens)  # warm (optimizer state exists)
    out = {}
    with profile(activities=[ProfilerActivity.CPU]) as prof, trainer.autocast:
        if trainer.name == "reference":
            from momentum_interp.evaluation import next_token_loss

            loss = next_token_loss(trainer.model(tokens), tokens)
        else:
            loss = trainer.model(tokens, return_type="loss")
    out["forward"] = _leaf_counts(prof)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss.backward()
    out["backward"] = _leaf_counts(prof)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
    out["optimizer"] = _leaf_counts(prof)
    out["total_non_view_ops"] = sum(
        out[k]["non_view_ops"] for k in ("forward", "backward", "optimizer")
    )
    out["n_param_tensors"] = sum(1 for _ in trainer.model.parameters())
    return out


# ------------------------------------------------------- 2. bytes saved for backward


# Hooks whose tensors come out of `nn.Linear` (or follow from one) in the reference GPT, so bf16
# under autocast there: a float32 one in ours is a promotion the reference does not pay for.
BF16_IN_REFERENCE = {
    "hook_q",
    "hook_k",
    "hook_v",
    "hook_rot_q",
    "hook_rot_k",
    "hook_q_velocity",
    "hook_k_velocity",
    "hook_q_sheared",
    "hook_k_sheared",
    "hook_z",
    "hook_pre",
    "hook_post",
}


def hook_dtypes_under_bf16(model, tokens: torch.Tensor) -> dict[str, str]:
    """dtype each hook of layer 0 sees when the model runs under bf16 autocast."""
    with torch.no_grad(), torch.autocast(tokens.device.type, dtype=torch.bfloat16):
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.startswith("blocks.0."))
    return {name: str(t.dtype).removeprefix("torch.") for name, t in cache.items()}


# ------------------------------------------------------------------ 3. ablations


def _fused_proj_forward(self, x):
    """MomentumAttention.forward with one F.linear for q/k/v and one for the output."""
    n_heads, d_model, d_head = self.W_Q.shape
    weight = torch.cat([self.W_Q, self.W_K, self.W_V]).transpose(1, 2).reshape(-1, d_model)
    bias = torch.cat([self.b_Q, self.b_K, self.b_V]).reshape(-1)
    batch, n_pos, _ = x.shape
    q, k, v = F.linear(x, weight, bias).view(batch, n_pos, 3, n_heads, d_head).unbind(dim=2)
    q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
    q = self._rotate_and_shear(q, self.gamma_q(), self.hook_q_velocity, self.hook_q_sheared, "q")
    k = self._rotate_and_shear(k, self.gamma_k(), self.hook_k_velocity, self.hook_k_sheared, "k")
    z = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
    ).transpose(1, 2)
    z = self.hook_z(z)
    return F.linear(z.reshape(batch, n_pos, -1), self.W_O.reshape(-1, d_model).T, self.b_O)


def patch_fused_proj(model):
    """Bind `_fused_proj_forward` to this model's attention modules only (others untouched)."""
    for block in model.blocks:
        block.attn.forward = types.MethodType(_fused_proj_forward, block.attn)
    return model


def ablation_models(preset, seq_len: int, device: torch.device) -> dict:
    from momentum_interp import HookedMomentumTransformer

    base = build_models(preset, seq_len, device)
    models = {"gamma0": base["gamma0"], "reference": base["reference"], "gamma1": base["gamma1"]}
    for momentum, stem in ((False, "gamma0"), (True, "gamma1")):
        model = HookedMomentumTransformer(preset.config(seq_len, momentum=momentum)).to(device)
        models[f"{stem}+fused_proj"] = patch_fused_proj(model)
    return models


def run_ablations(preset, seq_len: int, device: torch.device, steps: int, warmup: int) -> dict:
    models = ablation_models(preset, seq_len, device)
    batch = preset.batch_for(seq_len)
    gen = torch.Generator().manual_seed(seq_len)
    tokens = torch.randint(0, preset.d_vocab, (batch, seq_len), generator=gen).to(device)
    with torch.no_grad():  # every patched model computes the same loss as its unpatched twin
        for name, model in models.items():
            stem = name.split("+")[0]
            if "+" in name:
                ours = model(tokens, return_type="loss")
                base = models[stem](tokens, return_type="loss")
                torch.testing.assert_close(ours, base, rtol=1e-5, atol=1e-5)
    trainers = {
        name: Trainer(name if name == "reference" else "ours", m, device, False)
        for name, m in models.items()
    }
    load_before = common.load_average()
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.step(tokens)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    names = list(trainers)
    for round_ in range(steps):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainers[name].step(tokens)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    out = {}
    for name, values in times.items():
        q = common.quantiles(values)
        stem = "gamma1" if name.startswith("gamma1") else "gamma0"
        per_round_vs_base = [b / a for a, b in zip(values, times[stem], strict=True)]
        per_round_vs_ref = [r / a for a, r in zip(values, times["reference"], strict=True)]
        out[name] = {
            "ms_per_step": round(1e3 * q["median"], 3),
            "tokens_per_s": round(batch * seq_len / q["median"], 1),
            "speedup_vs_unpatched": round(common.quantiles(per_round_vs_base)["median"], 4),
            "over_reference": round(common.quantiles(per_round_vs_ref)["median"], 4),
            "over_reference_p10_p90": [
                round(common.quantiles(per_round_vs_ref)["p10"], 4),
                round(common.quantiles(per_round_vs_ref)["p90"], 4),
            ],
        }
    del trainers, models
    gc.collect()
    return {
        "batch": batch,
        "load_average_before": load_before,
        "load_average_after": common.load_average(),
        "results": out,
    }


# ------------------------------------------------------------------------ driver


def run_overheads(
    presets: list[str], seq_len: int | None, steps: int, warmup: int, threads: int | None = 1
) -> dict:
    device = torch.device("cpu")
    if threads:
        torch.set_num_threads(threads)
    meta = common.machine(device) | {"date": common.today(), "started": common.now()}
    configs = []
    for name in presets:
        preset = PRESETS[name]
        T = seq_len or preset.seq_len
        batch = preset.batch_for(T)
        gen = torch.Generator().manual_seed(T)
        tokens = torch.randint(0, preset.d_vocab, (batch, T), generator=gen)
        models = build_models(preset, T, device)
        ops, saved, saved_bf16 = {}, {}, {}
        for variant, model in models.items():
            trainer = Trainer(variant, model, device, False)
            ops[variant] = op_counts(trainer, tokens)
            saved[variant] = saved_bytes(model, variant, tokens, bf16=False)
            saved_bf16[variant] = saved_bytes(model, variant, tokens, bf16=True)
        dtypes = hook_dtypes_under_bf16(models["gamma1"], tokens[:1])
        del models
        gc.collect()
        ablations = run_ablations(preset, T, device, steps, warmup)
        configs.append(
            {
                "preset": name,
                "seq_len": T,
                "batch": batch,
                "op_counts": ops,
                "saved_for_backward_fp32": saved,
                "saved_for_backward_bf16_autocast": saved_bf16,
                "hook_dtypes_bf16_autocast_layer0": dtypes,
                "ablations": ablations,
            }
        )
        print(f"[{name} T={T}] done, load {common.load_average()}", flush=True)
    meta["finished"] = common.now()
    meta["load_average_after"] = common.load_average()
    return {"meta": meta, "configs": configs}


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# Where ours loses time against the reference GPT (CPU measurements)",
        "",
        f"{meta['device_name']}, {meta['cpu_count']} CPUs, {meta['torch_threads']} torch thread(s), "
        f"torch {meta['torch']}, {meta['started']} → {meta['finished']}. Load average (1/5/15 min) "
        f"before {meta['load_average']}, after {meta['load_average_after']}: the cores are shared, "
        "so only the paired ratios of the ablations mean much; op counts and bytes are exact.",
        "",
    ]
    for c in result["configs"]:
        lines += [f"## {c['preset']}, T={c['seq_len']}, batch {c['batch']}", ""]
        header = [
            "variant",
            "param tensors",
            "forward ops",
            "backward ops",
            "AdamW ops (CPU for-loop)",
            "total non-view ops",
            "view/metadata ops",
        ]
        rows = []
        for v, o in c["op_counts"].items():
            views = sum(
                o[p]["leaf_ops"] - o[p]["non_view_ops"]
                for p in ("forward", "backward", "optimizer")
            )
            rows.append(
                [
                    v,
                    o["n_param_tensors"],
                    o["forward"]["non_view_ops"],
                    o["backward"]["non_view_ops"],
                    o["optimizer"]["non_view_ops"],
                    o["total_non_view_ops"],
                    views,
                ]
            )
        lines += [
            "Leaf aten ops per training step (≈ kernel launches on a GPU, apart from views):",
            "",
            common.markdown_table(header, rows),
            "",
        ]
        header = [
            "variant",
            "saved for backward, fp32",
            "saved under bf16 autocast",
            "of which fp32",
        ]
        rows = []
        for v in c["saved_for_backward_fp32"]:
            bf = c["saved_for_backward_bf16_autocast"][v]
            rows.append(
                [
                    v,
                    common.fmt_bytes(c["saved_for_backward_fp32"][v]["total_bytes"]),
                    common.fmt_bytes(bf["total_bytes"]),
                    common.fmt_bytes(bf["by_dtype"].get("float32", 0)),
                ]
            )
        lines += [
            "Activation bytes autograd saves in one forward (parameters excluded):",
            "",
            common.markdown_table(header, rows),
            "",
        ]
        fp32 = [k for k, d in c["hook_dtypes_bf16_autocast_layer0"].items() if d == "float32"]
        promoted = [k for k in fp32 if k.split(".")[-1] in BF16_IN_REFERENCE]
        lines += [
            "Hooks of layer 0 that carry float32 under bf16 autocast: "
            + (", ".join(f"`{k}`" for k in fp32) or "none")
            + ". The residual stream and LayerNorm are float32 in the reference too. "
            + (
                "These come out of `nn.Linear` in bf16 there but are float32 in ours: "
                + ", ".join(f"`{k}`" for k in promoted)
                + "."
                if promoted
                else "q, k, v (and so rotary, velocity and shear) and the MLP's activations "
                "are bf16 in ours, as in the reference."
            ),
            "",
        ]
        a = c["ablations"]
        header = ["model", "ms/step", "speed-up vs unpatched", "tokens/s over reference [p10, p90]"]
        rows = [
            [
                name,
                f"{r['ms_per_step']:.1f}",
                f"{r['speedup_vs_unpatched']:.3f}",
                f"{r['over_reference']:.3f} [{r['over_reference_p10_p90'][0]:.2f}, {r['over_reference_p10_p90'][1]:.2f}]",
            ]
            for name, r in a["results"].items()
        ]
        lines += [
            f"Ablations (paired, interleaved; load {a['load_average_before'][0]}→{a['load_average_after'][0]}):",
            "",
            common.markdown_table(header, rows),
            "",
        ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny,small", help="comma-separated presets")
    parser.add_argument("--seq-len", type=int, help="sequence length (default: the preset's)")
    parser.add_argument("--steps", type=int, default=12, help="timed rounds of the ablations")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR)


def main(args: argparse.Namespace) -> dict:
    presets = [p.strip() for p in args.preset.split(",") if p.strip()]
    result = run_overheads(presets, args.seq_len, args.steps, args.warmup, args.threads or None)
    stem = f"overheads_cpu_{result['meta']['date']}"
    common.write_json(args.out / f"{stem}.json", result)
    text = markdown(result)
    common.write_text(args.out / f"{stem}.md", text + "\n")
    print(text)
    return result
