"""Rewrite the model from the propagation's sites: chiral twins, switched activations,
mirror-shared learned tensors, locally symmetrised modules; one :class:`Change` for each.

Every change is logged in an :class:`Undo`, so that a conversion that fails part way (in the
rewrite or in the check after it) can put an in-place model back exactly as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.nn.utils import parametrize

from symmetrize.action import Action
from symmetrize.nn.average import MirrorAverage
from symmetrize.nn.shared import ChiralModule, norm2, share_tensor
from symmetrize.nn.switched import install_switch, uninstall_switch
from symmetrize.rep import Rep
from symmetrize.rules.context import Context, ConversionError, Site

__all__ = ["Change", "Undo", "rewrite"]


@dataclass
class Change:
    """What the rewrite did to one module, learned tensor or functional call.

    ``action`` is the category (``replaced``, ``switched``, ``shared``, ``kept``, ``assumed``,
    ``averaged``, ``invariance layer``), ``detail`` the specifics.
    """

    action: str
    detail: str
    params_before: int | None = None
    params_after: int | None = None
    projection_error: float | None = None


class Undo:
    """The inverse of every change the rewrite made, applied in reverse by :meth:`rollback`."""

    def __init__(self) -> None:
        self._steps: list[Any] = []

    def add(self, step: Any) -> None:
        self._steps.append(step)

    def rollback(self) -> None:
        for step in reversed(self._steps):
            step()
        self._steps.clear()


def rewrite(model: nn.Module, propagation: Context, weights: str, keep: set[str],
            undo: Undo | None = None) -> dict[Any, Change]:
    """Apply the conversion to ``model`` in place (logging each change in ``undo``).

    Returns the changes keyed by module path (modules), attribute path (shared tensors) and
    ``fx.Node`` (switched functional calls).
    """
    undo = Undo() if undo is None else undo
    changes: dict[Any, Change] = {}
    for path, site in propagation.sites.items():
        change = _rewrite_site(model, path, site, propagation, weights, keep, undo)
        if change is not None:
            changes[path] = change
    for target, shared in propagation.shared.items():
        owner_path, _, name = target.rpartition(".")
        owner = model.get_submodule(owner_path) if owner_path else model
        before = getattr(owner, name).numel()
        undo.add(_unshare(owner, name))
        share_tensor(owner, name, shared.action.flat())
        after = owner.parametrizations[name].original.numel()
        changes[target] = Change("shared", f"mirror-shared ({after} free of {before}; "
                                           f"{shared.why})", before, after)
    sites = {}
    for node, name in propagation.switched_functions.items():
        source = node.meta.get("source")
        if source is None:
            raise ConversionError(f"node '{node.name}': the functional {name} on features that "
                                  "flip sign has no source line to switch it at. Fix: use an "
                                  "nn module (nn.ReLU()) for it")
        filename, _, line = source.rpartition(":")
        sites[(filename, int(line))] = name
        changes[node] = Change("switched", f"activation {name} -> tanh (functional call)")
    had = getattr(model, "_symmetrize_switched", None)
    cls = type(model)
    install_switch(model, sites)  # also gathers shared weights once per forward
    undo.add(lambda: _restore_class(model, cls, had))
    return changes


def _unshare(owner: nn.Module, name: str) -> Any:
    """The undo of :func:`share_tensor` on ``owner.<name>``: the original parameter object
    (and value) back. Call it before sharing."""
    original = owner._parameters[name]
    data = original.detach().clone()  # registering a parametrization resizes it in place

    def step() -> None:
        if parametrize.is_parametrized(owner, name):
            parametrize.remove_parametrizations(owner, name, leave_parametrized=True)
        delattr(owner, name)
        with torch.no_grad():
            original.set_(data)
        owner.register_parameter(name, original)
    return step


def _restore_class(model: nn.Module, cls: type, switched: Any) -> None:
    uninstall_switch(model)
    model.__class__ = cls
    if switched is None:
        model.__dict__.pop("_symmetrize_switched", None)
    else:
        model._symmetrize_switched = switched


def _rewrite_site(model: nn.Module, path: str, site: Site, propagation: Context,
                  weights: str, keep: set[str], undo: Undo) -> Change | None:
    module = model.get_submodule(path)
    before = _count(module)
    if path in keep:
        return Change("kept", "kept (keep=): not equivariant", before, before)
    if path in propagation.averaged:
        wrapper = MirrorAverage(module, _axes(site.node, site.extra["in_action"]),
                                _axes(site.node, site.extra["out_action"]))
        wrapper.train(module.training)
        _set_submodule(model, path, wrapper, undo)
        return Change("averaged", "averaged with its mirror (local symmetrisation, 2x its cost)",
                      before, before)
    if path in propagation.assumed:
        return Change("assumed", "assumed equivariant (assume_equivariant=)", before, before)
    if site.build is None:
        return None
    if site.rep_in is not None and site.rep_in.is_trivial and site.rep_out is not None \
            and site.rep_out.is_trivial:
        return Change("kept", "kept (sees only invariant features)", before, before)
    new, detail = site.build(module, site)
    error = None
    if weights == "reinit" and isinstance(new, ChiralModule):
        new.reset_parameters()
        detail += " (re-initialised)"
    elif isinstance(new, ChiralModule):
        error = projection_error(module, new)
    new.train(module.training)
    _set_submodule(model, path, new, undo)
    decision = propagation.decisions.get(path)
    invariant = decision is not None and decision.constrained_by == "invariant_at"
    action = "invariance layer" if invariant else ("switched" if site.switch else "replaced")
    execution = getattr(new, "execution", "blocks")
    if execution != "blocks":
        detail += f", computed {execution}"
    return Change(action, detail, before, _count(new), error)


def projection_error(dense: nn.Module, chiral: ChiralModule) -> float | None:
    """``|W - P(W)| / |W|`` over the tensors the chiral layer stores as blocks: how far the
    pretrained weights were from the equivariant ones they were projected to. The projection is
    orthogonal, so ``|W - P(W)|^2 = |W|^2 - |P(W)|^2``, read off the blocks."""
    total = projected = 0.0
    with torch.no_grad():
        for name in getattr(chiral, "_block_specs", {}):
            weight = getattr(dense, name, None)
            if isinstance(weight, torch.Tensor):
                total += norm2(weight)
                projected += chiral.projected_norm2(name)
    return math.sqrt(max(total - projected, 0.0) / total) if total > 0 else None


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _axes(node: fx.Node, action: Action) -> dict[int, Rep]:
    """The non-trivial per-axis Reps of an action (so any batch size works)."""
    found = action.axes()
    if found is None:
        raise ConversionError(f"node '{node.name}': the mirror does not act axis by axis on its "
                              f"shape {action.shape}, so it cannot be averaged")
    return {a: r for a, r in found.items() if not r.is_trivial}


def _set_submodule(model: nn.Module, path: str, new: nn.Module, undo: Undo) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, name)
    setattr(parent, name, new)
    undo.add(lambda: setattr(parent, name, old))
