"""The fallback rule: data movement (view, permute, slicing, cat, pad, ...) by the index trick.

Any function or method without a rule of its own is run on index-encoded inputs
(:func:`symmetrize.passes.movement.forward_rep`); an op that computes new values is reported as
having no rule. Items of a tuple-valued node (an LSTM's ``(output, (h, c))``) are read directly.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import fx

from symmetrize.passes.movement import RESHAPES, NotDataMovementError, forward_rep
from symmetrize.rep import Rep
from symmetrize.rules import register_function_rule

if TYPE_CHECKING:
    from symmetrize.passes.propagate import Propagation


@register_function_rule(operator.getitem)
def getitem(ctx: Propagation, node: fx.Node) -> Any:
    """An item of a tuple-valued node, or indexing/slicing of a tensor (data movement)."""
    source, index = node.args[0], node.args[1]
    if isinstance(ctx.rep(source), tuple):
        flat = ctx.rep(source)[index]
        prov = ctx.prov.get(source)
        if prov is not None and not isinstance(flat, tuple):
            path, _, halve = prov
            ctx.prov[node] = (path, [], halve if index == 0 else False)
        return flat
    return movement_rule(ctx, node)


def movement_rule(ctx: Propagation, node: fx.Node) -> Any:
    args = node.args
    inputs = [ctx.value(a) for a in args]
    reps = [_arg_rep(ctx, a) for a in args]
    if not any(_is_rep_like(r) for r in reps):
        return None
    kwargs = ctx.value(dict(node.kwargs))
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__",
                                                                    repr(node.target))
    # the same op on the same shapes and Reps (a repeated block) is computed once
    key = ("movement", node.target, _signature(inputs), _signature(kwargs), _hashable(reps))
    try:
        out = reps[0] if _is_reshape(node, reps) else ctx.remember(
            key, reps, lambda: forward_rep(node.target, inputs, reps, kwargs=kwargs))
    except NotDataMovementError:
        raise ctx.fail(node, f"no rule for {name}",
                       "use ops symmetrize knows, wrap the module calling it with "
                       "average=[...], or register a rule with "
                       "symmetrize.rules.register_function_rule") from None
    except ValueError as error:
        raise ctx.fail(node, str(error), "keep both joints of every mirror pair") from None
    tensor_args = [a for a in args if isinstance(a, fx.Node) and ctx.rep(a) is not None]
    if len(tensor_args) == 1 and isinstance(out, Rep) and tensor_args[0] in ctx.prov:
        path, chain, halve = ctx.prov[tensor_args[0]]
        ctx.prov[node] = (path, [*chain, node], halve)
    return tuple(out) if isinstance(out, list) else out


def _is_reshape(node: fx.Node, reps: list[Any]) -> bool:
    """A shape-only op on one tensor (its other arguments are sizes, not tensors)."""
    try:
        reshape = node.target in RESHAPES
    except TypeError:  # an unhashable target
        return False
    return reshape and isinstance(reps[0], Rep) and not any(_is_rep_like(r) for r in reps[1:])


def _signature(value: Any) -> Any:
    """A hashable description of op arguments: tensors by shape and dtype (index tensors by
    value too), everything else by ``repr``."""
    if isinstance(value, torch.Tensor):
        values = tuple(value.reshape(-1).tolist()) if not value.is_floating_point() and \
            value.numel() <= 4096 else None
        return ("tensor", tuple(value.shape), str(value.dtype), values)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_signature(v) for v in value))
    if isinstance(value, dict):
        return tuple(sorted((k, _signature(v)) for k, v in value.items()))
    return repr(value)


def _hashable(reps: Any) -> Any:
    if isinstance(reps, list):
        return tuple(_hashable(r) for r in reps)
    return reps


def _arg_rep(ctx: Propagation, arg: Any) -> Any:
    if isinstance(arg, fx.Node):
        rep = ctx.rep(arg)
        value = arg.meta.get("example_value")
        if rep is None and isinstance(value, torch.Tensor) and value.is_floating_point():
            return Rep.trivial(value.numel())
        return rep
    if isinstance(arg, (list, tuple)):
        return [_arg_rep(ctx, a) for a in arg]
    return None


def _is_rep_like(rep: Any) -> bool:
    if isinstance(rep, Rep):
        return True
    return isinstance(rep, list) and any(_is_rep_like(r) for r in rep)
