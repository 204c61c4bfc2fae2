"""rules/hidden_policy.py on its own: which Rep a channel-mixing layer's output gets when nothing
fixes it, for every form of the ``hidden`` policy, and how a policy reaches a decision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from symmetrize.rep import Rep
from symmetrize.rules.hidden_policy import check_policy, choose, sign_layout, skeleton_layout
from symmetrize.skeleton import Skeleton
from tests.helpers import TOY, TOY_POSE, settle


def _choose(hidden: Any, width: int, path: str = "a", fraction: float = 1 / 3,
            joints_elsewhere: bool = False) -> tuple[Rep, bool, str, list[str]]:
    warnings: list[str] = []
    rep, auto, reason = choose(hidden, path, width, TOY, fraction, joints_elsewhere,
                               warnings.append)
    return rep, auto, reason, warnings


@pytest.mark.parametrize(("hidden", "auto"), [("auto", True), ("skeleton", False)])
def test_auto_and_skeleton_give_the_papers_layout(hidden: str, auto: bool) -> None:
    rep, is_auto, reason, warnings = _choose(hidden, 12)
    assert rep == Rep.skeleton_hidden(TOY, 4, 1)  # 3 joints x 4 dims, round(4 / 3) negated
    assert is_auto == auto and not warnings
    assert reason == ("skeleton layout (auto: nothing downstream forbids negated channels)"
                      if auto else "skeleton layout")


def test_the_fraction_sets_the_negated_dims_of_each_joint() -> None:
    for fraction, negated in [(0.0, 0), (0.5, 2), (1.0, 4)]:
        rep, _, _, _ = _choose(fraction, 12)
        assert rep == Rep.skeleton_hidden(TOY, 4, negated) and rep.n_negated == 3 * negated
    rep, _, _, _ = _choose("skeleton", 12, fraction=0.75)  # negated_fraction= of the options
    assert rep == Rep.skeleton_hidden(TOY, 4, 3)


def test_a_width_that_is_no_multiple_of_the_joints_gets_invariant_channels_and_a_warning() -> None:
    rep, _, _, warnings = _choose("auto", 8)
    assert rep == Rep.skeleton_hidden(TOY, 2, 1) + Rep.trivial(2)
    assert warnings == ["a: width 8 is not a multiple of 3 joints: 3 x 2 skeleton channels + 2 "
                        "invariant ones"]


def test_a_width_below_the_joints_gets_regular_pairs() -> None:
    rep, _, reason, _ = _choose("skeleton", 2)
    assert rep == Rep.regular(2) and reason == "regular pairs (width 2 < 3 joints)"


def test_with_the_joints_on_another_axis_the_channels_only_flip_sign() -> None:
    rep, _, _, _ = _choose("auto", 6, joints_elsewhere=True)
    assert rep == sign_layout(6, 1 / 3) and not rep.n_pairs
    assert np.array_equal(rep.sign, [-1, -1, 1, 1, 1, 1])
    assert skeleton_layout("a", 6, TOY, 1 / 3, True, print) == rep


@pytest.mark.parametrize(("hidden", "expected", "reason"), [
    ("regular", Rep.regular(6), "regular pairs (hidden='regular')"),
    (Rep.negated(6), Rep.negated(6), "given"),
    (lambda path, width: Rep.regular(width), Rep.regular(6), "given (callable)"),
    ({"a": "regular"}, Rep.regular(6), "regular pairs (hidden='regular')"),
    ({"b": "regular"}, Rep.skeleton_hidden(TOY, 2, 1), "skeleton layout (auto: nothing "
                                                       "downstream forbids negated channels)"),
])
def test_explicit_policies(hidden: Any, expected: Rep, reason: str) -> None:
    rep, auto, found, _ = _choose(hidden, 6)
    assert (rep, found) == (expected, reason)
    assert auto == (isinstance(hidden, dict) and "a" not in hidden)


@pytest.mark.parametrize(("hidden", "error", "message"), [
    ("skeletons", ValueError, r"hidden must be one of 'auto', 'skeleton', 'regular', 'eigen', a "
                              r"fraction, a Rep, a callable or a dict, got 'skeletons'"),
    (1.5, ValueError, r"hidden = 1\.5: a negated fraction must lie in \[0, 1\]"),
    ({"a": {"b": 1}}, TypeError, r"hidden\['a'\] must be a policy, not another dict"),
    ({3: "regular"}, TypeError, r"hidden keys must be module paths \(str\), got 3"),
    (b"auto", TypeError, r"hidden must be 'auto', 'skeleton', 'regular', 'eigen', a fraction, a "
                         r"Rep, a callable \(path, width\) -> Rep or a dict, got bytes"),
])
def test_unreadable_policies_name_the_key_and_the_choices(hidden: Any, error: type,
                                                          message: str) -> None:
    with pytest.raises(error, match=message):
        check_policy(hidden)


@pytest.mark.parametrize(("hidden", "message"), [
    (Rep.regular(4), r"hidden policy for 'a' gave Rep\(4: .*\), not a Rep of size 6"),
    (lambda path, width: "regular", r"hidden policy for 'a' gave regular, not a Rep of size 6"),
])
def test_a_policy_giving_the_wrong_rep_names_the_layer(hidden: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _choose(hidden, 6)


def test_a_per_layer_policy_reaches_each_decision() -> None:
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(),
                          nn.Linear(12, 6))
    ctx, _ = settle(model, TOY_POSE, torch.randn(2, 6), hidden={"0": "regular", "2": 0.5})
    assert ctx.decisions["0"].rep == Rep.regular(12) and not ctx.decisions["0"].auto
    assert ctx.decisions["2"].rep == Rep.skeleton_hidden(TOY, 4, 2)
    assert ctx.decisions["4"].auto  # not named: "auto"
    assert ctx.decisions["4"].rep == Rep.pose(TOY, 2, (0,))


def test_the_papers_1020_channels_on_the_h36m_skeleton() -> None:
    rep = skeleton_layout("conv", 1020, Skeleton.preset("h36m"), 1 / 3, False, print)
    assert rep == Rep.skeleton_hidden("h36m", 60, 20)  # 17 joints x 60 dims, 20 negated each
