"""A :class:`~symmetrize.passes.report.ConversionReport` as a graph: a ``networkx`` graph,
Graphviz DOT text, and a picture drawn with matplotlib (SVG, PNG, PDF)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from symmetrize.atomic import write_atomic
from symmetrize.passes.render_text import action_text, clip, op_type

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from symmetrize.passes.report import ConversionReport, ReportRow

__all__ = ["ACTION_COLORS", "GraphLayout", "draw_graph", "graph_layout", "report_dot",
           "report_graph", "write_graph"]

#: fill colour per action (names valid in both Graphviz and matplotlib); ``""`` = propagated
ACTION_COLORS: dict[str, str] = {
    "replaced": "lightblue",
    "switched": "orange",
    "shared": "lightgreen",
    "kept": "lightgrey",
    "assumed": "wheat",
    "averaged": "yellow",
    "invariance layer": "violet",
    "": "white",
}
_UNKNOWN_COLOR = "mistyrose"

_DRAW_SUFFIXES = (".svg", ".png", ".pdf")
_SUFFIXES = (".dot", *_DRAW_SUFFIXES)
_INSTALL_HINT = 'drawing the graph needs matplotlib: pip install "symmetrize[graph]"'


# ----------------------------------------------------------------------------------------- graph
def report_graph(report: ConversionReport) -> nx.DiGraph:
    """One node per row (key: the row's name; attributes: its fields), one edge per input
    that is itself a row."""
    graph = nx.DiGraph(model=report.model)
    for row in report.rows:
        graph.add_node(row.name, **row.to_dict())
    for row in report.rows:
        for source in row.inputs:
            if source in graph:
                graph.add_edge(source, row.name)
    return graph


def _label_lines(row: ReportRow) -> list[str]:
    return [line for line in (row.name, op_type(row), row.rep_out, row.action) if line]


def _color(action: str) -> str:
    return ACTION_COLORS.get(action, _UNKNOWN_COLOR)


def _edges(report: ConversionReport) -> list[tuple[str, str]]:
    names = {row.name for row in report.rows}
    found = [(src, row.name) for row in report.rows for src in row.inputs if src in names]
    return list(dict.fromkeys(found))


def _dot_quote(text: str) -> str:
    """A Graphviz double-quoted string (backslashes and quotes escaped, newlines as ``\\n``)."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def _dot_label(lines: Iterable[str]) -> str:
    """Lines joined by Graphviz's centred line break ``\\n``, each line escaped."""
    escaped = [_dot_quote(line)[1:-1] for line in lines]
    return '"' + "\\n".join(escaped) + '"'


def report_dot(report: ConversionReport) -> str:
    """The graph as Graphviz DOT text: boxes labelled name, op/type, output Rep and action,
    filled by action."""
    lines = [f"digraph {_dot_quote(report.model or 'model')} {{",
             "  graph [rankdir=TB];",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555"];']
    for row in report.rows:
        tooltip = "; ".join(x for x in (action_text(row), row.module, row.source or "") if x)
        lines.append(f"  {_dot_quote(row.name)} [label={_dot_label(_label_lines(row))}, "
                     f"fillcolor={_dot_quote(_color(row.action))}, "
                     f"tooltip={_dot_quote(tooltip or row.name)}];")
    lines += [f"  {_dot_quote(a)} -> {_dot_quote(b)};" for a, b in _edges(report)]
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------- writing
def write_graph(report: ConversionReport, path: str | os.PathLike[str]) -> None:
    """Write the graph: ``.dot`` (Graphviz text), ``.svg``, ``.png`` or ``.pdf`` (drawn with
    matplotlib). The file is replaced atomically.

    Raises:
        ValueError: another suffix.
        ImportError: a picture was asked for and matplotlib is not installed.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"cannot write the report graph to {str(path)!r}: the suffix must be "
                         f"one of {', '.join(_SUFFIXES)}")
    if suffix == ".dot":
        text = report_dot(report).encode("utf-8")
        write_atomic(target, lambda f: f.write(text))
        return
    figure = draw_graph(report)
    write_atomic(target, lambda f: figure.savefig(f, format=suffix[1:], dpi=_dpi(figure)))


# --------------------------------------------------------------------------------------- drawing
_BOX_W, _BOX_H = 2.5, 0.62      # inches
_X_STEP, _Y_STEP = 2.8, 1.0     # inches between box centres
_LANE = 0.3                     # inches: the room an edge passing through a layer takes
_MARGIN, _HEADER = 0.4, 1.1     # inches: around the drawing, above it for title and legend
_LINE_CHARS = 40                # a label line's characters at the drawing font size
_MAX_PIXELS = 60000             # Agg cannot rasterise beyond 2**16 pixels a side

Point = tuple[float, float]


@dataclass
class GraphLayout:
    """Where :func:`draw_graph` puts things, in inches from the drawing's top left corner."""

    boxes: dict[str, Point]   #: centre of each row's box
    edges: list[list[Point]]  #: each edge as a polyline from box border to box border
    width: float
    height: float


def graph_layout(report: ConversionReport) -> GraphLayout:
    """A layered top-to-bottom layout: one layer per topological generation (side computations
    moved down beside their consumer); an edge that skips layers gets a lane in each layer it
    passes; within a layer, boxes and lanes are ordered by their inputs' mean x."""
    graph = report_graph(report)
    layer = _layers(graph, report)
    order = {name: i for i, name in enumerate(graph)}
    members: dict[int, list[Any]] = {}
    preds: dict[Any, list[Any]] = {}
    chains = []
    for name in graph:
        members.setdefault(layer[name], []).append(name)
    for k, (a, b) in enumerate(graph.edges):
        lanes = [(k, depth) for depth in range(layer[a] + 1, layer[b])]
        for lane in lanes:
            members.setdefault(lane[1], []).append(lane)
        chain = [a, *lanes, b]
        for u, v in itertools.pairwise(chain):
            preds.setdefault(v, []).append(u)
        chains.append(chain)
    edges = list(graph.edges)
    x: dict[Any, float] = {}
    for depth in sorted(members):
        def key(item: Any) -> tuple[float, float]:
            xs = [x[p] for p in preds.get(item, ()) if p in x]
            tie = order[item] if isinstance(item, str) else order[edges[item[0]][1]] - 0.5
            return (sum(xs) / len(xs) if xs else 0.0, tie)

        items = sorted(members[depth], key=key)
        steps = [_X_STEP if isinstance(item, str) else _LANE for item in items]
        left = -sum(steps) / 2
        for item, step in zip(items, steps):
            x[item], left = left + step / 2, left + step
    shift = _X_STEP / 2 - min(x.values(), default=0.0)
    width = max(x.values(), default=0.0) + shift + _X_STEP / 2

    def at(item: Any) -> Point:
        depth = layer[item] if isinstance(item, str) else item[1]
        return x[item] + shift, (depth + 0.5) * _Y_STEP

    paths = []
    for chain in chains:
        (xa, ya), (xb, yb) = at(chain[0]), at(chain[-1])
        points = [(xa, ya + _BOX_H / 2)]
        for lane in chain[1:-1]:
            xl, yl = at(lane)
            points += [(xl, yl - _BOX_H / 2), (xl, yl + _BOX_H / 2)]
        paths.append([*points, (xb, yb - _BOX_H / 2)])
    height = (1 + max(layer.values(), default=0)) * _Y_STEP
    return GraphLayout({name: at(name) for name in graph}, paths, width, height)


def _layers(graph: nx.DiGraph, report: ConversionReport) -> dict[str, int]:
    """Each node's layer: its topological generation, or, for any node but an input, just
    above its first consumer (so shape and weight computations sit beside their use). One
    layer per row, in row order, when the graph has a cycle (duplicate row names)."""
    try:
        layer = {name: depth for depth, names in enumerate(nx.topological_generations(graph))
                 for name in names}
        backwards = list(reversed(list(nx.topological_sort(graph))))
    except nx.NetworkXUnfeasible:
        return {name: depth for depth, name in enumerate(graph)}
    inputs = {row.name for row in report.rows if row.op == "placeholder"}
    for name in backwards:
        below = [layer[s] for s in graph.successors(name)]
        if below and name not in inputs:
            layer[name] = max(layer[name], min(below) - 1)
    used = sorted(set(layer.values()))  # drop emptied layers
    renumber = {depth: i for i, depth in enumerate(used)}
    return {name: renumber[depth] for name, depth in layer.items()}


def draw_graph(report: ConversionReport) -> Any:
    """The graph drawn on a ``matplotlib.figure.Figure`` (no pyplot, no global backend state):
    boxes labelled like the DOT output, filled by action, arrows for edges, a colour legend;
    the figure grows with the graph."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error

    layout = graph_layout(report)
    fig_w = max(8.0, layout.width + 2 * _MARGIN)
    fig_h = layout.height + _HEADER + 2 * _MARGIN
    figure = Figure(figsize=(fig_w, fig_h))
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fig_w)
    ax.set_ylim(0, fig_h)  # one data unit = one inch
    ax.set_axis_off()
    left = (fig_w - layout.width) / 2

    def place(point: Point) -> Point:
        return left + point[0], fig_h - _HEADER - _MARGIN - point[1]

    for path in layout.edges:
        _draw_edge(ax, [place(p) for p in path])
    for row in report.rows:
        if row.name in layout.boxes:
            _draw_box(ax, row, place(layout.boxes[row.name]))
    figure.text(0.5, 1 - 0.35 / fig_h, f"{report.model or 'model'}: {len(report.rows)} nodes",
                ha="center", va="top", fontsize=12, parse_math=False)
    handles = [Patch(facecolor=color, edgecolor="black", label=action or "propagated")
               for action, color in ACTION_COLORS.items()]
    figure.legend(handles=handles, loc="upper center", fontsize=8,
                  ncol=max(2, min(len(handles), int((fig_w - 2 * _MARGIN) // 1.5))),
                  frameon=False, bbox_to_anchor=(0.5, 1 - 0.6 / fig_h))
    return figure


def _draw_box(ax: Axes, row: ReportRow, at: Point) -> None:
    from matplotlib.patches import FancyBboxPatch

    x, y = at
    ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                                boxstyle="round,pad=0,rounding_size=0.08", linewidth=0.7,
                                facecolor=_color(row.action), edgecolor="black", zorder=2))
    label = "\n".join(clip(line, _LINE_CHARS) for line in _label_lines(row))
    ax.text(x, y, label, ha="center", va="center", fontsize=7, family="monospace",
            linespacing=1.15, parse_math=False, zorder=3)


def _draw_edge(ax: Axes, points: list[Point]) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    ax.add_patch(FancyArrowPatch(path=MplPath(points), arrowstyle="-|>", mutation_scale=8,
                                 linewidth=0.6, color="#555555", zorder=1))


def _dpi(figure: Any) -> float:
    """At most 100 dots per inch, fewer when the raster would pass Agg's size limit."""
    return min(100.0, _MAX_PIXELS / max(figure.get_size_inches()))
