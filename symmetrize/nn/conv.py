"""Chirality-equivariant convolutions (1-D temporal and 2-D) and the convolutional invariance
layers, with their conversion from and to plain PyTorch layers."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from symmetrize.nn.linear import _check_widths
from symmetrize.nn.shared import ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralConv1d", "InvariantConv1d"]

_Size = int | tuple[int, ...]


class ChiralConv(ChiralModule):
    """Conversion shared by the chiral convolutions: ``_dense_cls`` is the plain class (the
    second base); the weights' every kernel tap is an equivariant channel map."""

    _dense_cls: ClassVar[type[nn.modules.conv._ConvNd]]
    rep_in: Rep
    rep_out: Rep

    def _init_conv(self, rep_in: Rep, rep_out: Rep, kernel_size: _Size, stride: _Size,
                   padding: _Size | str, dilation: _Size, bias: bool, padding_mode: str,
                   device: torch.device | str | None, dtype: torch.dtype | None) -> None:
        self._dense_cls.__init__(self, rep_in.size, rep_out.size,  # type: ignore[call-arg]
                                 kernel_size, stride=stride, padding=padding, dilation=dilation,
                                 bias=bias, padding_mode=padding_mode, device=device,
                                 dtype=dtype)
        self._share_weight_and_bias(rep_in, rep_out, bias)

    @classmethod
    def from_dense(cls, module: nn.modules.conv._ConvNd, rep_in: Rep, rep_out: Rep) -> Any:
        """A chiral copy of ``module`` with its weights projected onto the equivariant ones."""
        if not isinstance(module, cls._dense_cls):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.{cls._dense_cls.__name__},"
                            f" got {type(module).__name__}")
        if module.groups != 1:
            raise ValueError(f"{cls.__name__}.from_dense: grouped convolutions (groups="
                             f"{module.groups}) are not supported")
        _check_widths(cls.__name__, module.in_channels, module.out_channels, rep_in, rep_out)
        with building_from(module):
            layer = cls._from_geometry(module, rep_in, rep_out)
            layer._copy_dense_from(module, ("weight", "bias"))
        return layer

    @classmethod
    def _from_geometry(cls, module: nn.modules.conv._ConvNd, rep_in: Rep, rep_out: Rep) -> Any:
        return cls(rep_in, rep_out, module.kernel_size,  # type: ignore[call-arg]
                   **_geometry(module))

    def to_dense(self) -> nn.modules.conv._ConvNd:
        """A plain convolution with the materialised weights (same outputs)."""
        module: nn.modules.conv._ConvNd = self  # type: ignore[assignment]
        dense = self._dense_cls(module.in_channels, module.out_channels,  # type: ignore[call-arg]
                                module.kernel_size, **_geometry(module))
        with torch.no_grad():
            dense.weight.copy_(module.weight)
            if module.bias is not None:
                dense.bias.copy_(module.bias)
        return dense

    def extra_repr(self) -> str:
        return f"{self.rep_in} -> {self.rep_out}, " + self._dense_cls.extra_repr(self)


class InvariantConv(ChiralConv):
    """Conversion of the convolutional invariance layers (trivial output Rep)."""

    @classmethod
    def from_dense(cls, module: nn.modules.conv._ConvNd, rep_in: Rep,  # type: ignore[override]
                   rep_out: Rep | None = None) -> Any:
        """An invariant copy of ``module`` (weights projected)."""
        if rep_out is None and isinstance(module, cls._dense_cls):
            rep_out = Rep.trivial(module.out_channels)
        if rep_out is not None and not rep_out.is_trivial:
            raise ValueError(f"{cls.__name__} needs a trivial output Rep, got {rep_out}")
        return super().from_dense(module, rep_in, rep_out)  # type: ignore[arg-type]

    @classmethod
    def _from_geometry(cls, module: nn.modules.conv._ConvNd, rep_in: Rep, rep_out: Rep) -> Any:
        return cls(rep_in, module.out_channels, module.kernel_size,  # type: ignore[call-arg]
                   **_geometry(module))


def _geometry(module: nn.modules.conv._ConvNd) -> dict[str, Any]:
    """Everything but the widths and kernel size that rebuilds ``module``'s layer."""
    return dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                bias=module.bias is not None, padding_mode=module.padding_mode,
                device=module.weight.device, dtype=module.weight.dtype)


class ChiralConv1d(ChiralConv, nn.Conv1d):
    """``nn.Conv1d`` over ``(N, C, L)`` whose every kernel tap is an equivariant channel map.

    Channels are on axis 1. The mirror acts on channels only, so it commutes with the time axis:
    stride, dilation and every padding mode of ``nn.Conv1d`` keep the layer equivariant.

    Args:
        rep_in, rep_out: how the mirror acts on input and output channels.
        kernel_size, stride, padding, dilation, bias, padding_mode: as ``nn.Conv1d``.
    """

    _dense_cls = nn.Conv1d

    def __init__(self, rep_in: Rep, rep_out: Rep, kernel_size: _Size, stride: _Size = 1,
                 padding: _Size | str = 0, dilation: _Size = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        self._init_conv(rep_in, rep_out, kernel_size, stride, padding, dilation, bias,
                        padding_mode, device, dtype)


class InvariantConv1d(InvariantConv, ChiralConv1d):
    """The convolutional invariance layer: a :class:`ChiralConv1d` with a trivial output Rep."""

    def __init__(self, rep_in: Rep, out_channels: int, kernel_size: _Size, stride: _Size = 1,
                 padding: _Size | str = 0, dilation: _Size = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        ChiralConv1d.__init__(self, rep_in, Rep.trivial(out_channels), kernel_size,
                              stride=stride, padding=padding, dilation=dilation, bias=bias,
                              padding_mode=padding_mode, device=device, dtype=dtype)
