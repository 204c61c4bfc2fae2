"""Rotation matrices about the coordinate axes and their products, vectorised over frames (the
forward kinematics of the BVH and ASF/AMC readers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["axis_rotation", "compose"]


def axis_rotation(axis: int, radians: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations by ``radians`` (shape ``(T,)``) about coordinate axis ``axis``
    (0 x, 1 y, 2 z), right-handed."""
    angle = np.asarray(radians, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    i, j = ((1, 2), (2, 0), (0, 1))[axis]
    out = np.zeros((angle.shape[0], 3, 3))
    out[:, axis, axis] = 1.0
    out[:, i, i] = c
    out[:, j, j] = c
    out[:, i, j] = -s
    out[:, j, i] = s
    return out


def compose(axes: Sequence[int], radians: np.ndarray) -> np.ndarray | None:
    """``R_first @ R_second @ ...``: the product of rotations about ``axes`` by the columns of
    ``radians`` (``(T, len(axes))``), in the order listed; ``None`` when ``axes`` is empty (the
    identity)."""
    out = None
    for col, axis in enumerate(axes):
        step = axis_rotation(axis, radians[:, col])
        out = step if out is None else out @ step
    return out
