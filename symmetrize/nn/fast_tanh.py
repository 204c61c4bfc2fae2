"""``tanh`` for switched activations, computed through the sigmoid on CPU.

A converted model replaces ReLU by tanh wherever channels flip sign (the paper's choice), and on
CPU ``torch.tanh`` costs several times ``torch.sigmoid`` (2 threads, float32, 256 x 1024: about
350 us against 57 us; ReLU 15 us). :func:`fast_tanh` evaluates

    tanh(x) = sign(x) * (2 * sigmoid(2 |x|) - 1)

with one allocation and in-place passes: 2.2-2.5x faster there from 64 Ki to 2 Mi elements
(1.3-1.8x with the backward). Smaller tensors pay the extra calls, larger ones (beyond the
cache) the extra passes over memory, so outside :data:`FAST_TANH_MIN_NUMEL` to
:data:`FAST_TANH_MAX_BYTES` it is ``torch.tanh``. It is exactly odd
(``fast_tanh(-x) == -fast_tanh(x)`` bit for bit, so the mirror commutes with it as with
``torch.tanh``), and within ``2 ** -22`` (float32) / ``2 ** -51`` (float64) of ``tanh`` in
absolute terms: only arguments smaller than that lose relative precision. Its backward is
``torch.tanh``'s (``grad * (1 - y^2)`` from the saved output).

Everywhere the rewrite brings no speed (CUDA and other devices, half precision, sizes outside
that range) and where a tracer must see a standard op (``torch.jit``, ``torch.compile``,
``torch.export``, ONNX export), it is ``torch.tanh`` itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symmetrize.nn.tracing import under_tracer

__all__ = ["FAST_TANH_MAX_BYTES", "FAST_TANH_MIN_NUMEL", "SwitchedTanh", "fast_tanh",
           "fast_tanh_", "uses_sigmoid"]

#: smaller tensors call ``torch.tanh``: the five calls' overhead outweighs the saving (measured
#: crossover, 2 threads: about 32 Ki elements forward, 64 Ki with the backward)
FAST_TANH_MIN_NUMEL = 1 << 16
#: larger tensors call ``torch.tanh``: five passes over memory cost more than tanh's arithmetic
#: once the tensor leaves the cache (forward 0.65x at 16 MiB, 0.78x at 32 MiB; backward 1.08x)
FAST_TANH_MAX_BYTES = 16 << 20


def uses_sigmoid(x: torch.Tensor) -> bool:
    """Whether :func:`fast_tanh` takes the sigmoid form for ``x``: a float32 / float64 CPU tensor
    of :data:`FAST_TANH_MIN_NUMEL` elements to :data:`FAST_TANH_MAX_BYTES` bytes, outside
    tracing, scripting, compiling and exporting."""
    if (x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.is_sparse
            or not FAST_TANH_MIN_NUMEL <= x.numel() <= FAST_TANH_MAX_BYTES // x.element_size()):
        return False
    return not under_tracer()


def _sigmoid_tanh(x: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """``sign(x) (2 sigmoid(2|x|) - 1)`` in a new tensor, or written over ``x``."""
    y = torch.abs(x)
    y.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)
    return torch.copysign(y, x, out=x if in_place else y)


class _SigmoidTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = _sigmoid_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y) if torch.is_grad_enabled() else \
            torch.ops.aten.tanh_backward(grad, y)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """``torch.tanh(x)``, through the sigmoid where that is faster (see the module docstring)."""
    if not uses_sigmoid(x):
        return torch.tanh(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _SigmoidTanh.apply(x)
    return _sigmoid_tanh(x)


def fast_tanh_(x: torch.Tensor) -> torch.Tensor:
    """``x.tanh_()``, through the sigmoid where that is faster; returns ``x``."""
    if not uses_sigmoid(x) or (torch.is_grad_enabled() and x.requires_grad):
        return x.tanh_()
    _sigmoid_tanh(x, in_place=True)
    return x


class SwitchedTanh(nn.Tanh):
    """``nn.Tanh`` computed with :func:`fast_tanh`: what a converted model's switched activation
    modules become (``isinstance(m, nn.Tanh)`` holds; the outputs are ``tanh``'s to rounding).

    Args:
        inplace: overwrite the input, as the ``nn.ReLU(inplace=True)`` it replaces did (no new
            activation tensor: on CPU that alone halves tanh's time for large activations).
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        return fast_tanh_(input) if self.inplace else fast_tanh(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""
