"""Bad paths and config typos fail fast: one line, exit status 2, before torch is imported."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from momentum_interp import cli
from momentum_interp.cli import main
from momentum_interp.training.config import load_run_config

CHECK = (
    "import sys; from momentum_interp.cli import main; rc = main(sys.argv[1:]); "
    "assert 'torch' not in sys.modules, 'torch was imported before the argument check'; "
    "sys.exit(rc)"
)


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *args], capture_output=True, text=True, timeout=60
    )
    return done, time.perf_counter() - start


@pytest.fixture
def paths(tmp_path):
    a_file, a_dir = tmp_path / "a_file.txt", tmp_path / "a_dir"
    a_file.write_text("keep me")
    a_dir.mkdir()
    return a_file, a_dir


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["demo", "--out", "{file}"], "{file}"),
        (["trace", "induction-1l-momentum", "--out", "{file}"], "{file}"),
        (["spectrum", "induction-1l-momentum", "--out", "{file}/inside"], "{file}"),
        (["score", "induction-1l-momentum", "--csv", "{dir}"], "{dir}"),
        (["report", "induction-1l-momentum", "--out", "/proc/no-such-dir/out"], "/proc"),
        (["train", "--config", "{dir}/missing.toml"], "{dir}/missing.toml"),
        (["sweep", "{dir}"], "{dir}"),
        (["scaling", "{dir}/results.csv"], "{dir}/results.csv"),
    ],
)
def test_bad_paths_exit_2_fast_with_the_path_named(paths, args, named):
    a_file, a_dir = paths
    fill = {"file": str(a_file), "dir": str(a_dir)}
    done, seconds = run_cli(*(arg.format(**fill) for arg in args))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named.format(**fill) in lines[0], done.stderr
    assert seconds < 5.0
    assert a_file.read_text() == "keep me" and list(a_dir.iterdir()) == []  # nothing touched


def test_writable_output_passes_the_check_and_leaves_no_probe(tmp_path):
    from momentum_interp.arguments import output_dir

    assert output_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def study_inputs(tmp_path):
    """A run directory with a history index, a full sweep --out directory and one without its
    spec: what `formation` and `mechanism` take."""
    (tmp_path / "run" / "history").mkdir(parents=True)
    (tmp_path / "run" / "history" / "index.json").write_text('{"steps": [], "paths": []}')
    for name in ("sweep", "no_spec"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text("")
    (tmp_path / "sweep" / "sweep_spec.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["formation", "{tmp}/missing"], "{tmp}/missing does not exist"),
        (["mechanism", "{tmp}/missing"], "{tmp}/missing does not exist"),
        (["formation", "{tmp}/no_spec"], "not a sweep's results directory (no sweep_spec.json)"),
        (["formation", "{tmp}/run", "--sequences", "0"], "argument --sequences: 0 is too few"),
        (["mechanism", "{tmp}/sweep", "--sequences", "0"], "argument --sequences: 0 is too few"),
        (["formation", "{tmp}/run", "--runs-dir", "{tmp}"], "--runs-dir applies to a sweep"),
        *(
            ([command, "induction-1l-momentum", "--sequences", "0"], "0 is too few")
            for command in ("score", "trace", "spectrum", "report")
        ),
        (["demo", "--sequences", "0"], "argument --sequences: 0 is too few"),
    ],
)
def test_per_run_study_inputs_exit_2_fast_with_the_fix(study_inputs, args, named):
    """`formation` and `mechanism` refuse a missing path, a sweep folder without its spec, no
    sequences and a --runs-dir for a single run, and every command no sequences: one line,
    status 2, before torch loads."""
    done, seconds = run_cli(*(arg.format(tmp=study_inputs) for arg in args))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named.format(tmp=study_inputs) in lines[0], done.stderr
    assert seconds < 5.0


@pytest.mark.parametrize(
    ("table", "typo", "suggestion"),
    [
        ("model", "gama = 1.0", "gamma"),
        ("train", "setps = 10", "steps"),
        ("task", "seq_lenn = 32", "seq_len"),
    ],
)
def test_config_typos_name_the_file_and_the_nearest_option(tmp_path, table, typo, suggestion):
    tables = {"model": ["d_model = 32"], "task": ['name = "induction"'], "train": ["steps = 500"]}
    tables[table].append(typo)
    path = tmp_path / "run.toml"
    path.write_text("\n".join(f"[{t}]\n" + "\n".join(lines) for t, lines in tables.items()))
    with pytest.raises(ValueError) as error:
        load_run_config(path)
    message = str(error.value)
    assert str(path) in message and f"did you mean {suggestion!r}" in message


def test_unknown_task_name_suggests_the_nearest():
    from momentum_interp.data import make_task

    with pytest.raises(ValueError, match="did you mean 'induction'"):
        make_task("inducton")


# ------------------------------------------------------- expected failures: one line, status 2

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny" / "induction.toml"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "typo", "suggestion"),
    [
        (["score"], "Induction-1L-Momentum", "induction-1l-momentum"),
        (["explore", "induction-1l-momentum"], "LM-BASELINE-s", "lm-baseline-S"),
    ],
)
def test_mistyped_model_name_suggests_the_bundled_one_before_torch_is_imported(
    args, typo, suggestion
):
    done, seconds = run_cli(*args, typo)  # CHECK fails the process if torch was imported
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert line.startswith(f"momentum-interp {args[0]}: error: ") and repr(typo) in line
    assert f"did you mean {suggestion!r}?" in line
    assert seconds < 3.0  # measured 0.2 s; slack for a loaded 2-core machine


def test_a_file_where_the_default_run_directory_goes_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").write_text("keep me")  # `train` without --out writes runs/<name>/
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(TINY_CONFIG)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("momentum-interp train: error: ") and "runs" in line
    assert (tmp_path / "runs").read_text() == "keep me"


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permissions"),
        (errno.ENOSPC, "free some space"),
        (errno.ENOTDIR, "not a directory"),
    ],
)
def test_file_system_errors_name_the_path_and_a_fix(monkeypatch, capsys, code, fix):
    """Disk full or a read-only or forbidden location (which root, running the tests, cannot
    meet for real) reach the handler as OSError: one line with errno's text, path and fix."""

    def fail(args):
        raise OSError(code, os.strerror(code), "/data/out/fit.json")

    monkeypatch.setattr(cli, "_cmd_models", fail)
    assert main(["models"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(
        f"momentum-interp models: error: {os.strerror(code)}: /data/out/fit.json"
    )
    assert fix in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys, where):
    (tmp_path / "runs").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    args = ["train", "--config", str(TINY_CONFIG)]
    assert main(["--debug", *args] if where == "before" else [*args, "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "not a directory" in err


def test_a_bug_keeps_its_traceback_and_says_it_is_a_bug(monkeypatch):
    def buggy(args):
        return {}["missing"]

    monkeypatch.setattr(cli, "_cmd_models", buggy)
    with pytest.raises(KeyError) as error:
        main(["models"])
    assert any("this is a bug" in note for note in error.value.__notes__)


@pytest.mark.parametrize("device", ["cuda:99", "gpu"])
def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys, device):
    config = tmp_path / "run.toml"
    config.write_text(TINY_CONFIG.read_text().replace('device = "cpu"', f'device = "{device}"'))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"device {device!r}" in line and "cpu" in line
    assert not (tmp_path / "out").exists()  # refused before the run directory was made


@pytest.mark.parametrize(
    ("line", "named"),
    [("d_vocab = [24]", "'d_vocab' of task 'induction' must be int"), ("seq_len = true", "int")],
)
def test_a_wrong_type_in_the_task_table_is_one_line(tmp_path, capsys, line, named):
    key = line.split(" =")[0]
    config = tmp_path / "run.toml"
    text = TINY_CONFIG.read_text()
    config.write_text(text.replace(next(x for x in text.splitlines() if x.startswith(key)), line))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    message = one_line(capsys.readouterr().err)
    assert str(config) in message and named in message and repr(key) in message
    assert not (tmp_path / "out").exists()


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """configs/tiny/induction.toml stopped just before its final save: resume checkpoints stay."""
    from momentum_interp.training import state

    class Killed(BaseException):
        pass

    def killed(self, model, metrics):
        raise Killed

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(state.RunDirectory, "finish", killed)
        with pytest.raises(Killed):
            main(["train", "--config", str(TINY_CONFIG), "--out", str(out), "--quiet"])
    return out / "checkpoints" / (out / "checkpoints" / "LATEST").read_text().strip()


@pytest.mark.parametrize(
    ("file", "damage"),
    [("trainer_state.json", b'{"step": 10, "hist'), ("optimizer.safetensors", b"\x00" * 16)],
)
def test_a_corrupt_resume_checkpoint_is_one_line_naming_it(interrupted_run, capsys, file, damage):
    (interrupted_run / file).write_bytes(damage)
    out = interrupted_run.parents[1]
    capsys.readouterr()
    assert main(["train", "--config", str(TINY_CONFIG), "--out", str(out), "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("momentum-interp train: error: ") and str(interrupted_run) in line
    assert "LATEST" in line  # the way on: delete the pointer, or restore the checkpoint
