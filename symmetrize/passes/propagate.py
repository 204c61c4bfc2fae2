"""Propagate the mirror's action through a traced model, node by node (one pass).

Inputs get their :class:`~symmetrize.action.Action` from the Spec; every other node gets it from
the rule registered for its module type or function (:mod:`symmetrize.rules`), or from the
fallback rule (data movement). Outputs are checked against the Spec. The result lives in the
:class:`~symmetrize.rules.context.Context` (and in ``node.meta["action"]`` for the report);
:mod:`symmetrize.passes.decide` repeats passes until the hidden-Rep decisions settle.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn
from torch.utils._pytree import tree_flatten

from symmetrize.action import Action
from symmetrize.rules import fallback_rule, find_function_rule, find_module_rule
from symmetrize.rules.context import Context, ConversionError, Provenance

__all__ = ["run_pass"]


def run_pass(ctx: Context) -> None:
    """Visit every node of ``ctx.gm`` in order, filling ``ctx``.

    A node whose rule fails gets no action and the pass goes on, so that one pass finds every
    decision it can constrain; the first error is raised at the end unless the pass changed a
    decision (then it may be gone in the next pass, and :func:`~symmetrize.passes.decide.decide`
    runs one).
    """
    n_input = 0
    first_error: ConversionError | None = None
    for node in ctx.gm.graph.nodes:
        try:
            if node.op == "placeholder":
                ctx.env[node] = _placeholder(ctx, node, n_input)
                n_input += 1
            else:
                ctx.env[node] = _visit_again_after_flips(ctx, node)
        except ConversionError as error:
            if first_error is None:
                first_error = error
            ctx.env[node] = None
        node.meta["action"] = ctx.env[node]
    if first_error is not None and not ctx.dirty:
        raise first_error


def _visit_again_after_flips(ctx: Context, node: fx.Node) -> Any:
    """Visit ``node``; when that made an automatic layout regular, refresh the inputs that carry
    it and visit once more, so the rest of the pass sees the new layout (not a placeholder)."""
    flips = len(ctx.flipped)
    value = _visit(ctx, node)
    if len(ctx.flipped) == flips:
        return value
    changed = set(ctx.flipped[flips:])
    refreshed = False
    for arg in node.all_input_nodes:
        prov = ctx.prov.get(arg)
        if prov is not None and prov.path in changed:
            fresh = ctx.refreshed(arg)
            if fresh is not None:
                ctx.env[arg] = fresh
                refreshed = True
    return _visit(ctx, node) if refreshed else value


def _placeholder(ctx: Context, node: fx.Node, index: int) -> Action | None:
    value = node.meta.get("example_value")
    if not isinstance(value, torch.Tensor):
        return None
    if index >= ctx.spec.n_inputs:
        raise ctx.fail(node, f"forward argument {index} is a tensor but the Spec annotates "
                             f"{ctx.spec.n_inputs} inputs", "add a layout for it to Spec(input=...)")
    shape = tuple(value.shape)
    return Action.from_axes(shape, ctx.spec.input_axes(index, shape))


def _visit(ctx: Context, node: fx.Node) -> Any:
    value = node.meta.get("example_value")
    if node.op == "get_attr":
        return None
    if node.op == "output":
        _output(ctx, node)
        return None
    if node.op == "call_module":
        path = str(node.target)
        module = ctx.modules[path]
        if path in ctx.assumed or path in ctx.averaged:
            return _opaque(ctx, node, module, path)
        rule = find_module_rule(module)
        if rule is None:
            raise ctx.fail(node, f"no rule for module '{path}' of type {type(module).__name__}",
                           f"wrap it with average=['{path}'] (local symmetrisation), trust it "
                           f"with assume_equivariant=['{path}'], or register a rule with "
                           "symmetrize.rules.register_module_rule")
        return rule(ctx, node, module, path)
    if node.op == "call_method" and node.target in ("size", "dim", "numel"):
        return None
    if not _has_tensor(value):
        return None
    rule = find_function_rule(node.target) or fallback_rule()
    return rule(ctx, node)


def _output(ctx: Context, node: fx.Node) -> None:
    """Every tensor leaf of the output structure (tuple, list, dict, nested) in order must carry
    the action its Spec layout gives; a "free" layout accepts any."""
    leaves, _ = tree_flatten(node.args[0])
    tensors = [leaf for leaf in leaves if isinstance(leaf, fx.Node) and
               isinstance(leaf.meta.get("example_value"), torch.Tensor)]
    for index, out in enumerate(tensors):
        if index >= ctx.spec.n_outputs:
            raise ctx.fail(node, f"output {index} is a tensor but the Spec annotates "
                                 f"{ctx.spec.n_outputs} outputs",
                           "add a layout for it to Spec(output=...)")
        if ctx.spec.is_free_output(index):
            continue
        shape = ctx.shape(out)
        wanted = Action.from_axes(shape, ctx.spec.output_axes(index, shape))
        have = ctx.action(out)
        if have is None:
            have = Action.trivial(shape)
            if wanted.is_trivial:
                continue
            if not ctx.is_constant(out):
                raise ctx.fail(out, f"output {index} carries no mirror action but the Spec says "
                                    f"it transforms ({wanted})",
                               "check Spec(output=...) for this output")
        ctx.require(out, wanted, f"the Spec of output {index}")


def _opaque(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Action:
    """A module trusted (``assume_equivariant``) or wrapped (``average``): one tensor in, one
    tensor out; the output action is the input's when the shapes agree, else decided on the
    last axis like a Linear's."""
    what = "assume_equivariant" if path in ctx.assumed else "average"
    x = node.args[0] if node.args else None
    out = node.meta["example_value"]
    if not isinstance(x, fx.Node) or not isinstance(out, torch.Tensor) or \
            not isinstance(ctx.action(x), Action) or len(node.args) + len(node.kwargs) != 1:
        raise ctx.fail(node, f"{what} module '{path}' must take one tensor with a known mirror "
                             "action and return one tensor",
                       "apply it to a module with a single tensor input and output")
    action = ctx.action(x)
    in_shape = ctx.shape(x)
    site = ctx.site(path, module, node)
    out_shape = tuple(out.shape)
    if out_shape == in_shape:
        result = action
        ctx.inherit(node, x)
    elif what == "average":
        last = len(in_shape) - 1
        factors = ctx.axes(node, x, last, f"'{path}'")
        others = {a: r for a, r in factors.items() if a != last}
        if len(out_shape) != len(in_shape) or out_shape[:-1] != in_shape[:-1]:
            raise ctx.fail(node, f"average module '{path}' changes the shape {in_shape} -> "
                                 f"{out_shape} beyond its last axis",
                           "average a module whose output differs from its input only in the "
                           "last (feature) axis")
        channel = ctx.decide(path, int(out_shape[-1]), factors[last],
                             joints_elsewhere=any(r.n_pairs for r in others.values()))
        result = Action.from_axes(out_shape, {**others, last: channel})
        site.extra.update(axis=last, others=others, shape=out_shape)
        ctx.prov[node] = Provenance(path)
    else:
        raise ctx.fail(node, f"assume_equivariant module '{path}' maps shape {in_shape} to "
                             f"{out_shape}",
                       f"assume a module whose output has its input's layout, or use "
                       f"average=['{path}']")
    site.rep_in, site.rep_out = action.axis(-1, with_sign=True), result.axis(-1, with_sign=True)
    site.extra.update(in_action=action, out_action=result)
    return result


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(v) for v in value)
    return False
