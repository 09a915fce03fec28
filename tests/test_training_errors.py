"""Bad run configs and output directories fail early, with messages naming the problem and fix."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from momentum_interp import cli
from momentum_interp.training.config import RunConfig, load_run_config
from momentum_interp.training.loop import train
from momentum_interp.training.state import RunDirectory, RunDirectoryError

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny"
GOOD = (TINY / "induction.toml").read_text()


def write_config(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edited(old: str, new: str) -> str:
    """The tiny induction config with one line replaced."""
    assert old in GOOD, old
    return GOOD.replace(old, new)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["train", *argv])
    return code, capsys.readouterr().err


# ----------------------------------------------------------------------------- config files

# (config text, the message it must produce); every case also fails through the CLI with exit 2.
BAD_CONFIGS = {
    "malformed_toml": ("name = 'x'\n[model\nd_model = 16\n", r"run\.toml is not valid TOML"),
    "unknown_table": (
        GOOD + "\n[optim]\nlr = 1\n",
        r"Unknown top-level table\(s\) 'optim'\. Valid: model, name, task, train",
    ),
    "unknown_train_key": (
        edited("steps = 20", "steps = 20\nstepz = 3"),
        r"Unknown \[train\] option\(s\) 'stepz' \(did you mean 'steps'\?\)\. Valid: .*steps",
    ),
    "missing_task_name": (edited('name = "induction"\n', ""), r"\[task\] needs a name"),
    "missing_model_table": (
        GOOD[: GOOD.index("[model]")] + GOOD[GOOD.index("[task]") :],
        r"The run config needs a \[model\] table",
    ),
    "bad_train_value": (edited("steps = 20", "steps = 0"), r"steps must be a positive integer"),
    "warmup_past_steps": (
        edited("warmup_steps = 4", "warmup_steps = 50"),
        r"warmup_steps must lie in \[0, steps=20\]",
    ),
    "infinite_lr": (edited("lr = 3e-3", "lr = inf"), r"lr must be a finite positive number"),
    "nan_lr": (edited("lr = 3e-3", "lr = nan"), r"lr must be a finite positive number"),
    "negative_grad_clip": (
        edited("lr = 3e-3", "lr = 3e-3\ngrad_clip = -1.0"),
        r"grad_clip must be a finite number >= 0, got -1\.0",
    ),
    "negative_weight_decay": (
        edited("lr = 3e-3", "lr = 3e-3\nweight_decay = -0.1"),
        r"weight_decay must be a finite number >= 0, got -0\.1",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_file_is_rejected_naming_the_file(tmp_path, capsys, case):
    text, message = BAD_CONFIGS[case]
    path = write_config(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        load_run_config(path)
    assert str(path) in str(info.value)

    out = tmp_path / "out"
    code, err = run_cli(capsys, "--config", str(path), "--out", str(out))
    assert code == 2
    assert "momentum-interp train: error:" in err and re.search(message, err)
    assert not out.exists()


def test_missing_config_file_names_the_path(tmp_path, capsys):
    path = tmp_path / "nope" / "missing.toml"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_run_config(path)
    code, err = run_cli(capsys, "--config", str(path), "--out", str(tmp_path / "out"))
    assert code == 2 and "error:" in err and str(path) in err


# ------------------------------------------------------------- problems found when building


BAD_RUNS = {
    "unknown_task": (
        edited('name = "induction"', 'name = "inductoin"'),
        r"Unknown task 'inductoin' \(did you mean 'induction'\?\)\. Valid: associative_recall, "
        r"induction, mqar, repeated_tokens, text",
    ),
    "unknown_task_kwarg": (
        edited("seq_len = 20", "seq_length = 20"),
        r"Unknown argument\(s\) of task 'induction': 'seq_length' \(did you mean 'seq_len'\?\)\. "
        r"Valid: .*seq_len",
    ),
    "invalid_task_value": (
        edited("seq_len = 20", "seq_len = 10"),
        r"seq_len=10 cannot hold a segment of max_repeat=8",
    ),
    "invalid_model_option": (
        edited('shear = "qk"', 'shear = "bogus"'),
        r"shear='bogus' is not supported; choose one of \['qk', 'k', 'none'\]",
    ),
    "unknown_model_option": (
        edited("d_model = 16", "d_modle = 16"),
        r"Unknown \[model\] option\(s\) 'd_modle' \(did you mean 'd_model'\?\)",
    ),
    "model_context_shorter_than_task": (
        edited("d_model = 16", "d_model = 16\nn_ctx = 16"),
        r"\[model\] n_ctx = 16 is smaller than the task's sequence length \(\[task\] seq_len\), "
        r"20; raise \[model\] n_ctx to at least 20",
    ),
    "n_heads_not_dividing_d_model": (
        edited("d_head = 4\nn_heads = 4", "n_heads = 3"),
        r"d_head is not set and d_model=16 is not a multiple of n_heads=3.*set d_head",
    ),
    "model_vocabulary_smaller_than_task": (
        edited("d_model = 16", "d_model = 16\nd_vocab = 12"),
        r"\[model\] d_vocab = 12 is smaller than the task's vocabulary, 24; raise \[model\] "
        r"d_vocab to at least 24",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_task_or_model_fails_before_touching_the_out_dir(tmp_path, capsys, case):
    text, message = BAD_RUNS[case]
    path = write_config(tmp_path, text)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        train(load_run_config(path), out, progress=False)
    assert not out.exists()

    code, err = run_cli(capsys, "--config", str(path), "--out", str(out))
    assert code == 2
    assert "error:" in err and re.search(message, err)
    assert not out.exists()


def test_d_head_is_derived_from_n_heads(tmp_path):
    run = load_run_config(write_config(tmp_path, edited("d_head = 4\nn_heads = 4", "n_heads = 2")))
    assert run.model_config(24, 20).d_head == 8


def test_a_device_this_machine_lacks_fails_before_touching_the_out_dir(tmp_path, capsys):
    device = f"cuda:{max(7, torch.cuda.device_count())}"  # "cuda:7" unless 8+ GPUs are here
    path = write_config(tmp_path, edited('device = "cpu"', f'device = "{device}"'))
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--config", str(path), "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"device '{device}' does not exist on this machine; it has ['cpu'" in err
    assert not out.exists()


def test_text_task_on_an_empty_directory_reports_an_empty_corpus(tmp_path, capsys):
    empty = tmp_path / "corpus"
    empty.mkdir()
    (empty / "image.png").write_bytes(b"\x89PNG")  # present, but not a text suffix
    run = RunConfig(
        model={"d_model": 16, "d_head": 4, "n_layers": 1, "attn_only": True},
        task={"name": "text", "sources": [str(empty)], "cache_dir": str(tmp_path / "cache")},
    )
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"corpus is empty: no files matched .*corpus"):
        train(run, out, progress=False)
    assert not out.exists()


def test_cli_steps_override_is_validated(tmp_path, capsys):
    path = write_config(tmp_path, GOOD)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--config", str(path), "--out", str(out), "--steps", "0")
    assert code == 2 and "steps must be a positive integer, got 0" in err
    code, err = run_cli(capsys, "--config", str(path), "--out", str(out), "--steps", "2")
    assert code == 2 and "warmup_steps must lie in [0, steps=2]" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- out directory


def test_out_dir_holding_another_run_is_refused_unless_overwrite(tmp_path, capsys):
    first = load_run_config(TINY / "induction.toml")
    out = train(first, tmp_path / "run", progress=False)
    before = tree(out)

    second = load_run_config(TINY / "induction.toml")
    second.train = dataclasses.replace(second.train, seed=1)
    with pytest.raises(RunDirectoryError, match=r"already holds a different run.*--overwrite"):
        train(second, out, progress=False)
    assert tree(out) == before  # nothing of the old run was touched

    path = write_config(tmp_path, GOOD.replace("seed = 0", "seed = 1"))
    code, err = run_cli(capsys, "--config", str(path), "--out", str(out))
    assert code == 2 and "error:" in err and "--overwrite" in err
    assert tree(out) == before

    train(second, out, overwrite=True, progress=False)
    assert json.loads((out / "run_config.json").read_text())["train"]["seed"] == 1
    assert tree(out) != before
    assert not (out / "checkpoints").exists()


def test_non_empty_dir_without_run_config_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("do not delete")
    run = load_run_config(TINY / "induction.toml")
    with pytest.raises(
        RunDirectoryError, match=r"is not empty and holds no run config.*--overwrite"
    ):
        train(run, out, progress=False)
    assert tree(out) == {"notes.txt": b"do not delete"}

    path = write_config(tmp_path, GOOD)
    code, err = run_cli(capsys, "--config", str(path), "--out", str(out))
    assert code == 2 and "--overwrite" in err
    assert tree(out) == {"notes.txt": b"do not delete"}

    code, _ = run_cli(capsys, "--config", str(path), "--out", str(out), "--overwrite", "--quiet")
    assert code == 0
    assert not (out / "notes.txt").exists() and (out / "model.safetensors").is_file()


def test_empty_existing_dir_is_fine(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    train(load_run_config(TINY / "induction.toml"), out, progress=False)
    assert (out / "metrics.json").is_file()


def test_claim_compares_configs_as_stored(tmp_path):
    """A Python-API config with tuples is the same run after its JSON round trip (lists)."""
    config = {"task": {"name": "text", "sources": ("a.txt", "b.txt")}, "name": "x"}
    RunDirectory(tmp_path / "run").claim(config, overwrite=False)
    RunDirectory(tmp_path / "run").claim(config, overwrite=False)  # resuming: no error
    with pytest.raises(RunDirectoryError, match="different run"):
        RunDirectory(tmp_path / "run").claim({**config, "task": {"name": "x"}}, overwrite=False)


def test_a_run_named_differently_is_the_same_run(tmp_path):
    """Two sweeps sharing a runs directory name the same run differently: even with
    overwrite=True (as the sweep runner passes) the finished run is kept, not retrained."""
    config = {"task": {"name": "induction"}, "model": {"d_model": 8}, "name": "sweep-a"}
    RunDirectory(tmp_path / "run").claim(config, overwrite=False)
    (tmp_path / "run" / "metrics.json").write_text("{}")
    RunDirectory(tmp_path / "run").claim({**config, "name": "sweep-b"}, overwrite=True)
    assert (tmp_path / "run" / "metrics.json").read_text() == "{}"
    stored = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert stored["name"] == "sweep-a"
