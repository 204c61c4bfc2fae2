"""The report's rows: one per traced node, with its Reps and what the rewrite did there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from symmetrize.action import Action
from symmetrize.passes.rep_text import compact_rep
from symmetrize.passes.report import ReportRow
from symmetrize.passes.rewrite import Change
from symmetrize.rep import Rep

__all__ = ["dropout_warnings", "report_rows"]

_DROPOUT_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
                      F.feature_alpha_dropout, torch.dropout)


def report_rows(graph: fx.Graph, modules: Mapping[str, nn.Module], changes: Mapping[Any, Change],
                joints: tuple[Rep, ...]) -> list[ReportRow]:
    """One :class:`ReportRow` per node of ``graph`` (actions read from ``node.meta["action"]``), plus
    one for each change no node names."""
    rows: list[ReportRow] = []
    used: set[Any] = set()
    for node in graph.nodes:
        key = node.target if node.op in ("call_module", "get_attr") else node
        change = changes.get(key)
        repeated = key in used
        used.add(key)
        tensors = [a for a in node.all_input_nodes
                   if isinstance(a.meta.get("example_value"), torch.Tensor)]
        row = ReportRow(
            name=node.name, op=node.op, target=_target(node, modules), module=_module(node),
            source=node.meta.get("source"), inputs=tuple(a.name for a in node.all_input_nodes),
            rep_in="; ".join(dict.fromkeys(_compact(a, joints) for a in tensors)) or "-",
            rep_out=_compact(node, joints))
        if change is not None:
            row.action, row.detail = change.action, change.detail
            if not repeated and (change.params_before or change.params_after):
                row.params_before, row.params_after = change.params_before, change.params_after
                row.projection_error = change.projection_error
        rows.append(row)
    names = {row.name for row in rows}
    for key, change in changes.items():
        if key not in used:  # e.g. a shared tensor only a leaf module reads
            target = key.name if isinstance(key, fx.Node) else str(key)
            name = target
            while name in names:
                name += "_"
            names.add(name)
            rows.append(ReportRow(name=name, op="get_attr", target=target,
                                  module=target.rpartition(".")[0], action=change.action,
                                  detail=change.detail, params_before=change.params_before,
                                  params_after=change.params_after))
    return rows


def dropout_warnings(graph: fx.Graph, modules: Mapping[str, nn.Module]) -> list[str]:
    """Dropout on features the mirror moves: its masks are not tied between a joint and its
    twin, so the model is equivariant in eval mode (and in expectation) only."""
    found = []
    for node in graph.nodes:
        module = modules.get(str(node.target)) if node.op == "call_module" else None
        if module is not None and isinstance(module, nn.modules.dropout._DropoutNd):
            p, where = module.p, f"module '{node.target}'"
        elif node.op == "call_function" and node.target in _DROPOUT_FUNCTIONS:
            p = node.kwargs.get("p", node.args[1] if len(node.args) > 1 else 0.5)
            where = f"{getattr(node.target, '__name__', node.target)} at " \
                    f"{node.meta.get('source') or node.name}"
        elif node.op == "call_function" and node.target is F.scaled_dot_product_attention:
            p = _attention_dropout(node, modules)
            where = f"attention dropout in module '{node.meta.get('module') or ''}'"
        else:
            continue
        action = node.args[0].meta.get("action") if node.args and isinstance(node.args[0],
                                                                               fx.Node) else None
        if isinstance(p, (int, float)) and p > 0 and isinstance(action, Action) and \
                not action.is_trivial:
            text = (f"dropout {where} (p={p}): its masks are not tied between a joint and its "
                    "twin, so the model is equivariant in eval mode only (in train mode in "
                    "expectation); check(...) switches dropout off in train mode")
            if text not in found:
                found.append(text)
    return found


def _attention_dropout(node: fx.Node, modules: Mapping[str, nn.Module]) -> float:
    """The attention dropout of a scaled-dot-product-attention node: its ``dropout_p``, or, when
    traced in eval mode (``dropout_p=0``), the ``attn_drop`` of the module that calls it (timm)."""
    p = node.kwargs.get("dropout_p", node.args[4] if len(node.args) > 4 else 0.0)
    owner = modules.get(node.meta.get("module") or "")
    drop = getattr(owner, "attn_drop", None)
    if not p and isinstance(drop, nn.modules.dropout._DropoutNd):
        p = drop.p
    return p if isinstance(p, (int, float)) else 0.0


def _target(node: fx.Node, modules: Mapping[str, nn.Module]) -> str:
    if node.op == "call_module":
        module = modules.get(str(node.target))
        return type(module).__name__ if module is not None else str(node.target)
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return str(node.target)


def _module(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    if node.op == "get_attr":
        return str(node.target).rpartition(".")[0]
    return str(node.meta.get("module", ""))


def _compact(node: fx.Node, joints: tuple[Rep, ...]) -> str:
    return _compact_value(node.meta.get("example_value"), node.meta.get("action"), joints)


def _compact_value(value: Any, rep: Any, joints: tuple[Rep, ...]) -> str:
    if isinstance(value, torch.Tensor):
        return compact_rep(rep if isinstance(rep, Action) else None, joints)
    if isinstance(value, (tuple, list)) and isinstance(rep, (tuple, list)) \
            and len(value) == len(rep):
        parts = [_compact_value(v, r, joints) for v, r in zip(value, rep, strict=True)]
        return "(" + "; ".join(parts) + ")"
    return "-"
