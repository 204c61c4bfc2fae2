"""rules/movement.py on its own: data movement (view, permute, flip, roll, slicing, cat) is
followed on the acting axes; constants moved with features (a learned token, a position
embedding) become mirror-shared; a slice that splits mirror twins makes an automatic layout
regular, makes a fixed one invariant, or is an error on the input pose; an op that computes new
values has no rule."""

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

JOINTS, COORDS = Rep.joints(TOY), Rep.coords(2, (0,))
POSES = Spec(input="n j c", output="free", skeleton=TOY, negate=(0,))
AT = r"^node '\w+' \(.*test_rules_movement\.py:\d+\): "
X = torch.randn(2, 3, 2)


def embedded(function: Callable[..., torch.Tensor], **modules: nn.Module) -> Net:
    """``function(self, x)`` with a learned token and a learned embedding of up to 9 frames."""
    return Net(function, **modules, token=nn.Parameter(torch.randn(1, 1, 2)),
               frames=nn.Parameter(torch.randn(1, 9, 3, 2)))


@pytest.mark.parametrize(("function", "name", "shape", "axes"), [
    (lambda m, x: x.permute(0, 2, 1), "permute", (2, 2, 3), {1: COORDS, 2: JOINTS}),
    (lambda m, x: x.permute(0, 2, 1).reshape(x.shape[0], -1), "reshape", (2, 6),
     {1: COORDS.kron(JOINTS)}),
    (lambda m, x: x.flip(1), "flip", (2, 3, 2), {1: JOINTS, 2: COORDS}),  # twins stay twins
    (lambda m, x: torch.roll(x, 1, 0), "roll", (2, 3, 2), {1: JOINTS, 2: COORDS}),
    (lambda m, x: x[:, ::2], "getitem", (2, 2, 2), {1: Rep.regular(2), 2: COORDS}),
    (lambda m, x: torch.cat([x, x], -1), "cat", (2, 3, 4), {1: JOINTS, 2: COORDS.repeat(2)}),
])
def test_data_movement_moves_the_action(function: Callable, name: str, shape: tuple[int, ...],
                                        axes: dict) -> None:
    ctx, _ = settle(embedded(function), POSES, X)
    assert action_of(ctx, name) == Action.from_axes(shape, axes)


def test_a_learned_token_concatenated_to_joint_tokens_is_mirror_shared() -> None:
    model = embedded(lambda m, x: torch.cat([m.token.expand(x.shape[0], -1, -1), x], 1))
    ctx, gm = settle(model, POSES, X)
    assert action_of(ctx, "cat") == Action.from_axes((2, 4, 2), {1: Rep.trivial(1) + JOINTS,
                                                                 2: COORDS})
    assert ctx.shared["token"].action == Action.from_axes((1, 1, 2), {2: COORDS})
    assert ctx.shared["token"].why == f"the cat in {ctx.where(node_named(gm, 'cat'))}"


def test_a_position_embedding_sliced_to_the_clip_is_mirror_shared() -> None:
    clips = Spec(input="n t j c", output="free", skeleton=TOY, negate=(0,))
    ctx, _ = settle(embedded(lambda m, x: x + m.frames[:, :x.shape[1]]), clips,
                    torch.randn(2, 4, 3, 2))
    # the frames it slices away are untouched by the mirror: the whole tensor is shared
    assert ctx.shared["frames"].action == Action.from_axes((1, 9, 3, 2), {2: JOINTS, 3: COORDS})
    assert action_of(ctx, "add") == action_of(ctx, "x")


def test_a_slice_that_splits_hidden_twins_makes_the_automatic_layout_regular() -> None:
    model = embedded(lambda m, x: m.b(m.a(x)[:, :4]), a=nn.Linear(6, 9), b=nn.Linear(4, 6))
    ctx, gm = settle(model, TOY_POSE, torch.randn(2, 6))
    decision = ctx.decisions["a"]
    assert decision.rep == Rep.regular(9)
    assert decision.reason == (f"regular pairs: the getitem in "
                               f"{ctx.where(node_named(gm, 'getitem'))} splits mirror twins that "
                               "regular pairs keep together")
    assert action_of(ctx, "getitem") == Action.from_axes((2, 4), {1: Rep.regular(4)})


def test_a_slice_of_a_fixed_layout_makes_that_layer_invariant() -> None:
    model = embedded(lambda m, x: x * torch.sigmoid(m.g(x.abs()))[..., 0:1], g=nn.Linear(6, 2))
    spec = Spec(input="n (j c)", output="n (j c)", skeleton=TOY, negate=(0,))
    ctx, gm = settle(model, spec, torch.randn(2, 6), hidden={"g": "regular"})
    decision = ctx.decisions["g"]
    assert decision.rep == Rep.trivial(2)
    assert decision.constrained_by == (
        f"the getitem in {ctx.where(node_named(gm, 'getitem'))}, which keeps some of 'g''s "
        "channels but not their mirror twins")
    assert action_of(ctx, "getitem") == Action.trivial((2, 1))


@pytest.mark.parametrize(("function", "message"), [
    (lambda m, x: x[:, 1:], r"slicing is not equivariant: it keeps entry 2 of axis 1 but drops "
                            r"its mirror image 0.*Fix: keep both joints of every mirror pair"),
    (lambda m, x: x.cumsum(1), r"no rule for cumsum\. Fix: use ops symmetrize knows, wrap the "
                               r"module calling it with average=\[\.\.\.\], or register a rule"),
])
def test_errors_name_the_node_and_the_fix(function: Callable, message: str) -> None:
    with pytest.raises(ConversionError, match=AT + message):
        settle(embedded(function), POSES, X)
