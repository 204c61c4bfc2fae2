"""Chirality-equivariant fully connected layer and the linear invariance layer."""

from __future__ import annotations

import torch
from torch import nn

from symmetrize.nn.shared import ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralLinear", "InvariantLinear"]


class ChiralLinear(ChiralModule, nn.Linear):
    """``nn.Linear`` whose weight and bias are shared so that ``f(T_in x) = T_out f(x)``.

    Features are on the last axis, as for ``nn.Linear``. The layer is a real ``nn.Linear``:
    ``weight`` and ``bias`` read as dense tensors, materialised from the free parameters by one
    gather per forward.

    Args:
        rep_in: how the mirror acts on the input features.
        rep_out: how it acts on the output features (``Rep.trivial`` for an invariant output).
        bias: learn an additive bias (shared with ``b[perm[i]] = sign[i] * b[i]``).
    """

    def __init__(self, rep_in: Rep, rep_out: Rep, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        nn.Linear.__init__(self, rep_in.size, rep_out.size, bias=bias, device=device, dtype=dtype)
        self._share_weight_and_bias(rep_in, rep_out, bias)

    @classmethod
    def from_dense(cls, module: nn.Linear, rep_in: Rep, rep_out: Rep) -> ChiralLinear:
        """A chiral copy of ``module`` with its weights projected onto the equivariant ones."""
        if not isinstance(module, nn.Linear):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.Linear, got "
                            f"{type(module).__name__}")
        _check_widths(cls.__name__, module.in_features, module.out_features, rep_in, rep_out)
        with building_from(module):
            layer = cls(rep_in, rep_out, bias=module.bias is not None, device=module.weight.device,
                        dtype=module.weight.dtype)
            layer._copy_dense_from(module, ("weight", "bias"))
        return layer

    def to_dense(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the materialised weights (same outputs)."""
        dense = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            dense.weight.copy_(self.weight)
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense

    def extra_repr(self) -> str:
        return f"{self.rep_in} -> {self.rep_out}, bias={self.bias is not None}"


class InvariantLinear(ChiralLinear):
    """The invariance layer: a :class:`ChiralLinear` with a trivial output Rep, so
    ``f(T_in x) = f(x)``. Input features that flip sign on centre channels cannot contribute."""

    def __init__(self, rep_in: Rep, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(rep_in, Rep.trivial(out_features), bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_dense(cls, module: nn.Linear, rep_in: Rep,  # type: ignore[override]
                   rep_out: Rep | None = None) -> InvariantLinear:
        """An invariant copy of ``module`` (weights projected)."""
        rep_out = Rep.trivial(module.out_features) if rep_out is None else rep_out
        if not rep_out.is_trivial:
            raise ValueError(f"InvariantLinear needs a trivial output Rep, got {rep_out}")
        _check_widths(cls.__name__, module.in_features, module.out_features, rep_in, rep_out)
        with building_from(module):
            layer = cls(rep_in, module.out_features, bias=module.bias is not None,
                        device=module.weight.device, dtype=module.weight.dtype)
            layer._copy_dense_from(module, ("weight", "bias"))
        return layer


def _check_widths(what: str, n_in: int, n_out: int, rep_in: Rep, rep_out: Rep) -> None:
    if rep_in.size != n_in:
        raise ValueError(f"{what}: rep_in has size {rep_in.size} but the layer has {n_in} inputs")
    if rep_out.size != n_out:
        raise ValueError(f"{what}: rep_out has size {rep_out.size} but the layer has {n_out} "
                         f"outputs")
