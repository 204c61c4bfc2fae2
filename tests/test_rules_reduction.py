"""rules/reduction.py on its own: mean/sum/amax over axes the mirror at most permutes, pooling
over time or over the whole joints axis, max pooling only over channels that do not flip sign,
and the einops reduction."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.spec import Spec
from tests.helpers import TOY, Net, action_of, settle

JOINTS, COORDS = Rep.joints(TOY), Rep.coords(2, (0,))
POSE = JOINTS.kron(COORDS)
CLIP = Spec(input="n t j c", output="free", skeleton=TOY, negate=(0,))
CHANNELS_TIME = Spec(input="n (j c) t", output="n (j c)", skeleton=TOY, negate=(0,))
AT = r"^node '\w+' \(.*test_rules_reduction\.py:\d+\): "


@pytest.mark.parametrize(("function", "name", "shape", "axes", "sign"), [
    (lambda m, x: x.mean(1), "mean", (2, 3, 2), {1: JOINTS, 2: COORDS}, 1),
    (lambda m, x: x.sum(1, keepdim=True), "sum_1", (2, 1, 3, 2), {2: JOINTS, 3: COORDS}, 1),
    (lambda m, x: torch.mean(x, (0, 1)), "mean", (3, 2), {0: JOINTS, 1: COORDS}, 1),
    (lambda m, x: x.sum(2), "sum_1", (2, 4, 2), {2: COORDS}, 1),  # over the joints: permuted
    (lambda m, x: x[..., :1].sum(-1), "sum_1", (2, 4, 3), {2: JOINTS}, -1),  # one sign: factors
    (lambda m, x: x.abs().amax(2), "amax", (2, 4, 2), {}, 1),  # max of unsigned values
])
def test_reductions_keep_the_axes_they_keep(function: Callable, name: str,
                                           shape: tuple[int, ...], axes: dict, sign: int) -> None:
    ctx, _ = settle(Net(function), CLIP, torch.randn(2, 4, 3, 2))
    assert action_of(ctx, name) == Action.from_axes(shape, axes, sign)


@pytest.mark.parametrize(("function", "message"), [
    (lambda m, x: x.sum(-1), r"the sum over axes \[3\] mixes elements that flip sign under the "
                             r"mirror\. Fix: reduce over batch, time or joint axes only"),
    (lambda m, x: torch.amax(x, 1), r"the amax over axes \[1\] mixes elements that flip sign"),
    (lambda m, x: F.avg_pool2d(x.permute(0, 3, 1, 2), (1, 2)),
     r"avg_pool2d pools along axis 3, which the mirror permutes \(joints\), with a window that "
     r"does not cover the whole axis\. Fix: pool globally over the joints axis"),
])
def test_reductions_that_mix_signs_or_split_joints_name_the_node(function: Callable,
                                                                message: str) -> None:
    with pytest.raises(ConversionError, match=AT + message):
        settle(Net(function), CLIP, torch.randn(2, 4, 3, 2))


def test_a_constraint_after_a_mean_reaches_the_layer_before_it() -> None:
    spec = Spec(input="n t j c", output="n j c", skeleton=TOY, negate=(0,))
    model = Net(lambda m, x: m.a(x).mean(1), a=nn.Linear(2, 2))
    ctx, _ = settle(model, spec, torch.randn(2, 4, 3, 2), hidden="regular")
    decision = ctx.decisions["a"]
    assert decision.rep == COORDS and decision.constrained_by == "the Spec of output 0"
    assert action_of(ctx, "mean") == Action.from_axes((2, 3, 2), {1: JOINTS, 2: COORDS})


def test_pooling_over_time_and_globally_over_the_joints() -> None:
    model = Net(lambda m, x: m.pool(x)[..., 0], pool=nn.AvgPool1d(4))
    ctx, _ = settle(model, CHANNELS_TIME, torch.randn(2, 6, 4))
    assert action_of(ctx, "pool") == Action.from_axes((2, 6, 1), {1: POSE})
    spec = Spec(input="n c t j", output="n c", skeleton=TOY, negate=(0,))
    model = Net(lambda m, x: F.avg_pool2d(x, x.size()[2:])[..., 0, 0])
    ctx, _ = settle(model, spec, torch.randn(2, 2, 4, 3))
    assert action_of(ctx, "avg_pool2d") == Action.from_axes((2, 2, 1, 1), {1: COORDS})


def _max_pooled() -> Net:
    return Net(lambda m, x: m.b(m.pool(m.a(x))[..., 0]), a=nn.Conv1d(6, 9, 1),
                 pool=nn.MaxPool1d(4), b=nn.Linear(9, 6))


def test_max_pooling_makes_an_automatic_layout_regular() -> None:
    ctx, _ = settle(_max_pooled(), CHANNELS_TIME, torch.randn(2, 6, 4))
    assert ctx.decisions["a"].rep == Rep.regular(9)
    assert ctx.decisions["a"].reason == \
        "regular pairs: 'pool' (max pooling) needs channels that do not flip sign"
    assert action_of(ctx, "pool") == Action.from_axes((2, 9, 1), {1: Rep.regular(9)})


def test_max_pooling_over_a_fixed_signed_layout_names_the_node_and_the_fix() -> None:
    with pytest.raises(ConversionError, match=AT + r"'pool' \(max pooling\) over channels that "
                                                   r"flip sign: max\(-x\) is not -max\(x\)\. Fix: "
                                                   r"use average pooling"):
        settle(_max_pooled(), CHANNELS_TIME, torch.randn(2, 6, 4), hidden="skeleton")


def test_einops_reduce_over_time_and_an_unknown_reduction() -> None:
    einops = pytest.importorskip("einops")
    model = Net(lambda m, x: einops.reduce(x, "n t j c -> n j c", "mean"))
    ctx, gm = settle(model, CLIP, torch.randn(2, 4, 3, 2))
    (node,) = [n for n in gm.graph.nodes if n.op == "call_function"]
    assert ctx.env[node] == Action.from_axes((2, 3, 2), {1: JOINTS, 2: COORDS})
    model = Net(lambda m, x: einops.reduce(x, "n t j c -> n j c", "prod"))
    with pytest.raises(ConversionError, match=AT + r"einops reduction 'prod' has no rule\. Fix: "
                                                   r"use 'mean', 'sum', 'max' or 'min'"):
        settle(model, CLIP, torch.randn(2, 4, 3, 2))
