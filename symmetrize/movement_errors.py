"""Why an op's output has no mirror action: it drops a mirror twin, or it is no data movement."""

from __future__ import annotations

__all__ = ["NotDataMovementError", "NotEquivariantError"]


class NotEquivariantError(ValueError):
    """The op is data movement, but no Rep of its output makes it equivariant for the input Reps."""


class NotDataMovementError(ValueError):
    """The op computes new values (arithmetic, reductions, ...): it needs a dedicated rule."""


#: ops that only change the shape: the row-major element order, so the flat Rep, is unchanged
