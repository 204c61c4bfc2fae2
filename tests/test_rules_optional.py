"""rules/optional.py on its own: stochastic depth (any class named DropPath or StochasticDepth,
registered by name) keeps its input's action, and ties its keep mask between mirror twins when
the batch axis folds the joints in; einops layers are data movement or a reduction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize.action import Action
from symmetrize.nn.tied_drop_path import TiedDropPath
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.spec import Spec
from tests.helpers import TOY, action_of, settle

JOINTS, COORDS = Rep.joints(TOY), Rep.coords(2, (0,))
CLIPS = Spec(input="n t j c", output="n t j c", skeleton=TOY, negate=(0,))


class DropPath(nn.Module):
    """Per-sample stochastic depth, as pose-transformer code bases copy it (matched by name)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.drop_prob)
        return x * keep / (1 - self.drop_prob)


class Blocks(nn.Module):
    """A residual branch under stochastic depth, over frames or over joints folded into the
    batch (``(n j) t c``)."""

    def __init__(self, fold_joints: bool, drop: nn.Module | None = None) -> None:
        super().__init__()
        self.fold_joints = fold_joints
        self.drop_path = drop if drop is not None else DropPath(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, j, c = x.shape
        if self.fold_joints:
            h = x.permute(0, 2, 1, 3).reshape(n * j, t, c)
            return (h + self.drop_path(torch.tanh(h))).reshape(n, j, t, c).permute(0, 2, 1, 3)
        h = x.reshape(n * t, j, c)
        return (h + self.drop_path(torch.tanh(h))).reshape(n, t, j, c)


def test_stochastic_depth_over_frames_keeps_the_action_and_the_module() -> None:
    ctx, _ = settle(Blocks(fold_joints=False), CLIPS, torch.randn(2, 4, 3, 2))
    assert action_of(ctx, "drop_path") == action_of(ctx, "tanh") == \
        Action.from_axes((8, 3, 2), {1: JOINTS, 2: COORDS})
    assert "drop_path" not in ctx.sites  # nothing to rewrite


def test_stochastic_depth_over_folded_joints_ties_its_mask_between_twins() -> None:
    ctx, _ = settle(Blocks(fold_joints=True), CLIPS, torch.randn(2, 4, 3, 2))
    folded = Rep.trivial(2).kron(JOINTS)  # the batch axis: two samples of three joints
    assert action_of(ctx, "drop_path") == Action.from_axes((6, 4, 2), {0: folded, 2: COORDS})
    site = ctx.sites["drop_path"]
    assert site.extra["inner"] == JOINTS
    tied, detail = site.build(DropPath(0.5), site)
    assert isinstance(tied, TiedDropPath) and tied.p == 0.5 and tied.inner == JOINTS
    assert detail == "stochastic depth with keep masks tied between mirror twins"


def test_stochastic_depth_without_a_drop_probability_cannot_be_tied() -> None:
    class StochasticDepth(nn.Module):  # matched by name, but no drop_prob / p to read
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(ConversionError, match=r"^node 'drop_path' \(.*test_rules_optional\.py:"
                                              r"\d+\): stochastic depth 'drop_path' drops "
                                              r"samples of an axis the mirror permutes.*Fix: use "
                                              r"timm's DropPath, or average=\['drop_path'\]"):
        settle(Blocks(fold_joints=True, drop=StochasticDepth()), CLIPS, torch.randn(2, 4, 3, 2))


def test_einops_layers_move_and_reduce() -> None:
    layers = pytest.importorskip("einops.layers.torch")
    model = nn.Sequential(layers.Rearrange("n t j c -> n t (j c)"))
    ctx, _ = settle(model, Spec(input="n t j c", output="n t (j c)", skeleton=TOY, negate=(0,)),
                    torch.randn(2, 4, 3, 2))
    assert action_of(ctx, "_0") == Action.from_axes((2, 4, 6), {2: JOINTS.kron(COORDS)})
    model = nn.Sequential(layers.Reduce("n t j c -> n j c", "mean"))
    ctx, _ = settle(model, Spec(input="n t j c", output="n j c", skeleton=TOY, negate=(0,)),
                    torch.randn(2, 4, 3, 2))
    assert action_of(ctx, "_0") == Action.from_axes((2, 3, 2), {1: JOINTS, 2: COORDS})
    # split into 2 x 3 instead of 3 x 2: the mirror mixes the two axes, one group over both
    model = nn.Sequential(layers.Rearrange("n t (a b) -> n t a b", a=2))
    ctx, _ = settle(model, Spec(input="n t (j c)", output="free", skeleton=TOY, negate=(0,)),
                    torch.randn(2, 4, 6))
    action = action_of(ctx, "_0")
    assert not action.is_axiswise and action.groups[0][:2] == (2, 4)
    assert action.merged(2, 4, with_sign=True) == JOINTS.kron(COORDS)
