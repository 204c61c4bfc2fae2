"""symmetrize(model, spec): conversion of pose networks written in their authors' style."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from symmetrize import ConversionError, Rep, Spec, symmetrize, weight_sharing
from symmetrize.nn import (
    ChiralBatchNorm1d,
    ChiralConv1d,
    ChiralGRU,
    ChiralLinear,
    ChiralLSTM,
)
from tests.helpers import equivariance_error
from tests.pose_models import MLPLifter, Seq2Seq, TemporalModel, TemporalModelOptimized

H36M_SEQ = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))


def train_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 25) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("filter_widths,channels", [((3, 3, 3), 68), ((3, 3, 3, 3, 3), 85)])
def test_temporal_convnet(filter_widths: tuple[int, ...], channels: int) -> None:
    torch.manual_seed(0)
    model = TemporalModel(filter_widths=filter_widths, channels=channels, dropout=0.0)
    rf = model.receptive_field()
    x = torch.randn(2, rf + 4, 17, 2)
    before = copy.deepcopy(model.state_dict())
    chiral = symmetrize(model, H36M_SEQ, (x,))
    # the user's model is untouched, the copy keeps its class and methods
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(chiral, TemporalModel) and chiral.receptive_field() == rf
    assert type(chiral).__name__ == "TemporalModel"
    chiral.set_bn_momentum(0.05)
    assert isinstance(chiral.expand_conv, ChiralConv1d)
    assert all(isinstance(m, ChiralBatchNorm1d) for m in chiral.layers_bn)
    assert isinstance(chiral.relu, nn.Tanh)
    for train in (False, True):
        assert equivariance_error(chiral, H36M_SEQ, x, train) < 1e-10
    # a plain model is not equivariant: the test can fail
    assert equivariance_error(model, H36M_SEQ, x, False) > 1e-3
    report = chiral.symmetrize_report
    replaced = set(report.actions("replaced"))
    convs = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.BatchNorm1d))}
    assert convs == replaced and report.switched == ["relu"]
    assert report.row("expand_conv").detail == \
        "replaced by ChiralConv1d, computed dense (width 34 < 64)"  # narrow: blocks would not pay
    assert report.row("expand_conv").params_after < report.row("expand_conv").params_before
    # one row per traced node, each with the Reps it sees
    assert report.rows[0].op == "placeholder" and report.rows[-1].op == "output"
    assert report.rows[0].rep_out == "17j x 2c: 6 pairs, x-"
    assert report.rows[-1].rep_in == "17j x 3c: 6 pairs, x-"
    assert 0.45 < report.parameter_ratio < 0.6
    assert report.parameters_after == sum(p.numel() for p in chiral.parameters())
    assert report.equivariance_error < 1e-10
    y = torch.randn(2, x.shape[1] - rf + 1, 17, 3)
    losses = train_steps(chiral, x, y)
    assert losses[-1] < 0.7 * losses[0]


def test_pretrained_weights_are_projected() -> None:
    torch.manual_seed(1)
    model = TemporalModel(dropout=0.0)
    chiral = symmetrize(model, H36M_SEQ, (torch.randn(2, 27, 17, 2),))
    conv = chiral.layers_conv[0]
    sharing = weight_sharing(conv.rep_in, conv.rep_out)
    expected = sharing.project_dense(model.layers_conv[0].weight.detach())
    torch.testing.assert_close(conv.weight.detach(), expected)


def test_regular_hidden_keeps_relu_and_constrains_the_output_layer() -> None:
    torch.manual_seed(2)
    model = TemporalModel(dropout=0.0)
    x = torch.randn(2, 27, 17, 2)
    chiral = symmetrize(model, H36M_SEQ, (x,), hidden="regular")
    assert isinstance(chiral.relu, nn.ReLU)
    assert chiral.layers_conv[0].rep_out == Rep.regular(68)
    # the output layer's Rep comes from the Spec, pulled back through permute and view
    assert chiral.shrink.rep_out == Rep.pose("h36m", 3, negate=(0,))
    assert any("shrink" in note for note in chiral.symmetrize_report.notes)
    assert equivariance_error(chiral, H36M_SEQ, x, True) < 1e-10


def test_mlp_lifter_with_another_output_skeleton() -> None:
    torch.manual_seed(3)
    model = MLPLifter(joints_in=17, joints_out=15)
    for block in model.stages:
        block.dropout.p = 0.0
    model.dropout.p = 0.0
    spec = Spec(input="n j c", output="n j c", skeleton="h36m", output_skeleton="humaneva",
                negate=(0,))
    x = torch.randn(8, 17, 2)
    chiral = symmetrize(model, spec, (x,))
    assert isinstance(chiral.w2, ChiralLinear)
    assert chiral.w2.rep_out == Rep.pose("humaneva", 3, negate=(0,))
    for train in (False, True):
        assert equivariance_error(chiral, spec, x, train) < 1e-10
    assert 0.45 < chiral.symmetrize_report.parameter_ratio < 0.6
    losses = train_steps(chiral, x, torch.randn(8, 15, 3))
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("cell,chiral_cls", [(nn.LSTM, ChiralLSTM), (nn.GRU, ChiralGRU)])
@pytest.mark.parametrize("hidden", ["skeleton", "regular"])
def test_seq2seq_forecaster(cell: type, chiral_cls: type, hidden: str) -> None:
    torch.manual_seed(4)
    model = Seq2Seq(cell=cell)
    spec = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
    x = torch.randn(3, 13, 34)
    chiral = symmetrize(model, spec, (x,), hidden=hidden, negated_fraction=0.5)
    assert isinstance(chiral.encoder, chiral_cls) and isinstance(chiral.decoder, chiral_cls)
    # the read-out feeds a residual with the input pose: its Rep is the pose Rep
    assert chiral.out.rep_out == Rep.pose("h36m", 2, negate=(0,))
    for train in (False, True):
        assert equivariance_error(chiral, spec, x, train) < 1e-10
    # teacher forcing is a Python flag: the converted model honours both values
    probe = copy.deepcopy(chiral).double()
    xd = x.double()
    forced = probe(spec.mirror_input(0, xd), teacher_forcing=True)
    assert (forced - spec.mirror_output(0, probe(xd, teacher_forcing=True))).abs().max() < 1e-10
    losses = train_steps(chiral, x, torch.randn(3, 5, 34))
    assert losses[-1] < losses[0]


class Functional(nn.Module):
    """Activations as functional calls: F.relu, torch.relu, x.relu(), torch.sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(34, 68), nn.Linear(68, 68), nn.Linear(68, 34)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.a(x))
        h = torch.relu(self.b(h)) + self.b(h).relu() * torch.sigmoid(h.abs())
        return self.c(torch.tanh(h))

    def width(self) -> int:
        return self.b.out_features


def test_functional_activations_switch_to_tanh_at_their_source_lines() -> None:
    torch.manual_seed(0)
    spec = Spec(input="n (j c)", output="n (j c)", skeleton="h36m")
    model = Functional()
    x = torch.randn(4, 34)
    chiral = symmetrize(model, spec, (x,))
    report = chiral.symmetrize_report
    switched = [row for row in report.rows if row.action == "switched"]
    assert sorted(row.target for row in switched) == ["relu", "relu", "relu"]
    assert all("test_convert.py:" in row.what for row in switched)
    assert report.equivariance_error < 1e-10
    assert isinstance(chiral, Functional) and chiral.width() == 68
    for train in (False, True):
        assert equivariance_error(chiral, spec, torch.randn(5, 34), train) < 1e-10
    # the sigmoid sees |h|, which does not flip sign: it stays a sigmoid
    assert not any(row.target == "sigmoid" for row in switched)
    # the original model keeps its ReLUs (and is no longer equivariant after projection)
    assert type(model) is Functional
    losses = train_steps(chiral, x, spec.mirror_output(0, x))
    assert losses[-1] < losses[0]


def test_functional_relu_with_regular_policy_is_kept() -> None:
    spec = Spec(input="n (j c)", output="n (j c)", skeleton="h36m")
    chiral = symmetrize(Functional(), spec, (torch.randn(2, 34),), hidden="regular")
    assert not chiral.symmetrize_report.switched
    assert isinstance(chiral, Functional)
    assert chiral.symmetrize_report.equivariance_error < 1e-10



def test_strided_single_frame_variant() -> None:
    torch.manual_seed(10)
    model = TemporalModelOptimized()
    x = torch.randn(4, 27, 17, 2)
    chiral = symmetrize(model, H36M_SEQ, (x,))
    assert chiral(x).shape == (4, 1, 17, 3)
    for train in (False, True):
        assert equivariance_error(chiral, H36M_SEQ, x, train) < 1e-10


def test_full_size_243_frame_1020_channel_model() -> None:
    torch.manual_seed(11)
    model = TemporalModel(filter_widths=(3, 3, 3, 3, 3), channels=1020, dropout=0.25)
    x = torch.randn(2, 243, 17, 2)
    chiral = symmetrize(model, H36M_SEQ, (x,))
    report = chiral.symmetrize_report
    assert report.equivariance_error < 1e-10
    assert report.parameters_before == sum(p.numel() for p in model.parameters())
    assert 0.5 < report.parameter_ratio < 0.51
    assert chiral.layers_conv[0].rep_out == Rep.skeleton_hidden("h36m", 60, 20)


def test_reductions_and_pooling() -> None:
    class PoolJointsAndTime(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(34, 68, 3)
            self.pool = nn.AvgPool1d(2)
            self.fc = nn.Linear(2, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.pool(torch.tanh(self.conv(x.flatten(2).transpose(1, 2))))  # (N, 68, T')
            h = h.transpose(1, 2).unflatten(2, (17, 4))  # (N, T', J, 4)
            return self.fc(h.mean(dim=(1, 2))[:, 2:])  # joints averaged away: invariant

    spec = Spec(input="n t j c", output="n k", skeleton="h36m", negate=(0,))
    x = torch.randn(2, 9, 17, 2)
    # hidden dims 0 of each joint flip sign: dims 2, 3 do not, so the joint mean of them is invariant
    chiral = symmetrize(PoolJointsAndTime(), spec, (x,), negated_fraction=0.25)
    assert chiral.symmetrize_report.equivariance_error < 1e-10

    class MeanOfFlipping(PoolJointsAndTime):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(17, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.pool(torch.tanh(self.conv(x.flatten(2).transpose(1, 2))))
            # averages each joint's hidden dims, the first of which flips sign
            return self.fc(h.transpose(1, 2).unflatten(2, (17, 4)).mean(dim=(1, 3)))

    with pytest.raises(ConversionError, match="mixes elements that flip sign"):
        symmetrize(MeanOfFlipping(), spec, (x,), hidden="skeleton", negated_fraction=0.25)
    # the automatic layout gives the conv regular pairs instead, and converts
    auto = symmetrize(MeanOfFlipping(), spec, (x,), negated_fraction=0.25)
    assert auto.symmetrize_report.equivariance_error < 1e-10
    assert any(n.startswith("regular pairs: the mean") and n.endswith(": conv")
               for n in auto.symmetrize_report.notes)

    class MaxPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.out = nn.Conv1d(34, 68, 1), nn.Conv1d(68, 34, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(F.max_pool1d(self.conv(x), 2))

    pose = Spec(input="n (j c) t", output="n (j c) t", skeleton="h36m", negate=(0,))
    with pytest.raises(ConversionError, match=r"max pooling\) over channels that flip sign"):
        symmetrize(MaxPool(), pose, (torch.randn(2, 34, 8),), hidden="skeleton")
    assert symmetrize(MaxPool(), pose, (torch.randn(2, 34, 8),)).symmetrize_report \
        .equivariance_error < 1e-10
    chiral = symmetrize(MaxPool(), pose, (torch.randn(2, 34, 8),), hidden="regular")
    assert chiral.symmetrize_report.equivariance_error < 1e-10


@pytest.mark.parametrize("cell", [nn.GRUCell, nn.LSTMCell])
def test_cell_forecaster_with_a_python_loop(cell: type) -> None:
    from symmetrize.nn import ChiralGRUCell, ChiralLSTMCell
    from tests.pose_models import CellForecaster
    torch.manual_seed(0)
    model = CellForecaster(cell=cell)
    spec = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
    x = torch.randn(3, 13, 34)
    chiral = symmetrize(model, spec, (x,))
    assert isinstance(chiral.cell, ChiralGRUCell if cell is nn.GRUCell else ChiralLSTMCell)
    assert chiral.symmetrize_report.equivariance_error < 1e-10
    assert 0.45 < chiral.symmetrize_report.parameter_ratio < 0.55
    for train in (False, True):
        assert equivariance_error(chiral, spec, torch.randn(2, 13, 34), train) < 1e-10
    losses = train_steps(chiral, x, torch.randn(3, 5, 34))
    assert losses[-1] < losses[0]
