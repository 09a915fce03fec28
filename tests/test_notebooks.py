"""Execute every notebook in `notebooks/` and check the numbers it computed.

Each notebook runs in a fresh `python3` kernel (jupyter_client starts it with this interpreter,
`sys.executable`, since the kernel spec's argv names plain `python`) with the repository root as
working directory and one torch thread. A cell prepended here (not saved) refuses and records any
non-loopback network connection or name lookup; a cell appended here reports what it recorded, so
a notebook that only *tries* the network (and recovers) still fails.

After the checks the executed notebook is exported twice, by `viz.notebook.export_html` and by
plain nbconvert (`jupyter nbconvert --to html`), and each page is rendered in headless Chromium
with no network: every plotly figure and circuitsvis view the notebook output must be drawn.

A last cell appended here reads the notebook's own variables in the same kernel (`VALUES`) and
outputs them as JSON; the checks below compare them with the controls (1-layer baseline, 2-layer
baseline) and with recomputations rather than with hard-coded results. The notebooks themselves
print only prose for their reader.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import dump_dom, remote_requests

from momentum_interp.viz.notebook import export_html

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

# What each check reads from the notebook's kernel once it has run: name -> Python expression
# over the notebook's own variables.
VALUES = {
    "01_quickstart": {
        "top_induction": "ranking.estimate(ranking.top).value",
        "tied": "[list(h) for h in tied]",
        "zoo_best": "{n: r.estimate(r.top).value for n, r in rankings.items()}",
        "zoo_tied": "{n: [list(h) for h in r.tied] for n, r in rankings.items()}",
        "zoo_accuracy": "zoo_table['held-out induction acc'].to_dict()",
    },
    "02_single_layer_induction": {
        "dominant_term": "trace.decomposition.dominant_term",
        "prev_key_share": "shares['current_prev_key']",
        "clean_acc": "clean",
        "gamma_zero_acc": "off",
        "two_layer_prev_token": "prev_row['previous_token']",
        "two_layer_induction": "ind_row['induction']",
        "two_layer_after_prev_ablation": "after",
        "baseline_clean_acc": "b_abl.loc['clean', 'accuracy']",
        "baseline_induction": "b_top['induction']",
    },
    "03_spectral_forensics": {
        "median_rel_err": "ratio_table['median |ratio/|H|^2 - 1|'].max()",
        "band_gain_max_err_db": "err.max()",
        "rotary_cross_share": "rot",
        "nonrotary_cross_share": "plain",
        "verdict": "verdict_all",
        "verdict_untrained": "verdict_untrained",
    },
    "04_scaling_law": {
        "gamma_star": "{d.n_layers: d.gamma_star for d in result.depths}",
        "gamma_star_by_hand": "{int(n): g for n, g in by_hand.items()}",
        "paper_gamma_star": "{d.n_layers: paper_gamma_star(d.n_layers) for d in result.depths}",
        "fit_a": "result.fit.a",
        "fit_b": "result.fit.b",
        "fit_a_interval": "result.fit.a_interval",
        "fit_b_interval": "result.fit.b_interval",
        "fit_a_by_hand": "np.exp(intercept)",
        "fit_b_by_hand": "slope",
        "statement": "statement",
        "fair_verdicts": "fair_verdicts",
        "my_grid_runs": "len(mine)",
        "my_grid_runs_after_rerun": "len(again)",
    },
    "05_exploratory_analysis": {
        "logit_diff_clean": "logit_diff(clean_logits).item()",
        "logit_diff_corrupted": "logit_diff(corrupted_logits).item()",
        "dla_sum": "attrs.sum().item()",
        "dla_bias": "bias",
        "dla_top_head": "labels[int(attrs[:-1].argmax())]",
        "lens_final_err": "(lens.values[-1] - clean_logits[:, -1]).abs().max().item()",
        "lens_rank": "{label: int((v[0] > v[0, answer]).sum()) for label, v in zip(lens.labels, lens.values)}",
        "head_patch": "heads[0].tolist()",
        "top_patch_head": "top_head",
        "velocity_top_pos": "int(best.argmax())",
        "velocity_top_recovery": "best.max().item()",
        # the induction key: the position after the earlier occurrence of the last token
        "induction_key_pos": "int((clean[0, :-1] == clean[0, -1]).nonzero()[0, 0]) + 1",
        "path_baseline": "logit_diff(corrupted_logits_2l).item()",
        "path_top": "f'L{src_layer}H{src_head}->L{dst_layer}H{dst_head}'",
        "path_top_value": "paths.max().item()",
    },
    "06_gamma_star_two_sided": {
        "sweep_dir": "str(SWEEP)",
        "n_planned": "n_planned",
        "run_ids": "table['run_id'].tolist()",
        "planned_counts": "planned_counts",
        "done_counts": "done_counts",
        "status": "status",
        "closing": "closing",
        "mean_auc": "mean_auc",
        "gamma_star": "gamma_star",
        "gamma_star_by_hand": "by_hand",
        "separated": "separated",
        "runner_up": "runner_up",
        "paper_verdict": "paper_verdict",
        "smeared_auc": "smeared_auc",
        "statement": "statement",
        "fit_ab": "None if fit is None else [fit.a, fit.b]",
        "pilot_best": "pilot_best",
        "pilot_floor_max": "float(floor['final_accuracy'].max())",
        "old_ceiling_min": "float(old_ceiling.min())",
    },
    "07_lm_comparison": {
        "summary": "summary[['n_seeds', 'val_loss', 'induction_loss', 'val_loss_gap', "
        "'induction_loss_gap']].to_dict(orient='index')",
        "reference": "ref",
        "roles": "roles",
        "momentum_cost": "momentum_cost",
        "tokens_trained": "tokens_trained",
        "curves": "{n: c.tolist() for n, c in curves.items()}",
        "icl": "icl",
        # the library's ICL score against the notebook's, on the same 32 windows
        "library_icl": "{n: __import__('momentum_interp.analysis.scoring', fromlist=['x'])"
        ".in_context_learning_score(m, windows[:32], batch_size=32) for n, m in models.items()}",
        "notebook_icl": "{n: curve_icl(loss_curve(m, windows[:32])) for n, m in models.items()}",
        "gpu_present": "gpu is not None",
        "fair_verdict": "fair_verdict",
        "gpu_message": "gpu_message",
    },
    "08_formation": {
        "agree": "agree",
        "detected": "detected",
        "n_runs": "len(recomputed)",
        "table_rows": "rows",
        "tiny_steps": "history.steps()",
        "tiny_rows": "[r.step for r in tiny.rows]",
        "tiny_detected": "tiny.phase_change.detected",
    },
}


PLOTLY_MIME = "application/vnd.plotly.v1+json"
CIRCUITSVIS_DIV = 'id="circuits-vis-'

# Appended to an exported page: after load, a <pre> lists what each figure drew. A plotly
# figure is drawn when its .main-svg has a size and its plot area holds at least one trace;
# a circuitsvis view when React rendered children of non-zero size into its div.
FIGURE_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const sized = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const plotly = [...document.querySelectorAll(".plotly-graph-div")].map((div) => ({
    svg: [...div.querySelectorAll(".main-svg")].some(sized),
    traces: div.querySelectorAll(".main-svg .trace, .main-svg .hm image").length,
  }));
  const circuitsvis = [...document.querySelectorAll('[id^="circuits-vis-"]')].map(
    (div) => div.children.length > 0 && sized(div.firstElementChild));
  const pre = document.createElement("pre");
  pre.id = "drawn-figures";
  pre.textContent = JSON.stringify({plotly, circuitsvis});
  document.body.appendChild(pre);
}, 1500));
</script>"""


def _figure_outputs(nb) -> tuple[int, int]:
    """How many plotly figures and circuitsvis views the executed notebook output."""
    n_plotly = n_circuitsvis = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            n_plotly += PLOTLY_MIME in data
            n_circuitsvis += "".join(data.get("text/html", "")).count(CIRCUITSVIS_DIV)
    return n_plotly, n_circuitsvis


def _plain_nbconvert(notebook: Path, out: Path) -> Path:
    """The page `jupyter nbconvert --to html` writes (its template's CDN scripts fail offline)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    out.write_text(body, encoding="utf-8")
    return out


def _drawn_figures(page: Path, profile: Path) -> tuple[dict, list[str]]:
    """What each figure of `page` drew in headless Chromium, and the remote URLs it requested."""
    page.write_text(page.read_text(encoding="utf-8") + FIGURE_PROBE, encoding="utf-8")
    dom = dump_dom(page, profile)
    found = re.search(r'<pre id="drawn-figures">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"{page.name} did not finish loading"
    return json.loads(html.unescape(found.group(1))), remote_requests(dom)


def _check_figures_drawn(nb, tmp_path: Path) -> None:
    """Both HTML exports of the executed notebook draw every figure it output; ours fetches
    nothing remote."""
    n_plotly, n_circuitsvis = _figure_outputs(nb)
    executed = tmp_path / "executed.ipynb"
    nbformat.write(nb, str(executed))
    exports = {
        "export_html": export_html(executed, tmp_path / "export_html.html"),
        "nbconvert": _plain_nbconvert(executed, tmp_path / "nbconvert.html"),
    }
    with ThreadPoolExecutor(len(exports)) as pool:  # two browsers at once: half the wall time
        rendered = pool.map(
            lambda n: _drawn_figures(exports[n], tmp_path / f"profile-{n}"), exports
        )
    for name, (drawn, remote) in zip(exports, rendered, strict=True):
        blank = [i for i, f in enumerate(drawn["plotly"]) if not (f["svg"] and f["traces"])]
        assert len(drawn["plotly"]) == n_plotly and not blank, (name, n_plotly, drawn["plotly"])
        assert drawn["circuitsvis"] == [True] * n_circuitsvis, (name, drawn["circuitsvis"])
        if name == "export_html":
            assert remote == [], f"the export requested {remote[:5]}"


def _stdout(nb) -> str:
    """All text the notebook's cells printed (stream outputs)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                parts.append(output["text"])
    return "".join(parts)


def _values_cell(expressions: dict[str, str]) -> str:
    """A cell whose output is the notebook's values as JSON (numpy and torch scalars as numbers,
    dict keys as strings)."""
    items = ", ".join(f"{name!r}: {expr}" for name, expr in expressions.items())
    return (
        "import json as _json\n"
        "from IPython.display import display as _display\n"
        f"_values = {{{items}}}\n"
        "_display({'application/json': _json.loads(_json.dumps(_values, default=lambda o: "
        "o.tolist()))}, raw=True)"
    )


def _read_values(cell) -> dict:
    (output,) = [o for o in cell["outputs"] if o.get("output_type") == "display_data"]
    return output["data"]["application/json"]


def _finite(values: dict, name: str) -> float:
    value = float(values[name])
    assert math.isfinite(value), f"{name}={values[name]} is not finite"
    return value


def _check_quickstart(v: dict) -> None:
    top = _finite(v, "top_induction")
    zoo = v["zoo_best"]
    base_1l, base_2l = zoo["induction-1l-baseline"], zoo["induction-2l-baseline"]
    assert zoo["induction-1l-momentum"] == pytest.approx(top, abs=1e-9)
    # The momentum head beats the negative control clearly; the 2-layer circuit is the ceiling.
    assert top > 2 * base_1l + 0.05, (top, base_1l)
    assert base_2l > 0.5
    # Same seed, same code path: the notebook's tied heads and scores are the committed ones
    # (results/zoo/zoo.json, which the README's table is rendered from).
    record = json.loads((ROOT / "results" / "zoo" / "zoo.json").read_text())
    for model in record["models"]:
        ranking = model["induction_ranking"]
        assert v["zoo_tied"][model["name"]] == [list(h) for h in ranking["tied"]]
        assert zoo[model["name"]] == pytest.approx(ranking["heads"][0]["value"], abs=1e-4)
    paper = next(x for x in record["models"] if x["name"] == "induction-1l-momentum")
    assert v["tied"] == [list(h) for h in paper["induction_ranking"]["tied"]]
    # The README says notebook 01 reports its table's numbers: the accuracy column too.
    for model in record["models"]:
        shown = v["zoo_accuracy"][model["name"]]
        assert shown == pytest.approx(model["accuracy"]["value"], abs=5e-4), model["name"]


def test_quickstart_prose_quotes_the_defaults():
    """Numbers of sequences that notebook 01's prose quotes are the code's defaults, and the
    README's sentence that notebook 01 reports the table's heads and numbers is still there
    (`_check_quickstart` holds the notebook to it once executed)."""
    from momentum_interp.defaults import EVAL_SEQUENCES, SCORE_SEQUENCES

    nb = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    named = dict(re.findall(r"`(SCORE_SEQUENCES|EVAL_SEQUENCES)` = (\d+)", prose))
    assert named == {"SCORE_SEQUENCES": str(SCORE_SEQUENCES), "EVAL_SEQUENCES": str(EVAL_SEQUENCES)}
    quoted = {int(n) for n in re.findall(r"(\d+)\s+(?:fresh\s+)?sequences", prose)}
    assert quoted <= {SCORE_SEQUENCES, EVAL_SEQUENCES}, quoted
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "notebook 01 report these heads and numbers" in readme


def _sources(stem: str, kind: str) -> str:
    """The text of every `kind` ("markdown" or "code") cell of a notebook, joined."""
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == kind)


def _quoted(stem: str, pattern: str, kind: str = "markdown") -> tuple[str, ...]:
    """The groups of `pattern`'s one match in a notebook's prose (or code)."""
    text = " ".join(_sources(stem, kind).split())
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{stem}: {pattern!r} matches {found}"
    return found[0] if isinstance(found[0], tuple) else (found[0],)


def test_notebook_prose_quotes_the_code_and_the_committed_results():
    """Every number notebook prose quotes is the one its code uses or the committed results hold:
    the paper's law and gap (the constants the analysis uses), the sweeps' depths, grid, seeds
    and size, the tie rule, and the sizes each notebook's own code draws."""
    from momentum_interp.analysis.lm import PAPER_GAP
    from momentum_interp.analysis.scaling import PAPER_A, PAPER_B, TIE_TOL, default_tie_tol
    from momentum_interp.analysis.spectral import BANDS
    from momentum_interp.sweeps.spec import SweepSpec

    law = r"γ\* = ([\d.]+) · N\^\(−([\d.]+)\)"
    for stem in ("04_scaling_law", "06_gamma_star_two_sided"):
        assert _quoted(stem, law) == (f"{PAPER_A:g}", f"{-PAPER_B:g}")
    assert _quoted("04_scaling_law", r"a = ([\d.]+) and b = −([\d.]+)") == (
        f"{PAPER_A:g}",
        f"{-PAPER_B:g}",
    )
    # the first sweep: its depths, γ grid and seeds, and fit_scaling's tie tolerance
    table = pd.read_csv(ROOT / "results" / "scaling" / "results.csv")
    (depths,) = _quoted("04_scaling_law", r"depths N ∈ \{([\d, ]+)\}")
    assert depths == ", ".join(str(n) for n in sorted(table["model.n_layers"].unique()))
    gammas = sorted(table.loc[~table["model.smeared_key"], "model.gamma"].unique())
    assert _quoted("04_scaling_law", r"γ ∈ \{(\d+), (\d+)/(\d+), …, (\d+)\}") == (
        f"{gammas[0]:g}",
        "1",
        f"{1 / gammas[1]:g}",
        f"{gammas[-1]:g}",
    )
    (seeds,) = _quoted("04_scaling_law", r"(\d+) seeds, with")
    assert int(seeds) == table["train.seed"].nunique()
    (points,) = _quoted("04_scaling_law", r"within ([\d.]+) accuracy points")
    assert float(points) == 100 * TIE_TOL
    # the two-sided study: its planned runs, and no tolerance on an AUC
    spec = json.loads((ROOT / "results" / "scaling_mqar" / "sweep" / "sweep_spec.json").read_text())
    plan = SweepSpec(base=spec["base"], grid=spec["grid"], variants=spec["variants"]).expand()
    assert _quoted("06_gamma_star_two_sided", r"The sweep \((\d+) runs\)") == (str(len(plan)),)
    _quoted("06_gamma_star_two_sided", r"(only an exact tie counts)")
    assert default_tie_tol("auc_accuracy") == 0
    # the LM comparison: the paper's gap, the committed seeds, the windows the code scores
    assert _quoted("07_lm_comparison", r"within \*\*([\d.]+) %\*\*") == (f"{100 * PAPER_GAP:g}",)
    comparison = pd.read_csv(ROOT / "results" / "lm" / "comparison.csv")
    (lm_seeds,) = _quoted("07_lm_comparison", r"(\d+) seeds, every run")
    assert int(lm_seeds) == comparison["seed"].nunique()
    assert _quoted("07_lm_comparison", r"(\d+) batches of (\d+) windows, seed (\d+)") == _quoted(
        "07_lm_comparison", r"held_out_batches\(task, (\d+), (\d+), seed=(\d+)\)", "code"
    )
    # the sizes and thresholds each notebook's own code uses
    pairs = [
        ("02_single_layer_induction", r"previous-token score exceeds ([\d.]+)", r"previous_token > ([\d.]+)"),
        ("02_single_layer_induction", r"\((\d+) tokens, then the same (\d+)\)", r"repeated_random_tokens\(64, (\d+), 1, seed=7\)"),
        ("05_exploratory_analysis", r"sees (\d+) distinct random tokens", r"\)\[:(\d+)\] \+ 1"),
        ("05_exploratory_analysis", r"then the first (\d+) again", r"seq\[:(\d+)\]"),
    ]  # fmt: skip
    for stem, prose, code in pairs:
        quoted, used = _quoted(stem, prose), _quoted(stem, code, "code")
        assert set(quoted) == set(used), (stem, quoted, used)
    half_len, n_seq = _quoted(
        "03_spectral_forensics", r"repeated_random_tokens\(64, (\d+), (\d+), seed=1\)", "code"
    )
    assert _quoted(
        "03_spectral_forensics", r"(\d+) repeated random sequences of (\d+) positions"
    ) == (n_seq, str(2 * int(half_len)))
    assert BANDS["mid"][0] == pytest.approx(math.pi / 4)
    assert BANDS["high"][0] == pytest.approx(3 * math.pi / 4)
    _quoted("03_spectral_forensics", r"low \(ω < (π/4)\), mid and high \(ω ≥ 3π/4\)")


def test_notebook_prose_writes_maths_in_unicode():
    """Notebook prose renders the same everywhere (GitHub, Jupyter, the offline export): maths in
    Unicode (xₜ₋₁, q̂ₜ), no TeX for MathJax to typeset, no raw `^{`/`_{` in a code span."""
    for path in NOTEBOOKS:
        prose = _sources(path.stem, "markdown")
        assert not re.findall(r"[\^_]\{|\$|\\[a-zA-Z]+", prose), path.stem


def _check_single_layer(v: dict) -> None:
    clean, off = _finite(v, "clean_acc"), _finite(v, "gamma_zero_acc")
    base = _finite(v, "baseline_clean_acc")
    assert clean > base + 0.3, (
        clean,
        base,
    )  # one momentum layer does induction; the control doesn't
    assert off < 0.5 * clean, (off, clean)  # and it needs the shear
    assert v["dominant_term"] == "current_prev_key"
    assert _finite(v, "prev_key_share") > 0.5
    assert _finite(v, "two_layer_prev_token") > 0.5
    ind = _finite(v, "two_layer_induction")
    assert ind > 0.5
    assert _finite(v, "two_layer_after_prev_ablation") < 0.5 * ind  # K-composition
    assert _finite(v, "baseline_induction") < ind


def _check_spectral(v: dict) -> None:
    # The sheared/raw power follows |H(ω)|²: the median bin is within a few per cent, and band
    # gains agree with those predicted from the measured input spectrum.
    assert _finite(v, "median_rel_err") < 0.05
    assert _finite(v, "band_gain_max_err_db") < 0.5
    for name in ("rotary_cross_share", "nonrotary_cross_share"):
        assert 0.0 <= _finite(v, name) <= 1.0
    for name in ("verdict", "verdict_untrained"):
        assert "Cross-band share" in v[name], v[name]
        assert "without" in v[name]  # both rotary and non-rotary heads were measured
    assert f"{v['rotary_cross_share']:.2f} with RoPE" in v["verdict"]


def _check_scaling(v: dict) -> None:
    depths = sorted(v["gamma_star"])
    assert len(depths) >= 2, v["gamma_star"]
    for n in depths:
        # fit_scaling's argmax agrees with the notebook's own pandas recomputation
        assert v["gamma_star"][n] == v["gamma_star_by_hand"][n]
        assert v["paper_gamma_star"][n] == pytest.approx(4.17 * int(n) ** -0.74, 1e-3)
    assert v["fit_a"] == pytest.approx(v["fit_a_by_hand"], rel=1e-3)
    assert v["fit_b"] == pytest.approx(v["fit_b_by_hand"], abs=1e-3)
    # the last sentence is the verdict: consistent, inconsistent, or none (a flat top)
    last = v["statement"].split(". ")[-1]
    assert last.startswith("Our measurement is") or last.startswith("No verdict"), last
    for name, paper in (("a", 4.17), ("b", -0.74)):
        lo, hi = v[f"fit_{name}_interval"]
        assert lo <= _finite(v, f"fit_{name}") <= hi
        # the statement says the paper's value is inside our interval exactly when it is, and
        # reads no interval against it when the fit decides nothing
        where = "inside" if lo <= paper <= hi else "outside"
        said = f"{name} = {paper} lies {where}" in v["statement"]
        assert said != last.startswith("No verdict"), v["statement"]
    # the decided fair study: every committed depth, its verdict as its study.json says
    fair = {
        depth["n_layers"]: depth["paper_verdict"]
        for path in sorted((ROOT / "results" / "fair_gamma_star").glob("n*/study.json"))
        for depth in json.loads(path.read_text())["depths"]
    }
    assert {int(n): verdict for n, verdict in v["fair_verdicts"].items()} == fair
    assert set(fair) >= {1, 2}
    # the user's own grid: 2 γ values + the smeared-key control, and a re-run adds nothing
    assert v["my_grid_runs"] == 3 == v["my_grid_runs_after_rerun"]


def _check_exploratory(v: dict) -> None:
    clean, corrupted = _finite(v, "logit_diff_clean"), _finite(v, "logit_diff_corrupted")
    assert clean > corrupted + 5  # the corruption removes the induction target
    # DLA by head adds up to the logit difference, up to the bias no component writes
    assert v["dla_sum"] + v["dla_bias"] == pytest.approx(clean, abs=1e-3)
    assert _finite(v, "lens_final_err") < 1e-4 and v["lens_rank"]["final_post"] == 0
    top = v["top_patch_head"]
    assert top == max(range(len(v["head_patch"])), key=v["head_patch"].__getitem__)
    assert v["dla_top_head"] == f"L0H{top}"  # the head that writes the answer is the one to patch
    # the clean key velocity at the induction key alone restores most of that head's patch
    assert v["velocity_top_pos"] == v["induction_key_pos"]
    (said,) = _quoted("05_exploratory_analysis", r"The induction key is position (\d+)")
    assert v["induction_key_pos"] == int(said)  # as the prose says
    head_patch = v["head_patch"][top]
    assert v["velocity_top_recovery"] - corrupted > 0.5 * (head_patch - corrupted)
    # in the 2-layer baseline the strongest edge runs from layer 0 into a layer-1 head's keys
    assert v["path_top"].startswith("L0H") and "->L1H" in v["path_top"]
    assert _finite(v, "path_top_value") > _finite(v, "path_baseline") + 2


def _jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file, read here without the runner: an unterminated last line (the
    sweep is writing it) is left out."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1] if not text.endswith("\n") else text.split("\n")
    return [json.loads(line) for line in lines if line.strip()]


def _t_interval(x: np.ndarray) -> tuple[float, float] | None:
    """95 % Student-t interval of the mean (None below 2 values)."""
    from scipy import stats

    if len(x) < 2:
        return None
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - half, x.mean() + half


def _check_gamma_star_two_sided(v: dict) -> None:
    sweep = Path(v["sweep_dir"])
    spec = json.loads((sweep / "sweep_spec.json").read_text())
    rows = _jsonl(sweep / "results.jsonl")
    n = len(v["run_ids"])
    # the runs the notebook read are the file's first n (the sweep only appends)
    assert [r["run_id"] for r in rows[:n]] == v["run_ids"]
    rows = rows[:n]

    # planned: per seed and depth, every γ on the q/k shear, every γ keys-only at the keys-only
    # depths, one smeared key
    grid = spec["grid"]
    gammas, depths, seeds = grid["model.gamma"], grid["model.n_layers"], grid["train.seed"]
    keys_depths = [x["model.n_layers"] for x in spec["variants"] if x.get("model.shear") == "k"]
    expected = {}
    for seed in seeds:
        for depth in depths:
            expected[f"momentum/{depth}/{seed}"] = len(gammas)
            expected[f"smeared_key/{depth}/{seed}"] = 1
        for depth in keys_depths:
            expected[f"keys_only/{depth}/{seed}"] = len(gammas)
    assert v["planned_counts"] == expected
    assert v["n_planned"] == sum(expected.values()) == spec["n_runs"]
    done = Counter(
        f"{r['variant']}/{r['config']['model']['n_layers']}/{r['config']['train']['seed']}"
        for r in rows
    )
    assert v["done_counts"] == dict(done)
    if n == 0:
        assert v["status"].startswith("No sweep result exists yet"), v["status"]
        assert "Not measured" in v["closing"] and v["statement"] == ""
    elif n < spec["n_runs"]:
        assert v["status"].startswith(f"The sweep is partial: {n} of {spec['n_runs']} runs")
    else:
        assert v["status"].startswith("The sweep is complete")

    # mean AUC per (shear, depth, γ), γ*, its runner-up and separation, from the rows
    effect = {}
    for shear in ("qk", "k"):
        mine = [
            r["config"] | {"auc": r["auc_accuracy"], "loss": r["final_loss"]}
            for r in rows
            if r["config"]["model"]["shear"] == shear and not r["config"]["model"]["smeared_key"]
        ]
        if not mine:
            assert shear not in v["mean_auc"]
            continue
        for depth in sorted({r["model"]["n_layers"] for r in mine}):
            at = [r for r in mine if r["model"]["n_layers"] == depth]
            grid_here = sorted({r["model"]["gamma"] for r in at})
            auc = {
                g: np.array([r["auc"] for r in at if r["model"]["gamma"] == g]) for g in grid_here
            }
            loss = {
                g: np.mean([r["loss"] for r in at if r["model"]["gamma"] == g]) for g in grid_here
            }
            means = {g: a.mean() for g, a in auc.items()}
            got = v["mean_auc"][shear][str(depth)]
            assert got == pytest.approx({repr(float(g)): m for g, m in means.items()}, abs=1e-12)
            top = max(means.values())
            # the AUC takes no tie tolerance (0.5 points is only for final accuracy at 100 %)
            star = min((g for g in grid_here if means[g] >= top), key=loss.get)
            assert v["gamma_star"][shear][str(depth)] == star
            others = [g for g in grid_here if g not in (star, 0)]
            runner = max(others, key=means.get) if others else None
            assert v["runner_up"][shear][str(depth)] == runner
            ends = None if runner is None else (_t_interval(auc[star]), _t_interval(auc[runner]))
            separated = None if ends is None or None in ends else bool(ends[0][0] > ends[1][1])
            assert v["separated"][shear][str(depth)] == separated, (shear, depth)
            # an effect: γ = 0 scores below γ*'s interval (one seed, or no γ = 0: nothing to test)
            lows = _t_interval(auc[star]), _t_interval(auc.get(0.0, np.array([])))
            effect[shear, depth] = None in lows or lows[1][1] < lows[0][0]
            # the paper's γ*(N), judged by the grid γ on both sides of it: each measurably below
            # γ* (intervals apart) → outside; one not distinguishable → inside (past the grid's
            # end: undecided); a needed interval missing → untested
            ends = {g: _t_interval(a) for g, a in auc.items()}

            def standing(g, ends=ends, star=star):
                if ends[star] is None or ends[g] is None:
                    return None
                return bool(ends[g][1] < ends[star][0] or ends[g][0] > ends[star][1])

            paper = 4.17 * depth**-0.74
            lower = [g for g in grid_here if g <= paper]
            upper = [g for g in grid_here if g >= paper]
            sides = [standing(g) for g in {*lower[-1:], *upper[:1]}]
            if ends[star] is None:
                verdict = "untested"
            elif 0.0 in ends and standing(0.0) is False:
                verdict = "no_effect"
            elif False in sides:
                verdict = "inside" if lower and upper else "beyond_grid"
            else:
                verdict = "untested" if None in sides else "outside"
            assert v["paper_verdict"][shear][str(depth)] == verdict, (shear, depth)
    smeared = [r for r in rows if r["config"]["model"]["smeared_key"]]
    for depth, value in v["smeared_auc"].items():
        here = [
            r["auc_accuracy"] for r in smeared if r["config"]["model"]["n_layers"] == int(depth)
        ]
        assert value == (pytest.approx(np.mean(here), abs=1e-12) if here else None)
    assert v["gamma_star_by_hand"] == v["gamma_star"].get("qk", {})

    # the power law through the depths with γ* > 0 and an effect: least squares in log space
    positive = {
        int(d): g
        for d, g in v["gamma_star"].get("qk", {}).items()
        if g > 0 and effect["qk", int(d)]
    }
    if len(positive) >= 2:
        slope, intercept = np.polyfit(np.log(list(positive)), np.log(list(positive.values())), 1)
        assert v["fit_ab"] == pytest.approx([math.exp(intercept), slope], rel=1e-4, abs=1e-6)
        # a verdict only with seeds to bootstrap and finite intervals; otherwise none
        assert (
            "We measure" in v["statement"]
            and ("Our measurement is" in v["statement"] or "No verdict" in v["statement"])
        ) or ("neither confirmed nor excluded" in v["statement"])
    else:
        assert v["fit_ab"] is None
        assert v["statement"] == "" or "no power law can be fitted" in v["statement"]

    # the pilot and the old sweep's ceiling, from their own files
    pilots = ROOT / "results" / "scaling_mqar"
    stage2 = [
        r
        for r in _jsonl(pilots / "pilot_stage2" / "results.jsonl")
        if r["config"]["task"]["n_pairs"] == spec["base"]["task"]["n_pairs"]
    ]
    best = max(stage2, key=lambda r: r["auc_accuracy"])
    assert v["pilot_best"] == pytest.approx(
        {
            "gamma": best["config"]["model"]["gamma"],
            "final_accuracy": best["final_accuracy"],
            "auc": best["auc_accuracy"],
        }
    )
    floor = max(r["final_accuracy"] for r in _jsonl(pilots / "pilot" / "results.jsonl"))
    assert v["pilot_floor_max"] == pytest.approx(floor)
    old = [
        r
        for r in _jsonl(ROOT / "results" / "scaling" / "results.jsonl")
        if not r["config"]["model"]["smeared_key"] and 0.5 <= r["config"]["model"]["gamma"] <= 1
    ]
    ceiling = {
        d: np.mean([r["final_accuracy"] for r in old if r["config"]["model"]["n_layers"] == d])
        for d in {r["config"]["model"]["n_layers"] for r in old}
    }
    assert v["old_ceiling_min"] == pytest.approx(min(ceiling.values()))


def _check_lm_comparison(v: dict) -> None:
    lm = ROOT / "results" / "lm"
    with (lm / "comparison.csv").open() as f:
        runs = list(csv.DictReader(f))
    records = json.loads((lm / "runs.json").read_text())
    ref = records["reference"]
    assert v["reference"] == ref
    by_config: dict[str, list[dict]] = {}
    for run in runs:
        by_config.setdefault(run["config"], []).append(run)
    mean = {
        c: {k: np.mean([float(r[k]) for r in rs]) for k in ("val_loss", "induction_loss")}
        for c, rs in by_config.items()
    }
    for config, row in v["summary"].items():
        assert row["n_seeds"] == len(by_config[config])
        for loss in ("val_loss", "induction_loss"):
            assert row[loss] == pytest.approx(mean[config][loss], rel=1e-9)
            assert row[f"{loss}_gap"] == pytest.approx(
                mean[config][loss] / mean[ref][loss] - 1, abs=1e-9
            )
    shear = {
        r["run_config"]["name"]: r["run_config"]["model"].get("shear")
        for r in records["runs"].values()
    }
    assert shear[v["roles"]["paper"]] == "qk" and shear[v["roles"]["base"]] == "none"
    paper, base = v["roles"]["paper"], v["roles"]["base"]
    assert v["momentum_cost"] == pytest.approx(mean[paper]["val_loss"] / mean[base]["val_loss"] - 1)
    train = records["runs"][f"{base}-seed0"]["run_config"]
    assert v["tokens_trained"] == (
        train["train"]["steps"] * train["train"]["batch_size"] * train["task"]["seq_len"]
    )

    # the per-position curves: on the comparison's own held-out windows their mean is the
    # committed val_loss of the same run; the ICL score is the late minus the early window
    n_pos = train["task"]["seq_len"]
    frac = np.arange(1, n_pos) / n_pos
    early, late = (frac >= 0.05) & (frac < 0.15), frac >= 0.9
    committed = {r["run"]: float(r["val_loss"]) for r in runs}
    for name, curve in v["curves"].items():
        curve = np.asarray(curve)
        assert curve.shape == (n_pos - 1,)
        assert curve.mean() == pytest.approx(committed[f"{name}-seed0"], rel=1e-4)
        assert v["icl"][name] == pytest.approx(curve[late].mean() - curve[early].mean(), abs=1e-9)
        assert v["icl"][name] < 0  # the loss falls with position: in-context learning
    assert v["library_icl"] == pytest.approx(v["notebook_icl"], abs=1e-4)

    fair = ROOT / "results" / "lm_fair" / "study.json"  # the fair redo's verdict, once it reports
    verdict = json.loads(fair.read_text())["momentum_verdict"] if fair.is_file() else None
    assert v["fair_verdict"] == verdict
    gpu = (ROOT / "results" / "lm_gpu" / "lm.json").is_file()
    assert v["gpu_present"] == gpu
    if not gpu:
        assert v["gpu_message"].startswith("Not yet measured")


def _check_formation(v: dict) -> None:
    from momentum_interp.training.history import history_schedule

    folder = ROOT / "results" / "zoo_history" / "formation"
    summary = json.loads((folder / "summary.json").read_text())
    assert v["agree"] is True
    assert v["n_runs"] == sum(a["n_seeds"] for a in summary["arms"]) >= 18
    assert v["detected"] == {a["variant"]: a["n_detected"] for a in summary["arms"]}
    # the displayed table: one row per arm, its phase-change count read from the runs' tables
    assert [r[0] for r in v["table_rows"]] == [a["variant"] for a in summary["arms"]]
    for row, arm in zip(v["table_rows"], summary["arms"], strict=True):
        tables = [
            json.loads((folder / f"{arm['variant']}-seed{r['seed']}.json").read_text())
            for r in arm["runs"]
        ]
        assert row[1] == f"{sum(t['phase_change']['detected'] for t in tables)}/{len(tables)}"
    assert v["tiny_steps"] == v["tiny_rows"] == history_schedule(60, 12)


CHECKS = {
    "01_quickstart": _check_quickstart,
    "02_single_layer_induction": _check_single_layer,
    "03_spectral_forensics": _check_spectral,
    "04_scaling_law": _check_scaling,
    "05_exploratory_analysis": _check_exploratory,
    "06_gamma_star_two_sided": _check_gamma_star_two_sided,
    "07_lm_comparison": _check_lm_comparison,
    "08_formation": _check_formation,
}


def test_every_notebook_has_checks():
    assert {p.stem for p in NOTEBOOKS} == set(CHECKS)


def _execute_and_check(nb, stem: str, tmp_path: Path, monkeypatch, render: bool = True) -> None:
    """Run `nb` (the network guarded), check its values with `CHECKS[stem]` and (with `render`)
    its figures in both HTML exports."""
    missing = [
        n for n in REQUIRED_ASSETS if not (ROOT / "assets" / n / "model.safetensors").is_file()
    ]
    assert not missing, f"the notebooks need the committed checkpoints; missing: {missing}"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.delenv("MOMENTUM_INTERP_ASSETS", raising=False)

    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{stem} is saved with outputs; clear them before committing"
    )
    nb.cells.insert(0, nbformat.v4.new_code_cell(NETWORK_GUARD))
    nb.cells.append(nbformat.v4.new_code_cell(NETWORK_REPORT))
    nb.cells.append(nbformat.v4.new_code_cell(_values_cell(VALUES[stem])))
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
    CHECKS[stem](_read_values(nb.cells[-1]))
    if render:
        _check_figures_drawn(nb, tmp_path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch, tmp_path):
    _execute_and_check(nbformat.read(path, as_version=4), path.stem, tmp_path, monkeypatch)


def _synthetic_sweep(out: Path, n_runs: int) -> Path:
    """The committed γ* sweep's spec with its first `n_runs` planned runs (seed by seed), their
    AUC made up: a sharp peak in γ that moves with depth (between two grid values at N = 6, so
    not every γ* is separated), seed noise, the keys-only shear lower."""
    from momentum_interp.sweeps.spec import SweepSpec

    spec = json.loads((ROOT / "results" / "scaling_mqar" / "sweep" / "sweep_spec.json").read_text())
    plan = SweepSpec(base=spec["base"], grid=spec["grid"], variants=spec["variants"]).expand()
    peak = {1: -0.5, 2: 1.0, 3: 0.707, 4: 0.5, 6: 0.3}
    rng = np.random.default_rng(0)
    rows = []
    for run in sorted(plan, key=lambda r: r.config["train"]["seed"])[:n_runs]:
        model = run.config["model"]
        auc = 0.45
        if not model.get("smeared_key"):
            auc = 0.7 - 0.5 * abs(model["gamma"] - peak[model["n_layers"]])
            auc -= 0.3 * (model.get("shear") == "k")
        auc = float(np.clip(auc + rng.normal(0, 0.01), 0.01, 0.99))
        rows.append(
            {
                "run_id": run.run_id,
                "variant": run.variant,
                "config": run.canonical,
                "auc_accuracy": auc,
                "final_accuracy": min(1.0, 1.5 * auc),
                "final_loss": 5 * (1 - auc),
            }
        )
    out.mkdir(parents=True)
    (out / "sweep_spec.json").write_text(json.dumps(spec))
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_gamma_star_notebook_reads_a_partial_sweep(monkeypatch, tmp_path):
    """The γ* notebook on a made-up partial sweep (two whole seeds and part of the third): every
    section with results runs, its numbers match the rows, and it makes its figures (drawing them
    in Chromium is `test_notebook_executes`'s job, on the committed sweep)."""
    sweep = _synthetic_sweep(tmp_path / "sweep", 230)
    path = ROOT / "notebooks" / "06_gamma_star_two_sided.ipynb"
    nb = nbformat.read(path, as_version=4)
    line = 'SWEEP = RESULTS / "sweep"'
    (cell,) = [c for c in nb.cells if line in c.source]
    cell.source = cell.source.replace(line, f"SWEEP = Path({str(sweep)!r})")
    _execute_and_check(nb, path.stem, tmp_path, monkeypatch, render=False)
    # pilot curves, AUC per depth, γ*(N) against the law
    assert _figure_outputs(nb) == (3, 0)


def test_lm_notebook_shows_a_gpu_comparison_once_committed(tmp_path):
    """The LM notebook's GPU section (its imports and that cell alone) on a made-up `lm.json` in
    the layout `benchmarks/gpu/lm.py` writes: one row per run with its metrics and gaps, the runs
    with gaps within the paper's gap named (not the reference itself, not a stopped run however
    close), and each run without gaps with its reason."""
    metrics = {
        "baseline-3S": (3.0, 2.0, -0.5),
        "momentum-S": (3.06, 2.2, -0.4),
        "baseline-S": (3.3, 2.4, -0.3),
        "smeared-key-S": (3.01, 2.1, -0.4),  # stopped early: no gaps, though 0.3% behind
    }
    names = ("val_loss", "induction_loss", "icl_score")
    runs = {
        n: {"status": "done", "n_params": 1000 + i, "metrics": dict(zip(names, m, strict=True))}
        for i, (n, m) in enumerate(metrics.items())
    }
    ref = metrics["baseline-3S"]
    gaps = {
        n: {k: m[i] / ref[i] - 1 for i, k in enumerate(names[:2])}
        | {"icl_score_diff": m[2] - ref[2]}
        for n, m in metrics.items()
    }
    stopped = "stopped at 31,457,280 of 50,331,648 tokens"
    runs["smeared-key-S"]["status"] = "wall-clock budget: stopped at step 960 of 1536"
    gaps["smeared-key-S"] = {"not_compared": stopped}
    runs["keys-only-S"] = {"status": "skipped: out of time", "n_params": 999}
    gaps["keys-only-S"] = {"not_compared": "skipped: out of time"}
    record = tmp_path / "lm.json"
    record.write_text(
        json.dumps(
            {
                "reference": "baseline-3S",
                "token_budget": {"tokens_per_model": 50_000_000},
                "runs": runs,
                "gaps": gaps,
            }
        )
    )
    nb = nbformat.read(ROOT / "notebooks" / "07_lm_comparison.ipynb", as_version=4)
    line = 'GPU = REPO_ROOT / "results" / "lm_gpu" / "lm.json"'
    (imports,) = [c for c in nb.cells if "from momentum_interp.paths import REPO_ROOT" in c.source]
    (section,) = [c for c in nb.cells if line in c.source]
    section.source = section.source.replace(line, f"GPU = Path({str(record)!r})")
    nb.cells = [
        nbformat.v4.new_code_cell("from pathlib import Path"),
        imports,
        section,
        nbformat.v4.new_code_cell(
            _values_cell(
                {
                    "table": "gpu.astype(object).where(gpu.notna(), None).to_dict(orient='index')",
                    "message": "gpu_message",
                }
            )
        ),
    ]
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    values = _read_values(nb.cells[-1])
    table = values["table"]
    assert list(table) == list(runs)
    for name, (val, span, icl) in metrics.items():
        row = table[name]
        assert (row["val_loss"], row["induction_loss"], row["icl_score"]) == (val, span, icl)
        if name == "smeared-key-S":
            assert row["val_loss_gap"] is None and row["not_compared"] == stopped
            continue
        assert row["val_loss_gap"] == pytest.approx(val / ref[0] - 1)
        assert row["induction_loss_gap"] == pytest.approx(span / ref[1] - 1)
        assert row["icl_score_diff"] == pytest.approx(icl - ref[2])
    assert table["keys-only-S"]["status"].startswith("skipped")
    assert table["keys-only-S"]["val_loss"] is None
    message = values["message"]
    assert message.startswith(f"The GPU-scale comparison ({record}): 5 runs, 50M tokens")
    assert "2.9% of the reference's loss: ['momentum-S']." in message
    assert f"smeared-key-S is not compared: {stopped}." in message
    assert "keys-only-S is not compared: skipped: out of time." in message
