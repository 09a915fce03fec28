"""What keeps a generated page's data from running as script or reaching the network: the
Content-Security-Policy every page carries, and JSON made safe to sit inside a `<script>` block.

Strings from data (paths, run names, tokens, prompts) reach HTML only escaped: `html.escape` in
Python, `textContent` or an escaping helper in the pages' JavaScript, `script_json` inside
scripts, `plotly_text` in figure labels. The policy is the second line: the pages fetch nothing,
so it allows no load at all beyond the page's own inline code and data: URIs.
"""

from __future__ import annotations

import html
import json

# Every script is inline. None needs `eval` (tested: plotly's SVG figures, circuitsvis, MathJax and
# the explorer draw without it); circuitsvis compiles WebAssembly ('wasm-unsafe-eval'). Images
# and fonts are data: URIs. Nothing may be loaded from elsewhere, sent or framed.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'unsafe-inline' 'wasm-unsafe-eval'",
        "style-src 'unsafe-inline'",
        "img-src data: blob:",
        "font-src data:",
        "connect-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'

# In a `<script>` block `</script` ends it and `<!--` changes how the parser finds its end;
# U+2028/U+2029 end a line in older JavaScript. As `\u` escapes they stay the same JSON value.
_SCRIPT_ESCAPES = str.maketrans(
    {c: f"\\u{ord(c):04x}" for c in ("<", ">", "&", "\u2028", "\u2029")}
)


def script_safe(json_text: str) -> str:
    """JSON text that can sit inside a `<script>` block: its `<`, `>`, `&` (found only inside
    its strings) and line separators written as `\\u` escapes; it parses to the same value."""
    return json_text.translate(_SCRIPT_ESCAPES)


def script_json(obj: object) -> str:
    """`obj` as JSON to embed in a `<script>` block (`script_safe`)."""
    return script_safe(json.dumps(obj))


def plotly_text(text: str) -> str:
    """`text` as a plotly label that shows it as written: plotly reads `<br>`, `<b>`, `<a>` and
    `&…;` entities in labels as its own markup (never as HTML), so data is escaped first."""
    return html.escape(text, quote=False)
