"""A :class:`~symmetrize.passes.report.ConversionReport` as text: an aligned plain-text table
(``print(report)``) and Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symmetrize.passes.report import ConversionReport, ReportRow

__all__ = ["action_text", "clip", "op_type", "report_markdown", "report_text", "short_source"]

_HEADERS = ("node", "op/type", "module", "source", "input Rep", "output Rep", "action/detail",
            "params before->after", "proj. error")
#: widest a text-table cell may be (longer values end in an ellipsis)
_TEXT_CAPS = (28, 18, 28, 24, 30, 30, 40, 22, 11)
_RIGHT_ALIGNED = {7, 8}
_ELLIPSIS = "\u2026"


# ----------------------------------------------------------------------------------------- cells
def op_type(row: ReportRow) -> str:
    """The op/type column: the module type, function name, ``.method``, ``input``, ``output``
    or ``attr``."""
    if row.op == "call_method":
        return f".{row.target}"
    if row.op in ("call_module", "call_function"):
        return str(row.target)
    return {"placeholder": "input", "output": "output", "get_attr": "attr"}.get(row.op, row.op)


def short_source(source: str | None) -> str:
    """``/long/path/model.py:42`` -> ``model.py:42`` (``""`` when unknown)."""
    if not source:
        return ""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def action_text(row: ReportRow) -> str:
    """The action and its detail in one cell, without repeating the action word."""
    if not row.detail:
        return row.action
    if not row.action or row.detail.startswith(row.action):
        return row.detail
    return f"{row.action}: {row.detail}"


def _params_text(row: ReportRow) -> str:
    if row.params_before is None and row.params_after is None:
        return ""

    def count(n: int | None) -> str:
        return "?" if n is None else str(n)

    return f"{count(row.params_before)} -> {count(row.params_after)}"


def _error_text(value: float | None) -> str:
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.1e}"


def _cells(row: ReportRow) -> tuple[str, ...]:
    return (row.name, op_type(row), row.module, short_source(row.source), row.rep_in,
            row.rep_out, action_text(row), _params_text(row), _error_text(row.projection_error))


def clip(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (an ellipsis marks the cut)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + _ELLIPSIS


def _equivariance_text(error: float) -> str:
    return "not measured" if error is None or math.isnan(error) else f"{error:.2e}"


def _totals_lines(report: ConversionReport) -> list[str]:
    totals = report.totals()
    return [(f"parameters: {totals['parameters_before']} -> {totals['parameters_after']} "
             f"(ratio {totals['parameter_ratio']:.3f})"),
            f"replaced modules: {totals['replaced_modules']}",
            f"switched activations: {totals['switched_activations']}",
            f"shared tensors: {totals['shared_tensors']}",
            f"equivariance error (float64): {_equivariance_text(totals['equivariance_error'])}"]


# ------------------------------------------------------------------------------------ plain text
def report_text(report: ConversionReport) -> str:
    """An aligned plain-text table (one line per row), then totals, warnings and notes."""
    lines = [f"symmetrize report: {report.model or '(model)'}, {len(report.rows)} nodes"]
    if report.spec is not None:
        lines.append(f"spec: {report.spec!r}")
    lines.append("")
    lines += _text_table([_cells(row) for row in report.rows]) if report.rows else ["(no rows)"]
    lines.append("")
    lines += _totals_lines(report)
    lines += [f"warning: {w}" for w in report.warnings]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def _text_table(rows: list[tuple[str, ...]]) -> list[str]:
    rows = [tuple(clip(c, cap) for c, cap in zip(row, _TEXT_CAPS)) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if i in _RIGHT_ALIGNED else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return [line(_HEADERS), line(["-" * w for w in widths]), *(line(r) for r in rows)]


# -------------------------------------------------------------------------------------- markdown
def _md(text: str) -> str:
    """A Markdown table cell: one line, ``|`` escaped."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def report_markdown(report: ConversionReport) -> str:
    """A GitHub Markdown table (one line per row), a totals list, warnings and notes."""
    lines = [f"## symmetrize report: {_md(report.model or '(model)')}", ""]
    if report.spec is not None:
        lines += [f"Spec: `{report.spec!r}`", ""]
    lines.append("| " + " | ".join(_HEADERS) + " |")
    lines.append("|" + "|".join("---:" if i in _RIGHT_ALIGNED else "---"
                                for i in range(len(_HEADERS))) + "|")
    lines += ["| " + " | ".join(_md(c) for c in _cells(row)) + " |" for row in report.rows]
    lines += ["", "**Totals**", ""]
    lines += [f"- {_md(line)}" for line in _totals_lines(report)]
    for title, items in (("Warnings", report.warnings), ("Notes", report.notes)):
        if items:
            lines += ["", f"**{title}**", ""] + [f"- {_md(item)}" for item in items]
    return "\n".join(lines) + "\n"
