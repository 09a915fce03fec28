"""Writes never destroy: special files are refused, symlinks followed, disk errors leave the old
files; one writer per output directory; a results table holds each run once."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_cli_inputs import run_cli
from test_sweeps import BASE

from momentum_interp.cli import main
from momentum_interp.io import OutputPathError, check_writable
from momentum_interp.lock import LOCK_FILE
from momentum_interp.sweeps import RESULTS_CSV, RESULTS_JSONL, read_results, run_sweep

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def file_size_limit(n_bytes: int):
    """A `preexec_fn`: the child's files cannot grow past `n_bytes`, and a write that would fails
    with EFBIG (SIGXFSZ, which would kill it, ignored), as on a full disk."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))

    return limit


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "momentum_interp.cli", *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# ------------------------------------------------------------------- what a write may replace


def assert_refused(done: subprocess.CompletedProcess, path: Path, why: str) -> None:
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert str(path) in line and why in line, line


def test_csv_to_a_fifo_is_refused_before_work_and_the_fifo_survives(tmp_path):
    fifo = tmp_path / "scores.csv"
    os.mkfifo(fifo)
    done, _ = run_cli("score", "induction-1l-momentum", "--csv", str(fifo))  # torch not imported
    assert_refused(done, fifo, "FIFO")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_csv_to_a_device_node_is_refused_and_the_node_survives(tmp_path):
    node = tmp_path / "null"
    try:  # the null device's numbers: harmless even if something wrote to it
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    done, _ = run_cli("score", "induction-1l-momentum", "--csv", str(node))
    assert_refused(done, node, "character device")
    assert stat.S_ISCHR(node.lstat().st_mode) and node.lstat().st_rdev == os.makedev(1, 3)


def test_symlinked_csv_writes_its_target_and_the_link_survives(make_model, tmp_path):
    model = tmp_path / "model"
    make_model(n_layers=1, n_ctx=48, d_vocab=48).save_pretrained(model)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "scores.csv"
    target.write_text("old\n")
    link = tmp_path / "scores.csv"
    link.symlink_to(Path("real") / "scores.csv")  # relative: resolved from the link's folder
    assert main(["score", str(model), "--sequences", "8", "--csv", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(Path("real") / "scores.csv")
    assert len(pd.read_csv(target)) == 4  # one row per head, written through the link
    assert sorted(p.name for p in target.parent.iterdir()) == ["scores.csv"]  # no temp left


def test_too_little_free_space_is_refused_up_front(tmp_path):
    check_writable(tmp_path / "new", need_bytes=0)
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(OutputPathError, match=r"MiB free on its disk.*free space") as error:
        check_writable(tmp_path / "new", need_bytes=free + 2**40)
    assert str(tmp_path / "new") in str(error.value)
    assert list(tmp_path.iterdir()) == []  # the probe left nothing


# --------------------------------------------------------------- write errors from the kernel

WRITES = """
import sys
from pathlib import Path
from momentum_interp.io import atomic_write_text
from momentum_interp.sweeps.runner import append_result
table, jsonl = Path(sys.argv[1]), Path(sys.argv[2])
for write, row in ((atomic_write_text, "x" * 5000), (append_result, {"pad": "x" * 5000})):
    try:
        write(table if write is atomic_write_text else jsonl, row)
    except OSError as e:
        print(e)
"""


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    table, jsonl = tmp_path / "table.csv", tmp_path / "results.jsonl"
    table.write_text("old table\n")
    jsonl.write_text('{"run_id": "a"}\n')
    done = subprocess.run(
        [sys.executable, "-c", WRITES, str(table), str(jsonl)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        preexec_fn=file_size_limit(1000),
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    for line, path in zip(lines, (table, jsonl), strict=True):
        assert line.startswith(f"cannot write {path} (File too large)"), line
    assert table.read_text() == "old table\n"
    assert jsonl.read_text() == '{"run_id": "a"}\n'  # the partial line was cut off again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "table.csv"]


RUN = """
name = "efbig"
[model]
d_model = 8
d_head = 4
n_heads = 2
n_layers = 1
attn_only = true
positional_embedding_type = "rotary"
[task]
name = "induction"
d_vocab = 24
seq_len = 20
min_repeat = 4
max_repeat = 8
[train]
steps = 100
batch_size = 8
warmup_steps = 4
eval_every = 40
eval_batches = 2
checkpoint_every = 40
device = "cpu"
"""
# Every file of the step-40 checkpoint is under 9 kB (optimizer 8.1 kB, trainer state with the
# history 7.1 kB); at step 80 the trainer state is 13 kB, so this limit fails the second save.
LIMIT = 10_500


def test_checkpoint_save_failing_on_efbig_keeps_the_last_good_one_and_a_rerun_resumes(
    tmp_path, capsys
):
    config, out = tmp_path / "run.toml", tmp_path / "run"
    config.write_text(RUN)
    args = ["train", "--config", str(config), "--out", str(out), "--quiet"]
    failed = cli(*args, preexec_fn=file_size_limit(LIMIT))
    _, err = failed.communicate(timeout=120)
    assert failed.returncode == 2, err
    (line,) = err.strip().splitlines()
    step_80 = out / "checkpoints" / "step-0000080"
    assert f"cannot write {step_80} (File too large)" in line, line
    checkpoints = out / "checkpoints"
    assert (checkpoints / "LATEST").read_text() == "step-0000040", "the limit missed step 80"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["LATEST", "step-0000040"]
    saved = json.loads((checkpoints / "step-0000040" / "trainer_state.json").read_text())

    capsys.readouterr()
    assert main(args) == 0  # the rerun, with no limit
    assert "Resuming efbig from step-0000040 (step 40)" in capsys.readouterr().out
    history = json.loads((out / "metrics.json").read_text())["train"]
    assert [entry["step"] for entry in history] == list(range(1, 101))
    assert history[:40] == saved["history"]["train"]
    assert not checkpoints.exists() and not (out / LOCK_FILE).exists()


# ------------------------------------------------------------------ one writer per directory

SWEEP = BASE.format(steps=10) + '[grid]\n"train.seed" = [0, 1]\n'


def test_a_second_sweep_on_one_directory_exits_2_fast_and_rows_stay_unique(tmp_path):
    spec, out = tmp_path / "spec.toml", tmp_path / "out"
    spec.write_text(SWEEP)
    args = ["sweep", str(spec), "--out", str(out), "--workers", "0", "--quiet"]
    first = cli(*args)
    try:
        lock = out / LOCK_FILE
        deadline = time.monotonic() + 60
        while not (lock.is_file() and lock.read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, "no lock taken"
            time.sleep(0.01)
        started = time.perf_counter()
        second = subprocess.run(
            [sys.executable, "-m", "momentum_interp.cli", *args],
            cwd=REPO,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        seconds = time.perf_counter() - started
        assert first.poll() is None, "the first sweep must still hold the lock"
    finally:
        _, err = first.communicate(timeout=300)
    assert second.returncode == 2, second.stderr
    (line,) = second.stderr.strip().splitlines()
    assert f"another momentum-interp (PID {first.pid}) is writing to {out}" in line, line
    assert "wait for it to finish or use another --out" in line
    assert seconds < 2.0, f"the second sweep took {seconds:.2f} s to give up"
    assert first.returncode == 0, err
    table = pd.read_csv(out / RESULTS_CSV)
    assert len(table) == 2 and table["run_id"].is_unique
    assert not lock.exists()


def test_a_run_recorded_twice_is_read_once_and_the_file_heals(tmp_path):
    spec, out = tmp_path / "spec.toml", tmp_path / "out"
    spec.write_text(SWEEP)
    run_sweep(spec, out, workers=0, progress=False)
    jsonl = out / RESULTS_JSONL
    first, second = (json.loads(line) for line in jsonl.read_text().splitlines())
    rerun = {**first, "final_accuracy": 0.125}  # e.g. a second writer redid the first run
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in (first, second, rerun)))

    rows = read_results(jsonl)
    assert [r["run_id"] for r in rows] == [first["run_id"], second["run_id"]]
    assert rows[0]["final_accuracy"] == 0.125  # the last record wins, in the first one's place
    assert jsonl.read_text().count("\n") == 3  # reading alone changes nothing

    table = run_sweep(spec, out, workers=0, progress=False)  # nothing left to run: heals
    assert len(table) == 2 and table["run_id"].is_unique
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == rows
    assert len(pd.read_csv(out / RESULTS_CSV)) == 2
