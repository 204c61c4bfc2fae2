"""VideoPose3D's schedules: the learning rate decays exponentially per epoch, and BatchNorm's
momentum decays exponentially from 0.1 to 0.001 over the run."""

from __future__ import annotations

import math

from torch import nn

__all__ = ["bn_momentum", "set_bn_momentum"]


def bn_momentum(epoch: int, epochs: int, start: float = 0.1, end: float = 0.001) -> float:
    """``start * exp(-epoch / epochs * log(start / end))``: ``start`` at epoch 0, ``end`` at the
    end of the run (``start`` and ``end`` in (0, 1])."""
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0 < value <= 1:
            raise ValueError(f"bn_momentum {name}={value!r} is not allowed: a number in (0, 1]")
    return start * math.exp(-epoch / max(epochs, 1) * math.log(start / end))


def set_bn_momentum(model: nn.Module, momentum: float | None) -> None:
    """Set every BatchNorm's (chiral ones included) momentum (a number in [0, 1] or None)."""
    if momentum is not None and (isinstance(momentum, bool) or not isinstance(
            momentum, (int, float)) or not 0 <= momentum <= 1):
        raise ValueError(f"momentum={momentum!r} is not allowed: a number in [0, 1] or None")
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
