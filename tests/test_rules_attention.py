"""rules/attention.py on its own: scaled dot-product attention over joint tokens. q and k need
the same per-head Reps and no sign left in their scores (an automatic layout becomes regular
pairs; a sign layout cancels in the dot product); the output transforms like v; a mask must be a
mirror-symmetric constant; causal masks over permuted tokens and grouped-query attention are
refused."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.rules.hidden_policy import sign_layout
from symmetrize.spec import Spec
from tests.helpers import TOY, action_of, settle

JOINTS = Rep.joints(TOY)
TOKENS = Spec(input="n j c", output="n j c", skeleton=TOY, negate=(0,))
AT = r"^node 'scaled_dot_product_attention' \(.*test_rules_attention\.py:\d+\): "
SYMMETRIC = torch.tensor([[0.0, -1.0, -2.0], [-1.0, 0.0, -1.0], [-2.0, -1.0, 0.0]])


class Attention(nn.Module):
    """One head of attention between the joints of ``(N, J, 2)`` poses."""

    def __init__(self, mask: torch.Tensor | None = None, **options: Any) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(2, 4), nn.Linear(2, 4), nn.Linear(2, 4),
                                          nn.Linear(4, 2))
        self.options = options
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x)[:, None], self.k(x)[:, None], self.v(x)[:, None]
        if self.mask is not None:
            self.options["attn_mask"] = self.mask
        return self.o(F.scaled_dot_product_attention(q, k, v, **self.options)[:, 0])


@pytest.mark.parametrize("mask", [None, SYMMETRIC])
def test_automatic_q_and_k_become_regular_and_the_output_follows_v(
        mask: torch.Tensor | None) -> None:
    ctx, _ = settle(Attention(mask), TOKENS, torch.randn(2, 3, 2))
    for path in ("q", "k"):
        assert ctx.decisions[path].rep == Rep.regular(4)
        assert ctx.decisions[path].reason == "regular pairs: attention needs channels that do " \
                                             "not flip sign"
    assert ctx.decisions["v"].rep == sign_layout(4, 1 / 3)  # v may flip sign: nothing forbids it
    out = action_of(ctx, "scaled_dot_product_attention")
    assert out == Action.from_axes((2, 1, 3, 4), {2: JOINTS, 3: sign_layout(4, 1 / 3)})
    assert not ctx.shared  # a buffer mask is checked, never shared


def test_signs_that_cancel_in_the_scores_are_allowed() -> None:
    ctx, _ = settle(Attention(), TOKENS, torch.randn(2, 3, 2), hidden="skeleton")
    # q and k flip the same channel: q . k does not change sign, softmax sees no sign
    assert ctx.decisions["q"].rep == ctx.decisions["k"].rep == sign_layout(4, 1 / 3)
    assert action_of(ctx, "scaled_dot_product_attention") == \
        Action.from_axes((2, 1, 3, 4), {2: JOINTS, 3: sign_layout(4, 1 / 3)})


@pytest.mark.parametrize(("model", "message"), [
    (Attention(is_causal=True), r"a causal mask over tokens that the mirror permutes\. Fix: use "
                                r"is_causal only for attention over frames"),
    (Attention(enable_gqa=True), r"grouped-query attention \(enable_gqa=True\) has no rule\. "
                                 r"Fix: repeat the key/value heads"),
])
def test_refused_options_name_the_node_and_the_fix(model: nn.Module, message: str) -> None:
    with pytest.raises(ConversionError, match=AT + message):
        settle(model, TOKENS, torch.randn(2, 3, 2))


def test_an_asymmetric_mask_names_the_entry_and_the_fix() -> None:
    mask = SYMMETRIC.clone()
    mask[0, 2] = -3.0
    with pytest.raises(ConversionError, match=r"^node 'mask' .*the constant 'mask' \(used by the "
                                              r"attention mask of node 'scaled_dot_product_"
                                              r"attention'.*\) is not mirror-symmetric: entry "
                                              r"\(0, 2\) is -3 but its mirror image needs -2\. "
                                              r"Fix: make the constant"):
        settle(Attention(mask), TOKENS, torch.randn(2, 3, 2))
