"""Rules for element-wise arithmetic: add, sub, mul, div, and the constants they meet.

Two features combined element-wise must carry the same permutation; add/sub also the same signs
(a coupling: a residual connection constrains the decision of the layer on one side), while a
product multiplies the signs. A constant operand must equal its mirror image: a buffer is
checked, a learned tensor (a per-joint bias or embedding, an edge importance) becomes
mirror-shared.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import fx

from symmetrize.flat_movement import factor_axes, flat_rep, forward_rep, pull_back_rep
from symmetrize.passes.propagate import any_ancestor
from symmetrize.rep import Rep
from symmetrize.rules import register_function_rule

if TYPE_CHECKING:
    from symmetrize.passes.propagate import Propagation

KINDS = {operator.add: "add", torch.add: "add", "add": "add", operator.sub: "sub",
         torch.sub: "sub", "sub": "sub", operator.mul: "mul", torch.mul: "mul", "mul": "mul",
         operator.truediv: "div", torch.div: "div", "div": "div", operator.iadd: "add",
         operator.isub: "sub", operator.imul: "mul", operator.itruediv: "div", "add_": "add",
         "sub_": "sub", "mul_": "mul", "div_": "div"}
_CONSTANT_OPS = {**KINDS, torch.neg: "neg", operator.neg: "neg", "neg": "neg"}


@register_function_rule(*KINDS)
def arithmetic(ctx: Propagation, node: fx.Node) -> Rep | None:
    kind = KINDS[node.target]
    a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
    out_shape = tuple(node.meta["example_value"].shape)
    operands: list[Any] = []
    for arg, partner in ((a, b), (b, a)):
        if isinstance(arg, fx.Node) and ctx.rep(arg) is not None:
            operands.append(_broadcast(ctx, node, arg, out_shape, partner))
        else:
            operands.append(arg)
    features = [r for r in operands if isinstance(r, Rep)]
    if not features:
        return None
    if kind == "mul" and len(features) == 2:
        ra, rb = features
        if not (ra.perm == rb.perm).all():
            raise ctx.fail(node, "a product of two features whose mirror permutations differ",
                           "multiply tensors with the same joints layout")
        return Rep(ra.perm, ra.sign * rb.sign)
    if len(features) == 2:
        ra, rb = features
        ctx.couple([a, b], node)
        if ra != rb:
            why = f"the {kind} in {ctx.where(node)}"
            side, wanted = next(((s, w) for s, w in ((b, ra), (a, rb)) if ctx.can_constrain(s)
                                 and ctx.rep(s).size == w.size), (None, None))
            if side is None:
                raise ctx.fail(node, f"the {kind} combines tensors with different mirror Reps "
                                     f"({ra!r} and {rb!r})",
                               "add tensors with the same joints/coordinates layout")
            ctx.require(side, wanted, why)
            ra = wanted
        # a later constraint on the sum reaches one side; the sum then couples the other
        ctx.inherit(node, a if a in ctx.prov else b)
        return ra
    rep = features[0]
    divisor = kind == "div" and isinstance(operands[0], Rep)
    for arg, operand in zip((a, b), operands, strict=True):
        if isinstance(operand, Rep):
            continue
        value = ctx.value(arg)
        if not isinstance(value, torch.Tensor):  # a Python number
            if kind in ("add", "sub") and value != 0 and rep.n_negated:
                raise ctx.fail(node, f"{kind} of the constant {value!r} to features that flip "
                                     "sign under the mirror",
                               "remove the offset, or apply it to features that do not flip sign")
            continue
        scale = kind == "mul" or divisor
        require_constant(ctx, node, arg, rep if not scale else rep.unsigned(), out_shape,
                         f"the {kind} in {ctx.where(node)}")
    return rep


def _broadcast(ctx: Propagation, node: fx.Node, arg: fx.Node, out_shape: tuple[int, ...],
               partner: Any) -> Rep:
    """``arg``'s flat Rep broadcast to ``out_shape``. Along the axes it is broadcast over, its
    values are constant, so any permutation leaves them alone: there it takes the permutation of
    the other feature operand ``partner`` (a per-token gate times token features)."""
    flat = ctx.rep(arg)
    shape = tuple(arg.meta["example_value"].shape)
    if shape == out_shape:
        return flat
    try:
        expanded = forward_rep(lambda t: t.expand(out_shape), [arg.meta["example_value"]], [flat])
    except ValueError as error:
        raise ctx.fail(node, f"broadcasting {shape} to {out_shape}: {error}",
                       "broadcast along axes the mirror does not touch") from None
    if not isinstance(partner, fx.Node) or ctx.rep(partner) is None or \
            tuple(partner.meta["example_value"].shape) != out_shape:
        return expanded
    axes = list(range(len(out_shape)))
    mine, theirs = factor_axes(out_shape, expanded, axes), factor_axes(out_shape,
                                                                       ctx.rep(partner), axes)
    if mine is None or theirs is None:
        return expanded
    lead = len(out_shape) - len(shape)
    spread = {a for a in axes if out_shape[a] != 1 and (a < lead or shape[a - lead] == 1)}
    # along a broadcast axis the sign is the same for every entry: keep it, permute freely
    return flat_rep(out_shape, {a: Rep(theirs[a].perm, mine[a].sign) if a in spread else mine[a]
                                for a in axes})


def require_constant(ctx: Propagation, user: fx.Node, arg: Any, rep: Rep,
                     shape: tuple[int, ...], why: str) -> None:
    """Constant ``arg`` (broadcast to ``shape``) must equal its mirror image under the flat
    ``rep``: constraints reach every parameter and buffer it is computed from element-wise."""
    if not isinstance(arg, fx.Node):
        return
    value = arg.meta.get("example_value")
    if not isinstance(value, torch.Tensor):
        return
    own = tuple(value.shape)
    if own == shape:
        mine = rep
    else:
        factors = factor_axes(shape, rep, list(range(len(shape))))
        if factors is None:
            raise ctx.fail(user, f"the constant '{arg.name}' of shape {own} is broadcast to "
                                 f"{shape}, across axes the mirror acts on jointly",
                           "give the constant the full shape of the features")
        offset = len(shape) - len(own)
        axes = {}
        for i, size in enumerate(own):
            factor = factors[i + offset]
            if size == shape[i + offset]:
                axes[i] = factor
            elif factor.n_negated:
                raise ctx.fail(user, f"the constant '{arg.name}' of shape {own} is broadcast "
                                     f"along axis {i + offset}, on which the mirror flips signs",
                               "give the constant that axis in full")
        for a in range(offset):
            if factors[a].n_negated:
                raise ctx.fail(user, f"the constant '{arg.name}' of shape {own} is broadcast "
                                     f"along axis {a}, on which the mirror flips signs",
                               "give the constant that axis in full")
        mine = flat_rep(own, axes)
    if mine.is_trivial:
        return
    if arg.op == "get_attr":
        ctx.share(arg, mine, why)
        return
    kind = _CONSTANT_OPS.get(arg.target) if arg.op in ("call_function", "call_method") else None
    if kind is None and not _learned(ctx, arg):
        ctx.check_constant(arg, mine, why)  # a fixed constant: it must already be symmetric
        return
    if kind is None and _through_movement(ctx, user, arg, mine, why):
        return
    if kind is None:
        raise ctx.fail(user, f"the constant '{arg.name}' is computed by "
                             f"{getattr(arg.target, '__name__', arg.target)}, through which "
                             "symmetrize cannot share the learned tensors it comes from",
                       "compute it from parameters by element-wise +, -, *, / only, or make it "
                       "a buffer that is mirror-symmetric")
    parts = [p for p in (*arg.args, *arg.kwargs.values()) if isinstance(p, fx.Node)]
    for k, part in enumerate(parts):
        # a product of constants: one factor carries the signs, the others only the permutation
        part_rep = mine if kind not in ("mul", "div") or k == 0 else mine.unsigned()
        require_constant(ctx, user, part, part_rep, own, why)


def _through_movement(ctx: Propagation, user: fx.Node, arg: fx.Node, rep: Rep,
                      why: str) -> bool:
    """Share the learned tensor behind a data-movement op on it (``pos_embed[:, :t]``,
    ``token.expand(n, -1, -1)``, ``embed.view(...)``): the source Rep that the op maps to
    ``rep`` (bijective ops pulled back, others the same per-axis Reps on the axes it keeps)."""
    sources = [a for a in arg.all_input_nodes
               if isinstance(a.meta.get("example_value"), torch.Tensor)
               and a.meta["example_value"].is_floating_point()]
    if len(sources) != 1 or arg.op not in ("call_function", "call_method") or \
            not isinstance(arg.args[0] if arg.args else None, fx.Node) or arg.args[0] is not \
            sources[0]:
        return False
    source = sources[0]
    shape = tuple(source.meta["example_value"].shape)
    own = tuple(arg.meta["example_value"].shape)
    args, kwargs = ctx.value(tuple(arg.args[1:])), ctx.value(dict(arg.kwargs))
    candidates = []
    try:
        candidates.append(pull_back_rep(arg.target, shape, rep, args=args, kwargs=kwargs))
    except ValueError:
        pass
    factors = factor_axes(own, rep, list(range(len(own)))) if len(own) >= len(shape) else None
    if factors is not None:  # axes aligned from the right, as in broadcasting
        lead = len(own) - len(shape)
        candidates.append(flat_rep(shape, {a: factors[a + lead] for a in range(len(shape))
                                           if shape[a] == own[a + lead]}))
    for candidate in candidates:
        try:
            out = forward_rep(arg.target, [source.meta["example_value"], *args],
                              [candidate, *([None] * len(args))], kwargs=kwargs)
        except ValueError:
            continue
        if out == rep:
            require_constant(ctx, user, source, candidate, shape, why)
            return True
    return False


def _learned(ctx: Propagation, node: fx.Node) -> bool:
    """Whether ``node`` is computed from a parameter of the model."""
    return any_ancestor(node, lambda n: n.op == "get_attr" and ctx.is_parameter(str(n.target)))
