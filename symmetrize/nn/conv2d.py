"""Chirality-equivariant 2-D convolution (skeleton action recognisers, ``(N, C, T, V)`` tensors)
and the 2-D convolutional invariance layer."""

from __future__ import annotations

import torch
from torch import nn

from symmetrize.nn.linear import _check_widths
from symmetrize.nn.shared import ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralConv2d", "InvariantConv2d"]

_Size2 = int | tuple[int, int]


class ChiralConv2d(ChiralModule, nn.Conv2d):
    """``nn.Conv2d`` over ``(N, C, H, W)`` whose every kernel tap is an equivariant channel map.

    Channels are on axis 1 and the Rep acts on channels only. The layer is equivariant whenever
    the mirror acts on channels only: stride, dilation and every padding mode of ``nn.Conv2d``
    keep it so. When the mirror also permutes an axis the kernel slides over (joints on ``V`` in
    ST-GCN's ``(N, C, T, V)``), the layer is equivariant only if the kernel, stride and dilation
    along that axis are 1 and the padding along it is 0, so each joint is mapped on its own: e.g.
    ST-GCN's temporal ``(k, 1)`` kernels.

    Args:
        rep_in, rep_out: how the mirror acts on input and output channels.
        kernel_size, stride, padding, dilation, bias, padding_mode: as ``nn.Conv2d``.
    """

    def __init__(self, rep_in: Rep, rep_out: Rep, kernel_size: _Size2, stride: _Size2 = 1,
                 padding: _Size2 | str = 0, dilation: _Size2 = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        nn.Conv2d.__init__(self, rep_in.size, rep_out.size, kernel_size, stride=stride,
                           padding=padding, dilation=dilation, bias=bias, padding_mode=padding_mode,
                           device=device, dtype=dtype)
        self._share_weight_and_bias(rep_in, rep_out, bias)

    @classmethod
    def from_dense(cls, module: nn.Conv2d, rep_in: Rep, rep_out: Rep) -> ChiralConv2d:
        """A chiral copy of ``module`` with its weights projected onto the equivariant ones."""
        _check_dense(cls.__name__, module, rep_in, rep_out)
        with building_from(module):
            layer = cls(rep_in, rep_out, module.kernel_size, stride=module.stride,
                        padding=module.padding, dilation=module.dilation,
                        bias=module.bias is not None, padding_mode=module.padding_mode,
                        device=module.weight.device, dtype=module.weight.dtype)
            layer._copy_dense_from(module, ("weight", "bias"))
        return layer

    def to_dense(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the materialised weights (same outputs)."""
        dense = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                          stride=self.stride, padding=self.padding, dilation=self.dilation,
                          bias=self.bias is not None, padding_mode=self.padding_mode,
                          device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            dense.weight.copy_(self.weight)
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense

    def extra_repr(self) -> str:
        return f"{self.rep_in!r} -> {self.rep_out!r}, " + nn.Conv2d.extra_repr(self)


class InvariantConv2d(ChiralConv2d):
    """The 2-D convolutional invariance layer: a :class:`ChiralConv2d` with a trivial output Rep."""

    def __init__(self, rep_in: Rep, out_channels: int, kernel_size: _Size2, stride: _Size2 = 1,
                 padding: _Size2 | str = 0, dilation: _Size2 = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(rep_in, Rep.trivial(out_channels), kernel_size, stride=stride,
                         padding=padding, dilation=dilation, bias=bias, padding_mode=padding_mode,
                         device=device, dtype=dtype)

    @classmethod
    def from_dense(cls, module: nn.Conv2d, rep_in: Rep,  # type: ignore[override]
                   rep_out: Rep | None = None) -> InvariantConv2d:
        """An invariant copy of ``module`` (weights projected)."""
        if isinstance(module, nn.Conv2d) and rep_out is None:
            rep_out = Rep.trivial(module.out_channels)
        if rep_out is not None and not rep_out.is_trivial:
            raise ValueError(f"{cls.__name__} needs a trivial output Rep, got {rep_out!r}")
        _check_dense(cls.__name__, module, rep_in, rep_out)  # type: ignore[arg-type]
        with building_from(module):
            layer = cls(rep_in, module.out_channels, module.kernel_size, stride=module.stride,
                        padding=module.padding, dilation=module.dilation,
                        bias=module.bias is not None, padding_mode=module.padding_mode,
                        device=module.weight.device, dtype=module.weight.dtype)
            layer._copy_dense_from(module, ("weight", "bias"))
        return layer


def _check_dense(what: str, module: nn.Module, rep_in: Rep, rep_out: Rep) -> None:
    if not isinstance(module, nn.Conv2d):
        raise TypeError(f"{what}.from_dense expects an nn.Conv2d, got {type(module).__name__}")
    if module.groups != 1:
        raise ValueError(f"{what}.from_dense: grouped convolutions (groups={module.groups}) are "
                         f"not supported")
    _check_widths(what, module.in_channels, module.out_channels, rep_in, rep_out)
