"""Chirality-equivariant temporal (1-D) convolution and the convolutional invariance layer."""

from __future__ import annotations

import torch
from torch import nn

from symmetrize.nn.linear import _check_widths
from symmetrize.nn.shared import ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralConv1d", "InvariantConv1d"]


class ChiralConv1d(ChiralModule, nn.Conv1d):
    """``nn.Conv1d`` over ``(N, C, L)`` whose every kernel tap is an equivariant channel map.

    Channels are on axis 1. The mirror acts on channels only, so it commutes with the time axis:
    stride, dilation and every padding mode of ``nn.Conv1d`` keep the layer equivariant.

    Args:
        rep_in, rep_out: how the mirror acts on input and output channels.
        kernel_size, stride, padding, dilation, bias, padding_mode: as ``nn.Conv1d``.
    """

    def __init__(self, rep_in: Rep, rep_out: Rep, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, dilation: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        nn.Conv1d.__init__(self, rep_in.size, rep_out.size, kernel_size, stride=stride,
                           padding=padding, dilation=dilation, bias=bias, padding_mode=padding_mode,
                           device=device, dtype=dtype)
        self._share_weight_and_bias(rep_in, rep_out, bias)

    @classmethod
    def from_dense(cls, module: nn.Conv1d, rep_in: Rep, rep_out: Rep) -> ChiralConv1d:
        """A chiral copy of ``module`` with its weights projected onto the equivariant ones."""
        if not isinstance(module, nn.Conv1d):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.Conv1d, got "
                            f"{type(module).__name__}")
        if module.groups != 1:
            raise ValueError(f"{cls.__name__}.from_dense: grouped convolutions (groups="
                             f"{module.groups}) are not supported")
        _check_widths(cls.__name__, module.in_channels, module.out_channels, rep_in, rep_out)
        with building_from(module):
            padding = module.padding if isinstance(module.padding, str) else module.padding[0]
            layer = cls(rep_in, rep_out, module.kernel_size[0], stride=module.stride[0],
                        padding=padding,
                        dilation=module.dilation[0], bias=module.bias is not None,
                        padding_mode=module.padding_mode, device=module.weight.device,
                        dtype=module.weight.dtype)
            layer._copy_dense_from(module, ("weight", "bias"))
        return layer

    def to_dense(self) -> nn.Conv1d:
        """A plain ``nn.Conv1d`` with the materialised weights (same outputs)."""
        dense = nn.Conv1d(self.in_channels, self.out_channels, self.kernel_size[0],
                          stride=self.stride[0],
                          padding=self.padding if isinstance(self.padding, str) else self.padding[0],
                          dilation=self.dilation[0], bias=self.bias is not None,
                          padding_mode=self.padding_mode, device=self.weight.device,
                          dtype=self.weight.dtype)
        with torch.no_grad():
            dense.weight.copy_(self.weight)
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense

    def extra_repr(self) -> str:
        return f"{self.rep_in!r} -> {self.rep_out!r}, " + nn.Conv1d.extra_repr(self)


class InvariantConv1d(ChiralConv1d):
    """The convolutional invariance layer: a :class:`ChiralConv1d` with a trivial output Rep."""

    def __init__(self, rep_in: Rep, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, dilation: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(rep_in, Rep.trivial(out_channels), kernel_size, stride=stride,
                         padding=padding, dilation=dilation, bias=bias, padding_mode=padding_mode,
                         device=device, dtype=dtype)

    @classmethod
    def from_dense(cls, module: nn.Conv1d, rep_in: Rep,  # type: ignore[override]
                   rep_out: Rep | None = None) -> InvariantConv1d:
        """An invariance layer from a plain ``module`` (its weights projected)."""
        rep_out = Rep.trivial(module.out_channels) if rep_out is None else rep_out
        if not rep_out.is_trivial:
            raise ValueError(f"InvariantConv1d needs a trivial output Rep, got {rep_out!r}")
        _check_widths(cls.__name__, module.in_channels, module.out_channels, rep_in, rep_out)
        if module.groups != 1:
            raise ValueError(f"{cls.__name__}.from_dense: grouped convolutions (groups="
                             f"{module.groups}) are not supported")
        with building_from(module):
            padding = module.padding if isinstance(module.padding, str) else module.padding[0]
            layer = cls(rep_in, module.out_channels, module.kernel_size[0],
                        stride=module.stride[0], padding=padding, dilation=module.dilation[0],
                        bias=module.bias is not None, padding_mode=module.padding_mode,
                        device=module.weight.device, dtype=module.weight.dtype)
            layer._copy_dense_from(module, ("weight", "bias"))
        return layer
