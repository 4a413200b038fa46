"""Imports point down the layers and never form a cycle, function-level imports included.

Layers, lowest first: errors/backend/files → data → backbones → extract → search → viz → train → audit →
applications.
"""

import ast
import functools
from pathlib import Path

import numpy as np

import transferkit

SRC = Path(transferkit.__file__).parent
# lowest first; a module may import its own layer and the ones below
LAYERS = [
    {"transferkit.errors", "transferkit.backend", "transferkit.files", "transferkit._version", "transferkit.interrupts",
     "transferkit.templates"},
    {"transferkit.data"},
    {"transferkit.probe"},
    {"transferkit.backbones"},
    {"transferkit.extract"},
    {"transferkit.search"},
    {"transferkit.viz"},
    {"transferkit.train"},
    {"transferkit.audit"},
    {"transferkit.serve"},
    {"transferkit.label"},
    {"transferkit.pictures", "transferkit.demo", "transferkit.cli"},
]


def layer_of(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


@functools.cache
def _modules() -> frozenset[str]:
    return frozenset(module_name(p) for p in SRC.rglob("*.py"))


def imports_of(path: Path, module: str):
    """(line, imported module) for every import in the file, at any depth (functions too). `from X import y`
    imports the module X.y when there is one, else a name of X (so X itself)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in _modules() or (SRC.parent / sub.replace(".", "/")).is_dir() else target
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            yield node.lineno, str(node.args[0].value)  # imports by name count too


def package_graph():
    """{module: {imported modules of the package}}: an import of a.b.c also runs a and a.b (their __init__)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        edges = set()
        for _, target in imports_of(path, module):
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                name = ".".join(parts[:k])
                if name in modules and name != module and not module.startswith(name + "."):
                    edges.add(name)
        graph[module] = edges
    return graph


def cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module (scipy's connected_components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    names = sorted(graph)
    at = {n: i for i, n in enumerate(names)}
    pairs = [(at[a], at[b]) for a, targets in graph.items() for b in targets]
    rows, cols = (np.array(x, dtype=int) for x in zip(*pairs)) if pairs else (np.zeros(0, int),) * 2
    matrix = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, label = connected_components(matrix, directed=True, connection="strong")
    groups = {}
    for name, c in zip(names, label):
        groups.setdefault(c, []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def test_every_import_points_down():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        if module == "transferkit":
            continue  # the facade re-exports from every layer
        own = layer_of(module)
        assert own is not None, f"{module} belongs to no layer; add it to LAYERS"
        for line, target in imports_of(path, module):
            if target == "transferkit":
                wrong.append(f"{module}:{line} imports a name of the package root (which imports everything)")
            level = layer_of(target)
            if target.startswith("transferkit") and level is not None and level > own:
                wrong.append(f"{module}:{line} imports {target}")
    assert not wrong, "imports pointing up:\n" + "\n".join(sorted(set(wrong)))


def test_no_import_cycles():
    graph = package_graph()
    graph.pop("transferkit")  # the facade imports everything and nothing imports it (test above)
    found = cycles({m: {t for t in e if t != "transferkit"} for m, e in graph.items()})
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in found)


def test_the_checkers_see_upward_imports_and_cycles(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from ..train import train\nfrom .. import backend\n"
                   "import importlib\nimportlib.import_module('transferkit.search')\nfrom .. import __version__\n")
    found = list(imports_of(bad, "transferkit.extract.x"))
    assert (2, "transferkit.train") in found and (3, "transferkit.backend") in found
    assert (5, "transferkit.search") in found and (6, "transferkit") in found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_function_is_longer_than_80_lines():
    """Entry points read in minutes: no function under src/ (docstring included) is longer than 80 lines."""
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these into named steps: " + ", ".join(long)
