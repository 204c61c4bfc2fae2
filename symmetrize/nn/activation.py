"""Point-wise non-linearities and the mirror.

A point-wise function commutes with a channel permutation, so on channels whose sign is ``+1`` any
activation keeps a layer equivariant. On channels that flip sign it must be odd
(``f(-x) = -f(x)``): the paper switches ReLU to tanh there. :class:`ChiralActivation` keeps the
original activation on the ``+1`` channels and applies an odd one only to the negated ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from symmetrize.nn.fast_tanh import SwitchedTanh
from symmetrize.rep import Rep

__all__ = ["ODD_ACTIVATIONS", "ChiralActivation", "is_odd"]

#: Activation modules that are odd functions for every setting of their arguments.
ODD_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.Tanh, nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Identity,
)


def is_odd(module: nn.Module) -> bool:
    """Whether ``module`` is a point-wise odd function (safe on channels that flip sign).

    ``nn.Hardtanh`` counts when its range is symmetric (``min_val == -max_val``).
    """
    if isinstance(module, nn.Hardtanh):
        return module.min_val == -module.max_val
    return isinstance(module, ODD_ACTIVATIONS)


class ChiralActivation(nn.Module):
    """Apply ``activation`` on channels the mirror does not negate and ``odd`` on those it does.

    Args:
        rep: how the mirror acts on the channel axis ``dim``.
        activation: any point-wise module (default ``nn.ReLU()``).
        odd: an odd point-wise module for the negated channels (default tanh:
            :class:`~symmetrize.nn.fast_tanh.SwitchedTanh`).
        dim: the channel axis (1 for ``(N, C, L)``, -1 for ``(..., C)``).

    Raises:
        ValueError: when ``odd`` is not an odd function.
    """

    def __init__(self, rep: Rep, activation: nn.Module | None = None, odd: nn.Module | None = None,
                 dim: int = 1) -> None:
        super().__init__()
        self.rep = rep
        self.activation = nn.ReLU() if activation is None else activation
        self.odd = SwitchedTanh() if odd is None else odd
        if not is_odd(self.odd):
            raise ValueError(f"ChiralActivation: odd={self.odd!r} is not an odd function; use one of "
                             f"{', '.join(c.__name__ for c in ODD_ACTIVATIONS)} or a symmetric "
                             "nn.Hardtanh")
        self.dim = dim
        self.register_buffer("negated", torch.tensor(rep.sign < 0), persistent=False)
        # static: no data-dependent branch in forward (torch.export / ONNX / jit.trace)
        self._any_negated = bool((rep.sign < 0).any())
        self._all_negated = bool((rep.sign < 0).all()) if rep.size else False
        # the negated channels one contiguous run at either end (the "eigen" layout): narrow
        # views and one cat instead of both functions on every channel and a where
        negated = np.flatnonzero(rep.sign < 0)
        self._tail: tuple[int, bool] | None = None
        if self._any_negated and not self._all_negated and \
                negated[-1] - negated[0] + 1 == negated.size and \
                (negated[0] == 0 or negated[-1] == rep.size - 1):
            self._tail = (int(negated.size), bool(negated[0] != 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[self.dim] != self.rep.size:
            raise ValueError(f"ChiralActivation expects {self.rep.size} channels on axis {self.dim}, "
                             f"got input of shape {tuple(x.shape)}")
        if not self._any_negated:
            return self.activation(x)
        if self._all_negated:
            return self.odd(x)
        tail = getattr(self, "_tail", None)  # (absent from modules pickled before it existed)
        if tail is not None:
            count, at_end = tail
            size = self.rep.size
            if at_end:
                return torch.cat([self.activation(x.narrow(self.dim, 0, size - count)),
                                  self.odd(x.narrow(self.dim, size - count, count))], self.dim)
            return torch.cat([self.odd(x.narrow(self.dim, 0, count)),
                              self.activation(x.narrow(self.dim, count, size - count))], self.dim)
        shape = [1] * x.dim()
        shape[self.dim] = self.rep.size
        return torch.where(self.negated.view(shape), self.odd(x), self.activation(x))

    def extra_repr(self) -> str:
        return f"{self.rep}, dim={self.dim}"
