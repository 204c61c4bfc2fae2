"""VideoPose3D's schedules: the learning rate decays exponentially per epoch, and BatchNorm's
momentum decays exponentially from 0.1 to 0.001 over the run."""

from __future__ import annotations

import math

from torch import nn

__all__ = ["bn_momentum", "set_bn_momentum"]


def bn_momentum(epoch: int, epochs: int, start: float = 0.1, end: float = 0.001) -> float:
    """``start * exp(-epoch / epochs * log(start / end))``: ``start`` at epoch 0, ``end`` at the
    end of the run."""
    return start * math.exp(-epoch / max(epochs, 1) * math.log(start / end))


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """Set every BatchNorm's (chiral ones included) momentum."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
