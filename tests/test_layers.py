"""The package's import structure: no import circle, no import that runs upward.

The layers, top to bottom (docs/ARCHITECTURE.md, "Layers"): a module may import modules of its own
package and of any LOWER layer, never of a higher layer and never of another package on its own
layer (packages on one layer are independent of each other, so each can be read alone). Imports
inside functions count as much as those at the top: they run too, and they are how circles hide.
Imports under ``if TYPE_CHECKING:`` count as well: a type named upward is a dependency upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "skelact"

#: Top to bottom. Each entry is a module or package; its submodules belong to it.
LAYERS: list[tuple[str, ...]] = [
    ("skelact.cli",),
    ("skelact.stream", "skelact.bench", "skelact.export"),
    ("skelact.engine",),
    ("skelact.inference",),
    ("skelact.viz", "skelact.pose", "skelact.checkpoint", "skelact.pipeline"),
    ("skelact.data", "skelact.models"),
    ("skelact.skeleton", "skelact.config", "skelact.runtime", "skelact.progress"),
    ("skelact.files", "skelact.lockfile", "skelact.signals"),
    ("skelact.errors", "skelact"),  # "skelact" itself: the package's __init__ (the version)
]


def module_name(path: Path, root: Path) -> str:
    """``root/skelact/data/io.py`` → ``skelact.data.io``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Every module under ``root`` → the package modules it imports, with the line of each import.

    ``from X import name`` imports the module ``X.name`` when that is a module of the package, else X.
    """
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    packages = {module_name(p, root) for p in files.values() if p.name == "__init__.py"}
    top = root.name
    out: dict[str, list[tuple[str, int]]] = {}
    for name, path in files.items():
        here = name if name in packages else name.rpartition(".")[0]
        found: list[tuple[str, int]] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [(alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in files else target, node.lineno))
        out[name] = [(t, line) for t, line in found
                     if (t == top or t.startswith(top + ".")) and t != name]
    return out


def unit_of(module: str, layers: list[tuple[str, ...]]) -> tuple[int, str]:
    """``(layer index from the top, the layer's package or module that holds this module)``."""
    best: tuple[int, str] | None = None
    for i, units in enumerate(layers):
        for unit in units:
            # "skelact" alone is the package's own __init__, not everything under it.
            inside = "." in unit and module.startswith(unit + ".")
            if (module == unit or inside) and (best is None or len(unit) > len(best[1])):
                best = (i, unit)
    if best is None:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py and to "
                             "docs/ARCHITECTURE.md")
    return best


def layer_violations(root: Path, layers: list[tuple[str, ...]]) -> list[str]:
    """One line per import that runs upward or across to another package of the same layer."""
    bad = []
    for module, imports in read_imports(root).items():
        level, unit = unit_of(module, layers)
        for target, line in imports:
            t_level, t_unit = unit_of(target, layers)
            if t_unit == unit or t_level > level:
                continue
            way = "upward" if t_level < level else "across its layer"
            bad.append(f"{module} (line {line}) imports {target}: {way}, from {unit} to {t_unit}")
    return sorted(bad)


def import_circles(root: Path) -> list[str]:
    """The import circles between modules (strongly connected components of two or more), one a line."""
    graph = {m: sorted({t for t, _ in imports}) for m, imports in read_imports(root).items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[str] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                members.sort()
                ties = [f"{a} -> {b}" for a in members for b in graph.get(a, []) if b in members]
                circles.append(f"circle of {len(members)}: " + "; ".join(ties))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(circles)


def test_no_import_runs_upward_or_across() -> None:
    bad = layer_violations(PACKAGE, LAYERS)
    assert not bad, "imports against the layers (docs/ARCHITECTURE.md, Layers):\n" + "\n".join(bad)


def test_no_import_circle() -> None:
    circles = import_circles(PACKAGE)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_every_module_has_a_layer() -> None:
    for module in read_imports(PACKAGE):
        unit_of(module, LAYERS)


# The checks themselves must be able to fail: a small package with one of each fault.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "skelact"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checks_name_an_upward_import_inside_a_function_and_a_relative_one(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "data/__init__.py": "",
        "data/io.py": "def f():\n    from skelact.engine import train\n",
        "models/__init__.py": "",
        "models/weights.py": "from ..checkpoint import Checkpoint\n",
        "models/heatmap.py": "from . import kernels\n",
        "models/kernels.py": "from .heatmap import FAR\n",
        "checkpoint.py": "from skelact.models import heatmap\nfrom skelact.errors import X\n",
        "engine/__init__.py": "",
        "engine/train.py": "import skelact.data\n",
        "pose/__init__.py": "from skelact.viz import draw\n",
        "viz/__init__.py": "",
        "viz/draw.py": "",
    })
    assert layer_violations(root, LAYERS) == [
        "skelact.data.io (line 2) imports skelact.engine.train: upward, from skelact.data to skelact.engine",
        "skelact.models.weights (line 1) imports skelact.checkpoint: upward, from skelact.models to skelact.checkpoint",
        "skelact.pose (line 1) imports skelact.viz.draw: across its layer, from skelact.pose to skelact.viz",
    ]
    assert import_circles(root) == ["circle of 2: skelact.models.heatmap -> skelact.models.kernels; "
                                    "skelact.models.kernels -> skelact.models.heatmap"]


def test_a_module_outside_the_layers_is_named(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"__init__.py": "", "gadgets.py": ""})
    with pytest.raises(AssertionError, match=r"skelact\.gadgets has no layer"):
        for module in read_imports(root):
            unit_of(module, LAYERS)
