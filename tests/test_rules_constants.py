"""rules/constants.py on its own: a constant that meets mirrored features must equal its mirror
image. It is followed back through element-wise arithmetic and data movement to the parameters
(made mirror-shared) and buffers (checked) it is computed from."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from tests.helpers import TOY, TOY_POSE, Net, action_of, node_named, settle

POSE = Rep.pose(TOY, 2, (0,))
AT = r"^node '\w+' \(.*test_rules_constants\.py:\d+\): "
X = torch.randn(2, 6)


def learned(function: Callable[..., torch.Tensor]) -> Net:
    """``function(self, x)`` with learned vectors ``p``, ``q``, a learned initial state ``h``
    and a learned scalar ``s``."""
    return Net(function, p=nn.Parameter(torch.randn(6)), q=nn.Parameter(torch.randn(6)),
               h=nn.Parameter(torch.randn(1, 6)), s=nn.Parameter(torch.randn(1)))


def test_an_offset_computed_from_two_parameters_shares_both() -> None:
    ctx, _ = settle(learned(lambda m, x: x + (m.p - m.q)), TOY_POSE, X)
    signed = Action.from_axes((6,), {0: POSE})
    assert ctx.shared["p"].action == ctx.shared["q"].action == signed


def test_in_a_product_of_constants_one_factor_carries_the_signs() -> None:
    ctx, _ = settle(learned(lambda m, x: x + m.p * m.q), TOY_POSE, X)
    assert ctx.shared["p"].action == Action.from_axes((6,), {0: POSE})
    assert ctx.shared["q"].action == Action.from_axes((6,), {0: POSE.unsigned()})


def test_a_learned_state_expanded_to_the_batch_is_shared_before_the_expand() -> None:
    ctx, gm = settle(learned(lambda m, x: x + m.h.expand(x.shape[0], -1)), TOY_POSE, X)
    assert ctx.shared["h"].action == Action.from_axes((1, 6), {1: POSE})
    assert ctx.shared["h"].why == f"the add in {ctx.where(node_named(gm, 'add'))}"


def test_a_factory_constant_is_a_constant_and_a_symmetric_one_passes() -> None:
    ctx, gm = settle(learned(lambda m, x: x + torch.zeros(x.shape[0], 6)), TOY_POSE, X)
    assert ctx.is_constant(node_named(gm, "zeros"))  # sizes read off x do not count
    assert not ctx.is_constant(node_named(gm, "add")) and not ctx.shared
    assert action_of(ctx, "add") == action_of(ctx, "x")


@pytest.mark.parametrize(("function", "message"), [
    (lambda m, x: x + m.p.cumsum(0),
     r"the constant 'cumsum' is computed by cumsum, through which symmetrize cannot share the "
     r"learned tensors it comes from\. Fix: compute it from parameters by element-wise"),
    (lambda m, x: x + m.s,
     r"the constant 's' of shape \(1,\) is broadcast along axis 1, on which the mirror flips "
     r"signs\. Fix: give the constant that axis in full"),
    (lambda m, x: (x + m.p) * m.p,
     r"parameter 'p' is used by the add in node 'add' .* and by the mul in node 'mul' .*, which "
     r"need different mirror symmetries\. Fix: use separate parameters for the two uses"),
])
def test_errors_name_the_constant_the_node_and_the_fix(function: Callable, message: str) -> None:
    with pytest.raises(ConversionError, match=AT + message):
        settle(learned(function), TOY_POSE, X)
