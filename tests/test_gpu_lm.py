"""The `lm` part of the GPU suite on CPU: its input check, its time guard and its sampler."""

import json
import sys
from pathlib import Path

import pytest
import tokenizers
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import op_counts  # noqa: E402
from benchmarks.gpu import lm  # noqa: E402
from momentum_interp.data import TokenStreamTask, tokenize_texts  # noqa: E402
from momentum_interp.data.code_corpus import count_tokens  # noqa: E402
from momentum_interp.model.checkpoint import pack_checkpoint  # noqa: E402


def test_missing_corpus_exits_2_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lm, "CORPUS_PATH", tmp_path / "nope.jsonl.xz")
    out = tmp_path / "out"
    assert lm.main([str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.jsonl.xz" in err
    assert "`momentum-interp corpus build`" in err
    assert not out.exists()  # nothing written


def test_missing_tokenizer_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "corpus.jsonl.xz").write_bytes(b"")
    monkeypatch.setattr(lm, "CORPUS_PATH", tmp_path / "corpus.jsonl.xz")
    monkeypatch.setattr(lm, "TOKENIZER_PATH", tmp_path / "tokenizer.json")
    assert lm.main([str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "tokenizer.json" in err and "corpus.jsonl.xz" not in err


def test_estimate_uses_the_measured_run_of_the_same_size_else_scales_the_first():
    small = dict(compile_s=40.0, n_layers=4, flops_per_token=1e8, flop_per_s=1e14, eval_s=2.0)
    big = dict(compile_s=70.0, n_layers=9, flops_per_token=3e8, flop_per_s=2e14, eval_s=5.0)
    entry = dict(size="3S", n_layers=9, flops_per_token=3e8, tokens_planned=50_000_000)
    # only S measured: compile 40 × 9/4, train 5e7 tokens × 3e8 FLOP / 1e14 FLOP/s, eval 2 × 3
    assert lm.estimate_s(entry, {"S": small}) == {
        "compile": 90.0,
        "train": 150.0,
        "eval": 6.0,
        "total": 246.0,
    }
    # 3S measured too: its own compile time, FLOP/s (5e7 × 3e8 / 2e14) and evaluation time
    assert lm.estimate_s(entry, {"S": small, "3S": big}) == {
        "compile": 70.0,
        "train": 75.0,
        "eval": 5.0,
        "total": 150.0,
    }
    # an S run (a little more FLOP per token, as the smeared key) reads S even after 3S
    entry = dict(size="S", n_layers=4, flops_per_token=1.1e8, tokens_planned=10_000_000)
    assert lm.estimate_s(entry, {"S": small, "3S": big}) == {
        "compile": 40.0,
        "train": 11.0,
        "eval": 2.2,
        "total": 53.2,
    }


PLANNED = 50_331_648


def record(status: str, tokens: int | None, val: float = 3.0, span: float = 2.0, icl=-0.5):
    """A made-up run record as `main` writes it."""
    entry = {"status": status, "tokens_planned": PLANNED}
    if tokens is not None:
        entry["tokens"] = tokens
        entry["metrics"] = {"val_loss": val, "induction_loss": span, "icl_score": icl}
    return entry


def test_gaps_only_between_runs_that_trained_every_token():
    stopped = "wall-clock budget: stopped at step 960 of 1536"
    runs = {
        "baseline-S": record("done", PLANNED, 3.3, 2.4, -0.3),
        "baseline-3S": record("done", PLANNED, 3.0, 2.0, -0.5),
        "momentum-S": record(stopped, 31_457_280, 3.2, 2.1, -0.45),
        "smeared-key-S": record("skipped: estimated 80 s, 12 s of the budget left", None),
        "keys-only-S": record("failed: CUDA out of memory.", None),
    }
    data = {"runs": runs, "no_gaps": "left over from an earlier write"}
    lm.add_gaps(data)
    assert "no_gaps" not in data
    gaps = data["gaps"]
    assert list(gaps) == list(runs)
    assert gaps["baseline-S"] == pytest.approx(
        {"val_loss": 0.1, "induction_loss": 0.2, "icl_score_diff": 0.2}
    )
    assert gaps["baseline-3S"] == {"val_loss": 0.0, "induction_loss": 0.0, "icl_score_diff": 0.0}
    assert gaps["momentum-S"] == {"not_compared": "stopped at 31,457,280 of 50,331,648 tokens"}
    assert gaps["smeared-key-S"] == {"not_compared": runs["smeared-key-S"]["status"]}
    assert gaps["keys-only-S"] == {"not_compared": "failed: CUDA out of memory."}
    # a stopped reference: no gaps at all, and the record says why at its top level
    runs["baseline-3S"] = record(stopped, 31_457_280)
    lm.add_gaps(data)
    assert data["gaps"] == {}
    assert (
        data["no_gaps"] == "the reference baseline-3S: stopped at 31,457,280 of 50,331,648 tokens"
    )
    del runs["baseline-3S"]  # not reached yet (written after the first run)
    lm.add_gaps(data)
    assert data["gaps"] == {} and data["no_gaps"] == "the reference baseline-3S: not run yet"


def test_icl_windows_are_the_toolkits_fractions():
    # entry j−1 predicts token j; tokens j with 0.05 ≤ j/512 < 0.15 are 26..76, 0.9 ≤ j/512 < 1
    # are 461..511
    assert lm.icl_windows(512) == ((25, 76), (460, 511))
    assert lm.icl_windows(64) == ((3, 9), (57, 63))  # the smoke: 4..9 and 58..63


def test_corpus_checked_against_the_manifest():
    facts = {"sha256": "ab" * 32, "train_tokens": 900, "val_tokens": 100}
    manifest = {"corpus": {"sha256": "ab" * 32}, "tokens": 1000, "tokenizers_version": "0.1"}
    same = lm.manifest_check(facts, manifest)
    assert same == {
        "tokenizers_version": tokenizers.__version__,
        "warnings": [],
        "corpus_matches_manifest": True,
        "tokens_match_manifest": True,
    }
    other = lm.manifest_check(facts | {"sha256": "cd" * 32, "val_tokens": 101}, manifest)
    assert other["corpus_matches_manifest"] is False and other["tokens_match_manifest"] is False
    assert len(other["warnings"]) == 2 and "1,001 train + val tokens" in other["warnings"][1]
    smoke = lm.manifest_check(facts, None)
    assert smoke["corpus_matches_manifest"] is None and smoke["tokens_match_manifest"] is None


def test_the_manifests_token_count_is_the_length_of_the_runs_streams(bpe_tokenizer):
    # the manifest's count is each document's tokens plus one <|endoftext|>, as the run's streams
    texts = ["def f():\n    return 1\n", "x = 2\n", "print(x)\n"]
    stream = tokenize_texts(texts, bpe_tokenizer)
    assert len(stream) == count_tokens(bpe_tokenizer, texts)


def test_an_exhausted_budget_stops_the_first_run_and_skips_the_rest(tmp_path):
    out = tmp_path / "out"
    assert lm.main([str(out), "--smoke", "--budget-s", "0"]) == 0
    runs = json.loads((out / "lm.json").read_text())["runs"]
    assert list(runs) == [name for name, _, _ in lm.RUNS]
    first = runs["baseline-S"]
    steps = lm.SMOKE["log_every"]  # it stops at its first look at the clock
    assert first["status"] == f"wall-clock budget: stopped at step {steps} of {lm.SMOKE['steps']}"
    assert first["steps"] == steps and first["tokens"] == steps * lm.SMOKE["batch"] * 64
    assert all(v == v for v in first["metrics"].values())  # evaluated all the same (no NaN)
    for name in list(runs)[1:]:
        assert runs[name]["status"].startswith("skipped: estimated"), name
        # (a warm process can round a smoke run's estimate to 0.0 s: its parts are what is checked)
        assert "metrics" not in runs[name]
        assert set(runs[name]["estimate_s"]) == {"compile", "train", "eval", "total"}
    record = json.loads((out / "lm.json").read_text())
    assert record["gaps"] == {} and record["no_gaps"].startswith("the reference baseline-3S: skip")
    assert sorted(p.name for p in out.iterdir()) == [
        "code-baseline-S.safetensors",
        "lm.json",
        "lm_log.jsonl",
        "summary.md",
    ]
    events = [json.loads(line)["event"] for line in (out / "lm_log.jsonl").read_text().splitlines()]
    assert events.count("skipped") == 4 and events.count("end") == 1


def test_sampling_a_training_batch_makes_no_host_sync():
    task = TokenStreamTask(torch.arange(1000) % 50, d_vocab=50, seq_len=64)
    generator = torch.Generator().manual_seed(0)
    counts = op_counts.count_ops(lambda: task.sample(8, generator))
    assert counts["index"] == 1 and op_counts.total(counts, op_counts.HOST_SYNCS) == 0


def test_full_sizes_match_the_documented_counts_and_s_packs_under_16_mib(tmp_path):
    task = TokenStreamTask(torch.zeros(600, dtype=torch.int32), d_vocab=8192, seq_len=512)
    counts, models = {}, {}
    for name, size, filt in lm.RUNS:
        model = lm.build_model(lm.run_config(name, size, filt, lm.FULL), task, "cpu")
        counts[name] = sum(p.numel() for p in model.parameters())
        models[name] = model
        if size == lm.PACKED_SIZE:
            path = tmp_path / f"{name}.safetensors"
            pack_checkpoint(path, model, dtype=torch.bfloat16)
            assert path.stat().st_size + 2**20 < 16 * 2**20  # with 1 MiB for the tokenizer
    assert counts["baseline-S"] == counts["momentum-S"] == counts["keys-only-S"] == 7_362_048
    assert counts["smeared-key-S"] == 7_362_048 + 4 * 4  # one α per head
    assert counts["baseline-3S"] == 22_270_592
    # without the embedding and unembedding (W_E, W_U: 8192 × d_model each, b_U: 8192)
    hidden = {name: lm.non_embedding_parameters(model) for name, model in models.items()}
    assert hidden["baseline-S"] == 7_362_048 - 2 * 8192 * 256 - 8192 == 3_159_552
    assert hidden["baseline-3S"] == 22_270_592 - 2 * 8192 * 384 - 8192 == 15_970_944
    assert lm.FULL["steps"] * lm.FULL["batch"] * lm.FULL["seq_len"] == 50_331_648 >= 50e6
    # The README states this plan: its numbers are these.
    readme = " ".join((Path(lm.__file__).parents[2] / "README.md").read_text().split())
    budget = lm.FULL["steps"] * lm.FULL["batch"] * lm.FULL["seq_len"]
    plan = (
        f"S has {counts['baseline-S']:,} parameters ({hidden['baseline-S']:,} without the "
        f"embedding and unembedding), 3×S {counts['baseline-3S']:,} "
        f"({hidden['baseline-3S']:,}), each trained on {budget:,} tokens "
        f"({lm.FULL['steps']:,} steps × {lm.FULL['batch']} windows × {lm.FULL['seq_len']} tokens)"
    )
    assert plan in readme
    total = counts["baseline-3S"] / counts["baseline-S"]
    non_embedding = hidden["baseline-3S"] / hidden["baseline-S"]
    assert f"3×S is {total:.2f}× S" in readme and f"it is {non_embedding:.2f}×" in readme


def test_a_failing_run_is_recorded_and_the_next_runs_go_on(tmp_path, monkeypatch):
    calls = []

    def fail(model, run, *args):
        calls.append(run.name)
        raise RuntimeError("CUDA out of memory.\nTried to allocate 1 GiB")

    monkeypatch.setattr(lm, "train", fail)
    out = tmp_path / "out"
    assert lm.main([str(out), "--smoke"]) == 0
    runs = json.loads((out / "lm.json").read_text())["runs"]
    assert calls == list(runs) == [name for name, _, _ in lm.RUNS]
    assert {run["status"] for run in runs.values()} == {"failed: CUDA out of memory."}
    assert sorted(p.name for p in out.iterdir()) == ["lm.json", "lm_log.jsonl", "summary.md"]
