"""Before/after CPU measurements for issue 13: `python measure.py OUT.json ROUNDS` from a repository root."""

import json
import sys
import time

import torch

from benchmarks import nanogpt, op_counts
from benchmarks.throughput import PRESETS, run_config
from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.analysis.scoring import score_heads

torch.set_num_threads(1)
out = {}
# 1. matmul counts, one training step (forward + loss + backward), small preset T=64
p = PRESETS["small"]
ours = HookedMomentumTransformer(p.config(64, momentum=True))
g0 = HookedMomentumTransformer(p.config(64, momentum=False))
ref = nanogpt.from_momentum(g0)
tok = torch.randint(0, p.d_vocab, (2, 64), generator=torch.Generator().manual_seed(0))
c_ours = op_counts.count_ops(lambda: ours(tok, return_type="loss").backward())
c_ref = op_counts.count_ops(lambda: ref(tok, tok.roll(-1, 1))[1].backward())
out["matmuls"] = {
    "shape": "small preset (4 layers, d_model 256, 4 heads, d_vocab 4096), B=2, T=64",
    "ours_gamma1": {k: c_ours[k] for k in op_counts.MATMULS},
    "nanogpt": {k: c_ref[k] for k in op_counts.MATMULS},
    "ours_total": op_counts.total(c_ours, op_counts.MATMULS),
    "nanogpt_total": op_counts.total(c_ref, op_counts.MATMULS),
    "ours_local_scalar_dense_fwd": op_counts.count_ops(lambda: ours(tok))["_local_scalar_dense"],
}
print(out["matmuls"], flush=True)
# 2. eager CPU ratio
rec = run_config(
    p, 256, torch.device("cpu"), steps=int(sys.argv[2]) if len(sys.argv) > 2 else 10, warmup=2
)
out["eager_cpu"] = {
    "shape": "small preset T=256 B=4, 1 thread",
    "ratios": rec["ratios"],
    "tok_s": {k: v.get("tokens_per_s") for k, v in rec["variants"].items()},
}
print(out["eager_cpu"], flush=True)
# 3. interpretability
cfg = MomentumConfig(
    n_layers=12,
    d_model=768,
    n_heads=12,
    d_head=64,
    d_mlp=3072,
    d_vocab=50304,
    n_ctx=256,
    positional_embedding_type="rotary",
    shear="qk",
    gamma=1.0,
    seed=0,
)
m = HookedMomentumTransformer(cfg).eval()
x = torch.randint(0, 50304, (1, 256), generator=torch.Generator().manual_seed(1))


def best(fn, n=3):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


with torch.no_grad():
    f = best(lambda: m(x))
    c = best(lambda: m.run_with_cache(x))
out["run_with_cache"] = {
    "shape": "gpt2-small shape (12x768, d_vocab 50304), B=1, T=256, float32, 1 thread, best of 3",
    "forward_s": round(f, 4),
    "run_with_cache_s": round(c, 4),
    "ratio": round(c / f, 3),
}
print(out["run_with_cache"], flush=True)
scfg = MomentumConfig(
    d_model=384, d_head=32, n_layers=12, n_ctx=128, d_vocab=1000, attn_only=False, seed=0
)
sm = HookedMomentumTransformer(scfg).eval()
t = time.perf_counter()
score_heads(sm, n_sequences=100, progress=False)
first = time.perf_counter() - t
again = best(lambda: score_heads(sm, n_sequences=100, progress=False), 2)
out["score_heads"] = {
    "shape": "12 layers x 12 heads, d_model 384, n_ctx 128, d_vocab 1000, 100 sequences, 1 thread",
    "first_s": round(first, 3),
    "best_of_2_s": round(again, 3),
}
print(out["score_heads"], flush=True)
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
