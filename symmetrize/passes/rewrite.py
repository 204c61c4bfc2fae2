"""Rewrite a copy of the model from the propagation's sites: chiral twins, switched activations,
mirror-shared learned tensors, locally symmetrised modules; one :class:`Change` for each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from symmetrize.nn.average import MirrorAverage
from symmetrize.nn.shared import ChiralModule, share_tensor
from symmetrize.nn.switched import install_switch
from symmetrize.flat_movement import factor_axes
from symmetrize.passes.propagate import ConversionError, Propagation, Site
from symmetrize.rep import Rep

__all__ = ["Change", "rewrite"]


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


def rewrite(model: nn.Module, propagation: Propagation, weights: str,
            keep: set[str]) -> dict[Any, Change]:
    """Apply the conversion to ``model`` (a deep copy of the traced one) in place.

    Returns the changes keyed by module path (modules), attribute path (shared tensors) and
    ``fx.Node`` (switched functional calls).
    """
    changes: dict[Any, Change] = {}
    for path, site in propagation.sites.items():
        change = _rewrite_site(model, path, site, propagation, weights, keep)
        if change is not None:
            changes[path] = change
    for target, shared in propagation.shared.items():
        owner_path, _, name = target.rpartition(".")
        owner = model.get_submodule(owner_path) if owner_path else model
        before = getattr(owner, name).numel()
        share_tensor(owner, name, shared.rep)
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
    install_switch(model, sites)  # also gathers shared weights once per forward
    return changes


def _rewrite_site(model: nn.Module, path: str, site: Site, propagation: Propagation,
                  weights: str, keep: set[str]) -> Change | None:
    module = model.get_submodule(path)
    before = _count(module)
    if path in keep:
        return Change("kept", "kept (keep=): not equivariant", before, before)
    if path in propagation.averaged:
        wrapper = MirrorAverage(module, _axes(site.node.args[0], site.rep_in),
                                _axes(site.node, site.rep_out))
        wrapper.train(module.training)
        _set_submodule(model, path, wrapper)
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
    _set_submodule(model, path, new)
    decision = propagation.decisions.get(path)
    invariant = decision is not None and decision.constrained_by == "invariant_at"
    action = "invariance layer" if invariant else (
        "switched" if detail.startswith("activation") else "replaced")
    return Change(action, detail, before, _count(new), error)


def projection_error(dense: nn.Module, chiral: nn.Module) -> float | None:
    """``|W - P(W)| / |W|`` over the dense module's parameters: how far the pretrained weights
    were from the equivariant ones they were projected to."""
    to_dense = getattr(chiral, "to_dense", None)
    if to_dense is None:
        return None
    with torch.no_grad():
        projected = dict(to_dense().named_parameters())
        diff = total = 0.0
        for name, weight in dense.named_parameters():
            if name in projected:
                w = weight.detach().double()
                diff += float((projected[name].detach().double().to(w.device) - w).square().sum())
                total += float(w.square().sum())
    return math.sqrt(diff / total) if total > 0 else None


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _axes(node: Any, flat: Rep | None) -> dict[int, Rep]:
    """The non-trivial per-axis Reps of a node's flat Rep (so any batch size works)."""
    if flat is None or not isinstance(node, fx.Node):
        return {}
    shape = tuple(node.meta["example_value"].shape)
    found = factor_axes(shape, flat, list(range(len(shape))))
    if found is None:
        raise ConversionError(f"node '{node.name}': the mirror does not act axis by axis on its "
                              f"shape {shape}, so it cannot be averaged")
    return {a: r for a, r in found.items() if not r.is_trivial}


def _set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)
