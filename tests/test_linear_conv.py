"""ChiralLinear, ChiralConv1d, the invariance layers and ChiralActivation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from symmetrize import Rep, weight_sharing
from symmetrize.nn import (
    ChiralActivation,
    ChiralConv1d,
    ChiralLinear,
    InvariantConv1d,
    InvariantLinear,
    is_odd,
)
from tests.helpers import TOL, max_err
from tests.strategies import DTYPES, reps


@given(reps(), reps(), DTYPES, st.booleans())
def test_linear_is_equivariant(rep_in: Rep, rep_out: Rep, dtype: torch.dtype, bias: bool) -> None:
    layer = ChiralLinear(rep_in, rep_out, bias=bias, dtype=dtype)
    x = torch.randn(7, 3, rep_in.size, dtype=dtype)
    assert max_err(layer(rep_in.apply(x)), rep_out.apply(layer(x))) < TOL[dtype]


@given(reps(), reps(), DTYPES, st.integers(1, 3), st.integers(1, 2), st.integers(1, 3),
       st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_conv1d_is_equivariant(rep_in: Rep, rep_out: Rep, dtype: torch.dtype, kernel: int,
                               stride: int, dilation: int, padding_mode: str) -> None:
    padding = dilation * (kernel - 1) // 2
    layer = ChiralConv1d(rep_in, rep_out, kernel, stride=stride, padding=padding,
                         dilation=dilation, padding_mode=padding_mode, dtype=dtype)
    x = torch.randn(4, rep_in.size, 9, dtype=dtype)
    assert max_err(layer(rep_in.apply(x, 1)), rep_out.apply(layer(x), 1)) < TOL[dtype]


def test_conv1d_padding_same_and_valid() -> None:
    rep_in, rep_out = Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 4, 1)
    for padding in ("same", "valid"):
        layer = ChiralConv1d(rep_in, rep_out, 3, padding=padding).double()
        x = torch.randn(2, rep_in.size, 10, dtype=torch.float64)
        assert max_err(layer(rep_in.apply(x, 1)), rep_out.apply(layer(x), 1)) < 1e-10


@given(reps(), st.integers(1, 5))
def test_invariance_layers(rep_in: Rep, n_out: int) -> None:
    linear = InvariantLinear(rep_in, n_out, dtype=torch.float64)
    x = torch.randn(5, rep_in.size, dtype=torch.float64)
    assert max_err(linear(rep_in.apply(x)), linear(x)) < 1e-10
    conv = InvariantConv1d(rep_in, n_out, 3, padding=1, dtype=torch.float64)
    x = torch.randn(2, rep_in.size, 6, dtype=torch.float64)
    assert max_err(conv(rep_in.apply(x, 1)), conv(x)) < 1e-10
    assert linear.rep_out.is_trivial


def test_layers_are_their_torch_counterparts_with_dense_weights() -> None:
    rep_in, rep_out = Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 6, 2)
    layer = ChiralLinear(rep_in, rep_out)
    assert isinstance(layer, nn.Linear)
    assert layer.weight.shape == (102, 34) and layer.bias.shape == (102,)
    conv = ChiralConv1d(rep_in, rep_out, 3)
    assert isinstance(conv, nn.Conv1d) and conv.weight.shape == (102, 34, 3)


def test_parameter_counts() -> None:
    rep_in, rep_out = Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 60, 20)
    conv = ChiralConv1d(rep_in, rep_out, 3)
    expected = weight_sharing(rep_in, rep_out).n_free * 3 + \
        weight_sharing(Rep.trivial(1), rep_out).n_free
    assert conv.free_parameters() == sum(p.numel() for p in conv.parameters()) == expected
    assert conv.dense_parameters() == 1020 * 34 * 3 + 1020
    ratio = conv.free_parameters() / conv.dense_parameters()
    assert 0.5 < ratio < 0.6  # about half: 12 of 17 joints are paired


@pytest.mark.parametrize("make", [
    lambda ri, ro: (nn.Linear(ri.size, ro.size), ChiralLinear),
    lambda ri, ro: (nn.Conv1d(ri.size, ro.size, 3, padding=2, dilation=2, padding_mode="reflect"),
                    ChiralConv1d),
])
def test_from_dense_projects_and_to_dense_round_trips(make) -> None:  # type: ignore[no-untyped-def]
    rep_in, rep_out = Rep.pose("coco", 2), Rep.skeleton_hidden("coco", 3, 1)
    dense, cls = make(rep_in, rep_out)
    dense = dense.double()
    chiral = cls.from_dense(dense, rep_in, rep_out)
    sharing = weight_sharing(rep_in, rep_out)
    w = dense.weight.detach()
    expected = (w + torch.einsum("oi,ij...,jk->ok...", rep_out.matrix(), w, rep_in.matrix())) / 2
    assert max_err(chiral.weight, expected) < 1e-12
    assert max_err(chiral.bias, weight_sharing(Rep.trivial(1), rep_out)
                   .project_dense(dense.bias.detach()[:, None])[:, 0]) < 1e-12
    assert sharing.projection_error(w.reshape(*sharing.shape, *w.shape[2:])) > 0.1
    plain = chiral.to_dense()
    assert type(plain) in (nn.Linear, nn.Conv1d)
    x = torch.randn(3, rep_in.size, 8, dtype=torch.float64)
    x = x.transpose(1, 2) if cls is ChiralLinear else x
    assert max_err(plain(x), chiral(x)) < 1e-12
    # an already-equivariant dense layer survives the round trip unchanged
    again = cls.from_dense(plain, rep_in, rep_out)
    assert max_err(again.weight, chiral.weight) < 1e-12


def test_state_dict_round_trip_and_plain_checkpoint() -> None:
    rep_in, rep_out = Rep.pose("h36m", 3), Rep.skeleton_hidden("h36m", 3, 1)
    a = ChiralConv1d(rep_in, rep_out, 3)
    b = ChiralConv1d(rep_in, rep_out, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 51, 5)
    assert torch.equal(a(x), b(x))
    assert set(a.state_dict()) == {"weight_plus", "weight_minus", "bias_plus"}
    plain = nn.Conv1d(51, 51, 3)
    c = ChiralConv1d(rep_in, rep_out, 3)
    c.load_state_dict(plain.state_dict())
    assert max_err(c.weight, ChiralConv1d.from_dense(plain, rep_in, rep_out).weight) < 1e-7
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        c.load_state_dict(nn.Conv1d(51, 51, 5).state_dict())


def test_from_dense_errors() -> None:
    with pytest.raises(ValueError, match="rep_in has size 4 but the layer has 3 inputs"):
        ChiralLinear.from_dense(nn.Linear(3, 2), Rep.regular(4), Rep.regular(2))
    with pytest.raises(TypeError, match="expects an nn.Conv1d"):
        ChiralConv1d.from_dense(nn.Linear(3, 2), Rep.regular(3), Rep.regular(2))  # type: ignore
    with pytest.raises(ValueError, match="groups=2"):
        ChiralConv1d.from_dense(nn.Conv1d(4, 4, 1, groups=2), Rep.regular(4), Rep.regular(4))


def test_training_reduces_loss_and_keeps_equivariance() -> None:
    rep_in, rep_hidden = Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 4, 1)
    rep_out = Rep.pose("h36m", 3)
    model = nn.Sequential(ChiralConv1d(rep_in, rep_hidden, 3), ChiralActivation(rep_hidden),
                          ChiralConv1d(rep_hidden, rep_out, 1)).double()
    x = torch.randn(8, 34, 7, dtype=torch.float64)
    y = torch.randn(8, 51, 5, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert max_err(model(rep_in.apply(x, 1)), rep_out.apply(model(x), 1)) < 1e-10


@pytest.mark.parametrize("rep_in,rep_out", [
    (Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 60, 20)),
    (Rep.skeleton_hidden("h36m", 60, 20), Rep.skeleton_hidden("h36m", 60, 20)),
    (Rep.trivial(40) + Rep.negated(40), Rep.negated(30) + Rep.regular(30)),
])
def test_init_matches_plain_output_variance(rep_in: Rep, rep_out: Rep) -> None:
    torch.manual_seed(1)
    x = torch.randn(4096, rep_in.size)
    for plain, chiral in [(nn.Linear(rep_in.size, rep_out.size), ChiralLinear(rep_in, rep_out)),
                          (nn.Conv1d(rep_in.size, rep_out.size, 3),
                           ChiralConv1d(rep_in, rep_out, 3))]:
        inp = x if isinstance(plain, nn.Linear) else x[:64].T.reshape(1, rep_in.size, -1)
        with torch.no_grad():
            ratio = chiral(inp).var().item() / plain(inp).var().item()
        assert 0.8 < ratio < 1.2, (type(plain).__name__, ratio)


# ---------------------------------------------------------------- activations
@given(reps(), st.sampled_from([nn.ReLU(), nn.GELU(), nn.SiLU(), nn.LeakyReLU(0.1)]),
       st.sampled_from([nn.Tanh(), nn.Softsign(), nn.Hardtanh()]))
def test_chiral_activation_is_equivariant(rep: Rep, act: nn.Module, odd: nn.Module) -> None:
    layer = ChiralActivation(rep, act, odd, dim=-1)
    x = torch.randn(6, rep.size, dtype=torch.float64)
    assert max_err(layer(rep.apply(x)), rep.apply(layer(x))) < 1e-12
    # the original activation stays on the channels that do not flip
    keep = torch.tensor(rep.sign > 0)
    assert torch.equal(layer(x)[:, keep], act(x)[:, keep])


def test_relu_on_negated_channels_breaks_equivariance() -> None:
    rep = Rep.negated(3)
    x = torch.randn(4, 3)
    assert max_err(nn.ReLU()(rep.apply(x)), rep.apply(nn.ReLU()(x))) > 0.1


def test_odd_detection_and_error() -> None:
    assert is_odd(nn.Tanh()) and is_odd(nn.Hardtanh()) and not is_odd(nn.Hardtanh(0.0, 1.0))
    assert not is_odd(nn.ReLU()) and not is_odd(nn.GELU())
    with pytest.raises(ValueError, match="not an odd function"):
        ChiralActivation(Rep.negated(2), odd=nn.ReLU())
    with pytest.raises(ValueError, match="expects 2 channels on axis 1"):
        ChiralActivation(Rep.negated(2))(torch.zeros(3, 4))


@pytest.mark.parametrize("make", [
    lambda: ChiralLinear(Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 4, 1)),
    lambda: ChiralConv1d(Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 4, 1), 3),
])
def test_reset_parameters_reaches_the_free_parameters(make) -> None:  # type: ignore[no-untyped-def]
    layer = make()
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
    layer.reset_parameters()
    theta = layer.weight_plus
    assert theta.abs().sum() > 0 and layer.weight.abs().sum() > 0
    assert layer.bias_plus.abs().sum() > 0
    x = torch.randn(4, layer.in_features if isinstance(layer, nn.Linear) else 34,
                    *(() if isinstance(layer, nn.Linear) else (5,)), dtype=torch.float64)
    rep_in, rep_out = layer.rep_in, layer.rep_out
    dim = -1 if isinstance(layer, nn.Linear) else 1
    layer = layer.double()
    assert max_err(layer(rep_in.apply(x, dim)), rep_out.apply(layer(x), dim)) < 1e-10
