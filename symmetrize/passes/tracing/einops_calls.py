"""einops functions recorded as single graph nodes while tracing (einops rejects fx proxies)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

from symmetrize.passes.tracing.values import proxies

__all__ = ["einops_recorded"]

_EINOPS_FUNCTIONS = ("rearrange", "repeat", "reduce", "einsum", "pack", "unpack")


def _einops_functions() -> dict[int, Callable[..., Any]]:
    """``id -> function`` of einops' tensor functions, empty when einops is not installed."""
    try:
        import einops
    except ImportError:
        return {}
    found = (getattr(einops, name, None) for name in _EINOPS_FUNCTIONS)
    return {id(f): f for f in found if callable(f)}


def _recorded(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, recorded as one graph node when called on a proxy during tracing."""
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        proxy = next((p for a in (*args, *kwargs.values()) for p in proxies(a)), None)
        if proxy is None:
            return function(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", function, args, kwargs)
    return call


@contextlib.contextmanager
def einops_recorded(model: nn.Module) -> Iterator[None]:
    """Make einops' ``rearrange`` / ``repeat`` / ... traceable while tracing ``model``.

    einops dispatches on the tensor type and rejects fx proxies. Every reference to one of its
    functions in the globals of the model's forward code (``from einops import rearrange``) and
    in the ``einops`` module itself (``einops.rearrange(...)``) is swapped for a wrapper that
    records a single node whose target is the original function; the graph then calls einops
    on real tensors.
    """
    functions = _einops_functions()
    if not functions:
        yield
        return
    import einops
    namespaces = [vars(einops)]
    for module in model.modules():
        code = getattr(type(module).forward, "__globals__", None)
        if code is not None and all(code is not n for n in namespaces):
            namespaces.append(code)
    saved: list[tuple[dict[str, Any], str, Any]] = []
    try:
        for namespace in namespaces:
            for name, value in list(namespace.items()):
                if id(value) in functions and value is functions[id(value)]:
                    saved.append((namespace, name, value))
                    namespace[name] = _recorded(value)
        yield
    finally:
        for namespace, name, value in reversed(saved):
            namespace[name] = value
