"""Long commands say what they are doing before their heavy imports: `demo`, `report`, `trace`
and `sweep` print their first line before torch is imported, within 2 s of process start.

The order is read from `python -X importtime`, which logs each import to stderr as it
finishes (stdout and stderr share one pipe here): the command's line must come before any
`torch` entry. That holds on a loaded machine, where a wall-clock limit alone could fail by
chance; the 2 s limit is checked as well (Python starts and imports the command line in about
0.1 s; torch and TransformerLens take about 4.5 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_LINE_S = 2.0


def _module(line: str) -> str:
    """The module an `-X importtime` line names (`import time: self | cumulative | name`)."""
    return line.rsplit("|", 1)[-1].strip() if line.startswith("import time:") else ""


def _announces(command: str, line: str) -> bool:
    """Whether `line` is `command`'s first line (not, say, an error that names the command)."""
    return line.startswith(f"momentum-interp {command}: ") and line.rstrip().endswith(
        "loading torch first"
    )


def _is_torch(line: str) -> bool:
    return _module(line).split(".")[0] == "torch"


def _read_until(args: list[str], stop) -> tuple[list[str], float]:
    """Output lines of `momentum-interp ARGS` up to the first that `stop` accepts (then the
    process is killed: the command's work is not this test's), and the seconds it took."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "momentum_interp.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: the command's stdout line and the import log in order
        text=True,
        cwd=ROOT,
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if stop(line):
                break
        return lines, time.monotonic() - started
    finally:
        process.kill()
        process.wait()


COMMANDS = {
    "demo": ["demo"],
    "report": ["report", "induction-1l-momentum"],
    "trace": ["trace", "induction-1l-momentum"],
    "sweep": ["sweep", "configs/sweeps/gamma_star.toml"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_first_line_comes_before_torch_and_within_2_s(command, tmp_path):
    lines, seconds = _read_until(
        [*COMMANDS[command], "--out", str(tmp_path / "out")],
        lambda line: _announces(command, line) or _is_torch(line),
    )
    assert _announces(command, lines[-1]), f"{command} said nothing before torch: {lines[-1]}"
    assert seconds < FIRST_LINE_S, f"first line after {seconds:.2f} s"


def test_demo_loads_torch_after_its_first_line_and_quiet_keeps_it_silent(tmp_path):
    """The check above can fail: torch does come after the line, and --quiet drops the line."""
    lines, _ = _read_until(["demo", "--out", str(tmp_path / "out")], _is_torch)
    assert any(_announces("demo", line) for line in lines)
    assert _is_torch(lines[-1])
    lines, _ = _read_until(["demo", "--quiet", "--out", str(tmp_path / "quiet")], _is_torch)
    assert _is_torch(lines[-1])
    assert not any(line.startswith("momentum-interp") for line in lines)
