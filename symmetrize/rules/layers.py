"""Rules for the channel-mixing layers (Linear, Conv1d/2d, LSTM/GRU) and batch normalisation.

A channel-mixing layer ends a chain of propagation: its output Rep on the channel axis is a
*decision* (the hidden policy, unless a residual connection or the output Spec constrains it).
The mirror may also act on other axes of its input (joints on ST-GCN's ``V`` axis); a Linear
passes those through, a convolution only if its kernel never slides across them.
"""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from symmetrize.action import Action
from symmetrize.nn import (
    ChiralBatchNorm1d,
    ChiralBatchNorm2d,
    ChiralConv1d,
    ChiralConv2d,
    ChiralGRU,
    ChiralGRUCell,
    ChiralLinear,
    ChiralLSTM,
    ChiralLSTMCell,
)
from symmetrize.nn.shared import ChiralModule
from symmetrize.rep import Rep
from symmetrize.rules.context import Context, Site
from symmetrize.rules.registry import register_module_rule

_TWINS: dict[type, Any] = {nn.Linear: ChiralLinear, nn.Conv1d: ChiralConv1d,
                           nn.Conv2d: ChiralConv2d, nn.BatchNorm1d: ChiralBatchNorm1d,
                           nn.BatchNorm2d: ChiralBatchNorm2d, nn.LSTM: ChiralLSTM,
                           nn.GRU: ChiralGRU, nn.LSTMCell: ChiralLSTMCell,
                           nn.GRUCell: ChiralGRUCell}


def _moves(factors: dict[int, Rep]) -> bool:
    """Whether any of these axis Reps moves elements (a non-identity permutation)."""
    return any(r.n_pairs for r in factors.values())


def _twin(module: nn.Module) -> Any:
    return next(twin for plain, twin in _TWINS.items() if isinstance(module, plain))


def _build_mixing(module: nn.Module, site: Site) -> tuple[nn.Module, str]:
    twin = _twin(module)
    return twin.from_dense(module, site.rep_in, site.rep_out), f"replaced by {twin.__name__}"


def _build_norm(module: nn.Module, site: Site) -> tuple[nn.Module, str]:
    twin = _twin(module)
    return twin.from_dense(module, site.rep_in), f"replaced by {twin.__name__}"


@register_module_rule(ChiralModule)
def already_chiral(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Any:
    raise ctx.fail(node, f"module '{path}' is already chiral", "convert a plain model")


@register_module_rule(nn.Linear, nn.Conv1d, nn.Conv2d)
def channel_mixing(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Rep:
    """Linear mixes the last axis, Conv1d/Conv2d axis 1; other axes pass through."""
    x = node.args[0]
    shape = tuple(x.meta["example_value"].shape)
    is_conv = isinstance(module, (nn.Conv1d, nn.Conv2d))
    axis = 1 if is_conv else len(shape) - 1
    if is_conv and len(shape) == module.weight.dim() - 1:  # unbatched (C, L) / (C, H, W)
        axis = 0
    if is_conv and module.groups != 1:
        raise ctx.fail(node, f"grouped convolution '{path}' (groups={module.groups}) has no rule",
                       f"use groups=1, or average=['{path}']")
    factors = ctx.axes(node, x, axis, f"'{path}'")
    rep_in = factors[axis]
    others = {a: r for a, r in factors.items() if a != axis and not r.is_trivial}
    if is_conv:
        spatial0 = axis + 1
        for a in others:
            k = a - spatial0
            if k < 0:
                continue
            slides = (module.kernel_size[k] != 1 or module.stride[k] != 1 or
                      (not isinstance(module.padding, str) and module.padding[k] != 0))
            if slides:
                raise ctx.fail(node, f"convolution '{path}' slides its kernel (size "
                                     f"{module.kernel_size[k]}, stride {module.stride[k]}) along "
                                     f"axis {a}, which the mirror permutes (joints)",
                               "use kernel size 1, stride 1 and no padding along the joints "
                               f"axis (an ST-GCN (k, 1) kernel), or average=['{path}']")
    if module.bias is not None and any(r.n_negated for r in others.values()):
        raise ctx.fail(node, f"'{path}' adds a bias to features whose sign flips along an axis "
                             "other than its channel axis",
                       "use bias=False, or lay the features out with signs on the channel axis")
    width = module.out_channels if is_conv else module.out_features
    rep_out = ctx.decide(path, width, rep_in,
                         joints_elsewhere=_moves(others) and not rep_in.n_pairs)
    shape = ctx.shape(node)
    ctx.record(node, module, path, rep_in, rep_out, build=_build_mixing, axis=axis,
               others=others, shape=shape)
    ctx.origin(node, path)
    return Action.from_axes(shape, {**others, axis: rep_out})


@register_module_rule(nn.BatchNorm1d, nn.BatchNorm2d)
def batch_norm(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Rep:
    """Statistics per channel over every other axis: those may be permuted, never signed."""
    x = node.args[0]
    factors = ctx.axes(node, x, 1, f"'{path}'")
    if any(r.n_negated for a, r in factors.items() if a != 1):
        raise ctx.fail(node, f"'{path}' normalises over an axis on which the mirror flips signs",
                       "put the sign-flipping coordinates on the channel axis")
    ctx.record(node, module, path, factors[1], factors[1], build=_build_norm, axis=1)
    ctx.inherit(node, x)
    return ctx.action(x)


@register_module_rule(nn.LSTM, nn.GRU)
def recurrent(ctx: Context, node: fx.Node, module: nn.RNNBase, path: str) -> Any:
    """Input features on the last axis; the hidden Rep is the decision; states carry it."""
    if module.proj_size:
        raise ctx.fail(node, f"'{path}' uses proj_size", "use proj_size=0")
    rep_in = ctx.channel(node, node.args[0], -1, f"'{path}'")
    rep_hidden = ctx.decide(path, module.hidden_size, rep_in)
    out, states = node.meta["example_value"]
    ctx.record(node, module, path, rep_in, rep_hidden, build=_build_mixing, axis=-1,
               others={}, shape=tuple(out.shape))
    directions = 2 if module.bidirectional else 1
    state_flat = [Action.from_axes(tuple(s.shape), {-1: rep_hidden}) for s in
                  (states if isinstance(states, tuple) else (states,))]
    hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
    if hx is not None:
        # (h0, c0) arrives as one tuple-valued node (an RNN's returned state) or as a tuple
        parts = hx if isinstance(hx, (tuple, list)) else [hx]
        have: list[Any] = []
        for part in parts:
            found = ctx.action(part)
            have.extend(found if isinstance(found, tuple) else [found])
        if have != state_flat:
            if len(parts) != len(state_flat) or not all(isinstance(p, fx.Node) for p in parts):
                raise ctx.fail(node, f"the initial state of '{path}' carries mirror Reps that "
                                     f"differ from its hidden Rep {rep_hidden}",
                               f"give '{path}' and the module producing its state the same "
                               "hidden Rep (hidden={...})")
            for part, wanted in zip(parts, state_flat, strict=True):
                ctx.require(part, wanted, f"the initial state of '{path}'")
    out_flat = Action.from_axes(tuple(out.shape), {-1: rep_hidden.repeat(directions)})
    # a getitem on this tuple output takes this provenance (rules.movement)
    ctx.origin(node, path, halve=directions == 2)
    return (out_flat, tuple(state_flat) if isinstance(states, tuple) else state_flat[0])


@register_module_rule(nn.LSTMCell, nn.GRUCell)
def recurrent_cell(ctx: Context, node: fx.Node, module: nn.RNNCellBase, path: str) -> Any:
    """One step: features on the last axis, the state (h, or (h, c)) carries the hidden Rep."""
    rep_in = ctx.channel(node, node.args[0], -1, f"'{path}'")
    rep_hidden = ctx.decide(path, module.hidden_size, rep_in)
    out = node.meta["example_value"]
    outs = out if isinstance(out, tuple) else (out,)
    ctx.record(node, module, path, rep_in, rep_hidden, build=_build_mixing, axis=-1,
               others={}, shape=tuple(outs[0].shape))
    state_flat = [Action.from_axes(tuple(o.shape), {-1: rep_hidden}) for o in outs]
    hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
    if hx is not None:
        parts = list(hx) if isinstance(hx, (tuple, list)) else [hx]
        if isinstance(ctx.action(hx), tuple):  # (h, c) as one tuple-valued node
            if ctx.action(hx) != tuple(state_flat):
                raise ctx.fail(node, f"the state passed to '{path}' carries mirror Reps that "
                                     f"differ from its hidden Rep {rep_hidden}",
                               f"give '{path}' and the module producing its state the same "
                               "hidden Rep (hidden={...})")
        else:
            for part, wanted in zip(parts, state_flat, strict=True):
                if not isinstance(part, fx.Node):
                    continue
                ctx.require(part, wanted, f"the state of '{path}'")
    ctx.origin(node, path)
    return tuple(state_flat) if isinstance(out, tuple) else state_flat[0]
