"""rules/normalization.py on its own: LayerNorm subtracts a mean, so it needs channels that do not
flip sign (an automatic layout becomes regular pairs, a fixed signed one is an error); RMSNorm
takes any signed permutation. Their affine weight (and LayerNorm's bias) become mirror-shared."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from tests.helpers import TOY, TOY_POSE, action_of, settle

HIDDEN9 = Rep.skeleton_hidden(TOY, 3, 1)
REGULAR9 = Rep.regular(9)


class Normed(nn.Module):
    """``b(norm(a(x)))``, the norm a module or a function of ``self``."""

    def __init__(self, norm: nn.Module | None = None,
                 function: Callable[..., torch.Tensor] | None = None) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(6, 9), norm or nn.Identity(), nn.Linear(9, 6)
        self.function = function
        self.gain = nn.Parameter(torch.randn(9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(self.norm(h) if self.function is None else self.function(self, h))


def test_layer_norm_makes_the_automatic_layout_regular_and_shares_weight_and_bias() -> None:
    ctx, _ = settle(Normed(nn.LayerNorm(9)), TOY_POSE, torch.randn(2, 6))
    decision = ctx.decisions["a"]
    assert decision.rep == REGULAR9
    assert decision.reason == "regular pairs: LayerNorm 'norm', which subtracts a mean, needs " \
                              "channels that do not flip sign"
    assert action_of(ctx, "norm") == action_of(ctx, "a") == Action.from_axes((2, 9),
                                                                             {1: REGULAR9})
    assert set(ctx.shared) == {"norm.weight", "norm.bias"}
    for name in ("weight", "bias"):
        shared = ctx.shared[f"norm.{name}"]
        assert shared.action == Action.from_axes((9,), {0: REGULAR9})
        assert shared.why == f"LayerNorm 'norm' ({name})"


def test_rms_norm_keeps_the_signed_layout_and_shares_an_unsigned_weight() -> None:
    ctx, _ = settle(Normed(nn.RMSNorm(9)), TOY_POSE, torch.randn(2, 6))
    assert ctx.decisions["a"].rep == HIDDEN9  # RMS is the same for x and -x: no constraint
    assert action_of(ctx, "norm") == Action.from_axes((2, 9), {1: HIDDEN9})
    assert list(ctx.shared) == ["norm.weight"]
    assert ctx.shared["norm.weight"].action == Action.from_axes((9,), {0: HIDDEN9.unsigned()})


def test_functional_layer_norm_shares_its_weight_argument() -> None:
    model = Normed(function=lambda m, h: F.layer_norm(h, (9,), m.gain))
    ctx, _ = settle(model, TOY_POSE, torch.randn(2, 6))
    assert ctx.decisions["a"].reason.startswith("regular pairs: layer_norm, which subtracts")
    assert ctx.shared["gain"].action == Action.from_axes((9,), {0: REGULAR9})
    assert ctx.shared["gain"].why == "layer_norm (weight)"


def test_layer_norm_over_a_fixed_signed_layout_names_the_node_and_the_fixes() -> None:
    with pytest.raises(ConversionError, match=r"^node 'norm' \(.*test_rules_normalization\.py:"
                                              r"\d+\): LayerNorm 'norm' subtracts the mean over "
                                              r"channels that flip sign under the mirror \(Rep\(9"
                                              r".*Fix: convert with hidden='regular' or 'auto'.*"
                                              r"or use RMSNorm"):
        settle(Normed(nn.LayerNorm(9)), TOY_POSE, torch.randn(2, 6), hidden="skeleton")
