"""Chirality-equivariant convolutions (1-D temporal; 2-D in :mod:`symmetrize.nn.conv2d`) and the
convolutional invariance layers, stored and run in the mirror's eigenbasis."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn.blockops import BLOCKS, block_apply, grouped_halves
from symmetrize.nn.weighted import WeightedLayer, check_widths
from symmetrize.rep import Rep

__all__ = ["ChiralConv1d", "InvariantConv1d"]

_Size = int | tuple[int, ...]


class ChiralConv(WeightedLayer):
    """Shared by the chiral convolutions: ``_dense_cls`` is the plain class (the second base).
    Every kernel tap is an equivariant channel map, so the weight's blocks are
    ``(n+_out, n+_in, *kernel)`` and ``(n-_out, n-_in, *kernel)``."""

    _dense_cls: ClassVar[type[nn.modules.conv._ConvNd]]

    def __init__(self, rep_in: Rep, rep_out: Rep, kernel_size: _Size, stride: _Size = 1,
                 padding: _Size | str = 0, dilation: _Size = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        check_widths(type(self).__name__, rep_in.size if isinstance(rep_in, Rep) else -1,
                     rep_out.size if isinstance(rep_out, Rep) else -1, rep_in, rep_out)
        # the plain constructor validates and stores the geometry; its dense tensors are dropped
        self._dense_cls.__init__(self, rep_in.size, rep_out.size,  # type: ignore[call-arg]
                                 kernel_size, stride=stride, padding=padding, dilation=dilation,
                                 bias=bias, padding_mode=padding_mode, device="meta",
                                 dtype=dtype)
        del self._parameters["weight"]
        self._parameters.pop("bias", None)
        taps = tuple(self.kernel_size)  # type: ignore[attr-defined]
        bound = 1.0 / math.sqrt(max(rep_in.size * math.prod(taps), 1))
        self._register_weight_and_bias(rep_in, rep_out, taps, bound, bias, device, dtype)
        self._sample_blocks()

    def _channel_dim(self, x: torch.Tensor) -> int:
        return 0 if x.dim() == len(self.kernel_size) + 1 else 1  # type: ignore[attr-defined]

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        conv: Any = self
        if self.execution != BLOCKS:
            return conv._conv_forward(input, self.weight, self.bias)
        b_in, b_out = eigenbasis(self.rep_in), eigenbasis(self.rep_out)
        order = grouped_halves(b_in, b_out)
        if order is not None and not (torch.is_grad_enabled() and (
                input.requires_grad or conv.weight_plus.requires_grad)):
            return self._grouped_forward(input, order)
        return block_apply(input, self._channel_dim(input), b_in, b_out, conv._conv_forward,
                           conv.weight_plus, conv.weight_minus, conv.bias_plus)

    def _grouped_forward(self, x: torch.Tensor, order: str) -> torch.Tensor:
        """Both halves as one convolution with ``groups=2`` (equal, contiguous halves: no
        ``split`` of the input, no ``cat`` of the output). Inference only: oneDNN's grouped
        forward beats the two halves (0.55 against 0.60 of the plain convolution for 1024
        channels over 243 frames), its backward does not (0.56 against 0.53)."""
        conv: Any = self
        halves = [conv.weight_plus, conv.weight_minus]
        bias = self.plus_bias()
        if bias is not None:
            bias = [bias, bias.new_zeros(conv.weight_minus.shape[0])]
        if order == "-+":
            halves.reverse()
            bias = None if bias is None else bias[::-1]
        weight = torch.cat(halves, 0)
        joined = None if bias is None else torch.cat(bias, 0)
        kernel = F.conv1d if isinstance(self, nn.Conv1d) else F.conv2d
        padding = conv.padding
        if conv.padding_mode != "zeros":
            x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            padding = 0
        return kernel(x, weight, joined, conv.stride, padding, conv.dilation, 2)

    def forward_eigen(self, x_plus: torch.Tensor,
                      x_minus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer on eigenbasis halves (channels on axis 1): ``(W+ * x+ + b+, W- * x-)``."""
        conv: Any = self
        return (conv._conv_forward(x_plus, conv.weight_plus, self.plus_bias()),
                conv._conv_forward(x_minus, conv.weight_minus, None))

    # ----------------------------------------------------------------- conversion
    @classmethod
    def from_dense(cls, module: nn.modules.conv._ConvNd, rep_in: Rep, rep_out: Rep) -> Any:
        """A chiral copy of ``module`` with its weights projected onto the equivariant ones."""
        if not isinstance(module, cls._dense_cls):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.{cls._dense_cls.__name__},"
                            f" got {type(module).__name__}")
        if module.groups != 1:
            raise ValueError(f"{cls.__name__}.from_dense: grouped convolutions (groups="
                             f"{module.groups}) are not supported")
        check_widths(cls.__name__, module.in_channels, module.out_channels, rep_in, rep_out)
        return cls._copy_of(module, lambda: cls._from_geometry(module, rep_in, rep_out))

    @classmethod
    def _from_geometry(cls, module: nn.modules.conv._ConvNd, rep_in: Rep, rep_out: Rep) -> Any:
        return cls(rep_in, rep_out, module.kernel_size,  # type: ignore[call-arg]
                   **_geometry(module))

    def to_dense(self) -> nn.modules.conv._ConvNd:
        """A plain convolution with the dense weights (same outputs)."""
        module: Any = self
        ref = module.weight_plus
        return self._fill_dense(self._dense_cls(  # type: ignore[call-arg]
            module.in_channels, module.out_channels, module.kernel_size, **_geometry(module, ref)))

    def _check_io(self, batch: int, generator: torch.Generator, dtype: torch.dtype) -> Any:
        module: Any = self
        span = [d * (k - 1) + 1 for d, k in zip(module.dilation, module.kernel_size, strict=True)]
        shape = (batch, module.in_channels, *(s + 4 for s in span))
        x = torch.randn(shape, generator=generator, dtype=dtype)
        return (x,), (self.rep_in.apply(x, 1),), lambda y: self.rep_out.apply(y, 1)

    def extra_repr(self) -> str:
        return (f"{self.rep_in} -> {self.rep_out}, "
                + self._dense_cls.extra_repr(self)  # type: ignore[arg-type]
                + f", execution={self.execution!r}")


class InvariantConv(ChiralConv):
    """The convolutional invariance layers: a chiral convolution with a trivial output Rep."""

    def __init__(self, rep_in: Rep, out_channels: int, kernel_size: _Size, stride: _Size = 1,
                 padding: _Size | str = 0, dilation: _Size = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        ChiralConv.__init__(self, rep_in, Rep.trivial(out_channels), kernel_size, stride=stride,
                            padding=padding, dilation=dilation, bias=bias,
                            padding_mode=padding_mode, device=device, dtype=dtype)

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


def _geometry(module: Any, ref: torch.Tensor | None = None) -> dict[str, Any]:
    """Everything but the widths and kernel size that rebuilds ``module``'s layer."""
    ref = module.weight if ref is None else ref
    bias = module.bias is not None
    return dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                bias=bias, padding_mode=module.padding_mode, device=ref.device, dtype=ref.dtype)


class ChiralConv1d(ChiralConv, nn.Conv1d):
    """``nn.Conv1d`` over ``(N, C, L)`` whose every kernel tap is an equivariant channel map.

    Channels are on axis 1. The mirror acts on channels only, so it commutes with the time axis:
    stride, dilation and every padding mode of ``nn.Conv1d`` keep the layer equivariant.
    Parameters ``weight_plus`` / ``weight_minus`` / ``bias_plus`` as :class:`ChiralLinear`'s, with
    the kernel taps last; ``weight`` / ``bias`` read as the dense tensors.

    Args:
        rep_in: how the mirror acts on the input channels.
        rep_out: how the mirror acts on the output channels.

    The other arguments are those of ``nn.Conv1d``.
    """

    _dense_cls = nn.Conv1d


class InvariantConv1d(InvariantConv, ChiralConv1d):
    """The convolutional invariance layer: a :class:`ChiralConv1d` with a trivial output Rep
    (``out_channels`` wide)."""
