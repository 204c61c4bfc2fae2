"""Rules for element-wise arithmetic: add, sub, mul, div, and the constants they meet.

Two features combined element-wise must carry the same permutation; add/sub also the same signs
(a coupling: a residual connection constrains the decision of the layer on one side), while a
product or a quotient multiplies the signs. A constant operand must equal its mirror image: a
buffer is checked, a learned tensor (a per-joint bias or embedding, an edge importance) becomes
mirror-shared (:mod:`symmetrize.rules.constants`).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

from symmetrize import action_movement as mv
from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules.constants import require_constant
from symmetrize.rules.context import Context
from symmetrize.rules.registry import register_function_rule

KINDS = {operator.add: "add", torch.add: "add", "add": "add", operator.sub: "sub",
         torch.sub: "sub", "sub": "sub", operator.mul: "mul", torch.mul: "mul", "mul": "mul",
         operator.truediv: "div", torch.div: "div", "div": "div", operator.iadd: "add",
         operator.isub: "sub", operator.imul: "mul", operator.itruediv: "div", "add_": "add",
         "sub_": "sub", "mul_": "mul", "div_": "div", torch.true_divide: "div"}


@register_function_rule(*KINDS)
def arithmetic(ctx: Context, node: fx.Node) -> Action | None:
    kind = KINDS[node.target]
    a = node.args[0]
    b = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
    out_shape = ctx.shape(node)
    operands: list[Any] = []
    for arg, partner in ((a, b), (b, a)):
        if isinstance(arg, fx.Node) and isinstance(ctx.action(arg), Action):
            operands.append(_broadcast(ctx, node, arg, out_shape, partner))
        else:
            operands.append(arg)
    features = [o for o in operands if isinstance(o, Action)]
    if not features:
        return None
    if len(features) == 2 and kind in ("mul", "div"):
        left, right = features
        if not left.same_permutation(right):
            raise ctx.fail(node, f"a {kind} of two features that the mirror permutes "
                                 "differently", "combine tensors with the same joints layout")
        return left.times(right)
    if len(features) == 2:
        left, right = features
        ctx.couple([a, b], node)
        if left != right:
            why = f"the {kind} in {ctx.where(node)}"
            side, wanted = next(((s, w) for s, w in ((b, left), (a, right))
                                 if ctx.can_constrain(s)), (None, None))
            if side is None:
                raise ctx.fail(node, f"the {kind} combines tensors with different mirror actions "
                                     f"({left} and {right})",
                               "add tensors with the same joints/coordinates layout")
            ctx.require(side, wanted, why)
            left = wanted
        # a later constraint on the sum reaches one side; the sum then couples the other
        ctx.inherit(node, a if a in ctx.prov else b)
        return left
    feature = features[0]
    divisor = kind == "div" and isinstance(operands[0], Action)
    for arg, operand in zip((a, b), operands, strict=True):
        if isinstance(operand, Action):
            continue
        value = ctx.value(arg)
        if not isinstance(value, torch.Tensor):  # a Python number
            if kind in ("add", "sub") and value != 0 and feature.has_signs:
                source = a if isinstance(operands[0], Action) else b
                if ctx.forbid_signs(source, f"the {kind} of the constant {value!r}"):
                    break
                raise ctx.fail(node, f"{kind} of the constant {value!r} to features that flip "
                                     "sign under the mirror",
                               "remove the offset, or apply it to features that do not flip sign")
            if kind == "div" and not divisor and feature.has_signs:
                raise ctx.fail(node, "a number divided by features that flip sign",
                               "divide by features that do not flip sign")
            continue
        scale = kind == "mul" or divisor
        require_constant(ctx, node, arg, feature.unsigned() if scale else feature,
                         f"the {kind} in {ctx.where(node)}")
    ctx.inherit(node, a if isinstance(operands[0], Action) else b)
    return feature


def _broadcast(ctx: Context, node: fx.Node, arg: fx.Node, out_shape: tuple[int, ...],
               partner: Any) -> Action:
    """``arg``'s action broadcast to ``out_shape``. Along the axes it is broadcast over, its
    values are constant, so any permutation leaves them alone: there it takes the permutation of
    the other feature operand ``partner`` (a per-token gate times token features)."""
    own = ctx.action(arg)
    if own.shape == out_shape:
        return own
    try:
        expanded = mv.expand(own, out_shape)
    except ValueError as error:
        raise ctx.fail(node, f"broadcasting {own.shape} to {out_shape}: {error}",
                       "broadcast along axes the mirror does not touch") from None
    other = ctx.action(partner) if isinstance(partner, fx.Node) else None
    if not isinstance(other, Action) or other.shape != out_shape:
        return expanded
    mine, theirs = expanded.axes(), other.axes()
    if mine is None or theirs is None:
        return expanded
    lead = len(out_shape) - own.ndim
    spread = {k for k in range(len(out_shape))
              if out_shape[k] != 1 and (k < lead or own.shape[k - lead] == 1)}
    # along a broadcast axis the sign is the same for every entry: keep it, permute freely
    return Action.from_axes(out_shape, {k: Rep(theirs[k].perm, mine[k].sign) if k in spread
                                        else mine[k] for k in range(len(out_shape))})
