"""Execute every notebook in `notebooks/` and check a few numbers it prints.

Each notebook runs in a fresh `python3` kernel (jupyter_client starts it with this interpreter,
`sys.executable`, since the kernel spec's argv names plain `python`) with the repository root as
working directory and one torch thread. A cell prepended here (not saved) refuses and records any
non-loopback network connection or name lookup; a cell appended here reports what it recorded, so
a notebook that only *tries* the network (and recovers) still fails.

The notebooks print `NAME=value` markers computed from their runs; the checks below compare them
with the controls (1-layer baseline, 2-layer baseline) rather than with hard-coded results.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REQUIRED_ASSETS = (
    "induction-1l-baseline",
    "induction-2l-baseline",
    "induction-1l-smeared-key",
    "induction-1l-momentum",
)

NETWORK_GUARD = r"""
import ipaddress as _ipaddress
import socket as _socket

_NETWORK_ATTEMPTS = []
_LOCAL_NAMES = {None, "", "localhost", "127.0.0.1", "::1"}


def _is_local(host):
    if host in _LOCAL_NAMES:
        return True
    try:
        return _ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(original):
    def connect(self, address, *args, **kwargs):
        if self.family in (_socket.AF_INET, _socket.AF_INET6) and not _is_local(address[0]):
            _NETWORK_ATTEMPTS.append(repr(address))
            raise OSError(f"network access is not allowed in the notebooks: {address!r}")
        return original(self, address, *args, **kwargs)

    return connect


def _guarded_getaddrinfo(original):
    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not _is_local(name):
            _NETWORK_ATTEMPTS.append(f"getaddrinfo({name!r})")
            raise OSError(f"network access is not allowed in the notebooks: lookup of {name!r}")
        return original(host, *args, **kwargs)

    return getaddrinfo


_socket.socket.connect = _guarded(_socket.socket.connect)
_socket.socket.connect_ex = _guarded(_socket.socket.connect_ex)
_socket.getaddrinfo = _guarded_getaddrinfo(_socket.getaddrinfo)
"""

NETWORK_REPORT = 'print("NETWORK_ATTEMPTS=" + repr(_NETWORK_ATTEMPTS))'

MARKER = re.compile(r"^([A-Z][A-Z0-9_]*)(?:\s+(\S+?))?[=:]\s*(.*)$")


def _stdout(nb) -> str:
    """All text the notebook's cells printed (stream outputs)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                parts.append(output["text"])
    return "".join(parts)


def _markers(text: str) -> dict[str, str]:
    """`NAME=value` (or `NAME key=value`, stored as `NAME[key]`) lines printed by the notebook."""
    found = {}
    for line in text.splitlines():
        match = MARKER.match(line.strip())
        if match:
            name, key, value = match.groups()
            found[f"{name}[{key}]" if key else name] = value.strip()
    return found


def _number(markers: dict[str, str], name: str) -> float:
    assert name in markers, f"the notebook did not print {name}; printed: {sorted(markers)}"
    value = float(markers[name])
    assert math.isfinite(value), f"{name}={markers[name]} is not finite"
    return value


def _check_quickstart(m: dict[str, str]) -> None:
    top = _number(m, "TOP_INDUCTION_SCORE")
    base_1l = _number(m, "ZOO_TOP_INDUCTION[induction-1l-baseline]")
    base_2l = _number(m, "ZOO_TOP_INDUCTION[induction-2l-baseline]")
    assert _number(m, "ZOO_TOP_INDUCTION[induction-1l-momentum]") == pytest.approx(top, abs=0.05)
    # The momentum head beats the negative control clearly; the 2-layer circuit is the ceiling.
    assert top > 2 * base_1l + 0.05, (top, base_1l)
    assert base_2l > 0.5
    assert 0.0 <= base_1l <= 1.0 and 0.0 <= top <= 1.0
    # Same seed, same code path: the notebook's top heads and scores are the committed ones
    # (results/zoo/zoo.json, which the README's table is rendered from).
    record = json.loads((ROOT / "results" / "zoo" / "zoo.json").read_text())
    for model in record["models"]:
        ranking = model["induction_ranking"]
        tied = ",".join(f"L{layer}H{head}" for layer, head in ranking["tied"])
        assert m[f"ZOO_TIED[{model['name']}]"] == tied
        best = ranking["heads"][0]["value"]
        assert _number(m, f"ZOO_TOP_INDUCTION[{model['name']}]") == pytest.approx(best, abs=1e-4)
    paper = next(x for x in record["models"] if x["name"] == "induction-1l-momentum")
    assert m["TOP_INDUCTION_TIED"] == ",".join(
        f"L{layer}H{head}" for layer, head in paper["induction_ranking"]["tied"]
    )


def _check_single_layer(m: dict[str, str]) -> None:
    clean = _number(m, "MOMENTUM_CLEAN_ACC")
    off = _number(m, "MOMENTUM_GAMMA_ZERO_ACC")
    base = _number(m, "BASELINE_1L_CLEAN_ACC")
    assert clean > base + 0.3, (
        clean,
        base,
    )  # one momentum layer does induction; the control doesn't
    assert off < 0.5 * clean, (off, clean)  # and it needs the shear
    assert m.get("MOMENTUM_DOMINANT_TERM") == "current_prev_key"
    assert _number(m, "MOMENTUM_PREV_KEY_SHARE") > 0.5
    assert _number(m, "TWO_LAYER_PREV_TOKEN_SCORE") > 0.5
    ind = _number(m, "TWO_LAYER_INDUCTION_SCORE")
    assert ind > 0.5
    assert _number(m, "TWO_LAYER_INDUCTION_AFTER_PREV_ABLATION") < 0.5 * ind  # K-composition
    assert _number(m, "BASELINE_1L_INDUCTION_SCORE") < ind


def _check_spectral(m: dict[str, str]) -> None:
    # The sheared/raw power follows |H(ω)|²: the median bin is within a few per cent, and band
    # gains agree with those predicted from the measured input spectrum.
    assert _number(m, "SPECTRAL_MEDIAN_REL_ERR") < 0.05
    assert _number(m, "BAND_GAIN_MAX_ERR_DB") < 0.5
    for name in ("ROTARY_CROSS_SHARE", "NONROTARY_CROSS_SHARE"):
        assert 0.0 <= _number(m, name) <= 1.0
    for name in ("ORTHOGONALITY_VERDICT", "ORTHOGONALITY_VERDICT_UNTRAINED"):
        assert "Cross-band share" in m.get(name, ""), m.get(name)
        assert "without" in m[name]  # both rotary and non-rotary heads were measured


def _check_scaling(m: dict[str, str]) -> None:
    depths = [k[len("GAMMA_STAR[") : -1] for k in m if k.startswith("GAMMA_STAR[")]
    assert len(depths) >= 2, sorted(m)
    for n in depths:
        # fit_scaling's argmax agrees with the notebook's own pandas recomputation
        assert _number(m, f"GAMMA_STAR[{n}]") == _number(m, f"GAMMA_STAR_BY_HAND[{n}]")
        assert _number(m, f"PAPER_GAMMA_STAR[{n}]") == pytest.approx(4.17 * int(n) ** -0.74, 1e-3)
    assert _number(m, "FIT_A") == pytest.approx(_number(m, "FIT_A_BY_HAND"), rel=1e-3)
    assert _number(m, "FIT_B") == pytest.approx(_number(m, "FIT_B_BY_HAND"), abs=1e-3)
    for name, paper in (("A", 4.17), ("B", -0.74)):
        lo, hi = (float(x) for x in m[f"FIT_{name}_INTERVAL"].split(","))
        assert lo <= _number(m, f"FIT_{name}") <= hi
        assert m[f"PAPER_{name}_INSIDE"] == str(lo <= paper <= hi)
    assert m["VERDICT"].startswith("Our measurement is")
    # the user's own grid: 2 γ values + the smeared-key control, and a re-run adds nothing
    assert _number(m, "MY_GRID_RUNS") == 3 == _number(m, "MY_GRID_RUNS_AFTER_RERUN")


def _check_exploratory(m: dict[str, str]) -> None:
    clean, corrupted = _number(m, "LOGIT_DIFF_CLEAN"), _number(m, "LOGIT_DIFF_CORRUPTED")
    assert clean > corrupted + 5  # the corruption removes the induction target
    # DLA by head adds up to the logit difference, up to the bias no component writes
    assert _number(m, "DLA_SUM") + _number(m, "DLA_BIAS") == pytest.approx(clean, abs=1e-3)
    assert _number(m, "LENS_FINAL_ERR") < 1e-4 and _number(m, "LENS_RANK[final_post]") == 0
    top = int(_number(m, "TOP_PATCH_HEAD"))
    assert m["DLA_TOP_HEAD"] == f"L0H{top}"  # the head that writes the answer is the one to patch
    # the clean key velocity at the induction key alone restores most of that head's patch
    assert _number(m, "VELOCITY_TOP_POS") == _number(m, "INDUCTION_KEY_POS")
    head_patch = _number(m, f"HEAD_PATCH[L0H{top}]")
    assert _number(m, "VELOCITY_TOP_RECOVERY") - corrupted > 0.5 * (head_patch - corrupted)
    # in the 2-layer baseline the strongest edge runs from layer 0 into a layer-1 head's keys
    assert m["PATH_TOP"].startswith("L0H") and "->L1H" in m["PATH_TOP"]
    assert _number(m, "PATH_TOP_VALUE") > _number(m, "PATH_BASELINE") + 2


CHECKS = {
    "01_quickstart": _check_quickstart,
    "02_single_layer_induction": _check_single_layer,
    "03_spectral_forensics": _check_spectral,
    "04_scaling_law": _check_scaling,
    "05_exploratory_analysis": _check_exploratory,
}


def test_every_notebook_has_checks():
    assert {p.stem for p in NOTEBOOKS} == set(CHECKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch):
    missing = [
        n for n in REQUIRED_ASSETS if not (ROOT / "assets" / n / "model.safetensors").is_file()
    ]
    assert not missing, f"the notebooks need the committed checkpoints; missing: {missing}"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.delenv("MOMENTUM_INTERP_ASSETS", raising=False)

    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is saved with outputs; clear them before committing"
    )
    nb.cells.insert(0, nbformat.v4.new_code_cell(NETWORK_GUARD))
    nb.cells.append(nbformat.v4.new_code_cell(NETWORK_REPORT))
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", output
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                assert "Traceback" not in output["text"], output["text"]
    text = _stdout(nb)
    assert "NETWORK_ATTEMPTS=[]" in text, text[text.rfind("NETWORK_ATTEMPTS") :]
    CHECKS[path.stem](_markers(text))
