"""`analysis/` returns numbers and short codes, never sentences: read with `ast`, no string
literal of `MAX_WORDS` words or more stands in it outside docstrings, error messages (`raise`,
`warnings.warn`), einops patterns and type annotations (jaxtyping shapes). The words live in
`narrative/` (README, cards, the command line) and `viz/captions.py` (the result pages)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_WORDS = 3  # "beyond the grid" is prose; "no_effect", "blocks.0.attn.hook_z" are codes
EINOPS = {"einsum", "rearrange", "reduce", "repeat", "pack", "unpack"}
JAXTYPING = {"Float", "Int", "Bool", "Shaped", "Num", "Real", "Integer", "Inexact"}


def words(text: str) -> int:
    """Whitespace-separated tokens holding a run of two letters or more (`γ`, `q`, `X` of a
    placeholder are not words; `snake_case` and `a.b.c` are one)."""
    return sum(1 for token in text.split() if re.search(r"[^\W\d_]{2,}", token))


def _exempt(tree: ast.Module) -> set[int]:
    """Ids of the nodes whose strings may be prose, or are patterns: docstrings, the arguments
    of `raise` and `warn(...)`, einops patterns, annotations and jaxtyping shapes."""
    out: set[int] = set()

    def exempt(node: ast.AST | None) -> None:
        if node is not None:
            out.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                exempt(first.value)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            exempt(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                exempt(arg.annotation)
        elif isinstance(node, ast.AnnAssign):
            exempt(node.annotation)
        elif isinstance(node, ast.Raise):
            exempt(node.exc)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "warn" or name in EINOPS:
                exempt(node)
        elif isinstance(node, ast.Subscript):
            value = node.value
            name = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
            if name in JAXTYPING:
                exempt(node)
    return out


def prose_literals(path: Path, max_words: int = MAX_WORDS) -> list[str]:
    """`file:line: text` of every string literal (an f-string as one, its fields as `X`) of
    `max_words` words or more in `path`, outside the places `_exempt` names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    exempt = _exempt(tree)
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.JoinedStr):
            exempt.update(id(n) for n in ast.walk(node))
            text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if words(text) >= max_words:
            found.append((node.lineno, f"{name}:{node.lineno}: {text[:80]!r}"))
    return [hit for _, hit in sorted(found)]


def test_analysis_holds_no_prose():
    found = [
        hit
        for path in sorted(ROOT.glob("momentum_interp/analysis/**/*.py"))
        for hit in prose_literals(path)
    ]
    assert found == [], "move these sentences to narrative/ or viz/captions.py:\n" + "\n".join(
        found
    )


def test_the_checker_finds_sentences_and_spares_docstrings_errors_and_shapes(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(
        '"""A module docstring of many words."""\n'
        "import warnings\n"
        "from einops import einsum\n"
        "from jaxtyping import Float\n"
        "Scores = Float[object, 'batch head q_pos k_pos']\n"
        "def f(x: Float[object, 'batch pos d_model'], n: int) -> Float[object, 'batch pos']:\n"
        '    """What f does, in words."""\n'
        "    if n < 0:\n"
        "        raise ValueError(f'n must be at least zero, got {n}.')\n"
        "    warnings.warn('this is deprecated, use g')\n"
        "    einsum(x, x, 'batch pos d, batch pos d -> batch pos')\n"
        "    verdict = 'beyond_grid' if n else 'no effect'\n"
        "    name = f'blocks.{n}.attn.hook_z'\n"
        "    note = 'The slider shows the pattern'\n"
        "    return f'{n} sequences of {n} tokens'\n"
    )
    found = prose_literals(path)
    assert [hit.split(": ", 1)[1] for hit in found] == [
        "'The slider shows the pattern'",
        "'X sequences of X tokens'",
    ]
    assert [hit.split(":")[1] for hit in found] == ["14", "15"]
