"""The package's shape: one-way layers (each file imports only from its own layer or below), no
import cycle between files, no file over 400 lines."""

from __future__ import annotations

import ast
import re
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


def too_long(path: Path, limit: int = 400) -> str | None:
    """Why ``path`` is too long (more than ``limit`` lines), or ``None``."""
    lines = len(path.read_text(encoding="utf-8").splitlines())
    return f"{path.name} has {lines} lines: split it by concept" if lines > limit else None


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_are_short(path: Path) -> None:
    problem = too_long(path)
    assert problem is None, problem


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


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> imported modules): its strongly connected
    components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
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

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle_between_files() -> None:
    cycles = find_cycles(GRAPH)
    assert not cycles, f"import cycles: {cycles}"


def test_the_check_can_fail() -> None:
    """The layer check sees an upward import (a rule importing a pass would be one)."""
    assert _layer("symmetrize.rules.context") < _layer("symmetrize.passes.decide")
    assert "symmetrize.rules.context" in GRAPH["symmetrize.passes.decide"]


def test_the_cycle_and_length_checks_can_fail(tmp_path: Path) -> None:
    """A planted cycle (through three modules, beside acyclic ones) is found, and a 401-line
    file is flagged while a 400-line one is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d", "outside"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({**graph, "c": {"d"}}) == []
    assert find_cycles(GRAPH | {"symmetrize.rep": GRAPH["symmetrize.rep"] | {"symmetrize.cli"}})
    short, long = tmp_path / "short.py", tmp_path / "long.py"
    short.write_text("x = 1\n" * 400)
    long.write_text("x = 1\n" * 401)
    assert too_long(short) is None
    assert too_long(long) == "long.py has 401 lines: split it by concept"


def _documented_layers() -> dict[str, int]:
    """``{name: layer}`` from the layer diagram of docs/architecture.md (``cli_*`` -> ``cli_``)."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagram = text.split("```text\n", 1)[1].split("```", 1)[0]
    names: dict[str, int] = {}
    layer = -1
    for line in diagram.splitlines():
        found = re.match(r"^\s*(\d+)?\s+(.*)$", line)
        if not found:
            continue
        layer = int(found[1]) if found[1] else layer
        listed = re.sub(r"\(.*?\)", "", re.split(r"\s{2,}", found[2].strip())[0])
        for name in filter(None, (n.strip().rstrip("/*") for n in listed.split(","))):
            names[name] = layer
    return names


def test_architecture_doc_matches_the_layers() -> None:
    """Every name in the doc's diagram sits on the layer the import check uses, and every
    top-level module or package of symmetrize/ is in the diagram."""
    documented = _documented_layers()
    wrong = [f"{name}: doc {layer}, imports {_layer('symmetrize.' + name)}"
             for name, layer in documented.items() if _layer("symmetrize." + name) != layer]
    assert not wrong, wrong
    tops = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()
                                                     if (p / "__init__.py").is_file()}
    missing = [m for m in sorted(tops - {"__init__"})
               if not any(m == n or (n.endswith("_") and m.startswith(n)) for n in documented)]
    assert not missing, f"not in the docs/architecture.md diagram: {missing}"
