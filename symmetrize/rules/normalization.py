"""Rules for LayerNorm and RMSNorm (modules, and ``F.layer_norm`` / ``F.rms_norm`` calls).

Both normalise each sample over its last axes (the *normalised block*, usually the channels of a
token). RMSNorm divides by the root mean square, which no signed permutation changes, so it is
equivariant for any Rep of the block. LayerNorm also subtracts the mean over the block, which a
sign flip changes: it is equivariant only when the mirror permutes the block's entries without
flipping signs (``hidden="regular"``). Either way the affine weight must be the same on an entry
and its mirror twin, and the bias (LayerNorm) too, with the twin's sign: both become
mirror-shared.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from symmetrize import action_movement as mv
from symmetrize.action import Action
from symmetrize.rules.constants import require_constant, share_parameter
from symmetrize.rules.context import Context
from symmetrize.rules.registry import register_function_rule, register_module_rule

_RMS_MODULES = (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
_RMS_FUNCTIONS = (F.rms_norm,) if hasattr(F, "rms_norm") else ()


@register_module_rule(nn.LayerNorm, *_RMS_MODULES)
def norm_module(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Any:
    rms = isinstance(module, _RMS_MODULES)
    params = {name: f"{path}.{name}" for name in ("weight", "bias")
              if getattr(module, name, None) is not None}
    return _normalise(ctx, node, node.args[0], tuple(module.normalized_shape), params, rms,
                      f"{type(module).__name__} '{path}'")


@register_function_rule(F.layer_norm, torch.layer_norm, *_RMS_FUNCTIONS)
def norm_function(ctx: Context, node: fx.Node) -> Any:
    rms = node.target in _RMS_FUNCTIONS
    names = ("input", "normalized_shape", "weight") + (() if rms else ("bias",))
    bound = dict(zip(names, node.args))
    bound.update({k: v for k, v in node.kwargs.items() if k in names})
    shape = ctx.value(bound["normalized_shape"])
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    params = {k: bound[k] for k in ("weight", "bias") if isinstance(bound.get(k), fx.Node)}
    return _normalise(ctx, node, bound["input"], shape, params, rms,
                      "rms_norm" if rms else "layer_norm")


def _normalise(ctx: Context, node: fx.Node, x: fx.Node, normalized: tuple[int, ...],
               params: dict[str, Any], rms: bool, what: str) -> Any:
    action = ctx.action(x)
    if action is None:
        return None
    shape = ctx.shape(x)
    k = len(normalized)
    outer, block = shape[: len(shape) - k], math.prod(normalized)
    grouped = mv.reshape(action, (*outer, block))
    factors = grouped.axes(sign_on=len(outer))
    if factors is None:
        raise ctx.fail(node, f"{what}: the mirror moves entries between the normalised axes "
                             f"{normalized} and the other axes of {shape}",
                       "normalise over the channel axis of tokens whose joints are a separate "
                       "axis (or all of them)")
    rep = factors[len(outer)]
    if not rms:
        ctx.mark_unsigned(x, f"{what}, which subtracts a mean,")
    if rep.n_negated and not rms:
        if ctx.forbid_signs(x, f"{what}, which subtracts a mean,"):
            ctx.inherit(node, x)
            return action.unsigned()
        raise ctx.fail(node, f"{what} subtracts the mean over channels that flip sign under "
                             f"the mirror ({rep}), which is not mirror-symmetric",
                       "convert with hidden='regular' or 'auto' (mirror twins swap, no sign "
                       "flips), or give the layers feeding it an unsigned hidden Rep "
                       "(hidden={path: Rep.regular(width)}), or use RMSNorm, which needs no "
                       "unsigned Rep")
    signed_outside = any(r.n_negated for a, r in factors.items() if a != len(outer))
    if signed_outside and "bias" in params:
        raise ctx.fail(node, f"{what} adds a bias to features that flip sign along an axis it "
                             "does not normalise", "use bias=False there")
    for name, param in params.items():
        rep_param = rep if name == "bias" else rep.unsigned()
        _share(ctx, node, param, Action.from_flat(normalized, rep_param), f"{what} ({name})")
    ctx.inherit(node, x)
    return action


def _share(ctx: Context, node: fx.Node, param: Any, action: Action, why: str) -> None:
    """Mirror-share a LayerNorm weight or bias: a ``get_attr`` node, or a module path."""
    if action.is_trivial:
        return
    if isinstance(param, fx.Node):
        if isinstance(param.meta.get("example_value"), torch.Tensor):
            require_constant(ctx, node, param, action, why)
        return
    share_parameter(ctx, node, param, action, why)
