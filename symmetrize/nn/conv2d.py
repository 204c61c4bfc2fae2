"""Chirality-equivariant 2-D convolution (skeleton action recognisers, ``(N, C, T, V)`` tensors)
and the 2-D convolutional invariance layer."""

from __future__ import annotations

import torch
from torch import nn

from symmetrize.nn.conv import ChiralConv, InvariantConv
from symmetrize.rep import Rep

__all__ = ["ChiralConv2d", "InvariantConv2d"]

_Size2 = int | tuple[int, int]


class ChiralConv2d(ChiralConv, nn.Conv2d):
    """``nn.Conv2d`` over ``(N, C, H, W)`` whose every kernel tap is an equivariant channel map.

    Channels are on axis 1 and the Rep acts on channels only. The layer is equivariant whenever
    the mirror acts on channels only: stride, dilation and every padding mode of ``nn.Conv2d``
    keep it so. When the mirror also permutes an axis the kernel slides over (joints on ``V`` in
    ST-GCN's ``(N, C, T, V)``), the layer is equivariant only if the kernel, stride and dilation
    along that axis are 1 and the padding along it is 0, so each joint is mapped on its own: e.g.
    ST-GCN's temporal ``(k, 1)`` kernels.

    Args:
        rep_in: how the mirror acts on the input channels.
        rep_out: how the mirror acts on the output channels.
        kernel_size: as for ``nn.Conv2d``.
        stride: as for ``nn.Conv2d``.
        padding: as for ``nn.Conv2d``.
        dilation: as for ``nn.Conv2d``.
        bias: as for ``nn.Conv2d``.
        padding_mode: as for ``nn.Conv2d``.
    """

    _dense_cls = nn.Conv2d

    def __init__(self, rep_in: Rep, rep_out: Rep, kernel_size: _Size2, stride: _Size2 = 1,
                 padding: _Size2 | str = 0, dilation: _Size2 = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        self._init_conv(rep_in, rep_out, kernel_size, stride, padding, dilation, bias,
                        padding_mode, device, dtype)


class InvariantConv2d(InvariantConv, ChiralConv2d):
    """The 2-D convolutional invariance layer: a :class:`ChiralConv2d` with a trivial output Rep."""

    def __init__(self, rep_in: Rep, out_channels: int, kernel_size: _Size2, stride: _Size2 = 1,
                 padding: _Size2 | str = 0, dilation: _Size2 = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        ChiralConv2d.__init__(self, rep_in, Rep.trivial(out_channels), kernel_size,
                              stride=stride, padding=padding, dilation=dilation, bias=bias,
                              padding_mode=padding_mode, device=device, dtype=dtype)
