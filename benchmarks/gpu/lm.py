"""GPU suite part `lm`: momentum against a 3× larger baseline on a code corpus, same token budget.

    python -m benchmarks.gpu.lm OUT_DIR [--smoke] [--budget-s 390]

Reads the code corpus (`data/code_corpus.jsonl.xz`) and its tokenizer
(`assets/code_corpus/tokenizer.json`, byte-level BPE, 8192 ids); without them it prints one line
naming `momentum-interp corpus build` and exits 2 before any work. Every 20th document in file
order is held out for validation (the corpus is sorted by package, so a tail split would be one
package); each split is tokenised (`encode_batch`, all cores) into its own uint16 stream,
documents separated by `<|endoftext|>`, and moved to the GPU, where training windows are cut.

Five models, in this order (the reference second, so the time guard never skips it), on the
same 50.3M tokens (1536 steps × 64 windows × T = 512) and schedule (AdamW, warmup 100 steps,
cosine to 0.1 × 1.5e-3), each step's forward + loss compiled, bf16 autocast:

    baseline-S     4 layers × 256, 4 heads, d_mlp 1024, rotary, LN, untied: 7,362,048 parameters
                   (3,159,552 without the embedding and unembedding)
    baseline-3S    9 layers × 384, 6 heads, d_mlp 1536: 22,270,592 parameters (3.03 × S),
                   15,970,944 without the embedding and unembedding (5.05 × S)
    momentum-S     the paper's q/k shear after RoPE, γ = 1
    smeared-key-S  Olsson et al.'s smeared key (learned α per head), no shear
    keys-only-S    the shear on keys only, γ = 1

(smeared key adds one α per head). S is as large as a bf16 checkpoint with its tokenizer under
16 MiB allows (about 14.3 MiB). After the first run, each run's time (compilation, training,
evaluation) is estimated from the measured run of its size, else from the first run's FLOP/s and
compile time scaled by depth; a run that would not end inside the wall-clock budget is skipped
with the reason recorded, and a run still training when the budget runs low stops early (also
recorded). Weights are rounded to bf16 (as packed), then evaluated on 1024 held-out windows:
validation loss, loss on repeated-span positions and the in-context-learning score (late minus
early window, `analysis.scoring.fraction_windows` as everywhere in the toolkit), with gaps
relative to baseline-3S between runs that trained the whole budget.

The corpus and tokenizer are checked against `assets/code_corpus/manifest.json` (sha256, token
count, `tokenizers` version); a mismatch is printed and recorded, not fatal.

The loop is written here rather than `training.loop.train`, which reads the loss on the host
every step and cannot tell compilation from throughput: this one syncs every `log_every` steps.

OUT_DIR, flat, written as it goes: `lm.json` (configs, parameter counts, token budget, tok/s, wall
times, metrics, skipped runs, provenance), `summary.md`, `lm_log.jsonl` (progress lines) and one
packed bf16 checkpoint per S model, `code-<run>.safetensors`, loadable with
`HookedMomentumTransformer.from_pretrained(path)`. `--smoke` runs the same code on a corpus of 48
standard-library files with a tokenizer trained on the fly and tiny models, in seconds on CPU.
"""

from __future__ import annotations

import json
import sys
import sysconfig
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import tokenizers
import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from benchmarks import common
from benchmarks.gpu_part import Budget, Recorder, parse_args
from benchmarks.reference_gpt import count_parameters
from benchmarks.throughput import flop_parameters, model_flops_per_token, step_loss, sync_device
from momentum_interp import HookedMomentumTransformer
from momentum_interp.analysis.lm import PAPER_GAP, lm_losses, relative_gap
from momentum_interp.analysis.scoring import EARLY_WINDOW, LATE_WINDOW, fraction_windows
from momentum_interp.data import (
    TokenStreamTask,
    hold_out_every,
    stdlib_corpus_files,
    tokenize_texts,
    train_bpe_tokenizer,
)
from momentum_interp.data.code_corpus import (
    CORPUS_PATH,
    MANIFEST_PATH,
    TOKENIZER_PATH,
    read_documents,
    sha256_of,
    write_documents,
)
from momentum_interp.evaluation import TRAIN_STREAM, seeded_generator
from momentum_interp.model.checkpoint import pack_checkpoint
from momentum_interp.provenance import git_commit
from momentum_interp.tables import markdown_table
from momentum_interp.training.config import OptimConfig, RunConfig
from momentum_interp.training.loop import make_optimizer
from momentum_interp.training.schedule import lr_at
from momentum_interp.training.state import RunDirectory

MODEL = dict(
    attn_only=False,
    act_fn="gelu",
    normalization_type="LN",
    positional_embedding_type="rotary",
    shear_placement="post_rope",
    seed=0,
)
# (run, size, filter) in training order: the later a run, the likelier the time guard skips it,
# so the reference comes second (after the S baseline, which gives the first estimate)
RUNS = (
    ("baseline-S", "S", {"shear": "none", "gamma": 0.0}),
    ("baseline-3S", "3S", {"shear": "none", "gamma": 0.0}),
    ("momentum-S", "S", {"shear": "qk", "gamma": 1.0}),
    ("smeared-key-S", "S", {"shear": "none", "gamma": 0.0, "smeared_key": True}),
    ("keys-only-S", "S", {"shear": "k", "gamma": 1.0}),
)
REFERENCE = "baseline-3S"
PACKED_SIZE = "S"  # the sizes whose checkpoints come back (each < 16 MiB in bf16)
# relative gaps to the reference; the ICL score (near zero) is compared by difference instead
GAP_METRICS = ("val_loss", "induction_loss")
OPTIM = dict(weight_decay=0.1, betas=(0.9, 0.95), min_lr_ratio=0.1, grad_clip=1.0, seed=0)
FULL = dict(
    seq_len=512,
    batch=64,
    steps=1536,
    warmup_steps=100,
    lr=1.5e-3,
    eval_batches=64,
    eval_batch=16,
    hold_out_every=20,
    log_every=50,
    backend="inductor",
    sizes={
        "S": dict(n_layers=4, d_model=256, n_heads=4, d_head=64, d_mlp=1024),
        "3S": dict(n_layers=9, d_model=384, n_heads=6, d_head=64, d_mlp=1536),
    },
)
SMOKE = FULL | dict(
    seq_len=64,
    batch=4,
    steps=6,
    warmup_steps=2,
    eval_batches=2,
    eval_batch=4,
    log_every=3,
    backend="eager",  # dynamo traces, inductor's code generation is skipped (minutes on a CPU)
    sizes={
        "S": dict(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64),
        "3S": dict(n_layers=2, d_model=48, n_heads=2, d_head=24, d_mlp=96),
    },
)
SMOKE_FILES, SMOKE_VOCAB = 48, 512
WARM_STEPS = 2  # steps timed as compilation (the first compiles, the second allocates AdamW state)
CHECKPOINT_EVERY_S = 300.0  # a resumable run's checkpoint interval (at a loss reading)
RESERVE_S = 15.0  # kept back for evaluating and packing the last run and the final writes
PROBE = 16  # tokens of the probe whose last logits are recorded, to check a packed checkpoint


class Log:
    """`lm_log.jsonl`: one JSON line per event, closed at once (a killed run keeps its lines)."""

    def __init__(self, path: Path, budget: Budget, append: bool = False):
        self.path = path
        self.budget = budget
        if not append:  # a run starts its own log, as it starts its own lm.json (a resumed one
            path.write_text("")  # goes on with the log it had)

    def __call__(self, event: str, **fields) -> None:
        line = {"t_s": round(self.budget.elapsed(), 2), "event": event, **fields}
        with self.path.open("a") as f:
            f.write(json.dumps(line) + "\n")


def missing_inputs() -> str | None:
    """The one-line error when the corpus or its tokenizer is absent, else None."""
    missing = [str(p) for p in (CORPUS_PATH, TOKENIZER_PATH) if not p.is_file()]
    if not missing:
        return None
    return (
        f"lm: missing {' and '.join(missing)}; build the code corpus and its tokenizer with "
        "`momentum-interp corpus build` (needs the package index once), then rerun"
    )


def smoke_inputs(folder: Path) -> tuple[Path, Tokenizer]:
    """A corpus file of a few standard-library sources and a small tokenizer trained on them."""
    files = stdlib_corpus_files()[:SMOKE_FILES]
    root = Path(sysconfig.get_paths()["stdlib"])
    corpus = folder / "smoke_corpus.jsonl.xz"
    write_documents(((str(f.relative_to(root)), f.read_text()) for f in files), corpus)
    return corpus, train_bpe_tokenizer(files, vocab_size=SMOKE_VOCAB)


def tokenised_splits(corpus: Path, tokenizer: Tokenizer, every: int) -> tuple[dict, dict]:
    """`({"train": stream, "val": stream}, facts)`: every `every`-th document held out."""
    texts = [text for _, text in read_documents(corpus)]
    train, val = hold_out_every(texts, every)
    streams = {
        name: tokenize_texts(docs, tokenizer, chunk_size=1024, total=len(docs))
        for name, docs in (("train", train), ("val", val))
    }
    facts = {
        "path": str(corpus),
        "sha256": sha256_of(corpus),
        "bytes": corpus.stat().st_size,
        "documents": len(texts),
        "text_chars": sum(map(len, texts)),
        "val_rule": f"every {every}th document in file order, i.e. documents {every - 1}, "
        f"{2 * every - 1}, ... counting from 0",
        "train_documents": len(train),
        "val_documents": len(val),
        "train_tokens": len(streams["train"]),
        "val_tokens": len(streams["val"]),
        "d_vocab": tokenizer.get_vocab_size(),
    }
    return streams, facts


def manifest_check(facts: dict, manifest: dict | None) -> dict:
    """The corpus read against its committed manifest: the `tokenizers` version, whether the file's
    sha256 and the train + val token count (each document's tokens and one `<|endoftext|>`, as the
    manifest counts) equal the manifest's (None without a manifest: the smoke), and a warning per
    mismatch (a different `tokenizers` can tokenise differently)."""
    out = {"tokenizers_version": tokenizers.__version__, "warnings": []}
    if manifest is None:
        return out | {"corpus_matches_manifest": None, "tokens_match_manifest": None}
    tokens = facts["train_tokens"] + facts["val_tokens"]
    out["corpus_matches_manifest"] = facts["sha256"] == manifest["corpus"]["sha256"]
    out["tokens_match_manifest"] = tokens == manifest["tokens"]
    if not out["corpus_matches_manifest"]:
        out["warnings"].append(
            f"corpus sha256 {facts['sha256'][:12]}… differs from the manifest's "
            f"{manifest['corpus']['sha256'][:12]}…"
        )
    if not out["tokens_match_manifest"]:
        out["warnings"].append(
            f"{tokens:,} train + val tokens, the manifest counts {manifest['tokens']:,} "
            f"(tokenizers {tokenizers.__version__} here, {manifest['tokenizers_version']} there)"
        )
    return out


def run_config(
    name: str, size: str, filt: dict, shape: dict, lr: float | None = None, seed: int = 0
) -> RunConfig:
    """One run: its model (size + filter), the text task shape, and the shared schedule, at
    `lr` (default the shape's) and `seed` (initial weights and training stream, as everywhere)."""
    train = OptimConfig(
        steps=shape["steps"],
        batch_size=shape["batch"],
        lr=shape["lr"] if lr is None else lr,
        warmup_steps=shape["warmup_steps"],
        compile=True,
        bf16=True,
        **(OPTIM | {"seed": seed}),
    )
    model = MODEL | shape["sizes"][size] | filt | {"seed": seed}
    return RunConfig(model, {"name": "text", "seq_len": shape["seq_len"]}, train, name)


def build_model(run: RunConfig, task: TokenStreamTask, device) -> HookedMomentumTransformer:
    cfg = run.model_config(task.d_vocab, task.seq_len)
    cfg.device, cfg.model_name = str(device), f"code-{run.name}"  # its name in the zoo
    return HookedMomentumTransformer(cfg)


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters outside the embedding and unembedding (the count scaling laws use)."""
    outside = ("embed.", "pos_embed.", "unembed.")
    return sum(
        p.numel()
        for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith(outside)
    )


def params_ratio(runs: dict) -> dict:
    """The reference's parameters over baseline-S's, in total and without (un)embedding. (The
    paper's 124M/355M pair is 2.86× in total.)"""
    small, big = runs["baseline-S"], runs[REFERENCE]
    return {k: big[k] / small[k] for k in ("n_params", "n_params_non_embedding")}


def estimate_s(entry: dict, measured: dict[str, dict]) -> dict:
    """Seconds a run will take, from `measured` (size -> its first measured run, in run order):
    that of the run's size if there is one, else the first run's, with its FLOP/s, its compile
    time scaled by depth and its evaluation time scaled by FLOPs per token."""
    basis = measured.get(entry["size"]) or next(iter(measured.values()))
    flops = entry["flops_per_token"] / basis["flops_per_token"]
    parts = {
        "compile": basis["compile_s"] * entry["n_layers"] / basis["n_layers"],
        "train": entry["tokens_planned"] * entry["flops_per_token"] / basis["flop_per_s"],
        "eval": basis["eval_s"] * flops,
    }
    return {k: round(v, 1) for k, v in parts.items()} | {"total": round(sum(parts.values()), 1)}


def train(
    model,
    run: RunConfig,
    task: TokenStreamTask,
    shape: dict,
    budget,
    log,
    resume: RunDirectory | None = None,
) -> dict:
    """Train on `run.train`'s schedule, reading the loss every `log_every` steps only; stops
    early if the budget runs low. Returns steps, tokens, compile and training time, tok/s.

    With `resume` (a run directory the caller has claimed for this run), a checkpoint of the
    model, optimiser and data stream is saved at a loss reading every `CHECKPOINT_EVERY_S`
    seconds, and a run cut off resumes from the last one exactly where it was
    (`resumed_at_step` in the result; the timings are the last segment's)."""
    opt, device = run.train, model.W_E.device
    optimizer = make_optimizer(model, run)
    loss_fn = torch.compile(step_loss("ours", model), dynamic=False, backend=shape["backend"])
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    generator = seeded_generator(device, opt.seed, TRAIN_STREAM)
    tokens_per_step = opt.batch_size * task.seq_len
    out, recent, steady, first = {}, [], None, 0
    if resume is not None and (latest := resume.latest_checkpoint()) is not None:
        first, state = resume.load_checkpoint(latest, model, optimizer)
        generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        out.update(train_loss=state["train_loss"], resumed_at_step=first)
        log("resume", run=run.name, step=first)  # steps after it were logged once before
    saved_at = time.monotonic()
    model.train()
    start = time.perf_counter()
    for step in tqdm(range(first, opt.steps), desc=run.name, mininterval=2):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, opt)
        batch = task.sample(opt.batch_size, generator)
        with autocast:
            loss = loss_fn(batch.tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        recent.append(loss.detach())
        done = step + 1
        if done == first + WARM_STEPS:
            sync_device(device)
            steady = (time.perf_counter(), done)
            out["compile_s"] = round(steady[0] - start, 2)
        if done % shape["log_every"] == 0 or done == opt.steps:
            out["train_loss"] = float(torch.stack(recent).float().mean())  # the step's one sync
            recent.clear()
            elapsed = time.perf_counter() - start
            log("step", run=run.name, step=done, train_loss=round(out["train_loss"], 4),
                lr=lr_at(step, opt), elapsed_s=round(elapsed, 2))  # fmt: skip
            if budget.left() < RESERVE_S and done < opt.steps:
                out["stopped"] = f"wall-clock budget: stopped at step {done} of {opt.steps}"
                break
            due = time.monotonic() - saved_at >= CHECKPOINT_EVERY_S
            if resume is not None and done < opt.steps and due:
                state = {"generator": generator.get_state().tolist(), **out}
                resume.save_checkpoint(done, model, optimizer, state)
                saved_at = time.monotonic()
    sync_device(device)
    end = time.perf_counter()
    out.update(steps=done, tokens=done * tokens_per_step, train_s=round(end - start, 2))
    if steady is not None and done > steady[1]:
        out["tokens_per_s"] = round((done - steady[1]) * tokens_per_step / (end - steady[0]), 1)
    return out


@torch.no_grad()
def round_to_bf16(model: torch.nn.Module) -> None:
    """Round every weight to bf16 in place, so the metrics are those of the packed checkpoint."""
    for param in model.parameters():
        param.copy_(param.to(torch.bfloat16))


@torch.no_grad()
def probe_logits(model, task: TokenStreamTask) -> dict:
    """The first validation tokens and the first 8 float32 logits at the last of them."""
    tokens = task.tokens[:PROBE].long()[None].to(model.W_E.device)
    logits = model(tokens)[0, -1, :8].float().cpu()
    return {"tokens": tokens[0].tolist(), "logits_last_8": logits.tolist()}


def icl_windows(seq_len: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The per-token loss windows of the ICL score: the toolkit's fractions of the window (tokens
    j with j / T in `EARLY_WINDOW` against `LATE_WINDOW`), as `score_heads` uses them."""
    return fraction_windows(seq_len, EARLY_WINDOW, LATE_WINDOW)


def evaluate(model, task: TokenStreamTask, shape: dict) -> dict:
    """`lm_losses` with the ICL score on the held-out windows, under bf16 autocast on CUDA."""
    device = model.W_E.device
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    )
    with torch.no_grad(), autocast:
        return lm_losses(
            model,
            task,
            n_batches=shape["eval_batches"],
            batch_size=shape["eval_batch"],
            seed=0,
            icl_windows=icl_windows(task.seq_len),
        )


def measure(
    entry: dict,
    model,
    run: RunConfig,
    tasks: dict,
    shape: dict,
    budget,
    log,
    resume: RunDirectory | None = None,
) -> None:
    """Train (resumably, with `resume`), round to bf16, evaluate and probe one model, recording
    into `entry` as it goes."""
    entry.update(train(model, run, tasks["train"], shape, budget, log, resume))
    entry["status"] = entry.pop("stopped", "done")
    round_to_bf16(model)
    started = time.perf_counter()
    entry["metrics"] = evaluate(model, tasks["val"], shape)
    entry["eval_s"] = round(time.perf_counter() - started, 2)
    entry["probe"] = probe_logits(model, tasks["val"])


def not_compared(entry: dict) -> str | None:
    """Why a run's metrics cannot be compared on equal terms (None when it trained its whole
    token budget): stopped early, skipped, failed or not run yet."""
    planned, tokens = entry["tokens_planned"], entry.get("tokens")
    if entry["status"] == "done" and tokens == planned:
        return None
    if tokens is not None and tokens != planned:
        return f"stopped at {tokens:,} of {planned:,} tokens"
    return entry["status"]


def add_gaps(data: dict) -> None:
    """`data["gaps"]`: each fully trained run's relative gap to the reference (baseline-3S) in
    validation and repeated-span loss, and its ICL score minus the reference's (nats: a ratio of
    two scores near zero can swing wildly); other runs say why they have none. With the reference
    itself not fully trained, no gaps, and `data["no_gaps"]` says why."""
    runs = data["runs"]
    reason = not_compared(runs[REFERENCE]) if REFERENCE in runs else "not run yet"
    data.pop("no_gaps", None)
    if reason is not None:
        data["gaps"], data["no_gaps"] = {}, f"the reference {REFERENCE}: {reason}"
        return
    ref = runs[REFERENCE]["metrics"]
    data["gaps"] = {
        name: {"not_compared": why}
        if (why := not_compared(entry)) is not None
        else {m: relative_gap(entry["metrics"][m], ref[m]) for m in GAP_METRICS}
        | {"icl_score_diff": entry["metrics"]["icl_score"] - ref["icl_score"]}
        for name, entry in runs.items()
    }


def summary(data: dict) -> str:
    """`summary.md`: one row per run, and the settings a reader needs to read the numbers."""
    runs, gaps = data["runs"], data.get("gaps", {})
    header = ["run", "params", "tokens", "tok/s", "wall s", "val loss", "repeated-span loss"]
    header += ["ICL score", "val gap", "repeated gap", "ICL − ref", "status"]
    rows = []
    for name, entry in runs.items():
        m, g = entry.get("metrics", {}), gaps.get(name, {})
        cell = lambda d, k, f: f.format(d[k]) if k in d else "–"  # noqa: E731
        rows.append(
            [name, f"{entry['n_params']:,}", f"{entry.get('tokens', 0):,}",
             cell(entry, "tokens_per_s", "{:,.0f}"), cell(entry, "wall_s", "{:.1f}"),
             cell(m, "val_loss", "{:.4f}"), cell(m, "induction_loss", "{:.4f}"),
             cell(m, "icl_score", "{:+.4f}"), cell(g, "val_loss", "{:+.2%}"),
             cell(g, "induction_loss", "{:+.2%}"), cell(g, "icl_score_diff", "{:+.4f}"),
             entry["status"]]
        )  # fmt: skip
    early, late = data["eval"]["icl_windows"]
    budget = data["token_budget"]
    lines = [
        f"# LM comparison on the code corpus{' (smoke)' if data['smoke'] else ''}",
        "",
        f"{data['machine']['device_name']}, torch {data['machine']['torch']}, commit "
        f"`{data['git_commit']}`, {data['started']}.",
        "",
        markdown_table(header, rows, "lrrrrrrrrrrl"),
        "",
        f"Every model: {budget['tokens_per_model']:,} tokens ({budget['steps']} steps × "
        f"{budget['batch']} windows × T = {budget['seq_len']}), "
        f"{budget['epochs']:.2f} epochs of the training split; "
        f"validation: {data['eval']['windows']} held-out windows ({data['corpus']['val_rule']}).",
        f"Gaps are `value / {REFERENCE} − 1`, only between runs that trained every token"
        + (f" (none here: {data['no_gaps']})" if "no_gaps" in data else "")
        + f" (the paper: momentum at 125M within "
        f"{PAPER_GAP:.1%} of a 350M baseline's loss). Repeated-span positions: the next token "
        "continues a span that already occurred in the window (`data.repeated_span_mask`, 2 "
        f"tokens matched). ICL score: mean loss at positions [{late[0]}, {late[1]}) minus "
        f"[{early[0]}, {early[1]}) (position t predicts token t + 1; the fractions "
        f"{EARLY_WINDOW} and {LATE_WINDOW} of the window); negative = later context "
        "helps; `ICL − ref` is the run's score minus the reference's (negative: a larger drop).",
        *(f"Warning: {w}." for w in data["corpus"].get("warnings", [])),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args("lm", __doc__, argv)
    if not args.smoke and (problem := missing_inputs()):
        print(problem, file=sys.stderr)
        return 2
    budget = Budget(args.budget_s)
    shape = SMOKE if args.smoke else FULL
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    rec = Recorder(args.out_dir, "lm")
    log = Log(args.out_dir / "lm_log.jsonl", budget)
    budget_tokens = shape["steps"] * shape["batch"] * shape["seq_len"]
    rec.data.update(
        smoke=args.smoke,
        machine=common.machine(device),
        git_commit=git_commit(),
        budget_s=args.budget_s,
        shape=shape,
        optimizer=OPTIM,
        reference=REFERENCE,
        paper_gap=PAPER_GAP,
        runs={},
    )
    with tempfile.TemporaryDirectory() as scratch:
        corpus, tokenizer = (
            smoke_inputs(Path(scratch))
            if args.smoke
            else (CORPUS_PATH, Tokenizer.from_file(str(TOKENIZER_PATH)))
        )
        started = time.perf_counter()
        streams, rec.data["corpus"] = tokenised_splits(corpus, tokenizer, shape["hold_out_every"])
    rec.data["corpus"]["tokenize_s"] = round(time.perf_counter() - started, 2)
    manifest = None if args.smoke else json.loads(MANIFEST_PATH.read_text())
    rec.data["corpus"] |= manifest_check(rec.data["corpus"], manifest)
    for warning in rec.data["corpus"]["warnings"]:
        print(f"lm: warning: {warning}", file=sys.stderr)
    rec.data["token_budget"] = {
        "tokens_per_model": budget_tokens,
        "steps": shape["steps"],
        "batch": shape["batch"],
        "seq_len": shape["seq_len"],
        "epochs": budget_tokens / rec.data["corpus"]["train_tokens"],
    }
    n_windows = shape["eval_batches"] * shape["eval_batch"]
    rec.data["eval"] = {
        "windows": n_windows,
        "seed": 0,
        "icl_fractions": (EARLY_WINDOW, LATE_WINDOW),
        "icl_windows": icl_windows(shape["seq_len"]),
    }
    log("corpus", **rec.data["corpus"])
    rec.write()
    tasks = {
        name: TokenStreamTask(
            torch.from_numpy(stream.astype(np.int32)).to(device),
            d_vocab=tokenizer.get_vocab_size(),
            seq_len=shape["seq_len"],
        )
        for name, stream in streams.items()
    }
    runs, measured = rec.data["runs"], {}  # size -> its first run with a throughput
    for name, size, filt in RUNS:
        run = run_config(name, size, filt, shape)
        model = build_model(run, tasks["train"], device)
        entry = runs[name] = {
            "status": "pending",
            "config": run.to_dict(),
            "model_config": model.cfg.to_dict(),
            "size": size,
            "n_params": count_parameters(model),
            "n_params_non_embedding": non_embedding_parameters(model),
            "n_layers": model.cfg.n_layers,
            "flops_per_token": model_flops_per_token(
                flop_parameters(model), model.cfg.n_layers, model.cfg.d_model, shape["seq_len"]
            ),
            "tokens_planned": budget_tokens,
        }
        if name == REFERENCE:
            rec.data["params_ratio_3S_S"] = params_ratio(runs)
        if measured:
            entry["estimate_s"] = estimate_s(entry, measured)
            if entry["estimate_s"]["total"] > budget.left() - RESERVE_S:
                entry["status"] = (
                    f"skipped: estimated {entry['estimate_s']['total']:.0f} s, "
                    f"{budget.left() - RESERVE_S:.0f} s of the budget left"
                )
                log("skipped", run=name, reason=entry["status"])
                add_gaps(rec.data)
                rec.write()
                continue
        log("start", run=name, n_params=entry["n_params"])
        started = time.perf_counter()
        try:
            measure(entry, model, run, tasks, shape, budget, log)
            if size == PACKED_SIZE:
                path = args.out_dir / f"{model.cfg.model_name}.safetensors"
                pack_checkpoint(path, model, tokenizer, torch.bfloat16)
                entry["checkpoint"] = {"file": path.name, "bytes": path.stat().st_size}
        except RuntimeError as error:  # out of memory, a compiler failure: the next runs go on
            entry["status"] = f"failed: {str(error).strip().splitlines()[0][:300]}"
        entry["wall_s"] = round(time.perf_counter() - started, 2)
        if size not in measured and "tokens_per_s" in entry and "metrics" in entry:
            measured[size] = entry | {
                "flop_per_s": entry["tokens_per_s"] * entry["flops_per_token"]
            }
        add_gaps(rec.data)
        log("end", run=name, **{k: entry.get(k) for k in ("status", "wall_s", "metrics")})
        rec.write()
        common.write_text(args.out_dir / "summary.md", summary(rec.data))
        del model
        torch._dynamo.reset()  # the next model compiles afresh, not as a recompile of this one
        if device.type == "cuda":
            torch.cuda.empty_cache()
    rec.data["elapsed_s"] = round(budget.elapsed(), 1)
    rec.write()
    common.write_text(args.out_dir / "summary.md", summary(rec.data))
    print(f"lm part done in {budget.elapsed():.0f} s: {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
