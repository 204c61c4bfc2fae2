"""passes/decide.py on its own: passes are repeated until the hidden-Rep decisions settle. With
an automatic layout there are two phases: the exploring phase (every automatic layout regular
pairs) marks the layers that ops without negated channels read; the real phase gives those
regular pairs and the others the paper's skeleton layout. Constraints from residual adds and from
the Spec's outputs settle; contradicting ones are an error; fixed decisions are never reset."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import symmetrize.passes.decide as decide_module
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError, Decision
from symmetrize.rules.context import Context
from symmetrize.spec import Spec
from tests.helpers import TOY, TOY_POSE, node_named, one_pass, settle

POSE = Rep.pose(TOY, 2, (0,))
HIDDEN9 = Rep.skeleton_hidden(TOY, 3, 1)
GELU_MARK = "regular pairs: GELU 'act' needs channels that do not flip sign"


class Net(nn.Module):
    """``b(act(a(x)))``, plus ``x`` when ``residual``."""

    def __init__(self, act: nn.Module, residual: bool = False) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Linear(6, 9), act, nn.Linear(9, 6)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.act(self.a(x)))
        return y + x if self.residual else y


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each pass that ``decide`` runs saw: its phase, the decisions after it, dirty."""
    seen: list[dict[str, Any]] = []
    run_pass = decide_module.run_pass

    def recorded(ctx: Context) -> None:
        try:
            run_pass(ctx)
        finally:
            seen.append({"explore": ctx.explore, "dirty": ctx.dirty,
                         "reps": {p: d.rep for p, d in ctx.decisions.items()}})

    monkeypatch.setattr(decide_module, "run_pass", recorded)
    return seen


def test_the_exploring_pass_makes_every_automatic_layout_regular_and_marks_layers() -> None:
    ctx = one_pass(Net(nn.GELU()), TOY_POSE, torch.randn(2, 6), explore=True)
    assert ctx.marks == {"a": GELU_MARK}  # only the layer GELU reads
    a, b = ctx.decisions["a"], ctx.decisions["b"]
    assert a.rep == Rep.regular(9) and a.auto and a.unsigned_only and a.sticky
    assert a.constrained_by is None  # a mark, not a constraint, until the real phase
    # b started as regular pairs too; the output's Spec then asked for the pose's signs
    assert b.rep == POSE and b.constrained_by == "the Spec of output 0" and ctx.dirty


def test_the_real_pass_keeps_marked_layers_regular_and_gives_the_others_the_skeleton() -> None:
    ctx = one_pass(Net(nn.GELU()), TOY_POSE, torch.randn(2, 6), marks={"a": GELU_MARK})
    assert ctx.decisions["a"].rep == Rep.regular(9)
    assert ctx.decisions["a"].constrained_by == ctx.decisions["a"].reason == GELU_MARK
    assert ctx.decisions["b"].rep == POSE and not ctx.decisions["b"].unsigned_only
    assert not ctx.dirty  # the marks are known up front: no layout flips in this pass


def test_decide_explores_then_decides(passes: list[dict[str, Any]]) -> None:
    ctx, _ = settle(Net(nn.GELU()), TOY_POSE, torch.randn(2, 6))
    assert [(p["explore"], p["dirty"]) for p in passes] == [(True, True), (True, False),
                                                            (False, False)]
    assert passes[0]["reps"] == passes[1]["reps"] == {"a": Rep.regular(9), "b": POSE}
    assert passes[2]["reps"] == {"a": Rep.regular(9), "b": POSE}
    assert not ctx.explore and ctx.marks == {"a": GELU_MARK}
    assert ctx.decisions["b"].reason.startswith("skeleton layout (auto")


def test_without_an_automatic_layout_the_exploring_pass_is_the_real_one(
        passes: list[dict[str, Any]]) -> None:
    ctx, _ = settle(Net(nn.Tanh()), TOY_POSE, torch.randn(2, 6), hidden="skeleton")
    assert [(p["explore"], p["dirty"]) for p in passes] == [(True, False)]
    assert ctx.decisions["a"].rep == HIDDEN9 and not ctx.decisions["a"].auto


@pytest.mark.parametrize("residual", [False, True])
def test_constraints_from_a_residual_add_or_the_output_settle(
        passes: list[dict[str, Any]], residual: bool) -> None:
    # fraction 0: b's own layout has no negated channel, the pose it must match has
    ctx, gm = settle(Net(nn.Tanh(), residual), TOY_POSE, torch.randn(2, 6), fraction=0.0)
    decision = ctx.decisions["b"]
    assert decision.rep == POSE
    why = f"the add in {ctx.where(node_named(gm, 'add'))}" if residual \
        else "the Spec of output 0"
    assert decision.constrained_by == why and decision.reason == f"fixed by {why}"
    assert ctx.decisions["a"].rep == Rep.skeleton_hidden(TOY, 3, 0)  # untouched
    assert [p["dirty"] for p in passes if not p["explore"]] == [True, False]
    assert not ctx.dirty


def test_contradicting_constraints_name_the_node_and_both_requirements() -> None:
    # the add wants the input's signs, the Spec's output wants none
    spec = Spec(input="n (j c)", output="n (j c)", skeleton=TOY, negate=(0,), output_negate=())
    with pytest.raises(ConversionError, match=r"^node 'add' \(.*test_decide\.py:\d+\): its "
                                              r"mirror action Action\(.*\) differs from the one "
                                              r"required by the Spec of output 0 \(Action\(.*\)\)"
                                              r"\. Fix: make both sides carry the same"):
        settle(Net(nn.Tanh(), residual=True), spec, torch.randn(2, 6), fraction=0.0)


def test_decisions_given_up_front_survive_both_phases() -> None:
    fixed = Decision("a", 9, Rep.trivial(9), constrained_by="invariant_at", sticky=True,
                     reason="the invariance layer (invariant_at)")
    spec = Spec(input="n (j c)", output=None, skeleton=TOY, negate=(0,))
    ctx, _ = settle(Net(nn.GELU()), spec, torch.randn(2, 6), decisions={"a": fixed})
    assert ctx.decisions["a"] is fixed and fixed.rep == Rep.trivial(9)
    assert ctx.sites["a"].rep_out == Rep.trivial(9)
    # after the invariance layer there is nothing left to mirror
    assert ctx.sites["b"].rep_in.is_trivial and ctx.sites["b"].rep_out.is_trivial
