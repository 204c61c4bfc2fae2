"""Rules for modules of optional packages, registered by class name (nothing is imported).

- Stochastic depth (timm's ``DropPath``, the copies of it in pose-transformer code bases,
  torchvision's ``StochasticDepth``): identity at eval. At train time it drops a whole residual
  branch per sample, the same for every joint and channel, so it is mirror-equivariant sample by
  sample; it is kept as a single node so that its train/eval switch survives tracing.
- einops layers ``Rearrange`` / ``Repeat`` (data movement) and ``Reduce`` (a reduction), read
  from their patterns.
"""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from symmetrize.action import Action, split_rep
from symmetrize.movement_ops import einops_move
from symmetrize.nn.tied_drop_path import TiedDropPath
from symmetrize.rep import Rep
from symmetrize.rules.context import Context, Site
from symmetrize.rules.reduction import einops_reduce_action
from symmetrize.rules.registry import register_module_rule_by_name

#: class names of stochastic-depth modules (bare names match any module defining them)
STOCHASTIC_DEPTH = ("DropPath", "StochasticDepth")


@register_module_rule_by_name(*STOCHASTIC_DEPTH)
def stochastic_depth(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Any:
    """Per-sample stochastic depth is equivariant when the mirror leaves the samples alone;
    when the batch axis folds joints in (``(b n) t c``), its keep mask is tied between mirror
    twins (:class:`~symmetrize.nn.tied_drop_path.TiedDropPath`)."""
    x = node.args[0] if node.args else node.kwargs.get("x")
    if not isinstance(x, fx.Node) or len(node.args) + len(node.kwargs) != 1:
        raise ctx.fail(node, f"stochastic-depth module '{path}' must take one tensor",
                       f"call it on one tensor, or trust it with assume_equivariant=['{path}']")
    action = ctx.action(x)
    ctx.inherit(node, x)
    samples = action.axis(0) if isinstance(action, Action) else None
    per_batch = getattr(module, "mode", "row") == "batch"
    if samples is not None and samples.n_pairs and not per_batch:
        inner = _block(samples)
        if inner is None or _drop_probability(module) is None:
            raise ctx.fail(node, f"stochastic depth '{path}' drops samples of an axis the mirror "
                                 "permutes (joints folded into the batch), and its mask cannot "
                                 "be tied", f"use timm's DropPath, or average=['{path}']")
        site = ctx.site(path, module, node)
        site.build, site.extra["inner"] = _build_tied, inner
    return action


def _block(samples: Rep) -> Rep | None:
    """``inner`` with ``samples == I (x) inner`` for the smallest such block."""
    size = samples.size
    for block in range(2, size + 1):
        if size % block:
            continue
        parts = split_rep(samples, size // block, block)
        if parts is not None and parts[0].is_trivial:
            return parts[1]
    return None


def _drop_probability(module: nn.Module) -> float | None:
    for name in ("drop_prob", "p"):
        value = getattr(module, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _build_tied(module: nn.Module, site: Site) -> tuple[nn.Module, str]:
    p = _drop_probability(module)
    assert p is not None
    tied = TiedDropPath(site.extra["inner"], p, bool(getattr(module, "scale_by_keep", True)))
    return tied, "stochastic depth with keep masks tied between mirror twins"


@register_module_rule_by_name("einops.layers.torch.Rearrange", "einops.layers.torch.Repeat",
                              "einops.layers.torch.Reduce")
def einops_layer(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Any:
    x = node.args[0]
    action = ctx.action(x)
    if action is None:
        return None
    kind = type(module).__name__.lower()
    lengths = dict(getattr(module, "axes_lengths", {}) or {})
    pattern = module.pattern
    try:
        if kind == "reduce":
            return einops_reduce_action(ctx, node, x, pattern, module.reduction, lengths)
        return einops_move(action, pattern, lengths, kind)
    except ValueError as error:
        raise ctx.fail(node, f"einops layer '{path}': {error}",
                       "keep both joints of every mirror pair") from None
