"""Headless Chromium (Debian's `chromium` package) for the rendering tests: a page's DOM after
its scripts ran, and the remote URLs it requested. Under `CI=true` a missing browser fails the
test instead of skipping it, so CI always renders."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
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
