"""Time `score_heads` against TransformerLens's `detect_head` on a 12-layer, 12-head model.

`score_heads` runs one batched forward per batch (caching only the attention patterns) and
computes four attention scores, the copying score and the ICL score. The baseline calls
`detect_head` once per head type per sequence (3 × n calls, each a full forward with a full
cache): the way one gets per-sequence induction / previous-token / duplicate-token scores from
TransformerLens. If the baseline runs on fewer sequences than `score_heads`, its time is
extrapolated linearly to the same count (each call is independent) and the JSON says so.

    python -m benchmarks scoring [--sequences 100] [--detect-sequences 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformer_lens.head_detector import detect_head

from benchmarks import common
from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.analysis.scoring import (
    repeated_random_tokens,
    score_heads,
    score_heads_on_tokens,
)

CONFIG = dict(d_model=384, d_head=32, n_layers=12, n_ctx=128, d_vocab=1000, attn_only=False, seed=0)
# detect_head requires seq_len < n_ctx, so both methods use 2 × 63 = 126 tokens.
HALF_LEN = 63
HEAD_TYPES = ("induction_head", "previous_token_head", "duplicate_token_head")
DEFAULT_OUT = Path(__file__).parent / "results" / "scoring_cpu.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--detect-sequences", type=int, default=100)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for both methods (default: torch's); 1 is far less noisy "
        "on a shared, oversubscribed machine",
    )


def main(args: argparse.Namespace) -> dict:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = common.load_average()

    model = HookedMomentumTransformer(MomentumConfig(**CONFIG)).eval()
    n = args.sequences
    n_detect = min(args.detect_sequences, n)
    tokens = repeated_random_tokens(model.cfg.d_vocab, HALF_LEN, n, seed=0)
    seqs = [" ".join(map(str, row)) for row in tokens.tolist()]

    score_heads(model, n_sequences=2, half_len=HALF_LEN, progress=False)  # warm-up
    start = time.perf_counter()
    df = score_heads(model, n_sequences=n, half_len=HALF_LEN, seed=0, progress=False)
    ours_s = time.perf_counter() - start

    with torch.no_grad():
        detect_head(model, seqs[0], "previous_token_head")  # warm-up
        start = time.perf_counter()
        previous = []
        for seq in seqs[:n_detect]:
            for head_type in HEAD_TYPES:
                scores = detect_head(model, seq, head_type, error_measure="mul")
                if head_type == "previous_token_head":
                    previous.append(scores)
        detect_measured_s = time.perf_counter() - start
    detect_s = detect_measured_s * n / n_detect

    # Sanity check where the definitions coincide exactly: previous-token "mul" = ours · (T−1)/T.
    n_pos = tokens.shape[1]
    # score_heads(seed=0) scored exactly `tokens`; re-score the subset detect_head saw if smaller.
    if n_detect < n:
        df = score_heads_on_tokens(model, tokens[:n_detect], half_len=HALF_LEN, progress=False)
    ours_prev = torch.tensor(df["previous_token"].to_numpy()).view(12, 12)
    detect_prev = torch.stack(previous).double().mean(0)
    max_diff = float((ours_prev * (n_pos - 1) / n_pos - detect_prev).abs().max())

    result = {
        "benchmark": "score_heads vs transformer_lens.head_detector.detect_head",
        "model": {**CONFIG, "n_heads": model.cfg.n_heads, "d_mlp": model.cfg.d_mlp},
        "seq_len": n_pos,
        "n_sequences": n,
        "score_heads_seconds": round(ours_s, 3),
        "score_heads_scores": [
            "induction",
            "prefix_matching",
            "previous_token",
            "duplicate_token",
            "copying",
            "in_context_learning",
        ],
        "detect_head_calls": len(HEAD_TYPES) * n_detect,
        "detect_head_sequences_measured": n_detect,
        "detect_head_seconds_measured": round(detect_measured_s, 3),
        "detect_head_seconds": round(detect_s, 3),
        "detect_head_extrapolated": n_detect < n,
        "speedup": round(detect_s / ours_s, 2),
        "previous_token_max_abs_diff": max_diff,
        "machine": common.machine(torch.device("cpu")),
        "load_average_1_5_15min": {"before": load_before, "after": common.load_average()},
    }
    if n_detect < n:
        result["note"] = (
            f"detect_head timed on {n_detect} of {n} sequences and scaled linearly by {n / n_detect:.2f}"
        )
    print(f"machine: {result['machine']}")
    print(f"score_heads, {n} sequences x {n_pos} tokens: {ours_s:.2f} s")
    print(
        f"detect_head, 3 head types x {n} sequences: {detect_s:.2f} s"
        + (
            f" (measured {detect_measured_s:.2f} s on {n_detect}, extrapolated)"
            if n_detect < n
            else ""
        )
    )
    print(f"speedup: {result['speedup']}x; previous-token agreement max |diff| = {max_diff:.2e}")
    common.write_json(args.out, result)
    print(f"wrote {args.out}")
    return result
