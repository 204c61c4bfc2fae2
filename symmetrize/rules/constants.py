"""Constants that meet mirrored features: learned tensors become mirror-shared, fixed ones must
already be symmetric.

A value computed from no forward input (a parameter, a buffer, ``torch.zeros(x.shape[0], h)``, a
learned initial state expanded to the batch, a position embedding sliced to the sequence) used
where the mirror acts must equal its mirror image. :func:`require_constant` follows the constant
back through element-wise arithmetic and data movement to the parameters and buffers it is
computed from: a parameter becomes mirror-shared (projected like a weight), a buffer is checked.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
from torch import fx

from symmetrize.action import Action
from symmetrize.movement_ops import UnknownMovement, move, move_back
from symmetrize.rep import Rep
from symmetrize.rules.context import Context, SharedTensor, any_ancestor

__all__ = ["check_constant", "constant_action", "require_constant", "share"]

_ELEMENTWISE = {operator.add: "add", torch.add: "add", "add": "add", operator.sub: "sub",
                torch.sub: "sub", "sub": "sub", operator.mul: "mul", torch.mul: "mul",
                "mul": "mul", operator.truediv: "div", torch.div: "div", "div": "div",
                torch.neg: "neg", operator.neg: "neg", "neg": "neg"}


def require_constant(ctx: Context, user: fx.Node, arg: Any, wanted: Action, why: str) -> None:
    """Constant ``arg`` (broadcast to ``wanted.shape``) must equal its mirror image under
    ``wanted``: the parameters it is computed from are shared, buffers and fixed values are
    checked."""
    if not isinstance(arg, fx.Node):
        return
    value = arg.meta.get("example_value")
    if not isinstance(value, torch.Tensor):
        return
    own = tuple(value.shape)
    mine = wanted if own == wanted.shape else _broadcast_source(ctx, user, arg, own, wanted)
    if mine.is_trivial:
        return
    if arg.op == "get_attr":
        share(ctx, arg, mine, why)
        return
    kind = None
    try:
        kind = _ELEMENTWISE.get(arg.target) if arg.op in ("call_function", "call_method") \
            else None
    except TypeError:  # an unhashable target
        kind = None
    if kind is None and not _learned(ctx, arg):
        check_constant(ctx, arg, mine, why)  # a fixed constant: it must already be symmetric
        return
    if kind is None:
        if _through_movement(ctx, user, arg, mine, why):
            return
        raise ctx.fail(user, f"the constant '{arg.name}' is computed by "
                             f"{getattr(arg.target, '__name__', arg.target)}, through which "
                             "symmetrize cannot share the learned tensors it comes from",
                       "compute it from parameters by element-wise +, -, *, / and data "
                       "movement only, or make it a buffer that is mirror-symmetric")
    parts = [p for p in (*arg.args, *arg.kwargs.values()) if isinstance(p, fx.Node)]
    for k, part in enumerate(parts):
        # a product of constants: one factor carries the signs, the others only the permutation
        part_action = mine if kind not in ("mul", "div") or k == 0 else mine.unsigned()
        require_constant(ctx, user, part, part_action, why)


def _broadcast_source(ctx: Context, user: fx.Node, arg: fx.Node, own: tuple[int, ...],
                      wanted: Action) -> Action:
    """The action a constant of shape ``own`` needs so that, broadcast, it has ``wanted``."""
    shape = wanted.shape
    offset = len(shape) - len(own)
    full = [i for i, size in enumerate(own) if size == shape[i + offset] and size != 1]
    sign_on = full[-1] + offset if full else len(shape) - 1
    axes = wanted.axes(sign_on=sign_on) if shape else {}
    if axes is None:
        raise ctx.fail(user, f"the constant '{arg.name}' of shape {own} is broadcast to {shape}, "
                             "across axes the mirror acts on jointly",
                       "give the constant the full shape of the features")
    kept: dict[int, Rep] = {}
    for axis, rep in axes.items():
        i = axis - offset
        if i >= 0 and i in full:
            kept[i] = rep
        elif rep.n_negated:
            raise ctx.fail(user, f"the constant '{arg.name}' of shape {own} is broadcast along "
                                 f"axis {axis}, on which the mirror flips signs",
                           "give the constant that axis in full")
    return Action.from_axes(own, kept)


def share(ctx: Context, node: fx.Node, action: Action, why: str) -> None:
    """Learned tensor or buffer ``node`` (a ``get_attr``) must equal its mirror image: a
    parameter becomes mirror-shared, a buffer must already be symmetric."""
    target = str(node.target)
    if ctx.is_parameter(target):
        share_parameter(ctx, node, target, action, why)
    else:
        check_constant(ctx, node, action, why)


def share_parameter(ctx: Context, node: fx.Node, target: str, action: Action, why: str) -> None:
    """Parameter ``target`` (an attribute path; used at ``node``) becomes mirror-shared."""
    known = ctx.shared.get(target)
    if known is not None and known.action != action:
        raise ctx.fail(node, f"parameter '{target}' is used by {known.why} and by {why}, "
                             "which need different mirror symmetries",
                       "use separate parameters for the two uses")
    if known is None:
        ctx.shared[target] = SharedTensor(target, action, why)


def check_constant(ctx: Context, node: fx.Node, action: Action, why: str) -> None:
    """A fixed constant must equal its mirror image."""
    value = node.meta.get("example_value")
    target = str(node.target) if node.op == "get_attr" else node.name
    if not isinstance(value, torch.Tensor) or value.is_meta:
        raise ctx.fail(node, f"the constant '{target}' (used by {why}) has no known value to "
                             "check for mirror symmetry", "make it a buffer of the model")
    exact = value.detach().to(torch.float64).cpu()
    mirrored = action.apply(exact)
    scale = float(exact.abs().max()) if exact.numel() else 0.0
    if torch.allclose(mirrored, exact, rtol=1e-6, atol=1e-6 * scale):
        return
    bad = int((mirrored - exact).abs().reshape(-1).argmax())
    index = tuple(int(i) for i in np.unravel_index(bad, tuple(exact.shape)))
    have, need = exact.reshape(-1)[bad].item(), mirrored.reshape(-1)[bad].item()
    raise ctx.fail(node, f"the constant '{target}' (used by {why}) is not mirror-symmetric: "
                         f"entry {index} is {have:.6g} but its mirror image needs {need:.6g}",
                   "make the constant (adjacency, mask, offset) symmetric under the left/right "
                   "swap, e.g. build it from a mirror-symmetric edge list")


def constant_action(ctx: Context, user: fx.Node, arg: Any, reference: Action,
                    why: str) -> Action:
    """The action of a floating-point constant moved together with features (a learned token
    concatenated to joint tokens, zero padding): the features' per-axis Reps on the axes where
    its size matches theirs, untouched elsewhere. A learned constant becomes mirror-shared under
    it, a fixed one must already be symmetric; otherwise the constant stays untouched."""
    value = arg.meta.get("example_value")
    shape = tuple(value.shape)
    axes = reference.axes() if reference.ndim == len(shape) else None
    if axes is None:
        return Action.trivial(shape)
    wanted = Action.from_axes(shape, {a: rep for a, rep in axes.items()
                                      if shape[a] == reference.shape[a]})
    if wanted.is_trivial:
        return wanted
    try:
        require_constant(ctx, user, arg, wanted, why)
    except ValueError:
        return Action.trivial(shape)
    return wanted


def _through_movement(ctx: Context, user: fx.Node, arg: fx.Node, action: Action,
                      why: str) -> bool:
    """Share the learned tensor behind a data-movement op on it (``pos_embed[:, :t]``,
    ``token.expand(n, -1, -1)``, ``h0.expand(-1, n, -1).contiguous()``): the source action
    that the op maps to ``action`` (bijective ops run backwards, others the same per-axis
    Reps on the axes it keeps)."""
    sources = [a for a in arg.all_input_nodes
               if isinstance(a.meta.get("example_value"), torch.Tensor)
               and a.meta["example_value"].is_floating_point()]
    if len(sources) != 1 or arg.op not in ("call_function", "call_method") or \
            not arg.args or arg.args[0] is not sources[0]:
        return False
    source = sources[0]
    shape = tuple(source.meta["example_value"].shape)
    own = action.shape
    args = ctx.value(tuple(arg.args))
    kwargs = ctx.value(dict(arg.kwargs))
    candidates = []
    back = move_back(arg.target, args, kwargs, shape, action)
    if back is not None:
        candidates.append(back)
    axes = action.axes() if len(own) >= len(shape) else None
    if axes is not None:  # axes aligned from the right, as in broadcasting
        lead = len(own) - len(shape)
        candidates.append(Action.from_axes(shape, {a: axes[a + lead] for a in range(len(shape))
                                                   if shape[a] == own[a + lead]}))
    for candidate in candidates:
        try:
            out = move(arg.target, args, kwargs, [candidate, *([None] * (len(args) - 1))],
                       [own])
        except (UnknownMovement, ValueError):
            continue
        if out == action:
            require_constant(ctx, user, source, candidate, why)
            return True
    return False


def _learned(ctx: Context, node: fx.Node) -> bool:
    """Whether ``node`` is computed from a parameter of the model."""
    return any_ancestor(node, lambda n: n.op == "get_attr" and ctx.is_parameter(str(n.target)))
