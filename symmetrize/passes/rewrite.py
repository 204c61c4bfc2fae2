"""Rewrite a copy of the model from the propagation's sites: chiral twins, switched activations,
mirror-shared learned tensors, locally symmetrised modules; one report row for each."""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from symmetrize.nn.average import MirrorAverage
from symmetrize.nn.shared import ChiralModule, share_tensor
from symmetrize.nn.switched import install_switch
from symmetrize.passes.movement import factor_axes
from symmetrize.passes.propagate import ConversionError, Propagation, Site
from symmetrize.passes.report import ConversionReport, short_rep
from symmetrize.rep import Rep

__all__ = ["rewrite"]


def rewrite(model: nn.Module, propagation: Propagation, weights: str, keep: set[str],
            report: ConversionReport) -> None:
    """Apply the conversion to ``model`` (a deep copy of the traced one) in place."""
    for path, site in propagation.sites.items():
        _rewrite_site(model, path, site, propagation, weights, keep, report)
    for target, shared in propagation.shared.items():
        owner_path, _, name = target.rpartition(".")
        owner = model.get_submodule(owner_path) if owner_path else model
        before = getattr(owner, name).numel()
        share_tensor(owner, name, shared.rep)
        after = owner.parametrizations[name].original.numel()
        report.rows.append((target, "Parameter", short_rep(shared.rep), "-",
                            f"mirror-shared ({after} free of {before}; {shared.why})"))
    sites = {}
    for node, name in propagation.switched_functions.items():
        source = node.meta.get("source")
        if source is None:
            raise ConversionError(f"node '{node.name}': the functional {name} on features that "
                                  "flip sign has no source line to switch it at. Fix: use an "
                                  "nn module (nn.ReLU()) for it")
        filename, _, line = source.rpartition(":")
        sites[(filename, int(line))] = name
        report.rows.append((source, name, short_rep(propagation.rep(node.args[0])), "-",
                            f"activation {name} -> tanh (functional call)"))
    install_switch(model, sites)  # also gathers shared weights once per forward


def _rewrite_site(model: nn.Module, path: str, site: Site, propagation: Propagation,
                  weights: str, keep: set[str], report: ConversionReport) -> None:
    module = model.get_submodule(path)
    kind = type(module).__name__
    if path in keep:
        report.rows.append((path, kind, "-", "-", "kept (keep=)"))
        return
    if path in propagation.averaged:
        wrapper = MirrorAverage(module, _axes(site.node.args[0], site.rep_in),
                                _axes(site.node, site.rep_out))
        wrapper.train(module.training)
        _set_submodule(model, path, wrapper)
        report.rows.append((path, kind, short_rep(site.rep_in), short_rep(site.rep_out),
                            "averaged with its mirror (local symmetrisation, 2x its cost)"))
        return
    if path in propagation.assumed:
        report.rows.append((path, kind, "-", "-", "assumed equivariant"))
        return
    if site.build is None:
        return
    if site.rep_in is not None and site.rep_in.is_trivial and site.rep_out is not None \
            and site.rep_out.is_trivial:
        report.rows.append((path, kind, short_rep(site.rep_in), short_rep(site.rep_out),
                            "kept (sees only invariant features)"))
        return
    new, action = site.build(module, site)
    if weights == "reinit" and isinstance(new, ChiralModule):
        new.reset_parameters()
        action += " (re-initialised)"
    new.train(module.training)
    _set_submodule(model, path, new)
    report.rows.append((path, kind, short_rep(site.rep_in), short_rep(site.rep_out), action))


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
