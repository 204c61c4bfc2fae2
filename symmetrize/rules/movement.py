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

from symmetrize.passes.movement import NotDataMovementError, forward_rep
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
    try:
        out = ctx.remember(node, reps, lambda: forward_rep(node.target, inputs, reps,
                                                           kwargs=kwargs))
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
