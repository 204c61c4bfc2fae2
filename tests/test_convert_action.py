"""symmetrize on skeleton action recognisers: ST-GCN-style graph convnets and a GRU classifier.

The output is class logits (a layout with no joints or coordinates): the converted model must be
*invariant*, ``f(T x) == f(x)``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from symmetrize import ConversionError, Spec, explain, symmetrize
from symmetrize.nn import ChiralBatchNorm2d, ChiralConv2d
from symmetrize.skeleton import Skeleton
from tests.action_models import H36M_CLIPS, Model, small_gru_classifier
from tests.helpers import Net, equivariance_error

NTU = Spec(input="n c t j m", output="n k", skeleton="ntu", negate=(0,))
WIDTHS = (16, 16, 16, 32, 32)


def fit(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, steps: int = 15) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def stgcn() -> tuple[Model, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = Model(in_channels=3, num_class=10, graph_layout="ntu-rgb+d", channels=WIDTHS)
    x = torch.randn(2, 3, 12, 25, 2)
    return model, symmetrize(model, NTU, (x,)), x


def test_stgcn_is_invariant_in_eval_and_train_mode(stgcn) -> None:
    _, chiral, _ = stgcn
    x = torch.randn(3, 3, 16, 25, 2)  # another batch size and clip length than traced
    for train in (False, True):
        assert equivariance_error(chiral, NTU, x, train, invariant=True) < 1e-10
    with torch.no_grad():
        probe = copy.deepcopy(chiral).eval()
        assert (probe(NTU.mirror_input(0, x)) - probe(x)).abs().max().item() < 1e-5


def test_stgcn_layers_replaced_and_reported(stgcn) -> None:
    model, chiral, _ = stgcn
    report = chiral.symmetrize_report
    assert report.equivariance_error < 1e-10
    convs = [p for p, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    bns = [p for p, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(isinstance(chiral.get_submodule(p), ChiralConv2d) for p in convs)
    assert all(isinstance(chiral.get_submodule(p), ChiralBatchNorm2d) for p in bns)
    replaced = set(report.actions("replaced by"))
    assert set(convs) | set(bns) | {"data_bn"} <= replaced
    relus = [p for p, m in model.named_modules() if isinstance(m, nn.ReLU)]
    assert set(report.actions("activation")) == set(relus) == set(report.switched)
    shared = report.actions("mirror-shared")
    assert shared == [f"edge_importance.{i}" for i in range(len(WIDTHS))]
    # sign-only channel Reps (joints on V): about 5/9 of each conv's weights, plus the shared
    # edge importance; the exact ratio is reported
    assert report.parameters_after == sum(p.numel() for p in chiral.parameters())
    assert 0.5 < report.parameter_ratio < 0.6
    assert explain(model, NTU, (torch.randn(1, 3, 12, 25, 2),)).rows == report.rows


def test_stgcn_keeps_class_methods_and_trains(stgcn) -> None:
    model, chiral, x = stgcn
    assert type(chiral).__name__ == "Model" and isinstance(chiral, Model)
    output, feature = chiral.eval().extract_feature(x)
    assert output.shape[:2] == (2, 10) and feature.shape[1] == WIDTHS[-1]
    trained = copy.deepcopy(chiral)
    labels = torch.tensor([3, 7])
    losses = fit(trained, x, labels)
    assert losses[-1] < losses[0]
    # the edge importance stays mirror-symmetric after training
    perm = torch.tensor(list(Skeleton.preset("ntu").mirror))
    for importance in trained.edge_importance:
        assert torch.equal(importance[:, perm][:, :, perm], importance)
        assert not torch.equal(importance, torch.ones_like(importance))
    assert equivariance_error(trained, NTU, x, train=False, invariant=True) < 1e-10


def test_stgcn_invariance_at_the_fourth_block() -> None:
    torch.manual_seed(1)
    model = Model(in_channels=3, num_class=10, graph_layout="ntu-rgb+d", channels=WIDTHS)
    x = torch.randn(2, 3, 12, 25, 2)
    chiral = symmetrize(model, NTU, (x,), invariant_at="st_gcn_networks.3")
    report = chiral.symmetrize_report
    # every layer after the invariance block is an ordinary layer
    assert type(chiral.st_gcn_networks[4].gcn.conv) is nn.Conv2d
    assert type(chiral.fcn) is nn.Conv2d
    assert type(chiral.st_gcn_networks[3].tcn[2]) is nn.Conv2d
    assert isinstance(chiral.st_gcn_networks[3].gcn.conv, ChiralConv2d)
    assert chiral.st_gcn_networks[3].gcn.conv.rep_out.is_trivial
    assert "st_gcn_networks.4.gcn.conv" in report.actions("kept (sees only invariant")
    assert report.parameter_ratio > symmetrize(model, NTU, (x,)).symmetrize_report.parameter_ratio
    for train in (False, True):
        clip = torch.randn(2, 3, 12, 25, 2)
        assert equivariance_error(chiral, NTU, clip, train, invariant=True) < 1e-10
    losses = fit(chiral, x, torch.tensor([1, 2]))
    assert losses[-1] < losses[0]


def test_stgcn_on_the_h36m_skeleton_with_two_channels_and_one_person() -> None:
    torch.manual_seed(2)
    spec = Spec(input="n c t j m", output="n k", skeleton="h36m", negate=(0,))
    model = Model(in_channels=2, num_class=5, graph_layout="h36m", strategy="uniform",
                  channels=(8, 8, 16))
    chiral = symmetrize(model, spec, (torch.randn(2, 2, 10, 17, 1),))
    assert chiral.symmetrize_report.equivariance_error < 1e-10
    clip = torch.randn(4, 2, 10, 17, 1)
    assert equivariance_error(chiral, spec, clip, train=True, invariant=True) < 1e-10


def test_asymmetric_adjacency_is_a_clear_error() -> None:
    model = Model(in_channels=3, num_class=4, graph_layout="ntu-rgb+d", channels=(8, 8))
    with torch.no_grad():
        model.A[1, 4, 20] += 0.5  # left shoulder -> spine shoulder only, not its right twin
    with pytest.raises(ConversionError, match=r"the constant 'A' \(used by the einsum in node "
                                              r"'einsum' in module 'st_gcn_networks.0.gcn' \(.*"
                                              r"action_models.py:\d+\)\) is not mirror-symmetric:"
                                              r" entry \(1, 4, 20\) is 0.5 but its mirror image "
                                              r"needs 0.*edge list"):
        symmetrize(model, NTU, (torch.randn(1, 3, 8, 25, 1),))


def test_kernel_across_joints_is_a_clear_error() -> None:
    class SpatialConv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, kernel_size=(1, 3), padding=(0, 1))
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).mean(dim=(2, 3)))

    spec = Spec(input="n c t j", output="n k", skeleton="ntu", negate=(0,))
    with pytest.raises(ConversionError, match=r"'conv' slides its kernel \(size 3, stride 1\) "
                                              r"along axis 3.*\(k, 1\) kernel.*average="):
        symmetrize(SpatialConv(), spec, (torch.randn(2, 3, 6, 25),))


class PerJointEmbedding(nn.Module):
    """A learned per-joint offset and scale on (N, T, J, C) features."""

    def __init__(self, joints: int = 17, width: int = 12) -> None:
        super().__init__()
        self.embed = nn.Linear(2, width)
        self.joint_bias = nn.Parameter(torch.randn(joints, width))
        self.joint_scale = nn.Parameter(torch.rand(joints, 1) + 0.5)
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) * self.joint_scale + self.joint_bias
        return self.head(torch.tanh(h))


def test_learned_per_joint_tensors_become_mirror_shared() -> None:
    torch.manual_seed(3)
    spec = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
    model = PerJointEmbedding()
    chiral = symmetrize(model, spec, (torch.randn(2, 4, 17, 2),))
    report = chiral.symmetrize_report
    assert sorted(report.actions("mirror-shared")) == ["joint_bias", "joint_scale"]
    perm = torch.tensor(list(Skeleton.preset("h36m").mirror))
    sign = chiral.embed.rep_out.sign  # the per-joint features' signs (some flip)
    bias = chiral.joint_bias.detach()
    assert torch.allclose(bias[perm] * torch.tensor(sign.tolist(), dtype=bias.dtype), bias)
    assert torch.equal(chiral.joint_scale[perm], chiral.joint_scale)
    # centre joints' flipping features can have no offset
    assert (bias[:, torch.tensor(sign.tolist()) < 0][perm == torch.arange(17)] == 0).all()
    assert report.equivariance_error < 1e-10
    opt = torch.optim.SGD(chiral.parameters(), lr=0.5)
    loss = chiral(torch.randn(3, 4, 17, 2)).pow(2).sum()
    loss.backward()
    opt.step()
    x = torch.randn(2, 4, 17, 2, dtype=torch.float64)
    assert equivariance_error(chiral, spec, x, train=chiral.training) < 1e-10


def test_gru_classifier_with_functional_relu_and_mean() -> None:
    torch.manual_seed(4)
    spec, model = H36M_CLIPS, small_gru_classifier()
    x = torch.randn(3, 9, 17, 2)
    chiral = symmetrize(model, spec, (x,))
    report = chiral.symmetrize_report
    assert report.equivariance_error < 1e-10
    # fc's 68 = 17 x 4 hidden channels include flipping ones: its F.relu becomes tanh
    assert chiral.fc.rep_out.n_negated > 0
    switched = [row for row in report.rows if row.action == "switched"]
    assert [row.target for row in switched] == ["relu"]
    assert "action_models.py:" in switched[0].what
    for train in (False, True):
        clip = torch.randn(2, 7, 17, 2)
        assert equivariance_error(chiral, spec, clip, train, invariant=True) < 1e-10
    losses = fit(chiral, x, torch.tensor([0, 3, 5]))
    assert losses[-1] < losses[0]


class AdaptiveGraphUnit(nn.Module):
    """A 2s-AGCN-style adaptive graph convolution: a fixed adjacency plus a learned one, plus a
    data-dependent one from a softmax over embedded joint-joint similarities (matmul)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 8, inter: int = 4,
                 num_class: int = 5) -> None:
        super().__init__()
        from tests.action_models import build_adjacency
        A = torch.tensor(build_adjacency("ntu-rgb+d", "uniform")[0], dtype=torch.float32)
        self.register_buffer("A", A)
        self.PA = nn.Parameter(torch.rand(25, 25) * 1e-1)
        self.conv_a = nn.Conv2d(in_channels, inter, 1)
        self.conv_b = nn.Conv2d(in_channels, inter, 1)
        self.conv_d = nn.Conv2d(in_channels, out_channels, 1)
        self.soft = nn.Softmax(-2)
        self.fc = nn.Linear(out_channels, num_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, T, V = x.size()
        A = self.A + self.PA
        A1 = self.conv_a(x).permute(0, 3, 1, 2).contiguous().view(N, V, -1)
        A2 = self.conv_b(x).view(N, -1, V)
        A1 = self.soft(torch.matmul(A1, A2) / A1.size(-1))
        A1 = A1 + A
        A2 = x.view(N, C * T, V)
        y = self.conv_d(torch.matmul(A2, A1).view(N, C, T, V))
        return self.fc(F.relu(y).mean(dim=(2, 3)))


def test_adaptive_graph_with_matmul_softmax_and_learned_adjacency() -> None:
    torch.manual_seed(5)
    spec = Spec(input="n c t j", output="n k", skeleton="ntu", negate=(0,))
    model = AdaptiveGraphUnit()
    x = torch.randn(2, 3, 6, 25)
    chiral = symmetrize(model, spec, (x,))
    report = chiral.symmetrize_report
    assert report.actions("mirror-shared") == ["PA"]
    assert report.equivariance_error < 1e-10
    for train in (False, True):
        clip = torch.randn(3, 3, 7, 25)
        assert equivariance_error(chiral, spec, clip, train, invariant=True) < 1e-10
    losses = fit(chiral, x, torch.tensor([1, 4]))
    assert losses[-1] < losses[0]
    assert equivariance_error(chiral, spec, x, train=False, invariant=True) < 1e-10


def test_softmax_of_flipping_features_is_a_clear_error() -> None:
    def scores() -> Net:
        return Net(lambda m, x: torch.softmax(m.proj(x), dim=-1).mean(dim=(1, 2)),
                   proj=nn.Linear(2, 6))

    spec = Spec(input="n t j c", output="n k", skeleton="h36m", negate=(0,))
    with pytest.raises(ConversionError, match=r"softmax of features that flip sign"):
        symmetrize(scores(), spec, (torch.randn(2, 3, 17, 2),), hidden="skeleton")
    # automatic: the scores get no negated channel, and the invariant output fixes the rest
    auto = symmetrize(scores(), spec, (torch.randn(2, 3, 17, 2),))
    assert auto.symmetrize_report.equivariance_error < 1e-10
