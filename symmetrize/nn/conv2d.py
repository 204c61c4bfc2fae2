"""Chirality-equivariant 2-D convolution (skeleton action recognisers, ``(N, C, T, V)`` tensors)
and the 2-D convolutional invariance layer."""

from __future__ import annotations

from torch import nn

from symmetrize.nn.conv import ChiralConv, InvariantConv

__all__ = ["ChiralConv2d", "InvariantConv2d"]


class ChiralConv2d(ChiralConv, nn.Conv2d):
    """``nn.Conv2d`` over ``(N, C, H, W)`` whose every kernel tap is an equivariant channel map.

    Channels are on axis 1 and the Rep acts on channels only. The layer is equivariant whenever
    the mirror acts on channels only: stride, dilation and every padding mode of ``nn.Conv2d``
    keep it so. When the mirror also permutes an axis the kernel slides over (joints on ``V`` in
    ST-GCN's ``(N, C, T, V)``), the layer is equivariant only if the kernel, stride and dilation
    along that axis are 1 and the padding along it is 0, so each joint is mapped on its own: e.g.
    ST-GCN's temporal ``(k, 1)`` kernels.

    Args: as :class:`ChiralConv1d`'s, the geometry as for ``nn.Conv2d``.
    """

    _dense_cls = nn.Conv2d


class InvariantConv2d(InvariantConv, ChiralConv2d):
    """The 2-D convolutional invariance layer: :class:`InvariantConv1d` for ``(N, C, H, W)``."""
