"""Every import inside the package points down the layers: data → backbones → extract → viz → train → apps."""

import ast
from pathlib import Path

import transferkit

SRC = Path(transferkit.__file__).parent
# lowest first; a module may import its own layer and the ones below
LAYERS = [
    {"transferkit.errors", "transferkit.backend"},
    {"transferkit.data"},
    {"transferkit.backbones"},
    {"transferkit.extract", "transferkit.search"},  # a FeatureSet's search methods; search extracts queries
    {"transferkit.viz"},
    {"transferkit.train"},
    {"transferkit.pictures", "transferkit.demo", "transferkit.cli"},
]


def layer_of(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def imports_of(path: Path, module: str):
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            yield from ((node.lineno, n) for n in names)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)


def test_every_import_points_down():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if module == "transferkit":
            continue  # the facade re-exports from every layer
        own = layer_of(module)
        assert own is not None, f"{module} belongs to no layer; add it to LAYERS"
        for line, target in imports_of(path, module):
            level = layer_of(target)
            if target.startswith("transferkit") and level is not None and level > own:
                wrong.append(f"{module}:{line} imports {target}")
    assert not wrong, "imports pointing up:\n" + "\n".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from ..train import train\nfrom .. import backend\n")
    found = list(imports_of(bad, "transferkit.extract.x"))
    assert (1, "transferkit.train") in found and (2, "transferkit.backend") in found
