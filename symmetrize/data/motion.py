"""Motion capture as joint positions over time (:class:`Motion`), its left/right mirror, and
the rest pose of a joint tree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from symmetrize.skeleton import Skeleton

__all__ = ["CMU_UNIT_METRES", "INCH_METRES", "Motion", "drop_empty_lead", "mirror_motion",
           "rest_positions"]

INCH_METRES = 0.0254
"""One inch in metres (ASF lengths are inches divided by the file's ``:units length``)."""

CMU_UNIT_METRES = INCH_METRES / 0.45
"""Length of one CMU unit in metres: the ASF files' ``length 0.45``, 1/0.45 inch (5.644 cm)."""


@dataclass(frozen=True, eq=False)
class Motion:
    """Joint positions over time plus the joint tree they come from.

    ``positions`` is ``(T, J, 3)`` float64 (metres when loaded with a ``scale``, else file units),
    ``names`` and ``parents`` (``-1`` for a root) describe the ``J`` joints, ``offsets`` is each
    joint's ``(J, 3)`` rest offset from its parent (from the origin for a root), ``fps`` the frame
    rate and ``source`` where the motion came from. Arrays are stored as read-only copies.
    """

    positions: np.ndarray
    names: tuple[str, ...]
    parents: tuple[int, ...]
    fps: float
    offsets: np.ndarray
    source: str = "<string>"

    def __post_init__(self) -> None:
        pos = np.array(self.positions, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[2] != 3:
            raise ValueError(f"positions must have shape (T, J, 3), got {pos.shape}")
        names = tuple(self.names)
        parents = tuple(int(p) for p in self.parents)
        n = pos.shape[1]
        if len(names) != n or len(parents) != n:
            raise ValueError(f"positions have {n} joints but there are {len(names)} names and "
                             f"{len(parents)} parents; give one of each per joint")
        bad = [p for p in parents if not -1 <= p < n]
        if bad:
            raise ValueError(f"parent index {bad[0]} out of range for {n} joints (-1 for a root)")
        offsets = np.array(self.offsets, dtype=np.float64)
        if offsets.shape != (n, 3):
            raise ValueError(f"offsets must have shape ({n}, 3), got {offsets.shape}")
        fps = float(self.fps)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive finite number, got {self.fps!r}")
        pos.setflags(write=False)
        offsets.setflags(write=False)
        for key, value in (("positions", pos), ("names", names), ("parents", parents),
                           ("offsets", offsets), ("fps", fps), ("source", str(self.source))):
            object.__setattr__(self, key, value)

    def __len__(self) -> int:
        """Number of frames."""
        return int(self.positions.shape[0])

    @cached_property
    def skeleton(self) -> Skeleton:
        """The joints as a :class:`~symmetrize.Skeleton` (mirror pairs inferred from names)."""
        return Skeleton(self.names, parents=self.parents)

    def select(self, indices: int | slice | Sequence[int] | np.ndarray) -> Motion:
        """The motion restricted to some frames (an int, a slice, indices or a boolean mask)."""
        frames = np.atleast_1d(np.arange(len(self))[indices])
        return replace(self, positions=self.positions[frames])

    def scaled(self, factor: float) -> Motion:
        """The motion with positions and offsets multiplied by ``factor`` (e.g. metres per
        file unit)."""
        return replace(self, positions=self.positions * factor, offsets=self.offsets * factor)


def mirror_motion(motion: Motion, axis: int = 0) -> Motion:
    """The left/right mirror image: every joint swaps with its twin and coordinate ``axis`` flips.

    Twins come from :attr:`Motion.skeleton` (joint names); ``axis=0`` (x) is the left/right axis
    of the CMU data. Offsets are mirrored the same way, so mirroring twice gives the motion back.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (the coordinate to negate), got {axis!r}")
    twin = motion.skeleton.mirror
    sign = np.ones(3)
    sign[axis] = -1.0
    return replace(motion, positions=motion.positions[:, twin] * sign,
                   offsets=motion.offsets[twin] * sign)


def rest_positions(offsets: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """``(J, 3)`` joint positions of the rest pose: offsets summed along each chain (iterative,
    so any depth works; parents need not precede their children).

    Raises:
        ValueError: the parents contain a cycle.
    """
    n = len(parents)
    rest = np.zeros((n, 3))
    done = np.zeros(n, dtype=bool)
    for start in range(n):
        chain = []
        j = start
        while j >= 0 and not done[j]:
            chain.append(j)
            if len(chain) > n:
                raise ValueError(f"parents contain a cycle through joint {start}")
            j = parents[j]
        base = rest[j] if j >= 0 else np.zeros(3)
        for k in reversed(chain):
            base = base + offsets[k]
            rest[k] = base
            done[k] = True
    return rest


def drop_empty_lead(motion: Motion) -> Motion:
    """``motion`` without its leading frames whose roots sit exactly at their rest offsets (all
    root translations zero: an empty capture frame, as the first motion frame of CMU's 07_12)."""
    if len(motion) == 0:
        return motion
    roots = [i for i, p in enumerate(motion.parents) if p < 0]
    at_rest = np.all(motion.positions[:, roots] == motion.offsets[roots], axis=(1, 2))
    lead = len(motion) if at_rest.all() else int(np.argmin(at_rest))
    return motion.select(slice(lead, None)) if lead else motion
