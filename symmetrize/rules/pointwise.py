"""Rules for element-wise activations (modules and functions), Dropout and Identity.

An element-wise function keeps its input's Rep when it commutes with the mirror: always for the
permutation, and for a sign flip only if it is odd (``f(-x) = -f(x)``: tanh, sin, softsign). A
non-odd activation (ReLU, GELU, ...) on features that flip sign is *switched*: to tanh (the
paper), or with ``activation="mixed"`` to tanh on the flipping channels only. Functional calls
(``F.relu(x)``, ``torch.relu``, ``x.relu()``) are switched at their source line by the rewrite.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from symmetrize.action import Action
from symmetrize.nn import ChiralActivation, is_odd
from symmetrize.nn.fast_tanh import SwitchedTanh
from symmetrize.rep import Rep
from symmetrize.rules.context import Context, Site
from symmetrize.rules.registry import register_function_rule, register_module_rule

POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.SELU, nn.LeakyReLU,
                     nn.Sigmoid, nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Tanh,
                     nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Hardtanh,
                     nn.PReLU)
PASS_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity, nn.AlphaDropout)
ODD_FUNCTIONS = (torch.tanh, F.tanh, torch.neg, operator.neg, torch.sin, F.softsign,
                 F.tanhshrink, F.softshrink, F.hardshrink, torch.sinh, torch.asinh, torch.atan,
                 "tanh", "neg", "sin", "tanh_", "neg_")
#: non-odd element-wise activations a rewrite can switch; value: the name in reports
NON_ODD_FUNCTIONS: dict[Any, str] = {
    torch.relu: "relu", F.relu: "relu", torch.relu_: "relu", F.relu_: "relu", F.relu6: "relu6",
    F.gelu: "gelu", F.silu: "silu", F.elu: "elu", F.leaky_relu: "leaky_relu", F.mish: "mish",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.softplus: "softplus",
    F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid", F.selu: "selu", F.celu: "celu",
    "relu": "relu", "relu_": "relu", "sigmoid": "sigmoid"}
#: non-odd activations that the paper switches to tanh on flipping channels; any other (GELU,
#: SiLU, sigmoid, ...) makes an automatic hidden layout regular instead
SWITCHED_UNDER_AUTO = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.Tanh)
SWITCHED_FUNCTIONS_UNDER_AUTO = frozenset({"relu", "relu6", "leaky_relu"})
#: even functions (``f(-x) = f(x)``): the output keeps the permutation, loses the signs
EVEN_FUNCTIONS = (torch.abs, torch.square, torch.cos, torch.cosh, "abs", "square", "cos")
#: neither odd nor even maths: an error on features that flip sign
NON_ODD_MATHS = (torch.exp, torch.log, torch.sqrt, torch.rsqrt, "exp", "log", "sqrt", "rsqrt")


def _build_activation(module: nn.Module, site: Site) -> tuple[nn.Module, str]:
    if site.extra.get("mixed") and site.rep_in is not None:
        return (ChiralActivation(site.rep_in, activation=module, odd=SwitchedTanh(),
                                 dim=site.extra["axis"]),
                "activation: odd (tanh) on flipping channels")
    inplace = getattr(module, "inplace", False) is True  # as the module it replaces
    return SwitchedTanh(inplace), f"activation {type(module).__name__} -> Tanh"


def sign_axis(action: Action) -> tuple[int, Rep] | None:
    """An axis that carries every sign of ``action`` (the others unsigned) and its Rep, or
    ``None``."""
    ndim = action.ndim
    order = [1, ndim - 1, *range(ndim)] if ndim > 1 else [0]
    for axis in dict.fromkeys(order):
        found = action.axes(sign_on=axis)
        if found is not None and not any(r.n_negated for a, r in found.items() if a != axis):
            return axis, found[axis]
    return None


@register_module_rule(*PASS_MODULES)
def passthrough(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Any:
    if isinstance(module, (nn.Dropout1d, nn.Dropout2d)):
        x = node.args[0]
        shape = ctx.shape(x)
        factors = ctx.axes(node, x, 1, f"'{path}'")
        if any(r.n_pairs for a, r in factors.items() if a != 1) and module.p > 0:
            ctx.note(f"{path}: channel dropout ({type(module).__name__}) over {shape} drops a "
                     "channel at all joints; equivariant in distribution, not sample by sample")
    ctx.inherit(node, node.args[0])
    return ctx.action(node.args[0])


@register_module_rule(*POINTWISE_MODULES)
def activation_module(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Any:
    x = node.args[0]
    flat = ctx.action(x)
    site = ctx.site(path, module, node)
    if not is_odd(module) and _auto_forbids(ctx, x, module):
        ctx.mark_unsigned(x, f"{type(module).__name__} '{path}'")
    if flat is not None and flat.has_signs and not is_odd(module):
        if _auto_forbids(ctx, x, module) and ctx.forbid_signs(
                x, f"{type(module).__name__} '{path}'"):
            ctx.inherit(node, x)
            return flat.unsigned()
        found = sign_axis(flat)
        channels = None if found is None else found[1]
        # a module shared by call sites with different Reps can only become tanh
        same = not site.switch or (site.rep_in == channels and found is not None and
                                   site.extra.get("axis") == found[0])
        site.rep_in = channels if same else None
        site.switch = True
        site.build = _build_activation
        site.extra.update(mixed=ctx.activation == "mixed" and channels is not None,
                          axis=None if found is None else found[0])
    ctx.inherit(node, x)
    return flat


@register_function_rule(*ODD_FUNCTIONS, F.dropout, torch.dropout, F.dropout1d, F.dropout2d,
                        "contiguous", "clone", "detach", torch.clone, F.alpha_dropout)
def keeps_rep(ctx: Context, node: fx.Node) -> Any:
    ctx.inherit(node, node.args[0])
    return ctx.action(node.args[0])


@register_function_rule(*NON_ODD_FUNCTIONS)
def activation_function(ctx: Context, node: fx.Node) -> Any:
    x = node.args[0]
    flat = ctx.action(x)
    name = NON_ODD_FUNCTIONS[node.target]
    if name not in SWITCHED_FUNCTIONS_UNDER_AUTO:
        ctx.mark_unsigned(x, name)
    if flat is not None and flat.has_signs:
        if name not in SWITCHED_FUNCTIONS_UNDER_AUTO and ctx.forbid_signs(x, f"{name}"):
            ctx.inherit(node, x)
            return flat.unsigned()
        ctx.switched_functions[node] = name
    ctx.inherit(node, x)
    return flat


@register_module_rule(nn.Softmax, nn.LogSoftmax)
def softmax_module(ctx: Context, node: fx.Node, module: nn.Module, path: str) -> Any:
    return _softmax(ctx, node, f"'{path}'")


@register_function_rule(F.softmax, torch.softmax, "softmax", F.log_softmax, torch.log_softmax,
                        "log_softmax")
def softmax_function(ctx: Context, node: fx.Node) -> Any:
    return _softmax(ctx, node, "softmax")


def _softmax(ctx: Context, node: fx.Node, what: str) -> Any:
    """Softmax commutes with permutations (along its axis too), never with a sign flip."""
    x = node.args[0]
    flat = ctx.action(x)
    ctx.mark_unsigned(x, what)
    if flat is not None and flat.has_signs:
        if ctx.forbid_signs(x, what):
            ctx.inherit(node, x)
            return flat.unsigned()
        raise ctx.fail(node, f"{what} of features that flip sign under the mirror",
                       "apply it to scores that do not flip sign (a product of two features "
                       "with the same layout, or features of a 'regular' hidden layer)")
    if flat is not None:
        ctx.axes(node, x, -1, what)  # the mirror must act axis by axis
    ctx.inherit(node, x)  # commutes with permutations: constraints pass through
    return flat


@register_function_rule(*EVEN_FUNCTIONS)
def even_function(ctx: Context, node: fx.Node) -> Any:
    flat = ctx.action(node.args[0])
    return None if flat is None else flat.unsigned()


@register_function_rule(*NON_ODD_MATHS)
def non_odd_maths(ctx: Context, node: fx.Node) -> Any:
    x = node.args[0]
    flat = ctx.action(x)
    name = node.target if isinstance(node.target, str) else node.target.__name__
    ctx.mark_unsigned(x, name)
    if flat is not None and flat.has_signs:
        if ctx.forbid_signs(x, name):
            ctx.inherit(node, x)
            return flat.unsigned()
        raise ctx.fail(node, f"{name} is applied to features that flip sign under the mirror "
                             "(it is not an odd function)",
                       "apply it to features that do not flip sign, or hidden='regular' so no "
                       "hidden channel flips sign")
    ctx.inherit(node, x)
    return flat


def _auto_forbids(ctx: Context, x: fx.Node, module: nn.Module) -> bool:
    """A non-odd activation the paper does not switch (GELU, SiLU, ...)."""
    return not isinstance(module, SWITCHED_UNDER_AUTO)
