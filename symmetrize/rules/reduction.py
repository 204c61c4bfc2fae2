"""Rules for reductions (mean, sum) and pooling (average and max, 1-D and 2-D, adaptive).

A reduction may sum over axes the mirror at most permutes (batch, time, persons, joints): the
kept axes keep their Reps. Pooling windows slide over the trailing axes; along an axis the
mirror permutes (joints) only a global window keeps the symmetry. Max pooling needs channels
that do not flip sign (``max(-x) != -max(x)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from symmetrize.flat_movement import factor_axes, flat_rep
from symmetrize.rep import Rep
from symmetrize.rules import register_function_rule, register_module_rule

if TYPE_CHECKING:
    from symmetrize.passes.propagate import Propagation

#: pooling functions -> (spatial dims, average (linear), adaptive)
POOL_FUNCTIONS = {F.avg_pool1d: (1, True, False), F.avg_pool2d: (2, True, False),
                  F.max_pool1d: (1, False, False), F.max_pool2d: (2, False, False),
                  F.adaptive_avg_pool1d: (1, True, True), F.adaptive_avg_pool2d: (2, True, True),
                  F.adaptive_max_pool1d: (1, False, True), F.adaptive_max_pool2d: (2, False, True)}
POOL_MODULES = {nn.AvgPool1d: (1, True, False), nn.AvgPool2d: (2, True, False),
                nn.MaxPool1d: (1, False, False), nn.MaxPool2d: (2, False, False),
                nn.AdaptiveAvgPool1d: (1, True, True), nn.AdaptiveAvgPool2d: (2, True, True),
                nn.AdaptiveMaxPool1d: (1, False, True), nn.AdaptiveMaxPool2d: (2, False, True)}


@register_function_rule(torch.mean, torch.sum, "mean", "sum")
def reduction(ctx: Propagation, node: fx.Node) -> Rep:
    """mean/sum over axes the mirror at most permutes (batch, time, joints without sign)."""
    x = node.args[0]
    flat = ctx.rep(x)
    shape = tuple(x.meta["example_value"].shape)
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    ndim = len(shape)
    reduced = sorted(range(ndim) if dims is None else
                     {d % ndim for d in ((dims,) if isinstance(dims, int) else dims)})
    kept = [a for a in range(ndim) if a not in reduced]
    name = node.target if isinstance(node.target, str) else node.target.__name__
    # list the kept axes last: a sign shared across axes is then placed on a kept one
    factors = factor_axes(shape, flat, [*reduced, *kept])
    if factors is None:
        raise ctx.fail(node, f"the {name} over axes {reduced} mixes axes the mirror acts on "
                             "jointly", "reduce over batch, time or joint axes only")
    flipping = [a for a in reduced if factors[a].n_negated]
    if flipping:
        raise ctx.fail(node, f"the {name} over axes {reduced} mixes elements that flip sign "
                             "under the mirror", "reduce over batch, time or joint axes only")
    new_axes = {}
    for axis in kept:
        new_axes[axis if keepdim else axis - sum(d < axis for d in reduced)] = factors[axis]
    return flat_rep(tuple(node.meta["example_value"].shape), new_axes)


@register_module_rule(*POOL_MODULES)
def pooling_module(ctx: Propagation, node: fx.Node, module: nn.Module, path: str) -> Rep:
    dims, linear, adaptive = POOL_MODULES[next(c for c in POOL_MODULES if isinstance(module, c))]
    kernel = None if adaptive else module.kernel_size
    padding = 0 if adaptive else module.padding
    return _pool(ctx, node, f"'{path}'", dims, linear, kernel, padding)


@register_function_rule(*POOL_FUNCTIONS)
def pooling_function(ctx: Propagation, node: fx.Node) -> Rep:
    dims, linear, adaptive = POOL_FUNCTIONS[node.target]
    args = ctx.value(tuple(node.args))
    kwargs = ctx.value(dict(node.kwargs))
    kernel = None if adaptive else (args[1] if len(args) > 1 else kwargs.get("kernel_size"))
    padding = 0 if adaptive else (args[3] if len(args) > 3 else kwargs.get("padding", 0))
    return _pool(ctx, node, node.target.__name__, dims, linear, kernel, padding)


def _pool(ctx: Propagation, node: fx.Node, what: str, dims: int, linear: bool, kernel: Any,
          padding: Any) -> Rep:
    """Pooling over the last ``dims`` axes of ``(N, C, *spatial)`` (or unbatched)."""
    x = node.args[0]
    shape = tuple(x.meta["example_value"].shape)
    out_shape = tuple(node.meta["example_value"].shape)
    channel = len(shape) - dims - 1
    factors = ctx.factors(node, x, channel, what)
    if not linear and factors[channel].n_negated:
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
    return flat_rep(out_shape, out_axes)


def _per_axis(value: Any, dims: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value,) * dims
    values = tuple(int(v) for v in value)
    return values if len(values) == dims else values * dims
