"""Interactive attention patterns with circuitsvis, always from its bundled JavaScript (offline)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import torch
from circuitsvis.attention import attention_heads

from momentum_interp.viz.security import script_safe
from momentum_interp.viz.style import token_labels

# circuitsvis draws the zoomed pattern as wide as its container and as tall as it is wide: this
# width keeps a 64-token grid with its head selector and token labels within one screen.
VIEW_STYLE = "max-width: 720px"
# circuitsvis draws each head's selector button one twelfth of the view wide (60 px); a longer
# name runs past its button.
MAX_SELECTOR_CHARS = 5


class OfflineHTML:
    """circuitsvis output that notebooks and reports render from the inlined JavaScript.

    circuitsvis's own `_repr_html_` probes the internet and prefers its CDN; this never does.
    """

    def __init__(self, local_src: str):
        self.local_src = local_src

    def _repr_html_(self) -> str:
        return self.local_src

    def __str__(self) -> str:
        return self.local_src


def attention_patterns_html(
    patterns: torch.Tensor,
    str_tokens: Sequence[str],
    head_names: Sequence[str],
) -> OfflineHTML:
    """One interactive view of several heads' patterns, `patterns: [head, q_pos, k_pos]`;
    integer tokens are shown apart (`"37 43 12"`, `style.token_labels`).

    Example: `attention_patterns_html(cache["pattern", 0][0], model.to_str_tokens(text),
    [f"L0H{h}" for h in range(model.cfg.n_heads)])`, as a notebook cell's value or `str()`.
    """
    if patterns.ndim != 3 or patterns.shape[1:] != (len(str_tokens), len(str_tokens)):
        raise ValueError(
            f"patterns must be [head, pos, pos] with pos={len(str_tokens)}, got {tuple(patterns.shape)}."
        )
    labels, key = selector_labels(head_names)
    rendered = attention_heads(
        attention=patterns.detach().float().cpu(),
        tokens=token_labels(str_tokens),
        attention_head_names=labels,
    )
    view = close_container(script_safe_props(rendered.local_src))
    return OfflineHTML(f'{key}<div class="mi-attention" style="{VIEW_STYLE}">{view}</div>')


def selector_labels(head_names: Sequence[str]) -> tuple[list[str], str]:
    """Head-selector labels that fit a button, and the HTML key naming them: the names themselves
    when all are short (`"L0H3"`), else `"#1"…"#n"` with a numbered key of the full names."""
    names = list(head_names)
    if all(len(name) <= MAX_SELECTOR_CHARS for name in names):
        return names, ""
    labels = [f"#{i}" for i in range(1, len(names) + 1)]
    items = "".join(
        f"<li><b>{label}</b> {html.escape(name)}</li>"
        for label, name in zip(labels, names, strict=True)
    )
    key = f'<ul class="mi-head-key" style="list-style:none;padding-left:1em">{items}</ul>'
    return labels, key


def script_safe_props(local_src: str) -> str:
    """circuitsvis writes its props (tokens, head names) into its script as raw JSON, where a
    token `</script>` would end the script: its render call, from the element's id to the closing
    tag, made `script_safe` (the call's `<`, `>` and `&` are all inside JSON strings)."""
    element_id = re.search(r'<div id="(circuits-vis-[^"]+)"', local_src).group(1)
    start = local_src.index(f'"{element_id}",')  # the call's first argument; the bundle precedes it
    end = local_src.rindex("</script>")
    return local_src[:start] + script_safe(local_src[start:end]) + local_src[end:]


def close_container(local_src: str) -> str:
    """Turn circuitsvis's `<div id=.../>` into `<div ...></div>`.

    HTML has no self-closing div, so the browser would nest everything after the view inside
    it, and React would wipe that content (later figures and sections) when it renders.
    """
    return re.sub(r'(<div id="circuits-vis-[^"]+"[^>]*?)\s*/>', r"\1></div>", local_src, count=1)
