"""rules/pointwise.py on its own: element-wise activations (modules and functions), softmax, even
and non-odd maths, dropout and identity. An odd function keeps its input's action; a non-odd one
on features that flip sign is switched to tanh (ReLU, the paper) or makes an automatic layout
regular pairs (GELU, SiLU, softmax, exp, ...)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.action import Action
from symmetrize.nn import ChiralActivation
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.spec import Spec
from tests.helpers import TOY, TOY_POSE, action_of, settle

HIDDEN9 = Rep.skeleton_hidden(TOY, 3, 1)
SIGNED = Action.from_axes((2, 9), {1: HIDDEN9})
REGULAR = Action.from_axes((2, 9), {1: Rep.regular(9)})


class Act(nn.Module):
    """``b(f(a(x)))`` with ``f`` a module (``act``) or a function."""

    def __init__(self, act: nn.Module | None = None,
                 function: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Linear(6, 9), act or nn.Identity(), nn.Linear(9, 6)
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = self.act(h) if self.function is None else self.function(h)
        return self.b(h)


@pytest.mark.parametrize("act", [nn.Tanh(), nn.Softsign(), nn.Dropout(0.5), nn.Identity()])
def test_odd_modules_dropout_and_identity_keep_the_action(act: nn.Module) -> None:
    ctx, _ = settle(Act(act), TOY_POSE, torch.randn(2, 6))
    assert action_of(ctx, "act") == SIGNED
    site = ctx.sites.get("act")
    assert site is None or (site.build is None and not site.switch)
    assert not ctx.switched_functions


@pytest.mark.parametrize("activation", ["tanh", "mixed"])
def test_relu_on_flipping_channels_is_switched(activation: str) -> None:
    ctx, _ = settle(Act(nn.ReLU()), TOY_POSE, torch.randn(2, 6), activation=activation)
    assert ctx.decisions["a"].rep == HIDDEN9  # the paper's layout stays
    assert action_of(ctx, "act") == SIGNED
    site = ctx.sites["act"]
    assert site.switch and site.rep_in == HIDDEN9 and site.extra["axis"] == 1
    assert site.extra["mixed"] == (activation == "mixed")
    new, detail = site.build(nn.ReLU(), site)
    if activation == "mixed":
        assert isinstance(new, ChiralActivation) and detail.startswith("activation: odd (tanh)")
    else:
        assert isinstance(new, nn.Tanh) and detail == "activation ReLU -> Tanh"


@pytest.mark.parametrize(("act", "function", "name"), [
    (nn.GELU(), None, "GELU 'act'"), (nn.SiLU(), None, "SiLU 'act'"), (None, F.gelu, "gelu"),
    (None, torch.sigmoid, "sigmoid"), (None, lambda h: torch.softmax(h, -1), "softmax"),
    (None, torch.exp, "exp"),
])
def test_non_odd_ops_make_the_automatic_layout_regular(act: nn.Module | None,
                                                       function: Callable | None,
                                                       name: str) -> None:
    ctx, _ = settle(Act(act, function), TOY_POSE, torch.randn(2, 6))
    decision = ctx.decisions["a"]
    assert decision.rep == Rep.regular(9) and decision.unsigned_only and decision.sticky
    assert decision.reason == decision.constrained_by
    assert decision.reason.startswith(f"regular pairs: {name}")
    assert ctx.marks == {"a": decision.reason}
    assert action_of(ctx, "a") == REGULAR
    assert not ctx.switched_functions
    assert "act" not in ctx.sites or not ctx.sites["act"].switch  # nothing is switched
    assert ctx.decisions["b"].rep == Rep.pose(TOY, 2, (0,))  # after it: the paper's layout


@pytest.mark.parametrize("function", [F.relu, torch.relu, lambda h: h.relu()])
def test_functional_relu_is_switched_at_its_call(function: Callable) -> None:
    ctx, gm = settle(Act(function=function), TOY_POSE, torch.randn(2, 6))
    (node,) = [n for n in gm.graph.nodes if n.name == "relu"]
    assert ctx.switched_functions == {node: "relu"}
    assert node.meta["source"].split(":")[0].endswith("test_rules_pointwise.py")
    assert ctx.env[node] == SIGNED


@pytest.mark.parametrize(("function", "message"), [
    (lambda h: torch.softmax(h, -1), r"softmax of features that flip sign under the mirror\. "
                                     r"Fix: apply it to scores that do not flip sign"),
    (torch.exp, r"exp is applied to features that flip sign under the mirror \(it is not an odd "
                r"function\)\. Fix: apply it to features that do not flip sign"),
    (torch.sqrt, r"sqrt is applied to features that flip sign.*Fix: "),
])
def test_non_odd_ops_on_a_fixed_signed_layout_name_the_node_and_the_fix(function: Callable,
                                                                        message: str) -> None:
    with pytest.raises(ConversionError,
                       match=r"^node '\w+' \(.*test_rules_pointwise\.py:\d+\): " + message):
        settle(Act(function=function), TOY_POSE, torch.randn(2, 6), hidden="skeleton")


def test_even_functions_drop_the_signs_and_keep_the_permutation() -> None:
    ctx, _ = settle(Act(function=torch.abs), TOY_POSE, torch.randn(2, 6))
    assert action_of(ctx, "abs_1") == Action.from_axes((2, 9), {1: HIDDEN9.unsigned()})
    assert ctx.sites["b"].rep_in == HIDDEN9.unsigned()


def test_softmax_commutes_with_the_permutation_of_unsigned_features() -> None:
    ctx, _ = settle(Act(function=lambda h: torch.softmax(h, -1)), TOY_POSE, torch.randn(2, 6),
                    hidden="regular")
    assert action_of(ctx, "softmax") == REGULAR
    assert ctx.decisions["a"].constrained_by is None  # regular already: nothing to change


def test_channel_dropout_over_joints_is_noted() -> None:
    spec = Spec(input="n c t j", output="n c t j", skeleton=TOY, negate=(0,))
    ctx, _ = settle(nn.Sequential(nn.Dropout2d(0.5)), spec, torch.randn(2, 2, 5, 3))
    assert ctx.notes == ["0: channel dropout (Dropout2d) over (2, 2, 5, 3) drops a channel at "
                         "all joints; equivariant in distribution, not sample by sample"]
    ctx, _ = settle(nn.Sequential(nn.Dropout2d(0.0)), spec, torch.randn(2, 2, 5, 3))
    assert ctx.notes == []
