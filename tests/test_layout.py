"""The package's layout, read from its imports with `ast`: the layers are declared in order
(`LAYERS`, ground first) and every import, module-level or deferred into a function, points down
or across, never up (`TYPE_CHECKING` imports aside); there are no import cycles, and the data
floors never render (no `viz/`, no plotly), and `viz/` is handed data, never a seed or a model.
The README's "Layout" section describes `LAYERS`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "momentum_interp"
# The layers, ground first: a module may import from its own layer or the ones before it.
# Each names the top-level modules or packages of `momentum_interp` it holds ("" is the package's
# own `__init__`, which re-exports the API and so sits with the applications).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "ground",
        (
            "io",
            "paths",
            "defaults",
            "naming",
            "tables",
            "prose",
            "provenance",
            "lock",
            "toml_config",
            "version",
        ),
    ),
    ("config and data", ("config", "architecture", "data")),
    ("TransformerLens compatibility", ("compat",)),
    ("model", ("model",)),
    ("evaluation and training", ("evaluation", "training")),
    ("sweeps and zoo", ("sweeps", "zoo")),
    ("analysis", ("analysis",)),
    ("viz", ("viz",)),
    ("narrative", ("narrative",)),
    (
        "applications",
        (
            "report",
            "demo",
            "results",
            "arguments",
            "corpus_command",
            "study_runs",
            "formation_command",
            "mechanism_command",
            "cli",
            "",
        ),
    ),
)
# Floors that return data: none of them may import viz/ or plotly, anywhere in a module.
DATA_FLOORS = ("analysis", "evaluation", "training", "data", "model", "sweeps")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → source file, for every module of `package` under `root`."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _is_type_checking(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _statements(body: list[ast.stmt], module_level: bool):
    """Import statements of a body, never those under `if TYPE_CHECKING:`: at module level only
    (not inside functions or classes), or also the deferred ones inside them."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif _is_type_checking(node):
            yield from _statements(node.orelse, module_level)
        elif module_level and isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        ):
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    inner = child.body if isinstance(child, ast.ExceptHandler) else [child]
                    yield from _statements(inner, module_level)


def imports(path: Path, name: str, module_level: bool) -> list[tuple[str, str | None]]:
    """`(module, imported name or None)` for each import in the file of module `name`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in _statements(tree.body, module_level):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:  # relative: strip `level` parts from the importing package
            anchor = name.split(".") if is_package else name.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        out += [(base, alias.name) for alias in node.names]
    return out


def resolve(modules: dict[str, Path], module: str, name: str | None, seen=()) -> str:
    """The module an import really depends on: a submodule `module.name`, or the module defining
    `name` when `module` is a package re-exporting it, else `module` itself."""
    if name is None or module not in modules:
        return module
    if f"{module}.{name}" in modules:
        return f"{module}.{name}"
    if modules[module].name == "__init__.py" and module not in seen:
        for source, imported in imports(modules[module], module, module_level=True):
            if imported == name and source.split(".")[0] == module.split(".")[0]:
                return resolve(modules, source, name, (*seen, module))
    return module


def import_graph(root: Path, package: str, module_level: bool = True) -> dict[str, set[str]]:
    """Import edges between the package's own modules: module-level imports (what runs at import
    time), or with `module_level=False` also the imports deferred into functions."""
    modules = module_files(root, package)
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for module, imported in imports(path, name, module_level):
            target = resolve(modules, module, imported)
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def forbidden_imports(root: Path, package: str, floor: str) -> list[str]:
    """Every import of a renderer (`viz/`, plotly) anywhere in the modules of one floor."""
    modules = module_files(root, package)
    prefix = f"{package}.{floor}"
    renderers = (f"{package}.viz", "plotly")
    found = []
    for name, path in modules.items():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for module, imported in imports(path, name, module_level=False):
            target = resolve(modules, module, imported)
            if any(target == r or target.startswith(r + ".") for r in renderers):
                found.append(f"{name} imports {target}")
    return found


def layer_of(module: str, package: str, layers=LAYERS) -> int | None:
    """Index in `layers` of a module of `package` (None: it is in no layer)."""
    top = module.split(".")[1] if "." in module else ""
    return next((i for i, (_, tops) in enumerate(layers) if top in tops), None)


def upward_imports(root: Path, package: str, layers=LAYERS) -> list[str]:
    """Every import, module-level or deferred, from a module to one in a later layer; a module
    in no layer is reported too."""
    found = []
    for name, targets in sorted(import_graph(root, package, module_level=False).items()):
        here = layer_of(name, package, layers)
        if here is None:
            found.append(f"{name} is in no layer; add it to LAYERS")
            continue
        for target in sorted(targets):
            there = layer_of(target, package, layers)
            if there is not None and there > here:
                found.append(
                    f"{name} ({layers[here][0]}) imports {target} ({layers[there][0]}), a later layer"
                )
    return found


# ------------------------------------------------------------------------- the package


MAX_LINES = 700  # a module longer than this does more than one job: split it


def test_no_module_is_longer_than_max_lines():
    long = {
        name: n
        for name, path in module_files(ROOT, PACKAGE).items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_imports_follow_the_declared_layers():
    assert upward_imports(ROOT, PACKAGE) == []


def test_no_import_cycles():
    assert cycles(import_graph(ROOT, PACKAGE)) == []


def test_no_deferred_import_cycles():
    """Imports deferred into functions still tie two modules together."""
    assert cycles(import_graph(ROOT, PACKAGE, module_level=False)) == []


@pytest.mark.parametrize("floor", DATA_FLOORS)
def test_data_floors_do_not_render(floor):
    assert forbidden_imports(ROOT, PACKAGE, floor) == []


def test_the_model_does_not_import_evaluation():
    """The model owns its next-token loss (`model.loss`); evaluation builds on the model."""
    modules = module_files(ROOT, PACKAGE)
    graph = import_graph(ROOT, PACKAGE, module_level=False)
    model = [name for name in modules if name.startswith(f"{PACKAGE}.model")]
    assert model
    for name in model:
        assert not {t for t in graph[name] if t.startswith(f"{PACKAGE}.evaluation")}, name


# What viz/ must not be handed: it draws results, so the seed and the model stay with the code
# that measures (analysis/, and report/demo, which measure everything before they draw).
NOT_DATA = {"seed", "model", "models"}
MODEL_TYPES = ("TLModel", "HookedMomentumTransformer", "TransformerBridge", "nn.Module")


def measuring_parameters(root: Path, package: str, floor: str) -> list[str]:
    """`function(parameter)` for every parameter of a function in `floor` named like a seed or a
    model, or annotated with a model type."""
    found = []
    for name, path in module_files(root, package).items():
        if not name.startswith(f"{package}.{floor}"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                annotation = ast.unparse(arg.annotation) if arg.annotation else ""
                if arg.arg in NOT_DATA or any(t in annotation for t in MODEL_TYPES):
                    found.append(f"{name}.{node.name}({arg.arg})")
    return sorted(found)


def test_viz_is_handed_data_not_seeds_or_models():
    assert measuring_parameters(ROOT, PACKAGE, "viz") == []


def test_score_command_does_not_import_plotly():
    script = (
        "import sys\n"
        "from momentum_interp.cli import main\n"
        "assert main(['score', 'induction-1l-momentum', '--sequences', '2', '--top', '1']) == 0\n"
        "import momentum_interp.analysis, momentum_interp.evaluation\n"
        "print('plotly' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "in-context-learning score" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "False"


# ------------------------------------------------------------- the checker on a toy package


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_cycles_through_reexports_and_renderer_imports(tmp_path):
    _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/analysis/__init__.py": "from toy.analysis.spec import Result\n",
            "toy/analysis/spec.py": (
                "from typing import TYPE_CHECKING\n"
                "from toy.viz.spec import draw\n"
                "if TYPE_CHECKING:\n    from toy.model import Model\n"
                "class Result: ...\n"
            ),
            "toy/analysis/lazy.py": "def f():\n    import plotly.graph_objects\n    import toy.model\n",
            "toy/viz/__init__.py": "",
            "toy/viz/spec.py": "from toy.analysis import Result\ndef draw(): ...\n",
            "toy/model.py": (
                "from . import helpers\nclass Model:\n    def f(self):\n"
                "        from toy.analysis.lazy import f\n"
            ),
            "toy/helpers.py": "def go(): ...\n",
        },
    )
    graph = import_graph(tmp_path, "toy")
    # `from toy.analysis import Result` counts as an edge to the module defining Result.
    assert graph["toy.viz.spec"] == {"toy.analysis.spec"}
    assert graph["toy.analysis.spec"] == {"toy.viz.spec"}  # the TYPE_CHECKING import is no edge
    assert graph["toy.model"] == {"toy.helpers"}  # relative import resolved
    assert cycles(graph) == [{"toy.analysis.spec", "toy.viz.spec"}]
    deferred = import_graph(tmp_path, "toy", module_level=False)
    assert deferred["toy.model"] == {"toy.helpers", "toy.analysis.lazy"}
    assert sorted(map(sorted, cycles(deferred))) == [
        ["toy.analysis.lazy", "toy.model"],
        ["toy.analysis.spec", "toy.viz.spec"],
    ]
    assert sorted(forbidden_imports(tmp_path, "toy", "analysis")) == [
        "toy.analysis.lazy imports plotly.graph_objects",
        "toy.analysis.spec imports toy.viz.spec",
    ]
    _write(tmp_path, {"toy/viz/spec.py": "def draw(): ...\n", "toy/analysis/lazy.py": ""})
    assert cycles(import_graph(tmp_path, "toy")) == []


def test_an_upward_import_breaks_the_declared_order(tmp_path):
    """A ground module importing the model (deferred into a function) is reported, as is a module
    in no layer; a `TYPE_CHECKING` import and a downward one are not."""
    layers = (("ground", ("io",)), ("model", ("model",)), ("viz", ("viz",)))
    _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/io.py": "def save():\n    from toy.model import Model\n",
            "toy/model.py": (
                "from typing import TYPE_CHECKING\nfrom toy import io\n"
                "if TYPE_CHECKING:\n    from toy.viz import draw\nclass Model: ...\n"
            ),
            "toy/viz.py": "from toy.model import Model\ndef draw(): ...\n",
            "toy/stray.py": "",
        },
    )
    assert upward_imports(tmp_path, "toy", layers) == [
        "toy is in no layer; add it to LAYERS",
        "toy.io (ground) imports toy.model (model), a later layer",
        "toy.stray is in no layer; add it to LAYERS",
    ]
    _write(tmp_path, {"toy/io.py": "def save(): ...\n", "toy/stray.py": "import toy.io\n"})
    assert upward_imports(tmp_path, "toy", (*layers, ("top", ("stray", "")))) == []


def test_the_parameter_check_finds_a_seed_and_a_model(tmp_path):
    _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/viz/__init__.py": "",
            "toy/viz/page.py": (
                "def link(report, names, seed: int): ...\n"
                "def bode(table, m: 'TLModel'): ...\n"
                "def bars(result, labels=()): ...\n"
            ),
        },
    )
    assert measuring_parameters(tmp_path, "toy", "viz") == [
        "toy.viz.page.bode(m)",
        "toy.viz.page.link(seed)",
    ]
