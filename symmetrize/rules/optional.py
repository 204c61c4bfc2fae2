"""Rules for modules of optional packages, registered by class name (nothing is imported).

- Stochastic depth (timm's ``DropPath``, the copies of it in pose-transformer code bases,
  torchvision's ``StochasticDepth``): identity at eval. At train time it drops a whole residual
  branch per sample, the same for every joint and channel, so it is mirror-equivariant sample by
  sample; it is kept as a single node so that its train/eval switch survives tracing.
- einops layers ``Rearrange`` / ``Repeat``: data movement, read off by the index trick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import fx, nn

from symmetrize.flat_movement import NotDataMovementError, forward_rep
from symmetrize.rules import register_module_rule_by_name

if TYPE_CHECKING:
    from symmetrize.passes.propagate import Propagation

#: class names of stochastic-depth modules (bare names match any module defining them)
STOCHASTIC_DEPTH = ("DropPath", "StochasticDepth")


@register_module_rule_by_name(*STOCHASTIC_DEPTH)
def stochastic_depth(ctx: Propagation, node: fx.Node, module: nn.Module, path: str) -> Any:
    x = node.args[0] if node.args else node.kwargs.get("x")
    if not isinstance(x, fx.Node) or len(node.args) + len(node.kwargs) != 1:
        raise ctx.fail(node, f"stochastic-depth module '{path}' must take one tensor",
                       f"call it on one tensor, or trust it with assume_equivariant=['{path}']")
    ctx.inherit(node, x)
    return ctx.rep(x)


@register_module_rule_by_name("einops.layers.torch.Rearrange", "einops.layers.torch.Repeat")
def einops_layer(ctx: Propagation, node: fx.Node, module: nn.Module, path: str) -> Any:
    x = node.args[0]
    if ctx.rep(x) is None:
        return None
    try:
        out = forward_rep(module, [ctx.value(x)], [ctx.rep(x)])
    except NotDataMovementError:
        raise ctx.fail(node, f"einops layer '{path}' computes new values",
                       f"use Rearrange/Repeat only, or average=['{path}']") from None
    except ValueError as error:
        raise ctx.fail(node, str(error), "keep both joints of every mirror pair") from None
    return tuple(out) if isinstance(out, list) else out
