"""Flat Reps: the mirror's action on every element of a tensor, row-major, as one
:class:`~symmetrize.rep.Rep` (the Kronecker product of per-axis Reps), and how constants an op
writes follow the per-axis action of the elements around them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symmetrize.movement_errors import NotEquivariantError
from symmetrize.rep import Rep

__all__ = ["flat_rep", "fmt_index", "place_constants", "same_values"]


# ----------------------------------------------------------------------------- flat Reps
def flat_rep(shape: Sequence[int], axes: Mapping[int, Rep]) -> Rep:
    """The flat Rep of a tensor of ``shape`` whose axis ``a`` transforms with ``axes[a]``.

    Every other axis is left alone; the result is the Kronecker product over the axes in order.
    Negative axis keys count from the end.

    Raises:
        ValueError: an axis out of range or given twice, or a Rep whose size is not the axis size.
    """
    shape = _as_shape(shape)
    per_axis: dict[int, Rep] = {}
    for key, rep in axes.items():
        axis = _norm_axis(key, len(shape))
        if axis in per_axis:
            raise ValueError(f"axis {key} of shape {shape} is given twice")
        if not isinstance(rep, Rep):
            raise TypeError(f"axis {key}: expected a Rep, got {type(rep).__name__}")
        if rep.size != shape[axis]:
            raise ValueError(f"axis {key} of shape {shape} has size {shape[axis]} but its Rep has "
                             f"size {rep.size}")
        per_axis[axis] = rep
    perm, sign = _product(shape, per_axis)
    return Rep._trusted(perm, sign)  # a Kronecker product of valid Reps is valid


def _product(shape: tuple[int, ...], per_axis: Mapping[int, Rep]) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``(perm, sign)`` of the Kronecker product of per-axis Reps (identity elsewhere)."""
    perm = np.zeros(1, dtype=np.int64)
    sign = np.ones(1, dtype=np.int64)
    for axis, size in enumerate(shape):
        rep = per_axis.get(axis)
        axis_perm = np.arange(size, dtype=np.int64) if rep is None else rep.perm
        perm = (perm[:, None] * size + axis_perm[None, :]).reshape(-1)
        if rep is None or rep.n_negated == 0:
            sign = np.repeat(sign, size)
        else:
            sign = (sign[:, None] * rep.sign[None, :]).reshape(-1)
    return perm, sign


def _candidates(shape: tuple[int, ...], perm: np.ndarray, sign: np.ndarray, axes: Sequence[int],
                known: np.ndarray | None, values: np.ndarray | None = None,
                ) -> dict[int, Rep] | None:
    """Per-axis Reps read along lines through a reference element (not verified).

    The reference is element 0, or the first ``known`` one. Along each line, an index whose element
    is not ``known`` (a constant in ``values``) reads as fixed; its sign extends the axis's sign at
    the reference for a zero, and makes the element's sign ``+1`` for a non-zero constant.
    Returns ``None`` if a line is no Rep.
    """
    if math.prod(shape) == 0:
        return {a: Rep.trivial(shape[a]) for a in axes}
    ref = 0
    if known is not None:
        first = np.flatnonzero(known)
        if first.size == 0:
            return {a: Rep.trivial(shape[a]) for a in axes}
        ref = int(first[0])
    strides = [math.prod(shape[a + 1:]) for a in range(len(shape))]
    ref_index = np.unravel_index(ref, shape)
    ref_sign = int(sign[ref])
    found: dict[int, Rep] = {}
    for i, axis in enumerate(axes):
        last = i == len(axes) - 1
        k = np.arange(shape[axis], dtype=np.int64)
        line = ref + (k - int(ref_index[axis])) * strides[axis]
        axis_perm = (perm[line] // strides[axis]) % shape[axis]
        # Gauge: every axis but the last listed has sign +1 at the reference.
        axis_sign = sign[line] if last else sign[line] * ref_sign
        if known is not None and values is not None:
            on = known[line]
            extend, plus_one = (ref_sign, 1) if last else (1, ref_sign)
            free_sign = np.where(values[line] == 0, extend, plus_one)
            axis_perm = np.where(on, axis_perm, k)
            axis_sign = np.where(on, axis_sign, free_sign)
        try:
            found[axis] = Rep(axis_perm, axis_sign)
        except ValueError:
            return None
    return found


def place_constants(name: str, where: str, shape: tuple[int, ...], perm: np.ndarray,
                     sign: np.ndarray, source: np.ndarray,
                     values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Let constants follow the per-axis mirror action of the copied elements, where one exists.

    A zero may move or flip freely; a non-zero constant may only land on an equal constant with
    sign ``+1``. Constants stay fixed when the copied elements have no per-axis action.
    """
    found = _candidates(shape, perm, sign, range(len(shape)), source, values)
    if found is None:
        return perm, sign
    full_perm, full_sign = _product(shape, found)
    if not (np.array_equal(full_perm[source], perm[source])
            and np.array_equal(full_sign[source], sign[source])):
        return perm, sign
    const = np.flatnonzero(~source)
    image = full_perm[const]
    ok = (~source[image] & same_values(values[image], values[const])
          & ((values[const] == 0) | (full_sign[const] == 1)))
    if ok.all():
        return full_perm, full_sign
    offending = const[~ok & (values[const] != 0)]
    if offending.size == 0:
        return perm, sign
    p = int(offending[0])
    q = int(full_perm[p])
    effect = ("would flip its sign (the mirror negates some of the elements alongside the "
              "constants the op writes, but not others)" if q == p else
              f"would move it onto {fmt_index(np.unravel_index(q, shape))}, which holds "
              f"{float(values[q])!r}")
    raise NotEquivariantError(
        f"{name} is not equivariant: {where} at {fmt_index(np.unravel_index(p, shape))} is the "
        f"constant {float(values[p])!r} written by the op, but the mirror's per-axis action on "
        f"the surrounding elements {effect}; only a zero constant is sign-agnostic (pad with "
        f"zeros, or write constants only where the mirror neither moves nor negates)")


def _as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise ValueError(f"shape {out} has a negative size")
    return out


def _norm_axis(axis: int, ndim: int) -> int:
    if (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))
            or not -ndim <= axis < ndim):
        raise ValueError(f"axis {axis!r} is out of range for a tensor with {ndim} axes")
    return int(axis) % ndim


def fmt_index(index: Sequence[Any]) -> str:
    return "(" + ", ".join(str(int(i)) for i in index) + ")"


def same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))
