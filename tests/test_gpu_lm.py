"""The `lm` part of the GPU suite on CPU: its input check, its time guard and its sampler."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import op_counts  # noqa: E402
from benchmarks.gpu import lm  # noqa: E402
from momentum_interp.data import TokenStreamTask  # noqa: E402
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


def test_estimate_scales_the_first_run():
    basis = dict(compile_s=40.0, n_layers=4, flops_per_token=1e8, flop_per_s=1e14, eval_s=2.0)
    entry = dict(n_layers=9, flops_per_token=3e8, tokens_planned=50_000_000)
    # compile 40 × 9/4, train 5e7 tokens × 3e8 FLOP / 1e14 FLOP/s, eval 2 × 3
    assert lm.estimate_s(entry, basis) == {
        "compile": 90.0,
        "train": 150.0,
        "eval": 6.0,
        "total": 246.0,
    }


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
        assert "metrics" not in runs[name] and runs[name]["estimate_s"]["total"] > 0
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
    counts = {}
    for name, size, filt in lm.RUNS:
        model = lm.build_model(lm.run_config(name, size, filt, lm.FULL), task, "cpu")
        counts[name] = sum(p.numel() for p in model.parameters())
        if size == lm.PACKED_SIZE:
            path = tmp_path / f"{name}.safetensors"
            pack_checkpoint(path, model.cfg, model.state_dict(), dtype=torch.bfloat16)
            assert path.stat().st_size + 2**20 < 16 * 2**20  # with 1 MiB for the tokenizer
    assert counts["baseline-S"] == counts["momentum-S"] == counts["keys-only-S"] == 7_362_048
    assert counts["smeared-key-S"] == 7_362_048 + 4 * 4  # one α per head
    assert counts["baseline-3S"] == 22_270_592
    assert lm.FULL["steps"] * lm.FULL["batch"] * lm.FULL["seq_len"] == 50_331_648 >= 50e6


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
