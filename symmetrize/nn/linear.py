"""Chirality-equivariant fully connected layer and the linear invariance layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn.blockops import BLOCKS, block_apply
from symmetrize.nn.weighted import WeightedLayer, check_reps, check_widths
from symmetrize.rep import Rep

__all__ = ["ChiralLinear", "InvariantLinear"]


class ChiralLinear(WeightedLayer, nn.Linear):
    """``nn.Linear`` with ``f(T_in x) = T_out f(x)``, stored and run in the mirror's eigenbasis.

    Features are on the last axis, as for ``nn.Linear``. Parameters: ``weight_plus``
    (``n+_out x n+_in``), ``weight_minus`` (``n-_out x n-_in``) and ``bias_plus`` (``n+_out``), the
    eigenbasis blocks of the weight and bias (:mod:`symmetrize.eigenbasis`). ``weight`` and
    ``bias`` read as the dense equivalents. ``execution`` says whether the layer runs as two
    half-width matmuls (``"blocks"``) or, when narrow, with its dense weight (``"dense (...)"``).

    Args:
        rep_in: how the mirror acts on the input features.
        rep_out: how it acts on the output features (``Rep.trivial`` for an invariant output).
        bias: learn an additive bias (``b = T_out b``).
    """

    def __init__(self, rep_in: Rep, rep_out: Rep, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        check_reps(type(self).__name__, rep_in, rep_out)
        nn.Module.__init__(self)
        self.in_features, self.out_features = rep_in.size, rep_out.size
        bound = 1.0 / max(rep_in.size, 1) ** 0.5  # nn.Linear's init bound
        self._register_weight_and_bias(rep_in, rep_out, (), bound, bias, device, dtype)
        self.reset_parameters()

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Linear's name
        if self.execution != BLOCKS:
            return F.linear(input, self.weight, self.bias)
        return block_apply(input, -1, eigenbasis(self.rep_in), eigenbasis(self.rep_out),
                           F.linear, self.weight_plus, self.weight_minus, self.bias_plus)

    def forward_eigen(self, x_plus: torch.Tensor,
                      x_minus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer on eigenbasis halves (features last): ``(W+ x+ + b+, W- x-)``."""
        return (F.linear(x_plus, self.weight_plus, self.plus_bias()),
                F.linear(x_minus, self.weight_minus))

    # ----------------------------------------------------------------- conversion
    @classmethod
    def from_dense(cls, module: nn.Linear, rep_in: Rep, rep_out: Rep) -> ChiralLinear:
        """A chiral copy of ``module`` with its weights projected onto the equivariant ones."""
        if not isinstance(module, nn.Linear):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.Linear, got "
                            f"{type(module).__name__}")
        check_widths(cls.__name__, module.in_features, module.out_features, rep_in, rep_out)
        return cls._copy_of(module, lambda: cls._build(module, rep_in, rep_out))

    @classmethod
    def _build(cls, module: nn.Linear, rep_in: Rep, rep_out: Rep) -> ChiralLinear:
        return cls(rep_in, rep_out, bias=module.bias is not None, device=module.weight.device,
                   dtype=module.weight.dtype)

    def to_dense(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the dense weights (same outputs)."""
        ref = self.weight_plus
        return self._fill_dense(nn.Linear(self.in_features, self.out_features,
                                          bias=self.has_bias, device=ref.device,
                                          dtype=ref.dtype))

    def _check_io(self, batch: int, generator: torch.Generator, dtype: torch.dtype) -> Any:
        x = torch.randn(batch, self.in_features, generator=generator, dtype=dtype)
        return (x,), (self.rep_in.apply(x),), lambda y: self.rep_out.apply(y)

    def extra_repr(self) -> str:
        return (f"{self.rep_in} -> {self.rep_out}, bias={self.has_bias}, "
                f"execution={self.execution!r}")


class InvariantLinear(ChiralLinear):
    """The invariance layer: a :class:`ChiralLinear` with a trivial output Rep, so
    ``f(T_in x) = f(x)``: it reads only the ``+`` half of its input."""

    def __init__(self, rep_in: Rep, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(rep_in, Rep.trivial(out_features), bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_dense(cls, module: nn.Linear, rep_in: Rep,  # type: ignore[override]
                   rep_out: Rep | None = None) -> InvariantLinear:
        """An invariant copy of ``module`` (weights projected)."""
        if not isinstance(module, nn.Linear):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.Linear, got "
                            f"{type(module).__name__}")
        rep_out = Rep.trivial(module.out_features) if rep_out is None else rep_out
        if not rep_out.is_trivial:
            raise ValueError(f"InvariantLinear needs a trivial output Rep, got {rep_out}")
        return super().from_dense(module, rep_in, rep_out)  # type: ignore[return-value]

    @classmethod
    def _build(cls, module: nn.Linear, rep_in: Rep, rep_out: Rep) -> ChiralLinear:
        return cls(rep_in, module.out_features, bias=module.bias is not None,
                   device=module.weight.device, dtype=module.weight.dtype)

