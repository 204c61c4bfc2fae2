"""Chirality-equivariant fully connected layer and the linear invariance layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn.blockops import BLOCKS, block_apply, choose_execution
from symmetrize.nn.shared import BlockSpec, ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralLinear", "InvariantLinear"]


class ChiralLinear(ChiralModule, nn.Linear):
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
        _check_reps(type(self).__name__, rep_in, rep_out)
        nn.Module.__init__(self)
        self.in_features, self.out_features = rep_in.size, rep_out.size
        self.rep_in, self.rep_out = rep_in, rep_out
        bound = 1.0 / max(rep_in.size, 1) ** 0.5  # nn.Linear's init bound
        self._register_blocks("weight", BlockSpec(rep_in, rep_out, (), bound), device, dtype)
        if bias:
            self._register_blocks("bias", BlockSpec(None, rep_out, (), bound), device, dtype)
        else:
            self.register_parameter("bias_plus", None)
        self.execution = choose_execution(rep_in, rep_out, eigenbasis)
        self.reset_parameters()

    @property
    def has_bias(self) -> bool:
        return self._parameters.get("bias_plus") is not None

    def __getattr__(self, name: str) -> Any:
        if name == "bias" and self.__dict__.get("_block_specs") is not None \
                and "bias" not in self._block_specs:
            return None
        return super().__getattr__(name)

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
        with building_from(module):
            layer = cls._build(module, rep_in, rep_out)
        layer.assign_dense("weight", module.weight)
        if module.bias is not None:
            layer.assign_dense("bias", module.bias)
        return layer

    @classmethod
    def _build(cls, module: nn.Linear, rep_in: Rep, rep_out: Rep) -> ChiralLinear:
        return cls(rep_in, rep_out, bias=module.bias is not None, device=module.weight.device,
                   dtype=module.weight.dtype)

    def to_dense(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the dense weights (same outputs)."""
        ref = self.weight_plus
        dense = nn.Linear(self.in_features, self.out_features, bias=self.has_bias,
                          device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            dense.weight.copy_(self.weight)
            if self.has_bias:
                dense.bias.copy_(self.bias)
        return dense

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


def _check_reps(what: str, rep_in: Any, rep_out: Any) -> None:
    if not isinstance(rep_in, Rep) or not isinstance(rep_out, Rep):
        raise TypeError(f"{what} expects Reps for rep_in and rep_out, got "
                        f"{type(rep_in).__name__} and {type(rep_out).__name__}")


def check_widths(what: str, n_in: int, n_out: int, rep_in: Rep, rep_out: Rep) -> None:
    """Raise unless the Reps' sizes are the plain layer's widths."""
    _check_reps(what, rep_in, rep_out)
    if rep_in.size != n_in:
        raise ValueError(f"{what}: rep_in has size {rep_in.size} but the layer has {n_in} inputs")
    if rep_out.size != n_out:
        raise ValueError(f"{what}: rep_out has size {rep_out.size} but the layer has {n_out} "
                         f"outputs")
