"""The equivariance check of a converted model: ``max |f(T x) - T f(x)|`` in float64."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symmetrize.spec import Spec

__all__ = ["equivariance_error"]


def equivariance_error(model: nn.Module, spec: Spec, inputs: tuple[Any, ...],
                       train: bool = False) -> float:
    """Max ``|f(T x) - T f(x)|`` over the outputs, in float64, in eval mode (or train mode).

    The model is switched to float64 (and the mode) in place, then restored: every parameter and
    buffer gets its original tensor back, and every module its train flag. A deep copy of a
    large model would cost more than the two forward passes. In train mode the random state is
    the same for both passes (dropout must be 0 for the check to be meaningful), and BatchNorm
    running statistics are restored afterwards.
    """
    # ``.double()`` assigns new data to parameters but new tensors to buffers: keep both
    parameters = [(p, p.data) for p in model.parameters()]
    buffers = [(m, name, b if b.is_floating_point() else b.clone())
               for m in model.modules() for name, b in m._buffers.items() if b is not None]
    modes = [(m, m.training) for m in model.modules()]
    xs = tuple(x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x
               for x in inputs)
    mirrored = tuple(spec.mirror_input(i, x) if isinstance(x, torch.Tensor) else x
                     for i, x in enumerate(xs))
    try:
        model.double().train(train)
        with torch.no_grad():
            state = torch.random.get_rng_state()
            out = model(*xs)
            torch.random.set_rng_state(state)
            out_m = model(*mirrored)
    finally:
        for parameter, data in parameters:
            parameter.data = data
        for module, name, buffer in buffers:
            module._buffers[name] = buffer
        for module, mode in modes:
            module.training = mode
    outs = out if isinstance(out, (tuple, list)) else (out,)
    outs_m = out_m if isinstance(out_m, (tuple, list)) else (out_m,)
    error = 0.0
    for i, (y, y_m) in enumerate(zip(outs, outs_m, strict=True)):
        if isinstance(y, torch.Tensor):
            error = max(error, (spec.mirror_output(i, y) - y_m).abs().max().item())
    return error
