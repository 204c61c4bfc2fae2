"""passes/rewrite.py on its own: chiral twins, switched activations (modules and functional
calls), mirror-shared parameters and locally symmetrised modules, one Change each, all logged in
an Undo that puts the model back exactly as it was."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from symmetrize.nn import ChiralLinear
from symmetrize.nn.average import MirrorAverage
from symmetrize.passes.rewrite import Undo, projection_error, rewrite
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.weight_sharing import weight_sharing
from tests.helpers import TOY, TOY_POSE, equivariance_error, max_err, node_named, settle

POSE = Rep.pose(TOY, 2, (0,))
HIDDEN9 = Rep.skeleton_hidden(TOY, 3, 1)


class Net(nn.Module):
    """A Linear, a ReLU module, a functional relu, a learned offset, a GroupNorm and a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 6)
        self.norm = nn.GroupNorm(2, 6)
        self.offset = nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.act(self.a(x)))
        return self.norm(self.b(h) + self.offset)

    def width(self) -> int:
        return self.a.out_features


def _converted(keep: tuple[str, ...] = ()) -> tuple[Net, Net, dict, Undo, tuple]:
    """A model, its rewritten copy, the changes, their undo log and the settled pass."""
    torch.manual_seed(0)
    model = Net()
    ctx, gm = settle(model, TOY_POSE, torch.randn(4, 6), averaged=["norm"])
    converted = copy.deepcopy(model)
    undo = Undo()
    changes = rewrite(converted, ctx, "project", set(keep), undo)
    return model, converted, changes, undo, (ctx, gm)


def test_every_change_is_recorded() -> None:
    model, converted, changes, _, (ctx, gm) = _converted()
    relu = node_named(gm, "relu")
    assert set(changes) == {"a", "act", "b", "norm", "offset", relu}
    assert isinstance(converted.a, ChiralLinear) and (converted.a.rep_in, converted.a.rep_out) \
        == (POSE, HIDDEN9)
    execution = converted.a.execution  # how the layer computes: blocks, or dense when small
    assert changes["a"].action == "replaced"
    assert changes["a"].detail == "replaced by ChiralLinear" + (
        "" if execution == "blocks" else f", computed {execution}")
    assert changes["a"].params_before == 6 * 9 + 9
    assert changes["a"].params_after == converted.a.free_parameters() < 6 * 9 + 9
    assert 0 < changes["a"].projection_error < 1
    assert isinstance(converted.act, nn.Tanh) and changes["act"].action == "switched"
    assert changes[relu].action == "switched"
    assert changes[relu].detail == "activation relu -> tanh (functional call)"
    assert isinstance(converted.norm, MirrorAverage) and changes["norm"].action == "averaged"
    # a symmetric vector: one value per mirror pair and per unnegated centre entry
    assert changes["offset"].action == "shared"
    assert changes["offset"].params_after == weight_sharing(Rep.trivial(1), POSE).n_free == 3
    assert parametrize.is_parametrized(converted, "offset")
    # the user's class and methods stay
    assert isinstance(converted, Net) and converted.width() == 9
    x = torch.randn(5, 6)
    assert equivariance_error(converted, TOY_POSE, x, train=False) < 1e-10
    assert equivariance_error(model, TOY_POSE, x, train=False) > 1e-3  # the plain one is not


@pytest.mark.xfail(strict=True, reason="sharing a parameter of the root module makes its class "
                                       "torch's ParametrizedNet, whose name the switch keeps")
def test_the_class_name_stays_when_a_root_parameter_is_shared() -> None:
    _, converted, _, _, _ = _converted()
    assert type(converted).__name__ == "Net"


def test_undo_puts_every_module_parameter_and_the_class_back() -> None:
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(5, 6)
    with torch.no_grad():
        before = model(x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modules = dict(model.named_children())
    offset = model.offset
    ctx, _ = settle(model, TOY_POSE, torch.randn(4, 6), averaged=["norm"])
    undo = Undo()
    rewrite(model, ctx, "project", set(), undo)  # in place
    assert type(model) is not Net and parametrize.is_parametrized(model, "offset")
    undo.rollback()
    assert type(model) is Net and "_symmetrize_switched" not in vars(model)
    assert dict(model.named_children()) == modules
    assert all(model.get_submodule(name) is m for name, m in modules.items())
    assert not parametrize.is_parametrized(model) and model.offset is offset
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())
    with torch.no_grad():
        assert torch.equal(model(x), before)
    undo.rollback()  # a second rollback has nothing left to do
    assert type(model) is Net


def test_a_failing_rewrite_can_be_rolled_back_from_where_it_stopped() -> None:
    torch.manual_seed(0)
    model = Net()
    ctx, _ = settle(model, TOY_POSE, torch.randn(4, 6), averaged=["norm"])

    def broken(module: nn.Module, site: object) -> tuple[nn.Module, str]:
        raise ConversionError("node 'b': broken on purpose. Fix: none")

    ctx.sites["b"].build = broken  # 'a' and 'act' are rewritten before 'b'
    a, act = model.a, model.act
    undo = Undo()
    with pytest.raises(ConversionError, match="node 'b': broken on purpose"):
        rewrite(model, ctx, "project", set(), undo)
    assert isinstance(model.a, ChiralLinear)
    undo.rollback()
    assert model.a is a and model.act is act and type(model) is Net


def test_keep_and_reinit() -> None:
    model, converted, changes, _, _ = _converted(keep=("b",))
    assert converted.b.__class__ is nn.Linear
    assert (changes["b"].action, changes["b"].detail) == ("kept", "kept (keep=): not equivariant")
    torch.manual_seed(0)
    plain = Net()
    ctx, _ = settle(plain, TOY_POSE, torch.randn(4, 6), averaged=["norm"])
    fresh = copy.deepcopy(plain)
    changes = rewrite(fresh, ctx, "reinit", set())
    assert changes["a"].detail.startswith("replaced by ChiralLinear (re-initialised)")
    assert changes["a"].projection_error is None
    assert max_err(fresh.a.weight, ChiralLinear.from_dense(plain.a, POSE, HIDDEN9).weight) > 1e-3


@pytest.mark.parametrize("bias", [True, False])
def test_projection_error_is_the_relative_distance_to_the_projection(bias: bool) -> None:
    torch.manual_seed(1)
    dense = nn.Linear(6, 9, bias=bias).double()
    chiral = ChiralLinear.from_dense(dense, POSE, HIDDEN9)
    weights = [(dense.weight, chiral.weight)] + ([(dense.bias, chiral.bias)] if bias else [])
    distance = sum(float((w - p).detach().square().sum()) for w, p in weights)
    norm = sum(float(w.detach().square().sum()) for w, _ in weights)
    assert projection_error(dense, chiral) == pytest.approx(math.sqrt(distance / norm),
                                                            rel=1e-9)
    assert projection_error(chiral.to_dense(), chiral) < 1e-7  # already equivariant
