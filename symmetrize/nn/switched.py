"""The converted model's ``forward``: the user's own, with functional activations switched at
given source lines.

A module's activation is switched by replacing the module; a function called inside ``forward``
cannot be replaced that way. The converted model's class gets a ``forward`` that runs the user's
own ``forward`` under a :class:`torch.overrides.TorchFunctionMode`: a call of a switchable
activation whose calling line (the innermost frame outside torch) is one of the recorded sites
runs tanh instead (:func:`~symmetrize.nn.fast_tanh.fast_tanh`). Every other call, and every call
from other lines, is untouched, so the user's control flow, shapes and methods keep working.

Chiral layers keep their weights as eigenbasis blocks and compute with them directly, so nothing
needs caching per forward (and ``torch.jit.trace`` of the converted model works).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from symmetrize.nn.fast_tanh import fast_tanh, fast_tanh_

__all__ = ["SWITCHABLE", "SwitchActivations", "install_switch", "uninstall_switch"]

#: activations that can be switched, as ``__torch_function__`` sees them; value: in-place
SWITCHABLE: dict[Any, bool] = {
    F.relu: False, torch.relu: False, torch.Tensor.relu: False, F.relu6: False,
    F.gelu: False, F.silu: False, F.elu: False, F.leaky_relu: False, F.mish: False,
    F.softplus: False, F.hardswish: False, F.hardsigmoid: False, F.selu: False, F.celu: False,
    torch.sigmoid: False, F.sigmoid: False, torch.Tensor.sigmoid: False,
    torch.relu_: True, F.relu_: True, torch.Tensor.relu_: True}

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_THIS_FILE = os.path.abspath(__file__)
_INTERNAL: dict[str, bool] = {}


def _is_internal(filename: str) -> bool:
    internal = _INTERNAL.get(filename)
    if internal is None:
        path = os.path.abspath(filename)
        internal = _INTERNAL[filename] = (filename.startswith("<") or path == _THIS_FILE
                                          or path.startswith(_TORCH_DIR))
    return internal


def _calling_line() -> tuple[str, int] | None:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_internal(filename):
            return os.path.abspath(filename), frame.f_lineno
        frame = frame.f_back
    return None


class SwitchActivations(TorchFunctionMode):
    """Inside this mode, switchable activations called from ``sites`` (``(file, line)``) run
    ``tanh`` (in place for the in-place variants)."""

    def __init__(self, sites: Iterable[tuple[str, int]]) -> None:
        super().__init__()
        self.sites = frozenset((os.path.abspath(f), int(line)) for f, line in sites)

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        inplace = SWITCHABLE.get(func)
        if inplace is not None and _calling_line() in self.sites:
            x = args[0] if args else kwargs["input"]
            in_place = inplace or kwargs.get("inplace", False) is True or (
                func in (F.relu, F.relu6, F.elu, F.leaky_relu, F.selu, F.celu, F.hardswish,
                         F.hardsigmoid, F.silu, F.mish) and len(args) > 1 and args[-1] is True)
            return fast_tanh_(x) if in_place else fast_tanh(x)
        return func(*args, **kwargs)


_CLASSES: dict[type, type] = {}


def install_switch(model: nn.Module, sites: Iterable[tuple[str, int]] = ()) -> None:
    """Give ``model`` (in place) the converted model's ``forward``: its own ``forward``, run under
    :class:`SwitchActivations` when ``sites`` are given.

    The model's class becomes a subclass of its own class (same name and methods) that only
    overrides ``forward``.
    """
    model._symmetrize_switched = frozenset(sites)  # type: ignore[assignment]
    cls = type(model)
    if cls.__dict__.get("_symmetrize_switching", False):
        return
    switching = _CLASSES.get(cls)
    if switching is None:
        def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
            sites = self._symmetrize_switched
            with SwitchActivations(sites) if sites else nullcontext():
                return cls.forward(self, *args, **kwargs)

        def reduce(self: nn.Module, protocol: int) -> tuple[Any, ...]:
            # pickle as the user's class, and wrap again on load
            return _restore, (cls, self.__dict__.copy())

        switching = type(cls.__name__, (cls,), {"forward": forward, "__reduce_ex__": reduce,
                                                "_symmetrize_switching": True,
                                                "__module__": cls.__module__,
                                                "__qualname__": cls.__qualname__,
                                                "__doc__": cls.__doc__})
        _CLASSES[cls] = switching
    model.__class__ = switching


def _restore(cls: type, state: dict[str, Any]) -> nn.Module:
    model = cls.__new__(cls)
    model.__dict__.update(state)
    install_switch(model, state.get("_symmetrize_switched", ()))
    return model


def uninstall_switch(model: nn.Module) -> bool:
    """Undo :func:`install_switch`'s class change (the sites stay recorded); whether it did."""
    cls = type(model)
    if not cls.__dict__.get("_symmetrize_switching", False):
        return False
    model.__class__ = cls.__bases__[0]
    return True
