"""Python values among the forward arguments (flags such as ``return_rep=True``) and fx's
"tracing now" flag."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.fx import _symbolic_trace as _fx_symbolic_trace

from symmetrize.passes.tracing.vocabulary import SCALARS

__all__ = ["auto_concrete", "is_fx_tracing_context", "split_flags"]

def split_flags(forward: Callable[..., Any], example: tuple[Any, ...]
                ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Split example forward arguments into the leading tensors and the Python values after
    them (flags such as ``return_rep=True``), which become concrete arguments by name."""
    lead = next((i for i, x in enumerate(example) if not isinstance(x, torch.Tensor)),
                len(example))
    if any(not isinstance(x, SCALARS) for x in example[lead:]):
        return example, {}
    try:
        names = list(inspect.signature(forward).bind_partial(*example).arguments)
    except TypeError:
        return example, {}
    return example[:lead], dict(zip(names[lead:], example[lead:], strict=True))


@contextlib.contextmanager
def is_fx_tracing_context(value: bool) -> Iterator[None]:
    """Set fx's "tracing now" flag for a block (run example values eagerly inside a trace).

    torch >= 2.12 has this as ``is_fx_tracing_context``; older releases keep a module flag."""
    own = getattr(_fx_symbolic_trace, "_is_fx_tracing_context", None)
    if own is not None:
        with own(value):
            yield
        return
    previous = _fx_symbolic_trace._is_fx_tracing_flag
    _fx_symbolic_trace._is_fx_tracing_flag = value
    try:
        yield
    finally:
        _fx_symbolic_trace._is_fx_tracing_flag = previous


def auto_concrete(forward: Callable[..., Any], bound: dict[str, Any],
                   concrete_args: dict[str, Any]) -> dict[str, Any]:
    """``concrete_args`` plus every uncovered forward parameter with a scalar default."""
    concrete = dict(concrete_args)
    for name, param in inspect.signature(forward).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in bound \
                or name in concrete or param.default is param.empty:
            continue
        if isinstance(param.default, SCALARS):
            concrete[name] = param.default
    return concrete
