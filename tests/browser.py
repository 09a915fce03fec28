"""Headless Chromium (Debian's `chromium` package) for the rendering tests: a page's DOM after
its scripts ran, the remote URLs it requested, a browser to drive (chromedriver), and markup
that tells whether data reached a page unescaped. Under `CI=true` a missing browser fails the
test instead of skipping it, so CI always renders."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

# Flags that keep Chromium from reaching any network: no background services, no name lookups.
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)

# Appended to a page: after load, the title lists every resource the page requested.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const urls = performance.getEntriesByType("resource").map((e) => e.name);
  document.title = "RESOURCES=" + JSON.stringify(urls);
}, 2000));
</script>"""


def require_chromium(driver: bool = False) -> str:
    """The Chromium executable; skips the test where it is missing, except under CI."""
    missing = CHROMIUM is None or (driver and CHROMEDRIVER is None)
    if missing:
        message = (
            "chromium / chromium-driver not installed (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def dump_dom(page: Path, profile: Path, budget_ms: int = 30000) -> str:
    """The DOM of `page` (a copy with `PROBE` added) after `budget_ms` of virtual time."""
    probed = page.with_name(page.stem + ".probed.html")
    probed.write_text(page.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    return subprocess.run(
        [
            require_chromium(),
            *OFFLINE_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout


def remote_requests(dom: str) -> list[str]:
    """The http(s) URLs a page dumped by `dump_dom` requested."""
    found = re.search(r"<title>RESOURCES=(.*?)</title>", dom)
    assert found, "the page did not finish loading"
    urls = json.loads(found.group(1).replace("&quot;", '"'))
    return [url for url in urls if url.startswith(("http:", "https:", "//"))]


# Run in every document a driven browser opens, before the page's own scripts: it records what
# the page's Content-Security-Policy blocked.
WATCH_CSP = """window.__csp_violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp_violations.push(`${e.violatedDirective} ${e.blockedURI}`));"""

# Markup that sets `top.__pwned` wherever it reaches a page unescaped: as HTML (an element's
# handler), inside a <script> block (it ends the block and opens another) or in a JSON block
# (`<!--<script>` stops the parser from finding the block's end). `&amp;` shows whether it is
# shown literally or decoded. Its `/`s make it a path of three nested directories.
HOSTILE = (
    "<img src=x onerror=top.__pwned=1>&amp;</script><script>top.__pwned=1</script><!--<script>"
)


@contextmanager
def chromedriver(profile: Path) -> Iterator:
    """Chromium driven through chromedriver (selenium), offline, recording CSP violations."""
    require_chromium(driver=True)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*OFFLINE_FLAGS, "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_CSP})
        yield driver
    finally:
        driver.quit()


def injected_script_ran(driver) -> bool:
    """Whether `HOSTILE` ran as script in the page `driver` shows (or a frame of it)."""
    return driver.execute_script("return window.top.__pwned !== undefined")


def csp_violations(driver) -> list[str]:
    """What the page's (or current frame's) Content-Security-Policy blocked: directive and URL."""
    return driver.execute_script("return window.__csp_violations")


def refuses_network(driver) -> bool:
    """Whether the page's Content-Security-Policy refuses an image from the network (a page
    without one tries the request, which `OFFLINE_FLAGS` make fail)."""
    return driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        document.addEventListener("securitypolicyviolation", () => done(true), {once: true});
        const image = new Image();
        image.onerror = () => setTimeout(() => done(false), 500);
        image.src = "https://example.com/pixel.png";"""
    )


# ------------------------------------------------------------------------ layout, measured

# What a driven browser shows of each plotly figure on its page, as plain data: the boxes of its
# colour bars' tick labels, of each trace's marks (markers and bars; whether filled), its lines
# and error bars, its legend entries (in their order on the page, with the symbol each shows),
# its axes' tick labels, and all the text it draws.
FIGURE_LAYOUT = """
const box = (el) => { const r = el.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
const traceOf = (el) => { const d = el.__data__; const cd = Array.isArray(d) ? d[0] : d;
  return cd && cd.trace ? cd.trace : (Array.isArray(cd) && cd[0] ? cd[0].trace : null); };
const width = (el) => parseFloat(getComputedStyle(el).strokeWidth) || 0;
return Array.from(document.querySelectorAll(".plotly-graph-div")).map((div) => ({
  colorbar_ticks: Array.from(div.querySelectorAll(".colorbar .cbaxis text"))
    .map((t) => ({text: t.textContent, box: box(t)})),
  traces: Array.from(div.querySelectorAll(".cartesianlayer g.trace")).map((g) => {
    const trace = traceOf(g);
    const marks = Array.from(g.querySelectorAll("path.point, .point > path")).map((p) => {
      const style = getComputedStyle(p);
      return {box: box(p), filled: style.fill !== "none" && parseFloat(style.fillOpacity) > 0};
    });
    return {
      index: trace.index, name: trace.name, type: trace.type, subplot: g.closest(".subplot") ?
        g.closest(".subplot").getAttribute("class") : "",
      marks: marks,
      lines: Array.from(g.querySelectorAll("path.js-line"))
        .filter((p) => (p.getAttribute("d") || "").length > 1 && width(p) > 0).map(box),
      errorbar_width: Math.max(0, ...Array.from(g.querySelectorAll("path.yerror, path.xerror"))
        .map(width)),
    };
  }),
  legend: Array.from(div.querySelectorAll(".legend g.traces")).map((g) => {
    const trace = traceOf(g);
    const drawn = (sel) => Array.from(g.querySelectorAll(sel)).some((p) =>
      (p.getAttribute("d") || "").length > 1 && getComputedStyle(p).display !== "none" &&
      (width(p) > 0 || getComputedStyle(p).fill !== "none"));
    return {index: trace.index, name: g.textContent, box: box(g),
            line: drawn(".legendlines path"), point: drawn(".legendpoints path")};
  }),
  xticks: Array.from(div.querySelectorAll(".xaxislayer-above .xtick text")).map((t) => t.textContent),
  yticks: Array.from(div.querySelectorAll(".yaxislayer-above .ytick text")).map((t) => t.textContent),
  texts: Array.from(div.querySelectorAll("svg text")).map((t) => t.textContent),
}));
"""


def figures_page(figures, path: Path) -> Path:
    """A self-contained page (`viz.report.Report`, plotly.js inlined) showing `figures`."""
    from momentum_interp.viz.report import Report

    report = Report(path.stem)
    for figure in figures:
        report.figure(figure)
    return report.save(path)


def figure_layouts(driver, page: Path) -> list[dict]:
    """`FIGURE_LAYOUT` of every figure of `page`, once all of them are drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".every((div) => div.querySelector('.main-svg'));"
        )
    )
    return driver.execute_script(FIGURE_LAYOUT)


def _overlap(a: dict, b: dict, slack: float = 0.5) -> bool:
    return (
        a["left"] < b["right"] - slack
        and b["left"] < a["right"] - slack
        and a["top"] < b["bottom"] - slack
        and b["top"] < a["bottom"] - slack
    )


def overlapping_labels(labels: list[dict]) -> list[tuple[str, str]]:
    """Pairs of labels (`{"text", "box"}`) whose boxes overlap."""
    return [
        (a["text"], b["text"])
        for i, a in enumerate(labels)
        for b in labels[i + 1 :]
        if _overlap(a["box"], b["box"])
    ]


def _inside(a: dict, b: dict, slack: float = 1.0) -> bool:
    return (
        a["left"] >= b["left"] - slack
        and a["right"] <= b["right"] + slack
        and a["top"] >= b["top"] - slack
        and a["bottom"] <= b["bottom"] + slack
    )


def hidden_traces(layout: dict) -> list[str]:
    """Traces drawn with marks (markers, bars) none of which a reader can see: each has no size,
    or lies inside a filled mark of a trace drawn later (on top of it) in the same subplot."""
    traces = [t for t in layout["traces"] if t["marks"]]
    hidden = []
    for i, trace in enumerate(traces):
        above = [
            m["box"]
            for later in traces[i + 1 :]
            if later["subplot"] == trace["subplot"]
            for m in later["marks"]
            if m["filled"]
        ]
        visible = [
            m
            for m in trace["marks"]
            if m["box"]["right"] > m["box"]["left"]
            and m["box"]["bottom"] > m["box"]["top"]
            and not any(_inside(m["box"], box) for box in above)
        ]
        if not visible:
            hidden.append(trace["name"])
    return hidden


def reading_order(entries: list[dict]) -> list[dict]:
    """Legend entries in the order a reader meets them: row by row, left to right."""
    return sorted(entries, key=lambda e: (round(e["box"]["top"]), e["box"]["left"]))


def raw_tex(texts: list[str]) -> list[str]:
    """The texts holding raw TeX (`^{`, `_{`), which a reader would see as braces."""
    return [text for text in texts if re.search(r"[\^_]\{", text)]


def legend_mismatches(layout: dict) -> list[str]:
    """Legend entries whose symbol is not the mark their trace draws: a trace draws a line where
    it has lines, or error bars at least as thick as its markers are wide (the bars, not the
    dots, are what a reader sees); its legend entry must then show a line, and a dot only where
    the trace draws visible markers."""
    traces = {t["index"]: t for t in layout["traces"]}
    wrong = []
    for entry in layout["legend"]:
        trace = traces.get(entry["index"])
        if trace is None:
            continue
        widest = max((m["box"]["right"] - m["box"]["left"] for m in trace["marks"]), default=0)
        bars = trace["errorbar_width"] > 0 and trace["errorbar_width"] >= widest
        draws_line = bool(trace["lines"]) or bars
        draws_point = widest > trace["errorbar_width"]
        if draws_line != entry["line"] or (entry["point"] and not draws_point):
            wrong.append(entry["name"])
    return wrong


def legend_and_stack(layout: dict) -> tuple[list[str], list[str]]:
    """The names of the bar traces with a legend entry, in the legend's reading order and in the
    order their bars stack from the left (horizontal bars) or from the top (vertical ones):
    equal where the legend runs as the bars do."""
    in_legend = {e["index"] for e in layout["legend"]}
    bars = [t for t in layout["traces"] if t["type"] == "bar" and t["marks"]]
    bars = [t for t in bars if t["index"] in in_legend]

    def start(trace: dict) -> float:
        boxes = [m["box"] for m in trace["marks"]]
        widths = [b["right"] - b["left"] for b in boxes]
        heights = [b["bottom"] - b["top"] for b in boxes]
        horizontal = sum(widths) >= sum(heights)
        return min(b["left"] for b in boxes) if horizontal else min(b["top"] for b in boxes)

    stacked = [t["name"] for t in sorted(bars, key=start)]
    names = {t["index"]: t["name"] for t in bars}
    legend = [names[e["index"]] for e in reading_order(layout["legend"]) if e["index"] in names]
    return legend, stacked
