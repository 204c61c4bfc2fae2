"""Checks of :func:`symmetrize.symmetrize`'s arguments, made before any work starts: one clear
error naming the argument, the value given and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from symmetrize.nn.shared import ChiralModule
from symmetrize.passes.options import ConversionOptions
from symmetrize.rules.context import ConversionError, Site
from symmetrize.spec import Spec

__all__ = ["check_paths", "check_tied", "validate_call"]


def validate_call(model: Any, spec: Any, example_inputs: Any) -> tuple[Any, ...]:
    """The example inputs as a tuple, after checking the model, the Spec and the examples."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(spec, Spec):
        raise TypeError(f"spec must be a symmetrize.Spec (or Spec.preset(name) / Spec.load(path)),"
                        f" got {type(spec).__name__}")
    chiral = next((p for p, m in model.named_modules() if isinstance(m, ChiralModule)), None)
    if chiral is not None:
        raise ConversionError(f"module '{chiral or type(model).__name__}' is already chiral. Fix: "
                              "convert the plain model (symmetrize.export.export_plain undoes a "
                              "conversion)")
    tensors = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers())]
    meta = next((n for n, t in tensors if t.is_meta), None)
    if meta is not None:
        raise ConversionError(f"the model's '{meta}' is on the meta device (no values). Fix: "
                              "materialise the model first (model.to_empty(device='cpu') and "
                              "load its weights)")
    if isinstance(example_inputs, torch.Tensor):
        inputs: tuple[Any, ...] = (example_inputs,)
    elif isinstance(example_inputs, (list, tuple)):
        inputs = tuple(example_inputs)
    else:
        raise TypeError(f"example_inputs must be a tensor or a tuple of forward arguments, got "
                        f"{type(example_inputs).__name__}")
    if not any(isinstance(x, torch.Tensor) for x in inputs):
        raise ConversionError("example_inputs holds no tensor. Fix: pass one example value per "
                              "tensor forward argument, e.g. (torch.randn(2, 243, 17, 2),)")
    devices = {t.device for _, t in tensors}
    for i, x in enumerate(inputs):
        if not isinstance(x, torch.Tensor):
            continue
        if x.is_meta:
            raise ConversionError(f"example_inputs[{i}] is on the meta device. Fix: pass a real "
                                  "tensor (any values of the right shape)")
        if x.numel() == 0:
            raise ConversionError(f"example_inputs[{i}] of shape {tuple(x.shape)} has no "
                                  "elements, so nothing would be traced or checked. Fix: give "
                                  "an example with at least one sample on every axis")
        if devices and x.device not in devices:
            raise ConversionError(f"example_inputs[{i}] is on {x.device} but the model is on "
                                  f"{', '.join(sorted(map(str, devices)))}. Fix: move them to "
                                  "one device")
        if i < spec.n_inputs:
            try:
                spec.input_axes(i, tuple(x.shape))
            except ValueError as exc:
                raise ConversionError(f"example_inputs[{i}] of shape {tuple(x.shape)} does not "
                                      f"fit the Spec: {exc}") from exc
    return inputs


def check_paths(modules: Mapping[str, nn.Module], options: ConversionOptions) -> None:
    """Every module path an option names exists (else suggest close names)."""
    for option, path in options.paths():
        if path not in modules or path == "":
            close = difflib.get_close_matches(path, [m for m in modules if m], n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConversionError(f"{option}: no module named {path!r} in the model{hint}")


def check_tied(model: nn.Module, sites: Mapping[str, Site], keep: set[str]) -> None:
    """Refuse weight tying across modules the rewrite replaces: two chiral twins would each get
    their own copy and the tie would silently break."""
    owners: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), []).append(name)
    replaced = {p for p, site in sites.items() if site.build is not None and p not in keep}
    for names in owners.values():
        if len(names) < 2:
            continue
        modules = [n.rpartition(".")[0] for n in names]
        if any(m in replaced for m in modules):
            raise ConversionError(
                f"parameter '{names[0]}' is also '{names[1]}' (weight tying between modules "
                f"'{modules[0]}' and '{modules[1]}'): converting them would untie the weights. "
                "Fix: give each module its own parameter, or keep=[...] one of them")
