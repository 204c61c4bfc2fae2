"""How far ``f(T x)`` is from ``T f(x)``, over every leaf of any output structure.

Outputs may be a tensor, or tuples, lists, dicts, named tuples and dataclasses of them, nested,
with ``None`` entries. Tensor leaves are matched to the Spec's outputs in order; a free output is
mirrored with the action the conversion chose for it (``free_axes``); other leaves (numbers,
strings) must be equal. A structure that differs between the two runs, or a leaf of a type this
module cannot compare, is an error: never a silent pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from symmetrize.rep import Rep
from symmetrize.spec import Spec

__all__ = ["OutputError", "output_error", "tensor_leaves", "worst"]


class OutputError(ValueError):
    """An output the check cannot interpret or whose structure changes under the mirror."""


def tensor_leaves(value: Any, where: str = "output") -> list[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf in order: tensors, ``None``, numbers and strings.

    Raises:
        OutputError: a leaf of another type (naming its path and type).
    """
    out: list[tuple[str, Any]] = []
    todo: list[tuple[str, Any]] = [(where, value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, torch.Tensor) or item is None or \
                isinstance(item, (bool, int, float, complex, str, bytes)):
            out.append((path, item))
        elif isinstance(item, Mapping):
            todo.extend(reversed([(f"{path}[{k!r}]", v) for k, v in item.items()]))
        elif isinstance(item, (tuple, list)):
            fields = getattr(item, "_fields", None)
            names = [f".{f}" for f in fields] if fields else [f"[{i}]" for i in range(len(item))]
            todo.extend(reversed([(path + n, v) for n, v in zip(names, item)]))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            todo.extend(reversed([(f"{path}.{f.name}", getattr(item, f.name))
                                  for f in dataclasses.fields(item)]))
        else:
            raise OutputError(f"{path} is a {type(item).__name__}, which the equivariance "
                              "check cannot compare: return tensors (in tuples, lists, dicts or "
                              "dataclasses), numbers or None")
    return out


def output_error(spec: Spec, out: Any, out_mirrored: Any,
                 free_axes: Mapping[int, Mapping[int, Rep]] | None = None) -> tuple[float, float]:
    """``(max abs, max abs of the outputs)`` of ``T f(x) - f(T x)`` over all tensor leaves.

    Raises:
        OutputError: the two structures differ, more tensor outputs than the Spec annotates,
            a free output without a recorded action, or a leaf that cannot be compared.
    """
    leaves, leaves_m = tensor_leaves(out), tensor_leaves(out_mirrored)
    if [p for p, _ in leaves] != [p for p, _ in leaves_m]:
        raise OutputError("the output structure differs between x and its mirror image ("
                          f"{[p for p, _ in leaves]} vs {[p for p, _ in leaves_m]})")
    largest, scale = 0.0, 0.0
    index = 0
    for (path, y), (_, y_m) in zip(leaves, leaves_m, strict=True):
        if not isinstance(y, torch.Tensor):
            if y != y_m and not (isinstance(y, float) and math.isnan(y) and math.isnan(y_m)):
                return math.inf, 1.0
            continue
        if not isinstance(y_m, torch.Tensor) or y.shape != y_m.shape:
            raise OutputError(f"{path} has shape {tuple(y.shape)} for x but "
                              f"{getattr(y_m, 'shape', y_m)} for its mirror image")
        if index >= spec.n_outputs:
            raise OutputError(f"{path} is tensor output {index}, but the Spec annotates "
                              f"{spec.n_outputs}: add a layout for it to Spec(output=...)")
        if y.is_floating_point() or y.is_complex():
            expected = _mirror(spec, index, y, free_axes, path)
            if y.numel():
                largest = worst(largest, (expected - y_m).abs().max().double().item())
                scale = max(scale, y.abs().max().double().item())
        elif not torch.equal(_mirror(spec, index, y, free_axes, path), y_m):
            largest = math.inf  # integer outputs (class indices) must match exactly
        index += 1
    return largest, scale


def _mirror(spec: Spec, index: int, y: torch.Tensor,
            free_axes: Mapping[int, Mapping[int, Rep]] | None, path: str) -> torch.Tensor:
    if not spec.is_free_output(index):
        return spec.mirror_output(index, y)
    axes = (free_axes or {}).get(index)
    if axes is None:
        raise OutputError(f"{path} is a free output (Spec output {index} is 'free'), whose "
                          "action only the conversion knows: check the converted model, or give "
                          "the output a layout")
    for axis, rep in axes.items():
        y = rep.apply(y, axis)
    return y


def worst(a: float, b: float) -> float:
    """The max of two errors, NaN winning (a NaN output is a failure)."""
    return b if math.isnan(b) or b > a else a
