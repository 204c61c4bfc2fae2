"""rules/layers.py on its own: Linear, Conv1d/2d, BatchNorm, LSTM/GRU and their cells. Each test
traces a tiny module, decides its hidden Reps and reads what the rule gave each node: the Action,
the decision, the site (Reps in and out, how to build the twin) and the provenance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize.action import Action
from symmetrize.nn import ChiralLinear
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.rules.hidden_policy import sign_layout
from symmetrize.spec import Spec
from tests.helpers import TOY, TOY_POSE, action_of, node_named, settle

POSE = Rep.pose(TOY, 2, (0,))  # (j c) flattened: 3 joints x (x, y), x negated
JOINTS, COORDS = Rep.joints(TOY), Rep.coords(2, (0,))
HIDDEN9 = Rep.skeleton_hidden(TOY, 3, 1)  # the paper's layout of 9 channels, 1/3 negated
JOINTS_SEQ = Spec(input="n t (j c)", output="n t (j c)", skeleton=TOY, negate=(0,))
CHANNELS_TIME = Spec(input="n (j c) t", output="n (j c) t", skeleton=TOY, negate=(0,))


class Mlp(nn.Module):
    def __init__(self, inner: nn.Module | None = None, width: int = 9) -> None:
        super().__init__()
        self.a, self.inner, self.b = nn.Linear(6, width), inner or nn.Identity(), \
            nn.Linear(width, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.inner(self.a(x))))


def test_linear_decides_its_output_and_records_a_site() -> None:
    ctx, _ = settle(Mlp(), TOY_POSE, torch.randn(2, 6))
    decision = ctx.decisions["a"]
    assert decision.rep == HIDDEN9 and decision.auto and decision.constrained_by is None
    assert decision.reason.startswith("skeleton layout (auto")
    assert action_of(ctx, "a") == Action.from_axes((2, 9), {1: HIDDEN9})
    site = ctx.sites["a"]
    assert (site.rep_in, site.rep_out) == (POSE, HIDDEN9)
    assert site.extra == {"axis": 1, "others": {}, "shape": (2, 9)}
    new, detail = site.build(nn.Linear(6, 9), site)
    assert isinstance(new, ChiralLinear) and detail == "replaced by ChiralLinear"
    assert (new.rep_in, new.rep_out) == (POSE, HIDDEN9)
    # the last layer reads the hidden layout and gives the output the Spec's action
    assert (ctx.sites["b"].rep_in, ctx.sites["b"].rep_out) == (HIDDEN9, POSE)
    assert ctx.prov[node_named(ctx, "a")].path == "a"


def test_linear_passes_a_joints_axis_through_and_keeps_its_channels_in_place() -> None:
    spec = Spec(input="n j c", output="n j c", skeleton=TOY, negate=(0,))
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))
    ctx, _ = settle(model, spec, torch.randn(2, 3, 2))
    # the joints sit on axis 1, so the 4 channels are one joint's features: signs only
    assert ctx.decisions["0"].rep == sign_layout(4, 1 / 3)
    assert not ctx.decisions["0"].rep.n_pairs
    assert ctx.sites["0"].extra["others"] == {1: JOINTS}
    assert action_of(ctx, "_0") == Action.from_axes((2, 3, 4), {1: JOINTS,
                                                                 2: sign_layout(4, 1 / 3)})
    assert action_of(ctx, "_2") == Action.from_axes((2, 3, 2), {1: JOINTS, 2: COORDS})


def test_conv1d_mixes_axis_1_and_leaves_time_alone() -> None:
    model = nn.Sequential(nn.Conv1d(6, 9, 3, padding=1), nn.Tanh(), nn.Conv1d(9, 6, 1))
    ctx, _ = settle(model, CHANNELS_TIME, torch.randn(2, 6, 5))
    assert action_of(ctx, "_0") == Action.from_axes((2, 9, 5), {1: HIDDEN9})
    assert ctx.sites["0"].extra["axis"] == 1
    assert (ctx.sites["2"].rep_in, ctx.sites["2"].rep_out) == (HIDDEN9, POSE)


def test_unbatched_conv1d_mixes_axis_0() -> None:
    spec = Spec(input="(j c) t", output="(j c) t", skeleton=TOY, negate=(0,))
    model = nn.Sequential(nn.Conv1d(6, 9, 3, padding=1), nn.Tanh(), nn.Conv1d(9, 6, 1))
    ctx, _ = settle(model, spec, torch.randn(6, 5))
    assert ctx.sites["0"].extra["axis"] == 0
    assert action_of(ctx, "_0") == Action.from_axes((9, 5), {0: HIDDEN9})


def test_conv2d_with_a_kernel_of_one_along_the_joints_passes_them_through() -> None:
    spec = Spec(input="n c t j", output="n c t j", skeleton=TOY, negate=(0,))
    model = nn.Sequential(nn.Conv2d(2, 4, (3, 1), padding=(1, 0), bias=False), nn.Tanh(),
                          nn.Conv2d(4, 2, 1, bias=False))
    ctx, _ = settle(model, spec, torch.randn(2, 2, 5, 3))
    assert ctx.sites["0"].extra["others"] == {3: JOINTS}
    assert action_of(ctx, "_2") == Action.from_axes((2, 2, 5, 3), {1: COORDS, 3: JOINTS})


#: where the errors of :class:`Convs` point: its node, this file and the line of the call
AT = r"^node 'conv' \(.*test_rules_layers\.py:\d+\): "


class Convs(nn.Module):
    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(("conv", "spec", "shape", "message"), [
    (nn.Conv2d(2, 2, (1, 3), padding=(0, 1)), Spec(input="n c t j", output="n c t j",
                                                   skeleton=TOY, negate=(0,)), (2, 2, 5, 3),
     AT + r"convolution 'conv' slides its kernel \(size 3, stride 1\) "
     r"along axis 3, which the mirror permutes.*Fix: use kernel size 1.*average=\['conv'\]"),
    (nn.Conv1d(6, 6, 1, groups=2), CHANNELS_TIME, (2, 6, 5),
     AT + r"grouped convolution 'conv' \(groups=2\) has no rule\. Fix: use groups=1"),
    (nn.Linear(3, 3), Spec(input="n c j", output="n c j", skeleton=TOY, negate=(0,)), (2, 2, 3),
     AT + r"'conv' adds a bias to features whose sign flips along an axis other than "
     r"its channel axis\. Fix: use bias=False"),
    (nn.BatchNorm1d(3), Spec(input="n j c", output="n j c", skeleton=TOY, negate=(0,)),
     (4, 3, 2), AT + r"'conv' normalises over an axis on which the mirror flips signs\. "
                r"Fix: put the sign-flipping coordinates on the channel axis"),
    (nn.LSTM(6, 6, proj_size=3, batch_first=True), JOINTS_SEQ, (2, 4, 6),
     AT + r"'conv' uses proj_size\. Fix: use proj_size=0"),
    (ChiralLinear(POSE, POSE), TOY_POSE, (2, 6),
     AT + r"module 'conv' is already chiral\. Fix: convert a plain model"),
])
def test_errors_name_the_node_the_module_and_the_fix(conv: nn.Module, spec: Spec,
                                                     shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        settle(Convs(conv), spec, torch.randn(shape))


def test_batch_norm_keeps_the_action_and_records_its_channel_rep() -> None:
    model = Mlp(inner=nn.BatchNorm1d(9))
    ctx, _ = settle(model, TOY_POSE, torch.randn(4, 6))
    assert action_of(ctx, "inner") == action_of(ctx, "a")
    site = ctx.sites["inner"]
    assert site.rep_in == site.rep_out == HIDDEN9
    new, detail = site.build(nn.BatchNorm1d(9), site)
    assert detail == "replaced by ChiralBatchNorm1d" and new.rep == HIDDEN9
    # a constraint on the BatchNorm's output reaches the layer before it
    assert ctx.prov[node_named(ctx, "inner")].path == "a"


class Recurrent(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_layers_carry_their_hidden_rep_in_every_state(cls: type,
                                                                bidirectional: bool) -> None:
    model = Recurrent(cls(6, 9, batch_first=True, bidirectional=bidirectional))
    ctx, _ = settle(model, JOINTS_SEQ, torch.randn(2, 4, 6))
    hidden = ctx.decisions["rnn"].rep
    assert hidden == HIDDEN9
    out, states = action_of(ctx, "rnn")
    assert out == Action.from_axes((2, 4, 9 * (1 + bidirectional)),
                                   {2: hidden.repeat(1 + bidirectional)})
    directions = 2 if bidirectional else 1
    state = Action.from_axes((directions, 2, 9), {2: hidden})
    assert states == ((state, state) if cls is nn.LSTM else state)
    assert (ctx.sites["rnn"].rep_in, ctx.sites["rnn"].rep_out) == (POSE, hidden)
    # the item of the tuple output keeps the provenance, halved for two directions
    item = node_named(ctx, "getitem")
    assert ctx.prov[item].path == "rnn" and ctx.prov[item].halve == bidirectional
    assert ctx.sites["head"].rep_in == hidden.repeat(directions)


class Cell(nn.Module):
    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell, self.head = cell, nn.Linear(9, 6)
        self.lstm = isinstance(cell, nn.LSTMCell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = None
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
        return self.head(state[0] if self.lstm else state)


@pytest.mark.parametrize("cls", [nn.LSTMCell, nn.GRUCell])
def test_cells_take_their_own_state_back(cls: type) -> None:
    spec = Spec(input="n t (j c)", output="n (j c)", skeleton=TOY, negate=(0,))
    ctx, gm = settle(Cell(cls(6, 9)), spec, torch.randn(2, 3, 6))
    hidden = ctx.decisions["cell"].rep
    assert hidden == HIDDEN9
    state = Action.from_axes((2, 9), {1: hidden})
    calls = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == "cell"]
    assert len(calls) == 3
    for node in calls:  # the state fed back carries the same Rep: no constraint, no error
        assert ctx.env[node] == ((state, state) if cls is nn.LSTMCell else state)
    assert ctx.decisions["cell"].constrained_by is None
    assert (ctx.sites["cell"].rep_in, ctx.sites["cell"].rep_out) == (POSE, hidden)


class StatedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = nn.LSTM(6, 9, batch_first=True), nn.Linear(9, 6)

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x, (h0, h0))
        return self.head(out)


def test_an_initial_state_with_another_action_names_the_layer_and_the_fix() -> None:
    spec = Spec(input=["n t (j c)", None], output="n t (j c)", skeleton=TOY, negate=(0,))
    with pytest.raises(ConversionError, match=r"node 'h0'.*differs from the one required by "
                                              r"the initial state of 'rnn'.*Fix: make both "
                                              r"sides carry the same"):
        settle(StatedLSTM(), spec, torch.randn(2, 4, 6), torch.zeros(1, 2, 9))


class SharedLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.a(y)


def test_a_module_called_on_two_layouts_names_both_calls() -> None:
    spec = Spec(input=["n (j c)", None], output="free", skeleton=TOY, negate=(0,))
    with pytest.raises(ConversionError, match=r"node 'a_1'.*module 'a' is called at two "
                                              r"places with different mirror Reps: at node 'a'"
                                              r".*Fix: use separate module instances"):
        settle(SharedLinear(), spec, torch.randn(2, 6), torch.randn(2, 6))
