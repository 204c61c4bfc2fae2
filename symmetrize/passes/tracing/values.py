"""The concrete values behind proxies, and proxies inside nested arguments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import fx

from symmetrize.passes.tracing.proxy import ShadowProxy

__all__ = ["concrete", "describe", "detach", "proxies"]

def describe(value: Any) -> str:
    """Short description of a (nested) value: tensors by shape."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    return repr(value)


def detach(value: Any) -> Any:
    """``value`` with tensors detached (tuples/lists/dicts mapped, other values as they are)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if type(value) in (tuple, list):
        return type(value)(detach(v) for v in value)
    if type(value) is dict:
        return {k: detach(v) for k, v in value.items()}
    return value


def concrete(arg: Any) -> Any:
    """``arg`` with every proxy replaced by its concrete value."""
    if isinstance(arg, ShadowProxy):
        return arg.concrete
    if isinstance(arg, fx.Proxy):
        return arg.node.meta["example_value"]
    if isinstance(arg, tuple):
        values = [concrete(a) for a in arg]
        return type(arg)(*values) if hasattr(arg, "_fields") else type(arg)(values)
    if isinstance(arg, list):
        return [concrete(a) for a in arg]
    if isinstance(arg, dict):
        return {k: concrete(v) for k, v in arg.items()}
    if isinstance(arg, slice):
        return slice(concrete(arg.start), concrete(arg.stop), concrete(arg.step))
    return arg


def proxies(arg: Any) -> Iterator[fx.Proxy]:
    """Every proxy inside a (nested) argument."""
    if isinstance(arg, fx.Proxy):
        yield arg
    elif isinstance(arg, (tuple, list)):
        for a in arg:
            yield from proxies(a)
    elif isinstance(arg, dict):
        for a in arg.values():
            yield from proxies(a)
    elif isinstance(arg, slice):
        yield from proxies((arg.start, arg.stop, arg.step))
