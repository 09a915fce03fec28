"""Committed results and generated prose: the README's result blocks and the model cards are
exactly what `python -m momentum_interp.results render` makes of `results/`."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from momentum_interp import results
from momentum_interp.narrative import readme as narrative_readme
from momentum_interp.narrative.readme import render, render_readme, replace_blocks
from momentum_interp.narrative.zoo import PAPER_MODEL
from momentum_interp.paths import REPO_ROOT
from momentum_interp.results import ZOO_DIR
from momentum_interp.tables import markdown_table


def test_readme_and_cards_agree_with_committed_results():
    stale = render(check=True)
    assert stale == [], (
        f"{[str(p.relative_to(REPO_ROOT)) for p in stale]} disagree with results/; run "
        "`python -m momentum_interp.results render` (or re-measure with "
        "`momentum-interp demo --results results/zoo`)"
    )


def _copy_results(tmp_path):
    """A copy of `results/` to perturb; returns its zoo directory (what `render_readme` takes)."""
    shutil.copytree(ZOO_DIR.parent, tmp_path / "results")
    return tmp_path / "results" / "zoo"


def test_rendering_follows_the_records(tmp_path):
    """A changed number in the record changes the README: nothing in it is typed by hand."""
    path = _copy_results(tmp_path) / results.ZOO_RECORD
    record = json.loads(path.read_text())
    paper = next(m for m in record["models"] if m["name"] == PAPER_MODEL)
    paper["accuracy"]["value"] = 0.1234
    record["trace"]["heads"][0]["head"] = [0, 2]
    path.write_text(json.dumps(record))
    readme = (REPO_ROOT / "README.md").read_text()
    changed = render_readme(readme, path.parents[1])
    assert changed != readme
    assert "0.123 [" in changed and "12.3 %" in changed and "heads (L0H2, L0H3," in changed
    assert render_readme(readme) == readme


def test_every_zoo_model_and_traced_head_appears_in_the_readme():
    readme = (REPO_ROOT / "README.md").read_text()
    record = json.loads((ZOO_DIR / results.ZOO_RECORD).read_text())
    for model in record["models"]:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{model['name']}`"))
        for layer, head in model["induction_ranking"]["tied"]:
            assert f"L{layer}H{head} " in row  # every tied head is named, not only the first
    assert record["provenance"]["seed"] == 0 and record["provenance"]["git_commit"]


def test_blocks_need_their_markers():
    text = "a\n<!-- results:x:start -->\nold\n<!-- results:x:end -->\nb"
    assert replace_blocks(text, {"x": "new"}) == text.replace("old", "new")
    with pytest.raises(ValueError, match="results:y:start"):
        replace_blocks(text, {"y": "new"})


def test_every_block_sits_under_a_results_or_performance_heading():
    """Each result block's section (its nearest `## ` heading above) is one of the README's
    results sections or Performance, never the claims summary: a heading replaced rather than
    inserted when a section was added once left blocks under the wrong one."""
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    section, found = None, {}
    for line in lines:
        if line.startswith("## "):
            section = line
        for name in narrative_readme.blocks():
            if line == f"<!-- results:{name}:start -->":
                found[name] = section
    assert set(found) == set(narrative_readme.blocks())
    wrong = {n: h for n, h in found.items() if not h.startswith(("## Results: ", "## Performance"))}
    assert wrong == {}


def test_every_number_in_the_claims_summary_is_one_a_rendered_block_shows():
    """The claims lines are prose, not a rendered block: each number they quote must appear in
    a block rendered from the result files, so a claim cannot drift from its evidence."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("## Where each of the paper's claims stands")
    claims = text[start : text.index("\n## ", start + 1)]
    rendered = "".join(
        re.findall(r"<!-- results:[\w-]+:start -->(.*?)<!-- results:[\w-]+:end -->", text, re.S)
    )

    def numbers(s: str) -> set[str]:  # whole numbers as written, one minus sign
        return set(re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\d.]\d)", s))

    # a bare digit (a depth, a seed count) would match anywhere: only the telling numbers
    quoted = {n for n in numbers(claims.replace("−", "-")) if not re.fullmatch(r"\d", n)}
    assert {"4.17", "2.9", "-0.75", "1.85"} <= quoted  # the pattern finds the claims' numbers
    assert sorted(quoted - numbers(rendered.replace("−", "-"))) == []


def test_markdown_table():
    assert markdown_table(["a", "b"], [[1, "x"]], align="lr") == "| a | b |\n|---|---:|\n| 1 | x |"


def test_lm_block_follows_the_comparison(tmp_path):
    """One seed's validation loss moved: the table's mean and the bullets' percentages move."""
    zoo = _copy_results(tmp_path)
    path = zoo.parent / "lm" / "comparison.csv"
    table = pd.read_csv(path)
    momentum = table["config"] == "lm-momentum-S"
    table.loc[momentum, "val_loss"] = [4.6, 4.62, 4.64]
    reference = table.loc[table["config"] == "lm-baseline-3S", "val_loss"].mean()
    table["val_loss_gap"] = table["val_loss"] / reference - 1
    table.to_csv(path, index=False)
    readme = (REPO_ROOT / "README.md").read_text()
    changed = render_readme(readme, zoo.parent)
    base = table.loc[table["config"] == "lm-baseline-S", "val_loss"].mean()
    row = "| `lm-momentum-S` | momentum on q and k, γ = 1.0, post-rope | 3 | 4.620 (0.020) |"
    assert f"{row} +{100 * (4.62 / reference - 1):.1f} % |" in changed
    assert f"changes the baseline's loss by +{100 * (4.62 / base - 1):.1f} %" in " ".join(
        changed.split()
    )
    assert render_readme(readme) == readme


def test_scaling_fit_round_trips_through_its_record():
    """`fit.json` read back gives the statement and summary it was written with."""
    from momentum_interp.analysis.scaling import ScalingFit
    from momentum_interp.narrative.scaling import consistency_statement, summary_markdown

    scaling = REPO_ROOT / "results" / "scaling"
    record = json.loads((scaling / "fit.json").read_text())
    fit = ScalingFit.from_dict(record)
    assert consistency_statement(fit) == record["consistency"]
    assert summary_markdown(fit) == (scaling / "summary.md").read_text()


def test_scaling_blocks_follow_the_fit_and_the_pilot(tmp_path):
    zoo = _copy_results(tmp_path)
    path = zoo.parent / "scaling" / "fit.json"
    record = json.loads(path.read_text())
    record["fit"]["a"] = 3.21
    record["depths"][0]["window"] = [0.25, 8.0]
    path.write_text(json.dumps(record))
    pilot = zoo.parent / "scaling_mqar" / "pilot_stage2" / "results.csv"
    table = pd.read_csv(pilot)
    table.loc[table["model.gamma"] == 2.0, "auc_accuracy"] = 0.9
    table.to_csv(pilot, index=False)
    spec_path = zoo.parent / "scaling_mqar" / "sweep" / "sweep_spec.json"
    spec = json.loads(spec_path.read_text())
    spec["n_runs"], spec["grid"]["train.seed"] = 999, [0, 1, 2, 3, 4]
    spec_path.write_text(json.dumps(spec))
    readme = (REPO_ROOT / "README.md").read_text()
    changed = " ".join(render_readme(readme, zoo.parent).split())
    assert "**Fit through the argmaxes: γ* = 3.21 N^-0.111**" in changed  # it decides nothing
    assert "the largest γ still tied at the top: 8 at N = 1, 2 at N = 2" in changed
    assert "separated the γ values: 0.90 at γ = 2, 0.47 at γ = -0.5" in changed
    assert "hinted that a *smoothing* q/k shear" not in changed  # the best γ now sharpens
    sweep = zoo.parent / "scaling_mqar" / "sweep" / "results.jsonl"
    done = len(sweep.read_text().splitlines()) if sweep.is_file() else 0
    assert "5 seeds, 600 steps, 999 runs." in changed and f"holds {done} of the 999 runs" in changed
    assert f"Partial sweep: {done} of 999 runs." in changed
    # every planned run committed: the blocks say the sweep is complete
    spec["n_runs"] = done
    spec_path.write_text(json.dumps(spec))
    complete = " ".join(render_readme(readme, zoo.parent).split())
    assert f"is complete: all {done} runs are committed" in complete
    assert f"Complete sweep: {done} of {done} runs." in complete and "Partial" not in complete


def test_performance_blocks_follow_the_benchmark_records(tmp_path):
    """A moved ratio or throughput in a benchmark record moves the table, the bullets and the
    met/missed verdicts."""
    benchmarks = tmp_path / "benchmarks"
    shutil.copytree(narrative_readme.BENCHMARKS, benchmarks)
    blocks = narrative_readme.blocks()
    located = lambda block, source: narrative_readme.located(  # noqa: E731
        blocks[block].sources[source].path, narrative_readme.RESULTS, benchmarks
    )
    cpu = located("perf-cpu", "record")
    record = json.loads(cpu.read_text())
    longest = max(
        (c for c in record["configs"] if c["preset"] == "tiny" and not c["compile"]),
        key=lambda c: c["seq_len"],
    )
    longest["ratios"]["fast_over_analysis"]["ratio"] = 7.25
    cpu.write_text(json.dumps(record))
    gpu = located("perf-gpu", "compiled")
    record = json.loads(gpu.read_text())
    record["configs"][0]["ratios"]["gamma1_over_gamma0"]["ratio"] = 0.991
    record["configs"][0]["variants"]["gamma0"]["tokens_per_s"] = 123456.0
    gpu.write_text(json.dumps(record))
    demo = benchmarks / "demo_timing_cpu.json"
    record = json.loads(demo.read_text())
    for run in record["summary"].values():
        run["imports"]["pandas"]["median"] = 0.71
    demo.write_text(json.dumps(record))
    readme = (REPO_ROOT / "README.md").read_text()
    changed = render_readme(readme, narrative_readme.RESULTS, benchmarks)
    flat = " ".join(changed.split())
    assert "| 4096 | 1 | no |" in changed and "| 7.250 |" in changed
    assert "7.2 times slower" in flat
    assert "| ours γ=0 | 123,456 |" in changed
    assert "| compiled γ=1 / γ=0 ≥ 0.98 | 0.991: met |" in changed
    assert "pandas 0.7 s" in flat
    assert render_readme(readme) == readme


def test_readme_prose_writes_maths_in_unicode():
    """The README's prose (its rendered blocks included) writes maths in Unicode (qₜ₋₁, e^(−iω)):
    outside code blocks no raw TeX `^{`/`_{` for a reader to see as braces."""
    readme = (REPO_ROOT / "README.md").read_text()
    prose = "".join(readme.split("```")[::2])  # every other piece lies outside a fenced block
    assert not re.findall(r".{30}[\^_]\{.{10}", prose)
