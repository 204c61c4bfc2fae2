"""rules/arithmetic.py on its own: add/sub couple the two sides (a residual connection constrains
the layer behind one of them), mul/div multiply the signs, a constant operand must be
mirror-symmetric (a learned one becomes mirror-shared, a buffer is checked), a number added to
features that flip sign makes an automatic layout regular."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.spec import Spec
from tests.helpers import TOY, TOY_POSE, Net, action_of, node_named, settle

POSE = Rep.pose(TOY, 2, (0,))
HIDDEN9 = Rep.skeleton_hidden(TOY, 3, 1)
AT = r"^node '\w+' \(.*test_rules_arithmetic\.py:\d+\): "


def layered(function: Callable[..., torch.Tensor]) -> Net:
    """``function(self, x)`` with three layers, a learned bias and two buffers."""
    return Net(function, a=nn.Linear(6, 9), b=nn.Linear(9, 6), c=nn.Linear(6, 6),
               bias=nn.Parameter(torch.randn(6)), offset=torch.randn(6),
               # symmetric under POSE: twins (0, 1) <-> (4, 5) alike, the centre's x entry kept
               scale=torch.tensor([1.0, 2.0, 3.0, 4.0, 1.0, 2.0]))


def test_a_residual_add_constrains_the_layer_behind_it() -> None:
    model = layered(lambda m, x: m.b(torch.tanh(m.a(x))) + x)
    ctx, gm = settle(model, TOY_POSE, torch.randn(2, 6), hidden={"b": "regular"})
    decision = ctx.decisions["b"]
    assert decision.rep == POSE  # was regular pairs: the input pose's Rep now
    assert decision.constrained_by == f"the add in {ctx.where(node_named(gm, 'add'))}"
    assert decision.reason == f"fixed by {decision.constrained_by}"
    assert action_of(ctx, "add") == action_of(ctx, "x") == Action.from_axes((2, 6), {1: POSE})
    assert ctx.prov[node_named(gm, "add")].path == "b"  # a constraint on the sum reaches b


def test_adding_two_layers_couples_their_decisions() -> None:
    model = layered(lambda m, x: m.c(x) + m.b(torch.tanh(m.a(x))))
    ctx, _ = settle(model, TOY_POSE, torch.randn(2, 6), hidden="regular")
    assert ctx.coupled_groups() == [["b", "c"]]
    assert ctx.couplings.edges["b", "c"]["node"] == "add"
    assert ctx.decisions["c"].rep == ctx.decisions["b"].rep == POSE  # the output Spec


def test_a_product_of_features_multiplies_their_signs() -> None:
    ctx, _ = settle(layered(lambda m, x: m.b(m.a(x) * m.a(x))), TOY_POSE, torch.randn(2, 6))
    assert action_of(ctx, "mul") == Action.from_axes((2, 9), {1: HIDDEN9.unsigned()})
    assert ctx.sites["b"].rep_in == HIDDEN9.unsigned()


def test_a_per_joint_gate_broadcast_over_coordinates_takes_their_permutation() -> None:
    gate = Net(lambda m, x: torch.sigmoid(m.g(x.abs())) * x, g=nn.Linear(2, 1))
    spec = Spec(input="n j c", output="n j c", skeleton=TOY, negate=(0,))
    ctx, _ = settle(gate, spec, torch.randn(2, 3, 2))
    assert action_of(ctx, "sigmoid") == Action.from_axes((2, 3, 1), {1: Rep.joints(TOY)})
    assert action_of(ctx, "mul") == action_of(ctx, "x")


def test_a_learned_offset_becomes_mirror_shared() -> None:
    ctx, gm = settle(layered(lambda m, x: x + m.bias), TOY_POSE, torch.randn(2, 6))
    (shared,) = ctx.shared.values()
    assert shared.path == "bias" and shared.action == Action.from_axes((6,), {0: POSE})
    assert shared.why == f"the add in {ctx.where(node_named(gm, 'add'))}"


def test_a_scale_needs_only_the_permutation_and_a_symmetric_buffer_passes() -> None:
    ctx, _ = settle(layered(lambda m, x: x * m.scale), TOY_POSE, torch.randn(2, 6))
    assert action_of(ctx, "mul") == action_of(ctx, "x") and not ctx.shared
    ctx, _ = settle(layered(lambda m, x: x * m.bias), TOY_POSE, torch.randn(2, 6))
    assert ctx.shared["bias"].action == Action.from_axes((6,), {0: POSE.unsigned()})


def test_adding_a_number_makes_an_automatic_layout_regular() -> None:
    ctx, _ = settle(layered(lambda m, x: m.b(m.a(x) + 1.0)), TOY_POSE, torch.randn(2, 6))
    decision = ctx.decisions["a"]
    assert decision.rep == Rep.regular(9)
    assert decision.reason == "regular pairs: the add of the constant 1.0 needs channels that " \
                              "do not flip sign"
    assert action_of(ctx, "add") == Action.from_axes((2, 9), {1: Rep.regular(9)})


@pytest.mark.parametrize(("function", "hidden", "message"), [
    (lambda m, x: m.b(m.a(x) + 1.0), "skeleton",
     r"add of the constant 1\.0 to features that flip sign under the mirror\. Fix: remove the "
     r"offset"),
    (lambda m, x: 1.0 / x, "auto",
     r"a number divided by features that flip sign\. Fix: divide by features that do not"),
    (lambda m, x: x + m.offset, "auto",
     r"the constant 'offset' \(used by the add in node 'add'.*\) is not mirror-symmetric: "
     r"entry \(\d,\) is \S+ but its mirror image needs \S+\. Fix: make the constant"),
])
def test_errors_name_the_node_and_the_fix(function: Callable, hidden: str, message: str) -> None:
    with pytest.raises(ConversionError, match=AT + message):
        settle(layered(function), TOY_POSE, torch.randn(2, 6), hidden=hidden)


class TwoInputs(nn.Module):
    def __init__(self, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.op(x, y)


@pytest.mark.parametrize(("op", "message"), [
    (torch.add, r"the add combines tensors with different mirror actions \(Action\(\(2, 6\): "
                r"axis 1.*\) and Action\(\(2, 6\): untouched\)\)\. Fix: add tensors with the "
                r"same joints/coordinates layout"),
    (torch.mul, r"a mul of two features that the mirror permutes differently\. Fix: combine "
                r"tensors with the same joints layout"),
])
def test_two_inputs_that_the_mirror_treats_differently_cannot_be_combined(
        op: Callable, message: str) -> None:
    spec = Spec(input=["n (j c)", None], output="free", skeleton=TOY, negate=(0,))
    with pytest.raises(ConversionError, match=AT + message):
        settle(TwoInputs(op), spec, torch.randn(2, 6), torch.randn(2, 6))
