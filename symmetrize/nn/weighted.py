"""What the chiral linear and convolution layers share: a block-stored weight, an optional
block-stored bias, their execution choice, and the copy to and from the plain layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn.blockops import choose_execution
from symmetrize.nn.shared import BlockSpec, ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["WeightedLayer", "check_reps", "check_widths"]


class WeightedLayer(ChiralModule):
    """A chiral layer with ``weight`` (``rep_out x rep_in``, kernel taps last) and an optional
    ``bias`` (in ``rep_out``); ``layer.bias`` is ``None`` without one, as for the plain layers."""

    rep_in: Rep
    rep_out: Rep

    def _register_weight_and_bias(self, rep_in: Rep, rep_out: Rep, taps: tuple[int, ...],
                                  bound: float, bias: bool, device: Any,
                                  dtype: torch.dtype | None) -> None:
        """Register the weight's and bias's blocks (``bound``: the plain init bound) and choose
        how the layer runs."""
        self.rep_in, self.rep_out = rep_in, rep_out
        self._register_blocks("weight", BlockSpec(rep_in, rep_out, taps, bound), device, dtype)
        if bias:
            self._register_blocks("bias", BlockSpec(None, rep_out, (), bound), device, dtype)
        else:
            module: nn.Module = self  # type: ignore[assignment]
            module.register_parameter("bias_plus", None)
        self.execution = choose_execution(rep_in, rep_out, eigenbasis)

    @property
    def has_bias(self) -> bool:
        module: nn.Module = self  # type: ignore[assignment]
        return module._parameters.get("bias_plus") is not None

    def __getattr__(self, name: str) -> Any:
        if name == "bias" and self.__dict__.get("_block_specs") is not None \
                and "bias" not in self._block_specs:
            return None
        return super().__getattr__(name)

    @classmethod
    def _copy_of(cls, module: Any, build: Any) -> Any:
        """``build()`` (a chiral layer made without random init) with ``module``'s weight and
        bias projected onto the equivariant ones."""
        with building_from(module):
            layer = build()
        layer.assign_dense("weight", module.weight)
        if module.bias is not None:
            layer.assign_dense("bias", module.bias)
        return layer

    def _fill_dense(self, dense: Any) -> Any:
        """Copy the dense weight (and bias) into the plain layer ``dense``; return it."""
        with torch.no_grad():
            dense.weight.copy_(self.weight)
            if self.has_bias:
                dense.bias.copy_(self.bias)
        return dense


def check_reps(what: str, rep_in: Any, rep_out: Any) -> None:
    if not isinstance(rep_in, Rep) or not isinstance(rep_out, Rep):
        raise TypeError(f"{what} expects Reps for rep_in and rep_out, got "
                        f"{type(rep_in).__name__} and {type(rep_out).__name__}")


def check_widths(what: str, n_in: int, n_out: int, rep_in: Rep, rep_out: Rep) -> None:
    """Raise unless the Reps' sizes are the plain layer's widths."""
    check_reps(what, rep_in, rep_out)
    if rep_in.size != n_in:
        raise ValueError(f"{what}: rep_in has size {rep_in.size} but the layer has {n_in} inputs")
    if rep_out.size != n_out:
        raise ValueError(f"{what}: rep_out has size {rep_out.size} but the layer has {n_out} "
                         f"outputs")
