"""A :class:`~symmetrize.passes.report.ConversionReport` as JSON, in a stable schema.

The schema (``report_dict``), version :data:`SCHEMA_VERSION`::

    {"schema": "symmetrize.report", "version": 2, "model": str, "spec": dict | str | null,
     "options": dict, "inputs": [dict], "totals": dict, "rows": [row dict], "notes": [str],
     "warnings": [str], "free_outputs": {index: {axis: Rep}}}

Every value is plain JSON: ``nan``/``inf`` become ``null``, a :class:`~symmetrize.Rep` becomes
``{"perm": [...], "sign": [...]}``, anything else that JSON cannot hold becomes its ``repr``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from symmetrize.rep import Rep

if TYPE_CHECKING:
    from symmetrize.passes.report import ConversionReport

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "jsonable", "report_dict", "report_json"]

#: the ``schema`` field of :func:`report_dict`
SCHEMA_NAME = "symmetrize.report"
#: version of the JSON schema written by :func:`report_dict`
SCHEMA_VERSION = 2  # 2: free_outputs


# ------------------------------------------------------------------------------------------ JSON
def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON data: non-finite floats -> ``None``, a Rep -> ``{"perm", "sign"}``,
    an object with ``to_dict`` -> that dict, arrays -> lists, anything else -> ``repr``."""
    if _depth > 32:
        return repr(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Rep):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, _depth + 1) for v in items]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    for method in ("to_dict", "tolist"):  # a Spec or Skeleton; a numpy array or tensor
        if callable(getattr(value, method, None)) and not isinstance(value, type):
            try:
                return jsonable(getattr(value, method)(), _depth + 1)
            except Exception:  # noqa: BLE001 - never fail on a value we only describe
                break
    return repr(value)


def report_dict(report: ConversionReport) -> dict[str, Any]:
    """The report as plain JSON data, in the documented schema (see the module docstring)."""
    spec = report.spec
    if spec is not None and not callable(getattr(spec, "to_dict", None)):
        spec = repr(spec)
    return jsonable({
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "model": report.model,
        "spec": spec,
        "options": dict(report.options),
        "inputs": list(report.inputs),
        "totals": report.totals(),
        "rows": [row.to_dict() for row in report.rows],
        "notes": list(report.notes),
        "warnings": list(report.warnings),
        "free_outputs": {str(i): {str(a): rep for a, rep in axes.items()}
                         for i, axes in report.free_outputs.items()},
    })


def report_json(report: ConversionReport, indent: int | None = 2) -> str:
    """:func:`report_dict` as JSON text (strict: no ``NaN``)."""
    return json.dumps(report_dict(report), indent=indent, allow_nan=False)
