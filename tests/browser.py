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
