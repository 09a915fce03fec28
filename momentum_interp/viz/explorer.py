"""The interactive circuit explorer: one head, one sequence, a γ slider, in a self-contained page.

Click (or hover) a query token to see its attention row and its score split into the four terms
of the score identity over the keys, with the induction key s* marked; move the γ slider and the
page recomputes scores and softmax in the browser from the four dot products that
`analysis.explorer` computed (no kernel); switch heads and models on the same tokens. Plain
JavaScript and inline SVG: nothing is fetched.

Example:
    >>> from momentum_interp.analysis.explorer import explorer_data
    >>> from momentum_interp.viz import Explorer
    >>> page = Explorer(explorer_data(["induction-1l-momentum", "induction-1l-baseline"]))
    >>> page.save("explorer/index.html")   # or leave `page` as a notebook cell's value
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from momentum_interp.analysis.explorer import DOTS, ExplorerData
from momentum_interp.io import atomic_write_text
from momentum_interp.viz import style
from momentum_interp.viz.captions import slider_caption
from momentum_interp.viz.report import Report
from momentum_interp.viz.security import CSP_META, script_json


def _payload(data: ExplorerData) -> str:
    """The page's data as JSON safe inside its `<script>` block: each model's dots as base64
    little-endian float32, so a 64-token, 8-head model costs 0.7 MB rather than several of
    decimal text."""
    models = []
    for m in data.models:
        n_layers, n_heads = m.gamma.shape
        models.append(
            {
                "name": m.name,
                "shear": m.shear,
                "note": slider_caption(m),
                "n_layers": n_layers,
                "n_heads": n_heads,
                "gamma": np.asarray(m.gamma, dtype=float).tolist(),
                "shear_norm": m.shear_norm,
                "opening": m.opening.to_dict(),
                "dots": base64.b64encode(np.ascontiguousarray(m.dots, dtype="<f4")).decode(),
            }
        )
    payload = {
        "tokens": data.tokens,
        "labels": style.token_labels(data.str_tokens),
        "axis_labels": style.axis_labels(data.str_tokens),
        "ticks": style.thinned_ticks(len(data.tokens)),
        "induction_keys": data.induction_keys,
        "term_names": list(DOTS),
        "colours": style.palette(5),
        "models": models,
    }
    return script_json(payload)


class Explorer:
    """The explorer for an `ExplorerData`: `save()` writes the page, and as a notebook cell's
    value it shows inline (in an iframe, so its script and styles stay its own)."""

    def __init__(self, data: ExplorerData):
        self.data = data

    def to_html(self) -> str:
        return PAGE.replace("__CSP__", CSP_META).replace("__DATA__", _payload(self.data))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_html())
        return path

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.to_html(), quote=True)}" '
            f'style="width:100%;height:1050px;border:0" onload="{FIT_FRAME}"></iframe>'
        )


# The inline frame follows its page's height (a longer query row makes a longer table): the
# srcdoc frame shares the notebook's origin, so the notebook side can watch the page's body.
FIT_FRAME = (
    "const frame = this, body = frame.contentDocument.body; "
    "const fit = () => { frame.style.height = "
    "Math.ceil(body.getBoundingClientRect().bottom) + 24 + 'px'; }; "
    "new ResizeObserver(fit).observe(body); fit();"
)


EXPLORER_PAGE = "explorer/index.html"  # where a report's explorer is written, beside the report


def write_explorer(data: ExplorerData, out_dir: str | Path) -> Path:
    """The explorer of `data` written beside a report in `out_dir` (at `EXPLORER_PAGE`, which
    `link_explorer` links to)."""
    return Explorer(data).save(Path(out_dir) / EXPLORER_PAGE)


def link_explorer(report: Report, data: ExplorerData) -> Report:
    """The report's paragraph saying what the explorer of `data` beside it is, with the link."""
    names = ", ".join(m.name for m in data.models)
    sequence = (
        "one sequence" if data.seed is None else f"one repeated random sequence (seed {data.seed})"
    )
    return report.link(
        "Circuit explorer: ",
        EXPLORER_PAGE,
        "open the interactive page",
        f" for {names} on {sequence}. Pick a head and a query token to see its attention row and "
        "the four terms of its score, and move the γ slider to recompute them in the browser. It "
        "is a separate self-contained file.",
    )


PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8">__CSP__<title>Circuit explorer</title>
<style>
body { font-family: system-ui, sans-serif; margin: 16px; color: #222; font-size: 14px; }
h1 { font-size: 20px; margin: 0 0 8px; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin: 6px 0; }
.heads { display: flex; flex-wrap: wrap; gap: 2px; }
.heads button { padding: 2px 7px; border: 1px solid #bbb; background: #f4f4f4; cursor: pointer; }
.heads button.on { background: #0072B2; border-color: #0072B2; color: #fff; }
#gamma { width: 260px; }
#gamma-value { width: 70px; }
#opening { background: #f4f8fc; border-left: 3px solid #0072B2; padding: 4px 8px; }
.note { color: #444; max-width: 1150px; margin: 4px 0 10px; white-space: normal; }
#strip { font-family: ui-monospace, monospace; line-height: 2; max-width: 1150px; }
#strip span { padding: 1px 3px; margin: 0 1px; border-radius: 3px; cursor: pointer;
  border: 1px solid #ddd; white-space: pre; }
#strip span.query { outline: 2px solid #222; }
#strip span.star { border-bottom: 3px solid #000000; }
.panels { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin-top: 10px; }
.panel h2 { font-size: 14px; margin: 0 0 4px; }
svg text { font-size: 11px; }
#row-table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 12px; }
#row-table th, #row-table td { padding: 1px 7px; border-bottom: 1px solid #eee; text-align: right; }
#row-table td.text, #row-table th.text { text-align: left; }
#row-table tr.star td { background: #fff4cc; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
</style></head>
<body>
<h1>Circuit explorer: the momentum score identity, live</h1>
<div class="controls">
  <label>model <select id="model"></select></label>
  <div class="heads" id="heads"></div>
</div>
<div class="controls">
  <label>γ <input type="range" id="gamma" min="-1" max="4" step="0.05"></label>
  <input type="number" id="gamma-value" step="0.01">
  <button id="reset">the head's own γ</button>
  <span id="shears"></span>
</div>
<div class="note" id="note"></div>
<div class="note">score(t, s) = (1+γq)(1+γk) qₜ·kₛ − (1+γq)γk qₜ·kₛ₋₁ − γq(1+γk) qₜ₋₁·kₛ
  + γqγk qₜ₋₁·kₛ₋₁, over √d_head; attention = softmax over keys s ≤ t. Click a token to
  pick the query (hover previews it); the black underline marks its induction key s*, the token
  after the previous occurrence of the query's token.</div>
<div class="note" id="opening"><span id="opening-text"></span>
  <button id="typical">show the typical (median) query</button>
  <button id="strongest">back to the opening query</button></div>
<div id="strip"></div>
<div class="panels">
  <div class="panel"><h2>Attention pattern (rows: queries)</h2><svg id="pattern"></svg></div>
  <div class="panel"><h2 id="row-title"></h2><div class="legend" id="legend"></div>
    <svg id="row"></svg></div>
</div>
<div class="panel"><h2>The query's row, in numbers (each term column: its coefficient × its dot product)</h2><table id="row-table"></table></div>
<script type="application/json" id="explorer-data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("explorer-data").textContent);
const T = D.tokens.length;
function decode(b64) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}
D.models.forEach((m) => { m.values = decode(m.dots); });
const state = { model: 0, layer: 0, head: 0, gamma: 0, query: T - 1, hover: null };
const $ = (id) => document.getElementById(id);
const model = () => D.models[state.model];
const query = () => (state.hover === null ? state.query : state.hover);
const fmt = (v) => (Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toFixed(3));

function shears() {
  const g = state.gamma;
  return model().shear === "qk" ? [g, g] : [0, g];
}
// A gain-normalised shear divides by its RMS gain √(1 + 2γ + 2γ²) (model/shear.py rms_gain,
// analysis/explorer.py coefficients); a learned temperature is already in the dots.
const rmsGain = (g) => Math.sqrt(1 + 2 * g + 2 * g * g);
function coefficients() {
  const [gq, gk] = shears();
  const scale = model().shear_norm ? 1 / (rmsGain(gq) * rmsGain(gk)) : 1;
  return [(1 + gq) * (1 + gk), -(1 + gq) * gk, -gq * (1 + gk), gq * gk].map((c) => scale * c);
}
// The query's row: each term's contribution, the score and the attention over keys s <= t.
function row(t) {
  const m = model(), c = coefficients();
  const base = (state.layer * m.n_heads + state.head) * 4 * T * T;
  const terms = c.map((ci, i) => {
    const r = new Float64Array(t + 1);
    for (let s = 0; s <= t; s++) r[s] = ci * m.values[base + (i * T + t) * T + s];
    return r;
  });
  const scores = new Float64Array(t + 1);
  for (let s = 0; s <= t; s++) scores[s] = terms[0][s] + terms[1][s] + terms[2][s] + terms[3][s];
  const top = Math.max(...scores);
  const weights = scores.map((v) => Math.exp(v - top));
  const total = weights.reduce((a, b) => a + b, 0);
  return { terms, scores, attn: weights.map((v) => v / total) };
}

// Text from data (tokens, names) enters markup only through `esc`, or as textContent.
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

function svgText(x, y, text, extra = "") {
  return `<text x="${x}" y="${y}" ${extra}>${esc(text)}</text>`;
}

function drawPattern() {
  const cell = Math.max(4, Math.floor(400 / T)), pad = 70, size = cell * T;
  const parts = [];
  for (let t = 0; t < T; t++) {
    const a = row(t).attn;
    for (let s = 0; s <= t; s++) {
      const v = a[s], shade = Math.round(255 * (1 - v));
      parts.push(`<rect x="${pad + s * cell}" y="${pad + t * cell}" width="${cell}" height="${cell}"
        fill="rgb(${shade},${Math.round(255 - 110 * v)},255)" data-q="${t}"><title>query ${t}, key ${s}: ${v.toFixed(4)}</title></rect>`);
    }
    const star = D.induction_keys[t];
    if (star >= 0) parts.push(`<circle cx="${pad + (star + 0.5) * cell}" cy="${pad + (t + 0.5) * cell}" r="${Math.max(1.5, cell / 4)}" fill="#000000" pointer-events="none"/>`);
  }
  const t = query();
  parts.push(`<rect x="${pad}" y="${pad + t * cell}" width="${size}" height="${cell}" fill="none" stroke="#222" stroke-width="1.5" pointer-events="none"/>`);
  for (const i of D.ticks) {
    parts.push(svgText(pad - 4, pad + (i + 0.7) * cell, D.axis_labels[i], 'text-anchor="end"'));
    parts.push(svgText(pad + (i + 0.5) * cell, pad - 4, D.axis_labels[i], `transform="rotate(-60 ${pad + (i + 0.5) * cell} ${pad - 4})"`));
  }
  const svg = $("pattern");
  svg.setAttribute("width", pad + size + 10);
  svg.setAttribute("height", pad + size + 10);
  svg.innerHTML = parts.join("");
}

function drawRow() {
  const t = query(), r = row(t), star = D.induction_keys[t];
  const W = 720, pad = 150, bw = (W - pad - 10) / T, band = 64, gap = 14;
  const names = ["attention", ...D.term_names, "score"];
  const values = [r.attn, ...r.terms, r.scores];
  const scale = Math.max(1e-9, ...[...r.terms, r.scores].flatMap((v) => Array.from(v, Math.abs)));
  const c = coefficients(), parts = [];
  if (star >= 0) parts.push(`<rect x="${pad + star * bw}" y="0" width="${bw}" height="${names.length * (band + gap)}" fill="#fff4cc"/>`,
    svgText(pad + (star + 0.5) * bw, 10, "s*", 'text-anchor="middle" fill="#000000" font-weight="bold"'));
  names.forEach((name, k) => {
    const y0 = 14 + k * (band + gap), v = values[k];
    const attention = k === 0, mid = attention ? y0 + band : y0 + band / 2;
    const label = k === 0 ? "attention" : k === names.length - 1 ? "score (sum)" : `${fmt(c[k - 1])} × ${name}`;
    parts.push(svgText(pad - 8, mid + 4, label, 'text-anchor="end"'));
    parts.push(`<line x1="${pad}" x2="${W - 10}" y1="${mid}" y2="${mid}" stroke="#999"/>`);
    const colour = attention ? D.colours[0] : k === names.length - 1 ? "#222A2A" : D.colours[k];
    for (let s = 0; s <= t; s++) {
      const h = attention ? band * v[s] : (band / 2) * v[s] / scale;
      parts.push(`<rect x="${pad + s * bw + 0.5}" y="${h >= 0 ? mid - h : mid}" width="${Math.max(1, bw - 1)}" height="${Math.abs(h)}" fill="${colour}"><title>key ${s}: ${v[s].toFixed(4)}</title></rect>`);
    }
  });
  const yAxis = names.length * (band + gap) + 14;
  for (const i of D.ticks) parts.push(svgText(pad + (i + 0.5) * bw, yAxis, D.axis_labels[i], `transform="rotate(-60 ${pad + (i + 0.5) * bw} ${yAxis})" text-anchor="end"`));
  const svg = $("row");
  svg.setAttribute("width", W);
  svg.setAttribute("height", yAxis + 60);
  svg.innerHTML = parts.join("");
  $("row-title").textContent = `Query ${t} (token ${D.axis_labels[t]}): attention and score terms over keys s ≤ ${t}` +
    (star >= 0 ? `; induction key s* = ${star}` : "; no induction key (first occurrence)");
  drawTable(t, r, star);
}

function drawTable(t, r, star) {
  const head = ["key", "token", "attention", "score", ...D.term_names];
  const rows = [`<tr><th>${esc(head[0])}</th><th class="text">${esc(head[1])}</th>${head.slice(2).map((h) => `<th>${esc(h)}</th>`).join("")}</tr>`];
  for (let s = 0; s <= t; s++) {
    const cells = [r.attn[s], r.scores[s], ...r.terms.map((v) => v[s])];
    const classes = ["attn", "score", "term", "term", "term", "term"];
    rows.push(`<tr class="${s === star ? "star" : ""}" data-key="${s}"><td>${s}${s === star ? " s*" : ""}</td><td class="text">${esc(D.labels[s])}</td>` +
      cells.map((v, i) => `<td class="${classes[i]}" data-value="${v}">${fmt(v)}</td>`).join("") + "</tr>");
  }
  $("row-table").innerHTML = rows.join("");
}

function drawStrip() {
  const t = query(), a = row(t).attn, star = D.induction_keys[t];
  $("strip").innerHTML = D.labels.map((label, s) => {
    const alpha = s <= t ? a[s] : 0, cls = [s === t ? "query" : "", s === star ? "star" : ""].join(" ");
    return `<span class="${cls}" data-query="${s}" title="position ${s}" style="background: rgba(46,145,229,${alpha.toFixed(3)})">${esc(label)}</span>`;
  }).join("");
}

function drawControls() {
  const m = model();
  const [gq, gk] = shears();
  $("gamma").value = state.gamma;
  $("gamma-value").value = Number(state.gamma.toFixed(4));
  $("shears").textContent = `γq = ${gq.toFixed(3)}, γk = ${gk.toFixed(3)} (head's own γ = ${m.gamma[state.layer][state.head].toFixed(3)})`;
  $("note").textContent = m.note;
  document.querySelectorAll("#heads button").forEach((b) => {
    b.className = +b.dataset.layer === state.layer && +b.dataset.head === state.head ? "on" : "";
  });
}

function draw() { drawControls(); drawStrip(); drawPattern(); drawRow(); }
function drawQuery() { drawStrip(); drawPattern(); drawRow(); }

// The opening view was chosen in analysis (analysis/explorer.py opening_view): the page only
// states it, with the head's mean attention on s* and its median query beside it.
function describeOpening() {
  const o = model().opening, head = `L${o.layer}H${o.head}`;
  $("opening-text").textContent = o.mean === null
    ? `Opens on ${head}, the top induction head by score's ranking (the rule every trace uses); ` +
      "this sequence has no repeated token, so no query has an induction key."
    : `Opens on ${head}, the top induction head by score's ranking (the rule every trace uses), ` +
      `at query ${o.query}, where it attends most to its induction key s* (${fmt(o.attention)}). ` +
      `Its mean attention on s* over all ${o.n_queries} queries with an induction key is ` +
      `${fmt(o.mean)}; the typical (median) query is ${o.median_query}.`;
  $("typical").hidden = $("strongest").hidden = o.mean === null;
}
function openingQuery(which) {
  const o = model().opening;
  Object.assign(state, { layer: o.layer, head: o.head, query: which, hover: null });
  resetGamma();
}

function selectModel(index) {
  state.model = index;
  const m = model();
  const buttons = [];
  for (let l = 0; l < m.n_layers; l++) for (let h = 0; h < m.n_heads; h++)
    buttons.push(`<button data-layer="${l}" data-head="${h}">L${l}H${h}</button>`);
  $("heads").innerHTML = buttons.join("");
  describeOpening();
  openingQuery(m.opening.query);
}
function resetGamma() { state.gamma = model().gamma[state.layer][state.head]; draw(); }
function setGamma(value) { if (Number.isFinite(value)) { state.gamma = value; draw(); } }

D.models.forEach((m, i) => $("model").add(new Option(m.name, i)));
$("model").addEventListener("change", (e) => selectModel(+e.target.value));
$("heads").addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b) { state.layer = +b.dataset.layer; state.head = +b.dataset.head; resetGamma(); }
});
$("gamma").addEventListener("input", (e) => setGamma(parseFloat(e.target.value)));
$("gamma-value").addEventListener("change", (e) => setGamma(parseFloat(e.target.value)));
$("reset").addEventListener("click", resetGamma);
$("typical").addEventListener("click", () => openingQuery(model().opening.median_query));
$("strongest").addEventListener("click", () => openingQuery(model().opening.query));
$("strip").addEventListener("click", (e) => {
  const s = e.target.closest("span");
  if (s) { state.query = +s.dataset.query; state.hover = null; drawQuery(); }
});
$("strip").addEventListener("mouseover", (e) => {
  const s = e.target.closest("span");
  if (s && +s.dataset.query !== query()) { state.hover = +s.dataset.query; drawQuery(); }
});
$("strip").addEventListener("mouseleave", () => { state.hover = null; drawQuery(); });
$("pattern").addEventListener("click", (e) => {
  const q = e.target.dataset && e.target.dataset.q;
  if (q !== undefined) { state.query = +q; state.hover = null; drawQuery(); }
});
selectModel(0);
</script>
</body></html>
"""
