"""Export of models with chiral layers to plain PyTorch modules."""

from __future__ import annotations

import io

import torch
from torch import nn
from torch.nn.utils import parametrize

from symmetrize import Rep
from symmetrize.export import export_plain
from symmetrize.nn import (
    ChiralActivation,
    ChiralBatchNorm1d,
    ChiralConv1d,
    ChiralGRU,
    ChiralLinear,
    ChiralLSTM,
)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        pose, hidden = Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 3, 1)
        self.conv = nn.Sequential(ChiralConv1d(pose, hidden, 3, padding=1),
                                  ChiralBatchNorm1d(hidden), ChiralActivation(hidden))
        self.lstm = ChiralLSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.gru = ChiralGRU(hidden, hidden, batch_first=True)
        self.head = nn.ModuleDict({"out": ChiralLinear(hidden, pose), "plain": nn.Identity()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).transpose(1, 2)
        h, _ = self.lstm(h)
        h, _ = self.gru(h)
        return self.head["plain"](self.head["out"](h))


def test_export_plain_same_outputs_no_parametrizations() -> None:
    torch.manual_seed(0)
    model = Mixed().double()
    x = torch.randn(4, 34, 9, dtype=torch.float64)
    model.train()
    model(x)  # update running statistics once
    model.eval()
    expected = model(x)
    plain = export_plain(model)
    assert plain is not model
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert type(plain.conv[0]) is nn.Conv1d and type(plain.conv[1]) is nn.BatchNorm1d
    assert type(plain.lstm) is nn.LSTM and type(plain.gru) is nn.GRU
    assert type(plain.head["out"]) is nn.Linear
    assert not plain.training
    torch.testing.assert_close(plain(x), expected, atol=1e-12, rtol=0)
    # the original is untouched and still chiral
    assert isinstance(model.head["out"], ChiralLinear)
    # a plain model pickles whole and has plain state-dict keys
    buffer = io.BytesIO()
    torch.save(plain, buffer)
    assert all("parametrizations" not in key for key in plain.state_dict())
    dense_count = sum(p.numel() for p in plain.parameters())
    free_count = sum(p.numel() for p in model.parameters())
    assert free_count < dense_count


def test_export_in_place_and_single_layer() -> None:
    layer = ChiralLinear(Rep.regular(4), Rep.regular(6))
    plain = export_plain(layer)
    assert type(plain) is nn.Linear
    torch.testing.assert_close(plain.weight, layer.weight)
    model = nn.Sequential(layer, nn.ReLU())
    same = export_plain(model, inplace=True)
    assert same is model and type(model[0]) is nn.Linear


def test_invariant_conv1d_from_dense() -> None:
    from symmetrize.nn import InvariantConv1d
    torch.manual_seed(0)
    rep = Rep.pose("h36m", 2)
    layer = InvariantConv1d.from_dense(nn.Conv1d(34, 5, 3), rep)
    x = torch.randn(2, 34, 9)
    assert (layer(rep.apply(x, 1)) - layer(x)).abs().max() < 1e-5
    assert isinstance(layer, InvariantConv1d) and layer.rep_out.is_trivial


def test_export_turns_mirror_shared_tensors_back_to_parameters() -> None:
    from symmetrize import Spec, symmetrize
    from tests.test_convert_action import PerJointEmbedding
    torch.manual_seed(0)
    spec = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
    chiral = symmetrize(PerJointEmbedding(), spec, (torch.randn(2, 3, 17, 2),))
    plain = export_plain(chiral)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert isinstance(plain.joint_bias, nn.Parameter)
    x = torch.randn(2, 3, 17, 2)
    assert torch.allclose(plain(x), chiral(x))
    assert isinstance(chiral.joint_bias, torch.Tensor)  # the original is untouched
    assert parametrize.is_parametrized(chiral, "joint_bias")


class BiasedReLU(nn.Module):
    """A root-level learned per-joint bias and a functional ReLU (switched class on top of the
    parametrized one)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 12)
        self.joint_bias = nn.Parameter(torch.randn(17, 12))
        self.head = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.relu(self.embed(x) + self.joint_bias))


def test_export_of_a_switched_model_with_shared_root_tensors() -> None:
    from symmetrize import Spec, symmetrize
    torch.manual_seed(1)
    spec = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
    chiral = symmetrize(BiasedReLU(), spec, (torch.randn(2, 3, 17, 2),))
    assert any("functional call" in row.detail for row in chiral.symmetrize_report.rows)
    plain = export_plain(chiral)
    x = torch.randn(2, 3, 17, 2)
    assert torch.allclose(plain(x), chiral(x))
    assert isinstance(plain, BiasedReLU) and not parametrize.is_parametrized(plain)
    with torch.no_grad():
        error = (plain(spec.mirror_input(0, x)) - spec.mirror_output(0, plain(x))).abs().max()
    assert error < 1e-5


def test_exported_models_pickle_switched_ones_too(tmp_path) -> None:
    from symmetrize import Spec, symmetrize
    from tests.test_convert import Functional
    torch.manual_seed(2)
    spec = Spec(input="n (j c)", output="n (j c)", skeleton="h36m")
    for model in (Functional(), nn.Sequential(nn.Linear(34, 68), nn.ReLU(), nn.Linear(68, 34))):
        plain = export_plain(symmetrize(model, spec, (torch.randn(2, 34),)))
        path = tmp_path / "model.pt"
        torch.save(plain, path)
        loaded = torch.load(path, weights_only=False)
        x = torch.randn(3, 34)
        assert torch.allclose(loaded(x), plain(x))
        assert type(loaded).__name__ == type(model).__name__
        with torch.no_grad():
            error = (loaded(spec.mirror_input(0, x)) - spec.mirror_output(0, loaded(x))).abs()
        assert error.max() < 1e-5
