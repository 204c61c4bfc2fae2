"""The model state a check changes and puts back: parameters, buffers, train flags, dtype, random
generators, the default dtype and TF32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["cuda_devices", "default_dtype", "device_of", "dtype_of", "no_tf32", "restored",
           "to_dtype"]


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """TF32 off for CUDA matmuls and convolutions (restored on exit)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def restored(model: nn.Module) -> Iterator[None]:
    """Give back every parameter's data, buffer, train flag and the RNG states on exit."""
    parameters = [(p, p.data) for p in model.parameters()]
    buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items()
               if b is not None]
    saved = [b.clone() for _, _, b in buffers]
    modes = [(m, m.training) for m in model.modules()]
    with torch.random.fork_rng(devices=cuda_devices(model)):
        try:
            yield
        finally:
            for parameter, data in parameters:
                parameter.data = data
            for (module, name, buffer), copy in zip(buffers, saved, strict=True):
                with torch.no_grad():
                    buffer.copy_(copy)  # the values (running statistics) ...
                module._buffers[name] = buffer  # ... and the original tensor, dtype and device
            for module, mode in modes:
                module.training = mode


def cuda_devices(model: nn.Module) -> list[int]:
    return sorted({t.device.index or 0 for t in (*model.parameters(), *model.buffers())
                   if t.device.type == "cuda"})


def to_dtype(model: nn.Module, dtype: torch.dtype) -> None:
    """Floating parameters and buffers to ``dtype`` (``.to`` replaces buffer tensors and
    parameter data; :func:`restored` puts the originals back)."""
    model.to(dtype)


def device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def dtype_of(model: nn.Module) -> torch.dtype:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32
