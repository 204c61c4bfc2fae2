"""Local symmetrisation: make any module mirror-equivariant by averaging it with its mirror."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from symmetrize.rep import Rep

__all__ = ["MirrorAverage"]


class MirrorAverage(nn.Module):
    """``g(x) = (f(x) + T_out f(T_in x)) / 2`` for a wrapped module ``f``.

    Exactly equivariant for any ``f`` (the mirror is an involution), at twice the cost of ``f``.
    ``T_in`` / ``T_out`` act axis by axis: ``in_axes`` / ``out_axes`` map an axis to its Rep
    (axes not listed are left alone, so any batch size works).
    """

    def __init__(self, module: nn.Module, in_axes: Mapping[int, Rep],
                 out_axes: Mapping[int, Rep]) -> None:
        super().__init__()
        self.module = module
        self.in_axes = dict(in_axes)
        self.out_axes = dict(out_axes)

    @staticmethod
    def _mirror(x: torch.Tensor, axes: Mapping[int, Rep]) -> torch.Tensor:
        for axis, rep in axes.items():
            x = rep.apply(x, axis)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x)
        y_mirror = self.module(self._mirror(x, self.in_axes))
        return (y + self._mirror(y_mirror, self.out_axes)) / 2

    def extra_repr(self) -> str:
        def fmt(axes: Mapping[int, Rep]) -> str:
            return ", ".join(f"axis {a}: {r!r}" for a, r in axes.items()) or "identity"
        return f"in: {fmt(self.in_axes)}; out: {fmt(self.out_axes)}"
