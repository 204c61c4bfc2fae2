"""passes/propagate.py on its own: one pass over a traced graph. Placeholders get their actions
from the Spec, every other node from its rule; a node whose rule fails gets no action and the
pass goes on, raising the first error only when the pass changed nothing; outputs are checked
against the Spec; a layout made regular part way is seen by the rest of the pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize.action import Action
from symmetrize.passes.propagate import run_pass
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.spec import Spec
from tests.helpers import TOY, TOY_POSE, context, node_named, one_pass, settle

POSE = Rep.pose(TOY, 2, (0,))
AT = r"^node '\w+' \(.*test_propagate\.py:\d+\): "


class Flags(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        return x * (scale * y.sum())


def test_placeholders_take_their_actions_from_the_spec() -> None:
    spec = Spec(input=["n t j c", None], output="n t j c", skeleton=TOY, negate=(0,))
    ctx = one_pass(Flags(), spec, torch.randn(2, 4, 3, 2), torch.randn(5, 7))
    x, y, scale = (node_named(ctx, n) for n in ("x", "y", "scale"))
    assert ctx.env[x] == Action.from_axes((2, 4, 3, 2), spec.input_axes(0, (2, 4, 3, 2)))
    assert ctx.env[x] == Action.from_axes((2, 4, 3, 2), {2: Rep.joints(TOY),
                                                         3: Rep.coords(2, (0,))})
    assert ctx.env[y] == Action.trivial((5, 7))  # annotated None: untouched, any rank
    assert ctx.env[scale] is None  # a Python flag, not a tensor
    assert all(n.meta["action"] is ctx.env[n] for n in (x, y, scale))


def test_a_tensor_input_the_spec_does_not_annotate_names_the_fix() -> None:
    with pytest.raises(ConversionError, match=r"^node 'y': forward argument 1 is a tensor but "
                                              r"the Spec annotates 1 inputs\. Fix: add a layout "
                                              r"for it to Spec\(input=\.\.\.\)"):
        one_pass(Flags(), TOY_POSE, torch.randn(2, 6), torch.randn(2, 6))


class Exp(nn.Module):
    """``a(x)`` and the sum of ``exp(a(x))``: exp cannot take channels that flip sign."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.a(x)
        return h, torch.exp(h).sum(-1)


def test_a_pass_goes_on_after_an_error_and_raises_it_when_nothing_changed() -> None:
    spec = Spec(input="n (j c)", output=["n (j c)", None], skeleton=TOY, negate=(0,))
    ctx = context(Exp(), spec, torch.randn(2, 6), hidden="skeleton")
    with pytest.raises(ConversionError, match=AT + "exp is applied to features that flip sign"):
        run_pass(ctx)
    assert not ctx.dirty
    assert ctx.env[node_named(ctx, "exp")] is None
    assert ctx.env[node_named(ctx, "sum_1")] is None  # its input has no action: nothing to sum
    assert ctx.env[node_named(ctx, "a")] == Action.from_axes((2, 6), {1: POSE})


def test_a_pass_that_changed_a_decision_does_not_raise_and_the_next_one_settles() -> None:
    # the output wants unsigned poses: the pass constrains 'a', so exp's error may be stale
    spec = Spec(input="n (j c)", output=["n (j c)", None], skeleton=TOY, negate=(0,),
                output_negate=())
    ctx = context(Exp(), spec, torch.randn(2, 6), hidden="skeleton")
    run_pass(ctx)
    assert ctx.dirty and ctx.env[node_named(ctx, "exp")] is None
    assert ctx.decisions["a"].constrained_by == "the Spec of output 0"
    again = context(Exp(), spec, torch.randn(2, 6), hidden="skeleton",
                    decisions=ctx.decisions, gm=ctx.gm)
    run_pass(again)
    assert not again.dirty
    unsigned = Action.from_axes((2, 6), {1: POSE.unsigned()})
    assert again.env[node_named(again, "exp")] == unsigned
    assert again.env[node_named(again, "sum_1")] == Action.trivial((2,))


class Gelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Linear(6, 9), nn.GELU(), nn.Linear(9, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.act(self.a(x)))


def test_a_layout_made_regular_part_way_is_seen_by_the_rest_of_the_pass() -> None:
    ctx = one_pass(Gelu(), TOY_POSE, torch.randn(2, 6))
    assert ctx.flipped == ["a"] and ctx.dirty and ctx.sticky
    regular = Action.from_axes((2, 9), {1: Rep.regular(9)})
    assert ctx.env[node_named(ctx, "a")] == regular  # refreshed, not the stale signed one
    assert ctx.env[node_named(ctx, "act")] == regular
    assert ctx.sites["b"].rep_in == Rep.regular(9)


class Outputs(nn.Module):
    def __init__(self, expand: bool = False) -> None:
        super().__init__()
        self.a, self.expand = nn.Linear(6, 6), expand
        self.register_buffer("centre", torch.tensor([[0.0, 1.0, 0.0, 2.0, 0.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.a(x), (self.centre.expand(x.shape[0], -1) if self.expand else self.centre)


FREE_AND_POSE = Spec(input="n (j c)", output=["free", "n (j c)"], skeleton=TOY, negate=(0,))


def test_outputs_are_checked_against_the_spec() -> None:
    # a free output takes whatever the layer gives; a constant output must be symmetric
    ctx = one_pass(Outputs(), FREE_AND_POSE, torch.randn(2, 6), hidden="regular")
    assert ctx.env[node_named(ctx, "a")] == Action.from_axes((2, 6), {1: Rep.regular(6)})
    assert not ctx.dirty and ctx.decisions["a"].constrained_by is None
    model = Outputs()
    model.centre[0, 1] = 5.0  # the left hand's y differs from the right hand's
    with pytest.raises(ConversionError, match=r"^node 'centre'.*the constant 'centre' \(used by "
                                              r"the Spec of output 1\) is not mirror-symmetric: "
                                              r"entry \(0, 1\) is 5 but its mirror image needs 1"):
        one_pass(model, FREE_AND_POSE, torch.randn(2, 6), hidden="regular")
    with pytest.raises(ConversionError, match=r"^node 'output': output 1 is a tensor but the "
                                              r"Spec annotates 1 outputs\. Fix: add a layout "
                                              r"for it to Spec\(output=\.\.\.\)"):
        one_pass(Outputs(), TOY_POSE, torch.randn(2, 6))


def test_a_buffer_expanded_to_the_batch_is_a_constant_output() -> None:
    ctx = one_pass(Outputs(expand=True), FREE_AND_POSE, torch.randn(2, 6), hidden="regular")
    assert ctx.is_constant(node_named(ctx, "expand")) and not ctx.dirty


class Smooth(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(0)


class Wrapped(nn.Module):
    def __init__(self, inner: nn.Module, width: int = 6) -> None:
        super().__init__()
        self.inner, self.b = inner, nn.Linear(width, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.inner(x)))


def test_trusted_and_averaged_modules_are_opaque() -> None:
    ctx, gm = settle(Wrapped(Smooth()), TOY_POSE, torch.randn(2, 6), assumed=["inner"])
    assert node_named(gm, "inner").op == "call_module"  # not traced through
    assert ctx.env[node_named(gm, "inner")] == ctx.env[node_named(gm, "x")]
    assert ctx.sites["inner"].extra["in_action"] == ctx.sites["inner"].extra["out_action"]
    ctx, gm = settle(Wrapped(nn.Sequential(nn.Linear(6, 9), nn.GroupNorm(3, 9)), 9), TOY_POSE,
                     torch.randn(2, 6), averaged=["inner"])
    decision = ctx.decisions["inner"]  # a Linear-like decision on its last axis
    assert decision.rep == Rep.skeleton_hidden(TOY, 3, 1)
    assert ctx.env[node_named(gm, "inner")] == Action.from_axes((2, 9), {1: decision.rep})
    with pytest.raises(ConversionError, match=r"^node 'inner'.*assume_equivariant module "
                                              r"'inner' maps shape \(2, 6\) to \(2, 4\)\. Fix: "
                                              r"assume a module whose output has its input's "
                                              r"layout, or use average=\['inner'\]"):
        settle(Wrapped(nn.Linear(6, 4), 4), TOY_POSE, torch.randn(2, 6), assumed=["inner"])


def test_a_module_without_a_rule_names_its_path_and_the_three_fixes() -> None:
    with pytest.raises(ConversionError, match=r"^node 'inner_1'.*no rule for module 'inner\.1' "
                                              r"of type GroupNorm\. Fix: wrap it with average="
                                              r"\['inner\.1'\].*assume_equivariant=\['inner\.1'\]"
                                              r".*register_module_rule"):
        settle(Wrapped(nn.Sequential(nn.Linear(6, 6), nn.GroupNorm(2, 6))), TOY_POSE,
               torch.randn(2, 6))
