"""Renderers of the conversion report: text table, Markdown, JSON, networkx graph, DOT, pictures."""

from __future__ import annotations

import json
import math
import random
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from symmetrize import Rep, Spec
from symmetrize.passes import render_graph as render
from symmetrize.passes.render_json import SCHEMA_VERSION
from symmetrize.passes.report import ConversionReport, ReportRow

LONG_MODULE = "encoder.blocks.0.attention.projection.very_long_submodule_name.inner"
LONG_SOURCE = "/home/someone/projects/deeply/nested/package/models/pose_network.py:123"
QUOTED_TARGET = 'fn"q\\x'


def _rows() -> list[ReportRow]:
    chain = "17j x 2c: 6 pairs, x-"
    hidden = "64: 18 pairs, 17-"
    return [
        ReportRow("x", "placeholder", "x", rep_out=chain),
        ReportRow("conv", "call_module", "Conv1d", module="conv", source=LONG_SOURCE,
                  inputs=("x",), rep_in=chain, rep_out=hidden, action="replaced",
                  detail="replaced by ChiralConv1d", params_before=6528, params_after=3264,
                  projection_error=0.71),
        ReportRow("act", "call_module", "ReLU", module="act", inputs=("conv",), rep_in=hidden,
                  rep_out=hidden, action="switched", detail="activation ReLU -> Tanh",
                  params_before=0, params_after=0),
        ReportRow("w", "get_attr", "proj.weight", module="proj", rep_out=hidden,
                  action="shared", detail='shared "left" | right', params_before=100,
                  params_after=50, projection_error=float("nan")),
        ReportRow("matmul", "call_function", QUOTED_TARGET, source="model.py:7",
                  inputs=("act", "w", "ghost"), rep_in=hidden, rep_out=hidden),
        ReportRow("keep", "call_module", "Linear", module=LONG_MODULE, inputs=("matmul",),
                  rep_in=hidden, rep_out=hidden, action="kept", detail="kept as Linear",
                  params_before=10, params_after=10),
        ReportRow("mine", "call_module", "MyBlock", module="mine", inputs=("keep",),
                  rep_in=hidden, rep_out=hidden, action="assumed"),
        ReportRow("odd", "call_module", "Odd", module="odd", inputs=("mine", "act"),
                  rep_in=hidden, rep_out=hidden, action="averaged",
                  detail="averaged (f(x) + T f(T x)) / 2", params_before=4, params_after=4),
        ReportRow("head", "call_module", "Linear", module="head", inputs=("odd",),
                  rep_in=hidden, rep_out="invariant", action="invariance layer",
                  detail="output Rep made trivial", params_before=640, params_after=330,
                  projection_error=1e-5),
        ReportRow("mean", "call_method", "mean", inputs=("head",), rep_in="invariant",
                  rep_out="invariant"),
        ReportRow("output", "output", "output", inputs=("mean",), rep_in="invariant"),
    ]


EDGES = {("x", "conv"), ("conv", "act"), ("act", "matmul"), ("w", "matmul"),
         ("matmul", "keep"), ("keep", "mine"), ("mine", "odd"), ("act", "odd"),
         ("odd", "head"), ("head", "mean"), ("mean", "output")}


def _report(**changes) -> ConversionReport:
    fields = {"model": "ToyModel", "rows": _rows(), "parameters_before": 1000,
              "parameters_after": 600,
              "notes": ["coupled by residual connections (one Rep): conv, head"],
              "warnings": ["dropout module 'drop' (p=0.25): masks not tied"],
              "spec": Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,)),
              "options": {"hidden": {"conv": Rep([1, 0, 2], [1, 1, -1])},
                          "policy": lambda path, width: None, "negated_fraction": 1 / 3,
                          "keep": ("keep",), "scale": float("inf")},
              "inputs": [{"shape": [2, 9, 17, 2], "dtype": "float32"}]}
    fields.update(changes)
    return ConversionReport(**fields)


def _chain_report(n: int, seed: int = 0) -> ConversionReport:
    rng = random.Random(seed)
    actions = list(render.ACTION_COLORS)
    rows = [ReportRow("x", "placeholder", "x", rep_out="17j x 2c: 6 pairs, x-")]
    for i in range(1, n):
        inputs = (rows[-1].name,) if i < 4 or rng.random() < 0.8 else (rows[-1].name,
                                                                        rows[-4].name)
        rows.append(ReportRow(f"node_{i}", "call_module", "Conv1d", module=f"layers.{i}",
                              inputs=inputs, rep_in="64: 18 pairs, 17-",
                              rep_out="64: 18 pairs, 17-", action=rng.choice(actions)))
    return ConversionReport(model="Chain", rows=rows, parameters_before=n, parameters_after=n)


# ------------------------------------------------------------------------------------------ text
def _table(text: str) -> tuple[str, str, list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("node "))
    end = lines.index("", start)
    return lines[start], lines[start + 1], lines[start + 2:end]


def test_text_table_columns_align() -> None:
    report = _report()
    header, rule, body = _table(str(report))
    assert len(body) == len(report.rows)
    starts = [m.start() for m in re.finditer(r"-+", rule)]
    assert len(starts) == 9
    for title, at in zip(("node", "op/type", "module", "source", "input Rep", "output Rep",
                          "action/detail"), starts):
        assert header[at:].startswith(title)
    _, type_at, module_at, source_at, _, out_at, action_at = starts[:7]
    actions = {"conv": "replaced by ChiralConv1d", "act": "switched: activation ReLU -> Tanh",
               "keep": "kept as Linear", "mine": "assumed", "head": "invariance layer: output"}
    for row, line in zip(report.rows, body):
        assert line.startswith(row.name + " ")
        assert line[out_at:].startswith(row.rep_out)
        for at in starts[1:]:
            if at < len(line):  # lines are right-stripped
                assert line[at - 2:at] == "  ", (line, at)  # every cell starts after the gap
        if row.name in actions:
            assert line[action_at:].startswith(actions[row.name])
    by_name = dict(zip((r.name for r in report.rows), body))
    assert by_name["matmul"][type_at:].startswith(QUOTED_TARGET)
    assert by_name["mean"][type_at:].startswith(".mean ")
    assert by_name["x"][type_at:].startswith("input ")
    assert by_name["w"][type_at:].startswith("attr ")
    assert by_name["output"][type_at:].startswith("output")
    assert by_name["conv"][source_at:].startswith("pose_network.py:123 ")
    assert "/home/someone" not in str(report)
    long_cell = by_name["keep"][module_at:source_at].rstrip()
    assert long_cell.endswith("\u2026") and LONG_MODULE.startswith(long_cell[:-1])
    assert "6528 -> 3264" in by_name["conv"] and "0.710" in by_name["conv"]
    assert by_name["w"].rstrip().endswith("nan")


def test_text_totals_warnings_notes() -> None:
    text = str(_report())
    assert "parameters: 1000 -> 600 (ratio 0.600)" in text
    assert "replaced modules: 2" in text
    assert "switched activations: 1" in text
    assert "shared tensors: 1" in text
    assert "equivariance error (float64): not measured" in text
    assert "warning: dropout module 'drop' (p=0.25): masks not tied" in text.splitlines()
    assert "note: coupled by residual connections (one Rep): conv, head" in text.splitlines()
    assert "equivariance error (float64): 1.23e-15" in str(_report(equivariance_error=1.234e-15))


def test_text_of_empty_report() -> None:
    text = str(ConversionReport())
    assert "(no rows)" in text and "parameters: 0 -> 0" in text


# -------------------------------------------------------------------------------------- markdown
def _md_cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_markdown_table() -> None:
    report = _report()
    lines = report.to_markdown().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(report.rows)
    assert _md_cells(table[0])[0] == "node"
    assert all(re.fullmatch(r"-+:?", c) for c in _md_cells(table[1]))
    assert all(len(_md_cells(line)) == 9 for line in table)
    assert [_md_cells(line)[0] for line in table[2:]] == [r.name for r in report.rows]
    shared = _md_cells(table[2 + 3])
    assert shared[6] == 'shared "left" \\| right'
    text = "\n".join(lines)
    assert "equivariance error (float64): not measured" in text
    assert "**Warnings**" in text and "- dropout module 'drop'" in text
    assert "**Notes**" in text and "- coupled by residual connections" in text


# ------------------------------------------------------------------------------------------ JSON
def _strict_loads(text: str) -> dict:
    def reject(constant: str) -> None:
        raise AssertionError(f"non-JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def test_json_schema_round_trip() -> None:
    report = _report()
    data = _strict_loads(report.to_json())
    assert data == _strict_loads(json.dumps(report.to_dict()))
    assert set(data) == {"schema", "version", "model", "spec", "options", "inputs", "totals",
                         "rows", "notes", "warnings", "free_outputs"}
    assert data["schema"] == "symmetrize.report" and data["version"] == SCHEMA_VERSION == 2
    assert data["model"] == "ToyModel"
    assert data["spec"] == report.spec.to_dict()
    assert [r["name"] for r in data["rows"]] == [r.name for r in report.rows]
    assert data["rows"][1] == report.rows[1].to_dict()
    assert data["rows"][3]["projection_error"] is None  # nan
    assert data["rows"][4]["inputs"] == ["act", "w", "ghost"]
    assert data["totals"]["equivariance_error"] is None
    assert data["totals"]["parameters_after"] == 600
    assert data["options"]["hidden"]["conv"] == {"perm": [1, 0, 2], "sign": [1, 1, -1]}
    assert isinstance(data["options"]["policy"], str) and "lambda" in data["options"]["policy"]
    assert data["options"]["keep"] == ["keep"] and data["options"]["scale"] is None
    assert data["inputs"] == [{"shape": [2, 9, 17, 2], "dtype": "float32"}]
    assert data["notes"] == report.notes and data["warnings"] == report.warnings
    assert "\n" not in report.to_json(indent=None)


def test_json_spec_without_to_dict_and_odd_values() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    class Broken:
        def to_dict(self) -> dict:
            raise RuntimeError("no")

    data = _strict_loads(_report(spec=Opaque(), options={"a": Broken(), "b": {1: Opaque()}},
                                 equivariance_error=2e-16).to_json())
    assert data["spec"] == "Opaque()"
    assert data["options"]["a"].startswith("<") and data["options"]["b"] == {"1": "Opaque()"}
    assert data["totals"]["equivariance_error"] == 2e-16
    assert _strict_loads(ConversionReport().to_json())["spec"] is None


# ----------------------------------------------------------------------------------------- graph
def test_networkx_graph() -> None:
    report = _report()
    graph = report.to_graph()
    assert list(graph.nodes) == [r.name for r in report.rows]
    assert set(graph.edges) == EDGES  # "ghost" is no row: no edge, no node
    assert graph.nodes["conv"]["action"] == "replaced"
    assert graph.nodes["conv"]["params_after"] == 3264
    assert graph.nodes["odd"] == report.rows[7].to_dict()


_DOT_STRING = r'"((?:[^"\\]|\\.)*)"'


def _dot_unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def _check_dot_syntax(text: str) -> None:
    """Strings closed, braces and brackets balanced outside strings."""
    depth = {"{": 0, "[": 0}
    closing = {"}": "{", "]": "["}
    in_string = escaped = False
    for char in text:
        if in_string:
            in_string, escaped = (True, False) if escaped else (char != '"', char == "\\")
        elif char == '"':
            in_string = True
        elif char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0
    assert not in_string and depth == {"{": 0, "[": 0}


def test_dot_output(tmp_path: Path) -> None:
    report = _report()
    path = tmp_path / "graph.dot"
    report.write_graph(str(path))
    text = path.read_text()
    _check_dot_syntax(text)
    assert text.startswith('digraph "ToyModel" {') and text.rstrip().endswith("}")
    nodes = dict(re.findall(rf"^\s*{_DOT_STRING}\s*\[label={_DOT_STRING}", text, re.MULTILINE))
    assert set(nodes) == {r.name for r in report.rows}
    edges = set(re.findall(rf"^\s*{_DOT_STRING}\s*->\s*{_DOT_STRING}\s*;", text, re.MULTILINE))
    assert edges == EDGES
    assert _dot_unquote(nodes["matmul"]).split("\n")[:2] == ["matmul", QUOTED_TARGET]
    assert _dot_unquote(nodes["conv"]).split("\n") == ["conv", "Conv1d", "64: 18 pairs, 17-",
                                                       "replaced"]
    fill = rf"^\s*{_DOT_STRING}\s*\[.*fillcolor={_DOT_STRING}"
    colours = dict(re.findall(fill, text, re.MULTILINE))
    assert colours["conv"] == "lightblue" and colours["act"] == "orange"
    assert colours["w"] == "lightgreen" and colours["head"] == "violet"
    assert colours["odd"] == "yellow" and colours["x"] == "white"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.dot"]


# -------------------------------------------------------------------------------------- pictures
def test_svg_png_pdf(tmp_path: Path) -> None:
    report = _report()
    svg, png, pdf = tmp_path / "g.svg", tmp_path / "g.png", tmp_path / "g.pdf"
    svg.write_text("old")  # replaced, not appended to
    for path in (svg, png, pdf):
        report.write_graph(path)
    text = svg.read_text()
    assert text.startswith("<?xml") or "<svg" in text
    assert ET.parse(svg).getroot().tag.endswith("svg")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pdf", "g.png", "g.svg"]


def test_layout_keeps_edges_off_boxes() -> None:
    layout = render.graph_layout(_report())
    ys = [layout.boxes[name][1] for name in ("x", "conv", "act", "matmul", "keep", "mine")]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)
    assert layout.boxes["w"][1] < layout.boxes["matmul"][1]
    assert len(layout.edges) == len(EDGES)
    for path in layout.edges:
        for px, py in path[1:-1]:  # bends of an edge that skips layers
            for bx, by in layout.boxes.values():
                assert not (abs(px - bx) < render._BOX_W / 2 and abs(py - by) < render._BOX_H / 2)
    for bx, by in layout.boxes.values():
        assert 0 <= bx - render._BOX_W / 2 and bx + render._BOX_W / 2 <= layout.width + 1e-9


def test_bad_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.dot.*\.svg.*\.png.*\.pdf"):
        _report().write_graph(tmp_path / "graph.jpg")
    with pytest.raises(ValueError, match="suffix"):
        _report().write_graph(tmp_path / "graph")
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg",
                 "matplotlib.patches"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=re.escape('pip install "symmetrize[graph]"')):
        _report().write_graph(tmp_path / "graph.svg")
    _report().write_graph(tmp_path / "graph.dot")  # DOT needs no matplotlib
    assert [p.name for p in tmp_path.iterdir()] == ["graph.dot"]


def test_200_node_chain_renders(tmp_path: Path) -> None:
    report = _chain_report(200)
    report.write_graph(tmp_path / "chain.svg")
    assert "<svg" in (tmp_path / "chain.svg").read_text()
    assert len(render.graph_layout(report).boxes) == 200
    _, _, body = _table(str(report))
    assert len(body) == 200 and max(len(line) for line in body) < 250
    assert len(render.report_graph(report)) == 200


# ------------------------------------------------------------------------------------ end to end
def test_end_to_end_temporal_model(tmp_path: Path) -> None:
    import torch

    from symmetrize import report as report_of
    from symmetrize import symmetrize
    from tests.pose_models import TemporalModel

    torch.manual_seed(0)
    model = TemporalModel(17, 2, 17, filter_widths=(3, 3), channels=64).eval()
    spec = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
    converted = symmetrize(model, spec, (torch.randn(2, 9, 17, 2),))
    report = report_of(converted)
    assert report is converted.symmetrize_report
    assert all(isinstance(row, ReportRow) for row in report.rows) and report.rows
    conv = next(row for row in report.rows if row.module == "expand_conv")
    assert conv.action == "replaced" and conv.op == "call_module"
    names = [row.name for row in report.rows]

    text = str(report)
    assert conv.name in text and "parameters:" in text
    assert math.isfinite(report.equivariance_error)
    assert f"equivariance error (float64): {report.equivariance_error:.2e}" in text

    data = _strict_loads(report.to_json())
    assert data["schema"] == "symmetrize.report" and data["model"] == "TemporalModel"
    assert [r["name"] for r in data["rows"]] == names
    assert data["spec"] == spec.to_dict()

    table = [line for line in report.to_markdown().splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(names)

    dot = tmp_path / "model.dot"
    report.write_graph(dot)
    _check_dot_syntax(dot.read_text())
    found = set(re.findall(rf"^\s*{_DOT_STRING}\s*\[", dot.read_text(), re.MULTILINE))
    assert found == set(names)

    svg = tmp_path / "model.svg"
    report.write_graph(str(svg))
    assert "<svg" in svg.read_text()
    graph = report.to_graph()
    assert set(graph.nodes) == set(names)
    assert graph.has_edge(conv.inputs[0], conv.name)
