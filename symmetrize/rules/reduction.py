"""Rules for reductions (mean, sum) and pooling (average and max, 1-D and 2-D, adaptive).

A reduction may sum over axes the mirror at most permutes (batch, time, persons, joints): the
kept axes keep their Reps. Pooling windows slide over the trailing axes; along an axis the
mirror permutes (joints) only a global window keeps the symmetry. Max pooling needs channels
that do not flip sign (``max(-x) != -max(x)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from symmetrize import action_movement as mv
from symmetrize.action import Action
from symmetrize.einops_pattern import plan
from symmetrize.rep import Rep
from symmetrize.rules.context import Context, Step
from symmetrize.rules.registry import register_function_rule, register_module_rule

#: pooling functions -> (spatial dims, average (linear), adaptive)
POOL_FUNCTIONS = {F.avg_pool1d: (1, True, False), F.avg_pool2d: (2, True, False),
                  F.max_pool1d: (1, False, False), F.max_pool2d: (2, False, False),
                  F.adaptive_avg_pool1d: (1, True, True), F.adaptive_avg_pool2d: (2, True, True),
                  F.adaptive_max_pool1d: (1, False, True), F.adaptive_max_pool2d: (2, False, True)}
POOL_MODULES = {nn.AvgPool1d: (1, True, False), nn.AvgPool2d: (2, True, False),
                nn.MaxPool1d: (1, False, False), nn.MaxPool2d: (2, False, False),
                nn.AdaptiveAvgPool1d: (1, True, True), nn.AdaptiveAvgPool2d: (2, True, True),
                nn.AdaptiveMaxPool1d: (1, False, True), nn.AdaptiveMaxPool2d: (2, False, True)}


@register_function_rule(torch.mean, torch.sum, "mean", "sum", torch.amax, torch.amin, "amax",
                        "amin")
def reduction(ctx: Context, node: fx.Node) -> Action | None:
    """mean/sum over axes the mirror at most permutes (batch, time, joints without sign);
    amax/amin also need the reduced and the kept values not to flip sign."""
    x = node.args[0]
    action = ctx.action(x)
    if action is None:
        return None
    shape = ctx.shape(x)
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    ndim = len(shape)
    reduced = sorted(range(ndim) if dims is None or dims == () else
                     {d % ndim for d in ((dims,) if isinstance(dims, int) else dims)})
    name = node.target if isinstance(node.target, str) else node.target.__name__
    linear = name in ("mean", "sum")
    out = _reduce(ctx, node, x, action, reduced, bool(keepdim), name, linear, ctx.shape(node))
    _keep_provenance(ctx, node, x, reduced, bool(keepdim))
    return out


def _keep_provenance(ctx: Context, node: fx.Node, x: fx.Node, reduced: list[int],
                     keepdim: bool) -> None:
    """A reduction over other axes keeps the decision's channels: a constraint on the result
    reaches the layer (the reduced axes keep the input's Reps)."""
    in_shape, out_shape = ctx.shape(x), ctx.shape(node)
    source = ctx.action(x)
    kept = [a for a in range(len(in_shape)) if a not in reduced]

    def position(axis: int) -> int:
        return axis if keepdim else kept.index(axis)

    def forward(action: Action) -> Action | None:
        found = action.axes(sign_on=kept[-1]) if kept else None
        if found is None:
            return None
        return Action.from_axes(out_shape, {position(a): found[a] for a in kept})

    def back(action: Action) -> Action | None:
        found = action.axes()
        before = source.axes()
        if found is None or before is None:
            return None
        axes = {a: before[a] for a in reduced}
        axes.update({a: found[position(a)] for a in kept})
        return Action.from_axes(in_shape, axes)

    ctx.moved(node, x, Step(node.target, (), {}, in_shape, out_shape, forward, back))


def _reduce(ctx: Context, node: fx.Node, x: fx.Node, action: Action, reduced: list[int],
            keepdim: bool, name: str, linear: bool, out_shape: tuple[int, ...]) -> Action:
    kept = [a for a in range(action.ndim) if a not in reduced]
    # put a global sign on a kept axis when there is one
    factors = action.axes(sign_on=kept[-1] if kept else -1)
    if factors is None:
        raise ctx.fail(node, f"the {name} over axes {reduced} mixes axes the mirror acts on "
                             "jointly", "reduce over batch, time or joint axes only")
    sign = 1
    flipping = []
    for a in reduced:  # a sign shared by the whole reduced axis factors out of a sum
        signs = set(factors[a].sign.tolist())
        if len(signs) > 1:
            flipping.append(a)
        elif signs == {-1}:
            sign = -sign
    if not linear and (sign < 0 or any(factors[a].n_negated for a in range(action.ndim))):
        flipping = flipping or list(range(action.ndim))
    if flipping:
        if ctx.forbid_signs(x, f"the {name}"):
            return Action.trivial(out_shape)
        raise ctx.fail(node, f"the {name} over axes {reduced} mixes elements that flip sign "
                             "under the mirror", "reduce over batch, time or joint axes only")
    new_axes = {}
    for axis in kept:
        new_axes[axis if keepdim else axis - sum(d < axis for d in reduced)] = factors[axis]
    return Action.from_axes(out_shape, new_axes, sign)


def einops_reduce(ctx: Context, node: fx.Node) -> Action | None:
    """``einops.reduce(x, pattern, reduction, **lengths)`` as a function call."""
    x = node.args[0]
    pattern = node.args[1] if len(node.args) > 1 else node.kwargs["pattern"]
    how = node.args[2] if len(node.args) > 2 else node.kwargs.get("reduction")
    lengths = {k: v for k, v in node.kwargs.items() if k not in ("pattern", "reduction")}
    return einops_reduce_action(ctx, node, x, pattern, how, lengths)


def einops_reduce_action(ctx: Context, node: fx.Node, x: Any, pattern: str, how: Any,
                         lengths: dict[str, int]) -> Action | None:
    """The action after an einops reduction of ``x`` (mean / sum over permuted axes; max / min
    also without signs)."""
    action = ctx.action(x)
    if action is None:
        return None
    if how not in ("mean", "sum", "max", "min"):
        raise ctx.fail(node, f"einops reduction {how!r} has no rule",
                       "use 'mean', 'sum', 'max' or 'min'")
    steps = plan(pattern, action.shape, lengths, "reduce")
    split = mv.reshape(action, steps.elementary)
    kept = [i for i in range(len(steps.elementary)) if i not in steps.reduced]
    out = _reduce(ctx, node, x, split, list(steps.reduced), False, f"reduce {how!r}",
                  how in ("mean", "sum"), tuple(steps.elementary[i] for i in kept))
    order = [kept.index(i) for i in steps.order]
    return mv.reshape(mv.permute(out, order), steps.output)


@register_module_rule(*POOL_MODULES)
def pooling_module(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Rep:
    dims, linear, adaptive = POOL_MODULES[next(c for c in POOL_MODULES if isinstance(module, c))]
    kernel = None if adaptive else module.kernel_size
    padding = 0 if adaptive else module.padding
    return _pool(ctx, node, f"'{path}'", dims, linear, kernel, padding)


@register_function_rule(*POOL_FUNCTIONS)
def pooling_function(ctx: Context, node: fx.Node) -> Rep:
    dims, linear, adaptive = POOL_FUNCTIONS[node.target]
    args = ctx.value(tuple(node.args))
    kwargs = ctx.value(dict(node.kwargs))
    kernel = None if adaptive else (args[1] if len(args) > 1 else kwargs.get("kernel_size"))
    padding = 0 if adaptive else (args[3] if len(args) > 3 else kwargs.get("padding", 0))
    return _pool(ctx, node, node.target.__name__, dims, linear, kernel, padding)


def _pool(ctx: Context, node: fx.Node, what: str, dims: int, linear: bool, kernel: Any,
          padding: Any) -> Rep:
    """Pooling over the last ``dims`` axes of ``(N, C, *spatial)`` (or unbatched)."""
    x = node.args[0]
    shape = ctx.shape(x)
    out_shape = ctx.shape(node)
    channel = len(shape) - dims - 1
    factors = ctx.axes(node, x, channel, what)
    if not linear:
        ctx.mark_unsigned(x, f"{what} (max pooling)")
    if not linear and factors[channel].n_negated:
        if ctx.forbid_signs(x, f"{what} (max pooling)"):
            return Action.trivial(out_shape)
        raise ctx.fail(node, f"{what} (max pooling) over channels that flip sign: max(-x) is "
                             "not -max(x)",
                       "use average pooling, or hidden='regular' so no channel flips sign")
    kernels = _per_axis(kernel, dims)
    paddings = _per_axis(padding, dims)
    out_axes = {a: r for a, r in factors.items() if a < len(shape) - dims}
    for k in range(dims):
        axis = len(shape) - dims + k
        factor = factors[axis]
        if factor.is_trivial:
            continue
        whole = out_shape[axis] == 1 and (kernels is None or (
            kernels[k] >= shape[axis] and paddings[k] == 0))
        if not whole or factor.n_negated:
            raise ctx.fail(node, f"{what} pools along axis {axis}, which the mirror permutes "
                                 "(joints), with a window that does not cover the whole axis",
                           "pool globally over the joints axis, or over time only")
    ctx.inherit(node, x)
    return Action.from_axes(out_shape, out_axes)


def _per_axis(value: Any, dims: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value,) * dims
    values = tuple(int(v) for v in value)
    return values if len(values) == dims else values * dims
