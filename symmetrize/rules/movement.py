"""The fallback rule: data movement (view, permute, slicing, cat, pad, einops, ...).

Known movement ops are followed symbolically on the acting axes
(:mod:`symmetrize.movement_ops`); any other call is run on index-encoded inputs (the flat index
trick of :mod:`symmetrize.flat_movement`, whose cost is the number of elements), and an op that
computes new values is reported as having no rule. Items of a tuple-valued node (an LSTM's
``(output, (h, c))``) are read directly.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

from symmetrize.action import Action
from symmetrize.flat_movement import (
    NotDataMovementError,
    NotEquivariantError,
    forward_rep,
)
from symmetrize.movement_ops import UnknownMovement, einops_kind, move
from symmetrize.rules.constants import constant_action
from symmetrize.rules.context import Context, Provenance, Step
from symmetrize.rules.reduction import einops_reduce
from symmetrize.rules.registry import register_fallback_rule, register_function_rule


@register_function_rule(operator.getitem)
def getitem(ctx: Context, node: fx.Node) -> Any:
    """An item of a tuple-valued node, or indexing/slicing of a tensor (data movement)."""
    source, index = node.args[0], node.args[1]
    found = ctx.action(source)
    if isinstance(found, tuple):
        item = found[index]
        prov = ctx.prov.get(source)
        if prov is not None and not isinstance(item, tuple):
            ctx.prov[node] = Provenance(prov.path, (), prov.halve if index == 0 else False)
        return item
    return movement_rule(ctx, node)


@register_fallback_rule
def movement_rule(ctx: Context, node: fx.Node) -> Any:
    if einops_kind(node.target) == "reduce":
        return einops_reduce(ctx, node)
    args = node.args
    actions = [_arg_action(ctx, a) for a in args]
    if not any(_has_action(a) for a in actions):
        return None  # moves constants only: a constant, shared or checked where it is used
    reference = _first_action(actions)
    actions = [_constants(ctx, node, a, r, reference) for a, r in zip(args, actions)]
    values = ctx.value(tuple(args))
    kwargs = ctx.value(dict(node.kwargs))
    out_value = node.meta.get("example_value")
    out_shapes = ([tuple(v.shape) for v in out_value] if isinstance(out_value, (tuple, list))
                  else [tuple(out_value.shape)])
    try:
        out = _move(ctx, node, values, kwargs, actions, out_shapes)
    except NotEquivariantError as error:
        x = args[0] if args else None
        if ctx.forbid_signs(x, f"the {_name(node)} in {ctx.where(node)}",
                            "splits mirror twins that regular pairs keep together"):
            trivial = [Action.trivial(s) for s in out_shapes]
            return tuple(trivial) if isinstance(out_value, (tuple, list)) else trivial[0]
        out = _invariant_channels(ctx, node, values, kwargs, actions, out_shapes)
        if out is None:
            raise ctx.fail(node, str(error), "keep both joints of every mirror pair") from None
    tensors = [a for a in args if isinstance(a, fx.Node) and ctx.action(a) is not None]
    if len(tensors) == 1 and isinstance(out, Action) and tensors[0] is args[0]:
        ctx.moved(node, tensors[0], Step(node.target, values, kwargs, ctx.shape(tensors[0]),
                                         out_shapes[0]))
    return tuple(out) if isinstance(out, list) else out


def _move(ctx: Context, node: fx.Node, values: tuple[Any, ...], kwargs: dict[str, Any],
          actions: list[Any], out_shapes: list[tuple[int, ...]]) -> Any:
    """The symbolic movement, else the flat index trick (remembered across passes)."""
    try:
        return move(node.target, values, kwargs, actions, out_shapes)
    except UnknownMovement:
        pass
    key = ("flat movement", node)

    def compute() -> Any:
        flat = [_flat(a) for a in actions]
        try:
            out = forward_rep(node.target, _real(values), flat, kwargs=_real(kwargs))
        except NotDataMovementError:
            raise ctx.fail(node, f"no rule for {_name(node)}",
                           "use ops symmetrize knows, wrap the module calling it with "
                           "average=[...], or register a rule with "
                           "symmetrize.rules.register_function_rule") from None
        except NotEquivariantError:
            raise
        except ValueError as error:
            raise ctx.fail(node, f"{_name(node)}: {error}", "keep both joints of every mirror "
                                                            "pair") from None
        if isinstance(out, list):
            return [Action.from_flat(s, r) for s, r in zip(out_shapes, out)]
        return Action.from_flat(out_shapes[0], out)

    return ctx.remember(key, actions, compute)


def _invariant_channels(ctx: Context, node: fx.Node, values: tuple[Any, ...],
                        kwargs: dict[str, Any], actions: list[Any],
                        out_shapes: list[tuple[int, ...]]) -> Any:
    """Output action(s) of a slice that splits mirror twins among a layer's output channels
    (``alpha[..., 0:1]`` of a learned two-way gate), after constraining that layer's output to
    be mirror-invariant; ``None`` when no free decision can be constrained so."""
    x = node.args[0] if node.args else None
    if not isinstance(x, fx.Node) or not isinstance(ctx.action(x), Action) or \
            not ctx.can_constrain(x):
        return None
    axes = ctx.channel_axes(x)
    found = ctx.action(x).axes()
    if found is None or not axes:
        return None
    wanted = Action.from_axes(ctx.shape(x), {a: r for a, r in found.items() if a not in axes})
    try:
        out = move(node.target, values, kwargs, [wanted, *actions[1:]], out_shapes)
    except (UnknownMovement, NotEquivariantError, ValueError):
        return None
    ctx.require(x, wanted, f"the {_name(node)} in {ctx.where(node)}, which keeps some of "
                           f"'{ctx.prov[x].path}''s channels but not their mirror twins")
    return out


def _arg_action(ctx: Context, arg: Any) -> Any:
    if isinstance(arg, fx.Node):
        return ctx.action(arg)
    if isinstance(arg, (list, tuple)):
        return [_arg_action(ctx, a) for a in arg]
    return None


def _has_action(found: Any) -> bool:
    if isinstance(found, Action):
        return True
    return isinstance(found, list) and any(_has_action(a) for a in found)


def _first_action(actions: list[Any]) -> Action | None:
    for found in actions:
        if isinstance(found, Action):
            return found
        if isinstance(found, list):
            inner = _first_action(found)
            if inner is not None:
                return inner
    return None


def _constants(ctx: Context, node: fx.Node, arg: Any, found: Any,
               reference: Action | None) -> Any:
    """Actions for floating-point constants moved together with features."""
    if isinstance(arg, (list, tuple)):
        return [_constants(ctx, node, a, f, reference) for a, f in zip(arg, found)]
    value = arg.meta.get("example_value") if isinstance(arg, fx.Node) else None
    if found is not None or not isinstance(value, torch.Tensor) or \
            not value.is_floating_point():
        return found
    if reference is None:
        return Action.trivial(tuple(value.shape))
    return constant_action(ctx, node, arg, reference, f"the {_name(node)} in {ctx.where(node)}")


def _flat(found: Any) -> Any:
    if isinstance(found, Action):
        return found.flat()
    if isinstance(found, list):
        return [_flat(a) for a in found]
    return None


def _real(value: Any) -> Any:
    """Shape-only stand-ins (meta tensors) replaced by zeros of their shape, for the index
    trick (which only reads the shapes of the tensors it encodes)."""
    if isinstance(value, torch.Tensor) and value.is_meta:
        return torch.zeros(value.shape, dtype=value.dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_real(v) for v in value)
    if isinstance(value, dict):
        return {k: _real(v) for k, v in value.items()}
    return value


def _name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__",
                                                                    repr(node.target))
