"""The package's shape: one-way layers (each file imports only from its own layer or below), no
import cycle between files, no file over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "symmetrize"

#: layers from the bottom up: a module path prefix -> its layer
LAYERS = [
    ("atomic", 0),
    ("joint_names", 1), ("skeleton", 1),  # skeleton, skeleton_presets, skeleton_files
    ("rep", 2), ("weight_sharing", 2), ("eigenbasis", 2), ("action", 2),  # action_movement too
    ("movement", 2), ("flat_", 2), ("einops_pattern", 2),
    ("layout", 3), ("spec", 3),  # spec, spec_layouts, spec_files
    ("nn", 4),
    ("rules", 5),
    ("passes", 6),
    ("api", 7), ("export", 7), ("io", 7), ("__init__", 7),
    ("metrics", 8), ("data", 8), ("train", 8), ("finetune", 8), ("demo", 8),
    ("cli", 9), ("__main__", 9),
]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _layer(module: str) -> int:
    inner = module.split(".", 1)[1] if "." in module else "__init__"
    for prefix, layer in LAYERS:
        if inner.startswith(prefix):
            return layer
    raise AssertionError(f"{module} has no layer in tests/test_package_shape.py: add it")


def _imports(path: Path) -> set[str]:
    """Package modules imported anywhere in the file (functions included, TYPE_CHECKING not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def walk(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                walk(node.orelse)
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                    node.module.startswith("symmetrize"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if _exists(sub) else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("symmetrize"))
            walk(list(ast.iter_child_nodes(node)))  # type: ignore[arg-type]

    walk(tree.body)
    return {m for m in found if _exists(m)}


def _exists(module: str) -> bool:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


FILES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {_module(f): _imports(f) for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_are_short(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 400, f"{path.relative_to(PACKAGE)} has {lines} lines: split it by concept"


def test_every_import_goes_down_or_sideways() -> None:
    upward = []
    for module, imported in GRAPH.items():
        for other in imported:
            package_init = other == "symmetrize" or other.endswith("__init__")
            if not package_init and _layer(other) > _layer(module) and \
                    not module.endswith("__init__"):
                upward.append(f"{module} (layer {_layer(module)}) imports {other} "
                              f"(layer {_layer(other)})")
    assert not upward, "\n".join(upward)


def test_no_import_cycle_between_files() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_check_can_fail() -> None:
    """The layer check sees an upward import (a rule importing a pass would be one)."""
    assert _layer("symmetrize.rules.context") < _layer("symmetrize.passes.decide")
    assert "symmetrize.rules.context" in GRAPH["symmetrize.passes.decide"]
