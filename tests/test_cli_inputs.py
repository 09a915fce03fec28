"""Bad paths and config typos fail fast: one line, exit status 2, before torch is imported."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

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
    from momentum_interp.cli import output_dir

    assert output_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert list(tmp_path.iterdir()) == []


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
