"""Shape-only stand-ins for the values a trace computes from the forward inputs.

Tracing runs every op once to know the shapes, dtypes and Python values user code branches on;
it never needs the values of tensors computed from the inputs. Those run as *meta* tensors (shape
and dtype, no storage), so tracing costs the same at batch 2 or 2,000 and at 9 frames or 243, and
holds no activations. Values computed from parameters and buffers only (constants: an adjacency,
``torch.zeros(x.shape[0], h)``, a learned state expanded to the batch) run for real, because the
conversion checks or shares them. An op with no meta kernel runs for real on zeros of the right
shape, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["has_stand_in", "run_on_stand_ins", "stand_in", "stand_in_attribute"]

_META = torch.device("meta")
#: tensor attributes that tell where a tensor lives: a stand-in answers for the real input
_DEVICE_ATTRS = frozenset({"device", "is_cuda", "is_meta", "is_cpu"})


def stand_in(value: Any) -> Any:
    """``value`` with every tensor replaced by a meta tensor of its shape and dtype."""
    return _map(value, lambda t: t.detach().to(_META))


def has_stand_in(value: Any) -> bool:
    """Whether a (nested) value holds a meta tensor."""
    if isinstance(value, torch.Tensor):
        return value.is_meta
    if isinstance(value, (tuple, list)):
        return any(has_stand_in(v) for v in value)
    if isinstance(value, dict):
        return any(has_stand_in(v) for v in value.values())
    if isinstance(value, slice):
        return has_stand_in((value.start, value.stop, value.step))
    return False


def stand_in_attribute(value: Any, name: str, device: torch.device) -> Any:
    """``getattr(value, name)``, where a stand-in reports the device of the real inputs."""
    if isinstance(value, torch.Tensor) and value.is_meta and name in _DEVICE_ATTRS:
        return {"device": device, "is_cuda": device.type == "cuda", "is_meta": False,
                "is_cpu": device.type == "cpu"}[name]
    return getattr(value, name)


def run_on_stand_ins(kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     root: nn.Module, device: torch.device) -> Any:
    """Run one node whose arguments hold stand-ins; the result is a stand-in too."""
    if kind == "call_method" and target in ("cpu", "cuda") and args and \
            isinstance(args[0], torch.Tensor):
        return args[0]
    if kind == "call_method" and target == "get_device":
        return device.index if device.type == "cuda" else -1
    margs, mkwargs = _to_meta(args, device), _to_meta(kwargs, device)
    try:
        with torch.no_grad():
            return _call(kind, target, margs, mkwargs, root, meta=True)
    except Exception:  # no meta kernel, or real tensors the op holds: run on zeros once
        zeros = _map((args, kwargs), lambda t: torch.zeros(t.shape, dtype=t.dtype, device=device)
                     if t.is_meta else t)
        with torch.no_grad():
            out = _call(kind, target, zeros[0], zeros[1], root, meta=False)
        return stand_in(out)


def _call(kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
          root: nn.Module, meta: bool) -> Any:
    if kind == "call_function":
        return target(*args, **kwargs)
    if kind == "call_method":
        return getattr(args[0], target)(*args[1:], **kwargs)
    module = root.get_submodule(target)
    if not meta:
        return module(*args, **kwargs)
    state = {name: t.detach().to(_META) for name, t in
             (*module.named_parameters(), *module.named_buffers())}
    return functional_call(module, state, args, kwargs, strict=False)


def _to_meta(value: Any, device: torch.device) -> Any:
    """Real tensors to meta (an op cannot mix devices); the inputs' device to ``meta``."""
    def leaf(item: Any) -> Any:
        if isinstance(item, torch.Tensor):
            return item.detach().to(_META)
        if isinstance(item, torch.device) or (isinstance(item, str) and _is_device(item, device)):
            return _META
        return item
    return _map(value, leaf, tensors_only=False)


def _is_device(text: str, device: torch.device) -> bool:
    try:
        return torch.device(text) == device or torch.device(text).type == device.type
    except (RuntimeError, TypeError):
        return False


def _map(value: Any, fn: Callable[[Any], Any], tensors_only: bool = True) -> Any:
    """``value`` with ``fn`` applied to every tensor (every leaf, unless ``tensors_only``) of
    its tuples, named tuples, lists and dicts."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_map(v, fn, tensors_only) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn, tensors_only) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn, tensors_only) for k, v in value.items()}
    return fn(value) if isinstance(value, torch.Tensor) or not tensors_only else value
