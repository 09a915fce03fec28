"""The benchmark suite: the reference GPT as a second implementation, FLOPs, the throughput runner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

# `benchmarks` is a top-level package beside `momentum_interp` but not installed with it:
# make it importable when pytest is started as `pytest` (not `python -m pytest`) or elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common, demo_timing, overheads, throughput  # noqa: E402
from benchmarks.__main__ import main as benchmarks_main  # noqa: E402
from benchmarks.reference_gpt import (  # noqa: E402
    count_parameters,
    from_momentum,
    load_momentum_weights,
)

ROTARY_LN = dict(positional_embedding_type="rotary", normalization_type="LN", act_fn="gelu")


@pytest.mark.parametrize(
    "overrides",
    [
        dict(shear="none"),
        dict(shear="none", rotary_dim=2),  # partial rotary: channels past rotary_dim pass through
        dict(shear="qk", gamma=0.0),  # a momentum model with γ set to 0
        dict(shear="none", attn_only=True),
    ],
    ids=["gamma0", "partial-rotary", "qk-gamma0", "attn-only"],
)
def test_reference_matches_ours_at_gamma_zero(make_model, overrides):
    model = make_model(**{**ROTARY_LN, "attn_only": False, **overrides})
    reference = from_momentum(model).eval()
    tokens = torch.randint(
        0, model.cfg.d_vocab, (3, model.cfg.n_ctx), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        torch.testing.assert_close(reference(tokens), model(tokens), atol=1e-5, rtol=1e-5)


def test_reference_is_independent_of_the_shear(make_model):
    """With γ = 1 ours must differ from the γ = 0 reference: the comparison can see the shear."""
    model = make_model(**ROTARY_LN, attn_only=False, shear="qk", gamma=1.0)
    reference = from_momentum(model).eval()
    tokens = torch.randint(
        0, model.cfg.d_vocab, (2, model.cfg.n_ctx), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        assert (reference(tokens) - model(tokens)).abs().max() > 1e-3


def test_weight_mapping_round_trips_every_parameter(make_model):
    """Each reference parameter is written by the mapping (none left at its init)."""
    model = make_model(**ROTARY_LN, attn_only=False, shear="none")
    reference = from_momentum(model, copy_weights=False)
    with torch.no_grad():
        for p in reference.parameters():
            p.fill_(float("nan"))
    load_momentum_weights(reference, model)
    assert all(torch.isfinite(p).all() for p in reference.parameters())


@pytest.mark.parametrize("attn_only", [False, True])
def test_parameter_counts_equal(make_model, attn_only):
    model = make_model(**ROTARY_LN, attn_only=attn_only, shear="qk")
    assert count_parameters(from_momentum(model)) == count_parameters(model)


def test_parameter_counts_equal_for_presets():
    for name in ("tiny", "small"):
        models = throughput.build_models(throughput.PRESETS[name], 64, torch.device("cpu"))
        counts = {v: count_parameters(m) for v, m in models.items()}
        assert len(set(counts.values())) == 1, counts


def test_flop_formula_by_hand(make_model):
    # d_model 16, 4 heads of 4, d_mlp 24, d_vocab 23, 2 layers, rotary (no W_pos), LayerNorm.
    # per layer: q/k/v 3·(4·16·4) + 3·16 = 816, W_O 256 + b_O 16, two LNs 2·32, MLP 384+24+384+16
    #   = 816 + 272 + 64 + 808 = 1960; ln_final 32; W_U 368 + b_U 23; W_E 368
    model = make_model(**ROTARY_LN, attn_only=False, shear="qk")
    assert count_parameters(model) == 2 * 1960 + 32 + 391 + 368 == 4711
    n = throughput.flop_parameters(model)
    assert n == 4711 - 368  # the embedding table is a gather, not a matmul
    # 6 N + 12 · n_layers · d_model · T at T = 16
    assert throughput.model_flops_per_token(n, 2, 16, 16) == 6 * 4343 + 12 * 2 * 16 * 16 == 32202


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10G", None),  # not the A10: no published figure, so no MFU
        ("Tesla T4", None),
    ],
)
def test_peak_lookup(name, peak):
    found, source = throughput.peak_tflops(name)
    assert found == peak and source


def _check_record(config: dict) -> None:
    assert set(config["variants"]) == set(throughput.VARIANTS)
    for name, v in config["variants"].items():
        assert v["status"] == "ok", name
        for key in (
            "tokens_per_s",
            "ms_per_step",
            "achieved_gflops",
            "final_loss",
            "peak_memory_bytes",
        ):
            assert key in v, (name, key)
        assert v["tokens_per_s"] > 0 and v["ms_per_step"] > 0 and v["timed_steps"] == 2
        assert v["mfu"] is None  # CPU: no honest peak
    for key, ratio in config["ratios"].items():
        assert ratio is not None and ratio["ratio"] > 0 and ratio["ratio_of_medians"] > 0, key
    assert config["flops_per_token"] == throughput.model_flops_per_token(
        config["n_params_flops"],
        config["shape"]["n_layers"],
        config["shape"]["d_model"],
        config["seq_len"],
    )
    assert len(config["load_average_before"]) == 3 and len(config["load_average_after"]) == 3


def test_throughput_runner_tiny(tmp_path):
    benchmarks_main(
        [
            "throughput",
            "--preset",
            "tiny",
            "--seq-lens",
            "64",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--batch",
            "3",
            "--out",
            str(tmp_path),
        ]
    )
    (json_path,) = tmp_path.glob("throughput_cpu_*.json")
    result = json.loads(json_path.read_text())
    assert json_path.with_suffix(".md").exists()
    meta = result["meta"]
    for key in (
        "device_name",
        "torch",
        "date",
        "cpu_count",
        "load_average",
        "load_average_after",
        "flops_formula",
    ):
        assert key in meta
    (config,) = result["configs"]
    assert config["preset"] == "tiny" and config["seq_len"] == 64 and config["batch"] == 3
    _check_record(config)
    for v in config["variants"].values():
        # AdamW keeps two moments per parameter, so state = 3 × parameter bytes (+ step counters)
        param_bytes = 4 * config["n_params"]
        assert 3 * param_bytes <= v["state_bytes"] < 3 * param_bytes + 4096
        assert v["peak_memory_bytes"] == v["state_bytes"] + v["step_peak_transient_bytes"]
        # what autograd saves is all live at the end of the forward, so the peak is at least that
        assert v["step_peak_transient_bytes"] >= v["saved_for_backward_bytes"] > 0
    assert "| tiny | 64 |" in throughput.markdown(result)
    # the CUDA layout (TFLOP/s, MFU, memory table) renders from the same records
    result["meta"]["device"] = "cuda:0"
    for v in config["variants"].values():
        v.update(mfu=0.5, state_bytes=1, step_peak_transient_bytes=2, host_syncs_per_step=0)
    assert "host syncs / step" in throughput.markdown(result)


def test_cpu_peak_allocated_bytes_by_hand():
    def allocate():
        a = torch.empty(1_000_000)  # 4 MB
        b = torch.empty(2_000_000)  # 8 MB: 12 MB live, the peak
        del a
        c = torch.empty(500_000)  # 2 MB: 10 MB live
        del b
        return c

    held = torch.empty(3_000_000)  # live before the call: not counted
    assert common.cpu_peak_allocated_bytes(allocate) == 12_000_000
    del held


def test_merge_keeps_other_configs_measured_the_same_way(tmp_path):
    path = tmp_path / "t.json"
    how = {"device_name": "x", "memory_note": "m", "flops_formula": "f"}
    old = {
        "meta": {**how, "started": "a", "load_average": [1, 1, 1]},
        "configs": [
            {"preset": "small", "seq_len": 128, "batch": 4, "compile": False},
            {"preset": "tiny", "seq_len": 64, "batch": 16, "compile": False},
        ],
    }
    path.write_text(json.dumps(old))
    new = {
        "meta": {**how, "started": "b", "load_average": [2, 2, 2]},
        "configs": [{"preset": "tiny", "seq_len": 64, "batch": 3, "compile": False}],
    }
    merged = throughput.merge_previous(path, new)
    # another batch at the same (preset, T) is another config, kept beside the new one
    assert [(c["preset"], c["batch"]) for c in merged["configs"]] == [
        ("small", 4),
        ("tiny", 16),
        ("tiny", 3),
    ]
    assert len(merged["meta"]["merged_runs"]) == 2
    # rows whose memory was measured another way are not merged in
    new["meta"]["memory_note"] = "measured otherwise"
    assert throughput.merge_previous(path, new) is new


def test_overhead_patches_compute_the_same_numbers(make_model):
    for shear in ("none", "qk"):
        model = make_model(
            **ROTARY_LN, attn_only=False, shear=shear, gamma=0.0 if shear == "none" else 1.0
        )
        tokens = torch.randint(
            0, model.cfg.d_vocab, (2, model.cfg.n_ctx), generator=torch.Generator().manual_seed(2)
        )
        with torch.no_grad():
            expected = model(tokens)
            overheads.patch_fused_proj(model)
            torch.testing.assert_close(model(tokens), expected, atol=1e-5, rtol=1e-5)


def test_demo_timing_summary_names_the_dominant_piece():
    def run(threads, scale):
        seconds = {k: 0.1 * scale for k in demo_timing.PIECES} | {
            "import": 5.0 * scale,
            "best_head_patterns": 0.01,
        }
        return {
            "threads": threads,
            "seconds": seconds,
            "warm_seconds": {k: v for k, v in seconds.items() if k != "import"} | {"evaluate": 1.0},
            "imports_s": dict.fromkeys(demo_timing.IMPORTS, 0.5),
            "per_model_seconds": {"m": {"load_zoo": 0.1, "evaluate": 0.2, "rank_heads": 0.3}},
            "sum_of_pieces_s": sum(seconds[k] for k in demo_timing.PIECES),
            "warm_sum_of_pieces_s": 2.0,
            "run_demo_end_to_end_s": 2.0,
            "process_wall_s": 9.0,
        }

    runs = [run(1, 1.0), run(2, 1.1), run(1, 1.2), run(2, 0.9)]
    summary = demo_timing.summarise(runs)
    assert summary["1"]["dominant"][0] == "import"
    assert summary["1"]["warm_dominant"][0] == "evaluate"
    payload = {
        "meta": {
            "device_name": "cpu",
            "cpu_count": 2,
            "torch": "x",
            "date": "d",
            "load_average": [1, 1, 1],
            "load_average_after": [1, 1, 1],
            "repeats": 2,
        },
        "summary": summary,
        "verdict": demo_timing.verdict(summary),
        "runs": runs,
    }
    assert "import" in payload["verdict"]
    assert "What dominates" in demo_timing.markdown(payload)


def test_out_of_memory_variant_is_recorded_not_fatal(monkeypatch):
    original = throughput.Trainer.step

    def step(self, tokens):
        if self.name == "analysis":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return original(self, tokens)

    monkeypatch.setattr(throughput.Trainer, "step", step)
    config = throughput.run_config(
        throughput.PRESETS["tiny"], 32, torch.device("cpu"), steps=2, warmup=1
    )
    assert config["variants"]["analysis"]["status"] == "oom"
    assert config["ratios"]["fast_over_analysis"] is None
    assert config["ratios"]["gamma1_over_reference"]["ratio"] > 0
    assert "| oom |" in throughput.markdown(
        {
            "meta": {
                "device": "cpu",
                "device_name": "x",
                "torch": "t",
                "cpu_count": 2,
                "torch_threads": 1,
                "started": "s",
                "finished": "f",
                "load_average": [1, 1, 1],
                "load_average_after": [1, 1, 1],
                "flops_formula": "f",
                "peak_tflops": None,
                "peak_source": "",
                "timing": "t",
                "memory_note": "m",
            },
            "configs": [config],
        }
    )


def test_scoring_benchmark_agrees_with_detect_head(tmp_path):
    out = tmp_path / "scoring.json"
    benchmarks_main(
        [
            "scoring",
            "--sequences",
            "2",
            "--detect-sequences",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    # the two implementations score previous-token heads on the same sequences
    assert result["previous_token_max_abs_diff"] < 1e-5
    assert result["detect_head_extrapolated"] and result["detect_head_seconds"] == pytest.approx(
        2 * result["detect_head_seconds_measured"], rel=1e-2
    )
