"""The fallback rule: data movement (view, permute, slicing, cat, pad, ...) by the index trick.

Any function or method without a rule of its own is run on index-encoded inputs
(:func:`symmetrize.flat_movement.forward_rep`); an op that computes new values is reported as
having no rule. Items of a tuple-valued node (an LSTM's ``(output, (h, c))``) are read directly.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import fx

from symmetrize.flat_movement import (
    RESHAPES,
    NotDataMovementError,
    factor_axes,
    flat_rep,
    forward_rep,
)
from symmetrize.passes.propagate import ConversionError
from symmetrize.rep import Rep
from symmetrize.rules import register_function_rule
from symmetrize.rules.arithmetic import require_constant

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
        return None  # moves constants only: a constant, shared or checked where it is used
    reference = _first_feature(args, reps)
    reps = [_constant_reps(ctx, node, a, r, reference) for a, r in zip(args, reps)]
    kwargs = ctx.value(dict(node.kwargs))
    name = _name(node)
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
        out = _invariant_channels(ctx, node, inputs, reps, kwargs)
        if out is None:
            raise ctx.fail(node, str(error), "keep both joints of every mirror pair") from None
    tensor_args = [a for a in args if isinstance(a, fx.Node) and ctx.rep(a) is not None]
    if len(tensor_args) == 1 and isinstance(out, Rep) and tensor_args[0] in ctx.prov:
        path, chain, halve = ctx.prov[tensor_args[0]]
        ctx.prov[node] = (path, [*chain, node], halve)
    return tuple(out) if isinstance(out, list) else out


def _invariant_channels(ctx: Propagation, node: fx.Node, inputs: list[Any], reps: list[Any],
                        kwargs: dict[str, Any]) -> Any:
    """Output Rep(s) of a slice that splits mirror twins among a layer's output channels
    (``alpha[..., 0:1]`` of a learned two-way gate), after constraining that layer's output to
    be mirror-invariant; ``None`` when no free decision can be constrained so."""
    from symmetrize.rules.einsum import _channel_axes

    tensors = [a for a in node.args if isinstance(a, fx.Node) and isinstance(ctx.rep(a), Rep)]
    if len(tensors) != 1 or not ctx.can_constrain(tensors[0]):
        return None
    x = tensors[0]
    shape = tuple(x.meta["example_value"].shape)
    path, chain, _ = ctx.prov[x]
    axes = _channel_axes(ctx, x, chain, path, shape)
    found = factor_axes(shape, ctx.rep(x), list(range(len(shape))))
    if found is None or not axes:
        return None
    wanted = flat_rep(shape, {a: Rep.trivial(shape[a]) if a in axes else r
                              for a, r in found.items()})
    try:
        out = forward_rep(node.target, inputs, [wanted if a is x else r
                                                for a, r in zip(node.args, reps)], kwargs=kwargs)
    except ValueError:
        return None
    ctx.require(x, wanted, f"the {_name(node)} in {ctx.where(node)}, which keeps some of "
                           f"'{path}''s channels but not their mirror twins")
    return out


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
        return ctx.rep(arg)
    if isinstance(arg, (list, tuple)):
        return [_arg_rep(ctx, a) for a in arg]
    return None


def _first_feature(args: Any, reps: Any) -> tuple[tuple[int, ...], Rep] | None:
    """Shape and flat Rep of the first argument that carries a Rep (lists searched)."""
    for arg, rep in zip(args, reps):
        if isinstance(rep, Rep) and isinstance(arg, fx.Node):
            return tuple(arg.meta["example_value"].shape), rep
        if isinstance(rep, list):
            found = _first_feature(arg, rep)
            if found is not None:
                return found
    return None


def _constant_reps(ctx: Propagation, node: fx.Node, arg: Any, rep: Any,
                   reference: tuple[tuple[int, ...], Rep] | None) -> Any:
    """The Rep of a floating-point constant moved together with features (a learned token
    concatenated to joint tokens, zero padding): the features' per-axis Reps on the axes where
    its size matches theirs, fixed elsewhere; a learned constant becomes mirror-shared under it,
    a fixed one must already be symmetric (else it stays fixed, and the op's own check decides)."""
    if isinstance(arg, (list, tuple)):
        return [_constant_reps(ctx, node, a, r, reference) for a, r in zip(arg, rep)]
    value = arg.meta.get("example_value") if isinstance(arg, fx.Node) else None
    if rep is not None or not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return rep
    shape = tuple(value.shape)
    trivial = Rep.trivial(value.numel())
    if reference is None or len(reference[0]) != len(shape):
        return trivial
    factors = factor_axes(reference[0], reference[1], list(range(len(shape))))
    if factors is None:
        return trivial
    wanted = flat_rep(shape, {a: factors[a] for a in range(len(shape))
                              if shape[a] == reference[0][a]})
    if wanted.is_trivial:
        return trivial
    try:
        require_constant(ctx, node, arg, wanted, shape, f"the {_name(node)} in {ctx.where(node)}")
    except ConversionError:
        return trivial
    return wanted


def _name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__",
                                                                    repr(node.target))


def _is_rep_like(rep: Any) -> bool:
    if isinstance(rep, Rep):
        return True
    return isinstance(rep, list) and any(_is_rep_like(r) for r in rep)
