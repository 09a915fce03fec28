"""The analysis subcommands run end to end on a saved model and write what they promise."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil

import pandas as pd
import pytest
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from momentum_interp import HookedMomentumTransformer, MomentumConfig
from momentum_interp.cli import main
from momentum_interp.paths import REPO_ROOT


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = MomentumConfig(
        d_model=32,
        d_head=8,
        n_layers=1,
        n_ctx=48,
        d_vocab=48,
        attn_only=True,
        positional_embedding_type="rotary",
        seed=0,
        device="cpu",
    )
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    HookedMomentumTransformer(cfg).save_pretrained(path)
    return path


def test_score_prints_ranked_heads_and_writes_csv(checkpoint, tmp_path, capsys):
    csv = tmp_path / "scores.csv"
    args = ["score", str(checkpoint), "--sequences", "8", "--seed", "3", "--csv", str(csv)]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "induction" in out and "in-context-learning score" in out
    assert "8 sequences of 48 tokens, seed 3" in out and "top induction head(s)" in out
    table = pd.read_csv(csv)
    assert len(table) == 4  # one row per head, best first, each inside its interval
    assert (table["low"] <= table["induction"]).all() and (
        table["induction"] <= table["high"]
    ).all()
    assert table["induction"].is_monotonic_decreasing and table["tied_top"].iloc[0]
    numbers = json.loads((tmp_path / "score.json").read_text())
    assert numbers["provenance"]["seed"] == 3 and numbers["provenance"]["command"].startswith(
        "momentum-interp score"
    )
    assert [h["head"] for h in numbers["heads"]] == table["head"].tolist()


def test_trace_writes_html_and_numbers(checkpoint, tmp_path, capsys):
    out = tmp_path / "trace"
    args = ["trace", str(checkpoint), "--layer", "0", "--head", "2", "--sequences", "64"]
    assert main([*args, "--out", str(out)]) == 0
    numbers = json.loads((out / "trace.json").read_text())
    (trace,) = numbers["traces"]
    assert (trace["layer"], trace["head"]) == (0, 2) and numbers["headlines"][0]["head"] == [0, 2]
    assert abs(sum(trace["term_shares"].values()) - 1.0) < 1e-6
    assert numbers["provenance"]["seed"] == 0 and numbers["ranking"] is None
    assert "<script src=" not in (out / "trace.html").read_text()


def test_spectrum_and_report(checkpoint, tmp_path):
    assert (
        main(["spectrum", str(checkpoint), "--sequences", "4", "--out", str(tmp_path / "s")]) == 0
    )
    spectrum = json.loads((tmp_path / "s" / "spectrum.json").read_text())
    assert "separation" in spectrum and spectrum["provenance"]["seed"] == 0
    assert main(["report", str(checkpoint), "--sequences", "64", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert len(report["head_scores"]) == 4 and "spectral" in report
    tied = report["induction_ranking"]["tied"]
    assert [[t["layer"], t["head"]] for t in report["traces"]] == tied  # every tied head traced
    html = (tmp_path / "r" / "report.html").read_text()
    assert "CircuitsVis.render" in html and "Plotly" in html
    # γ*(N): the committed fair study's section, not a fit to the first (saturated) sweep
    assert "decided with each arm&#x27;s learning rate" in html and "scaling" not in report
    assert [s["command"] for s in report["gamma_studies"]] == [
        json.loads(p.read_text())["provenance"]["command"]
        for p in sorted((REPO_ROOT / "results" / "fair_gamma_star").glob("n*/study.json"))
    ]
    # the model's circuit explorer is written beside the report, which links it
    (href,) = re.findall(r'<p>Circuit explorer: <a href="([^"]+)">', html)
    explorer = (tmp_path / "r" / href).read_text()
    assert f'"name": "{report["name"]}"' in explorer and "<script src=" not in explorer


def test_models_shows_gamma_only_where_a_shear_is_on(capsys):
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "shear=qk gamma=1.0 " in lines["induction-1l-momentum"]
    for name in ("induction-1l-baseline", "induction-1l-smeared-key"):
        assert "shear=none" in lines[name] and "gamma" not in lines[name]


def test_every_command_has_a_row_in_the_readme_command_table():
    """The README's command table lists every subcommand `momentum-interp --help` offers."""
    import argparse

    from momentum_interp.cli import build_parser

    (commands,) = [
        a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    readme = (REPO_ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `momentum-interp ([a-z-]+)", readme, flags=re.MULTILINE))
    assert sorted(set(commands) - rows) == []


def test_missing_model_is_a_clear_error(capsys):
    assert main(["score", "no-such-model"]) == 2
    assert "No checkpoint directory" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["score", "trace", "spectrum", "report", "explore"])
def test_non_finite_weights_are_refused_naming_the_tensor(checkpoint, tmp_path, capsys, command):
    diverged = tmp_path / "nan"
    shutil.copytree(checkpoint, diverged)
    tensors = load_file(str(diverged / "model.safetensors"))
    tensors["blocks.0.attn.W_Q"][0, 0, 0] = math.nan  # committed with a matching checksum
    data = save_safetensors(tensors)
    (diverged / "model.safetensors").write_bytes(data)
    meta = json.loads((diverged / "config.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(data).hexdigest()
    (diverged / "config.json").write_text(json.dumps(meta))

    out = [] if command == "score" else ["--out", str(tmp_path / "out")]
    assert main([command, str(diverged), *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite weights (NaN or inf) in blocks.0.attn.W_Q (1 of" in err[0]
    assert not (tmp_path / "out").exists()


def test_layer_without_head_is_an_error(checkpoint, tmp_path, capsys):
    assert main(["trace", str(checkpoint), "--layer", "0", "--out", str(tmp_path / "t")]) == 2
    assert "--layer and --head go together" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("d_vocab, n_ctx", [(8, 16), (24, 8), (64, 128)])
def test_spectrum_of_a_model_whose_vocabulary_cannot_fill_its_context(tmp_path, d_vocab, n_ctx):
    """Examples shrink to the longest sequence of distinct tokens the vocabulary allows."""
    cfg = MomentumConfig(
        d_model=16, d_head=4, n_layers=1, n_ctx=n_ctx, d_vocab=d_vocab, seed=0, device="cpu"
    )
    HookedMomentumTransformer(cfg).save_pretrained(tmp_path / "m")
    args = ["spectrum", str(tmp_path / "m"), "--sequences", "2", "--out", str(tmp_path / "s")]
    assert main(args) == 0
    spectrum = json.loads((tmp_path / "s" / "spectrum.json").read_text())
    assert "separation" in spectrum and spectrum["provenance"]["seed"] == 0
