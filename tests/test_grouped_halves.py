"""Equal, contiguous eigen halves: convolutions as one grouped kernel, the mixed activation on
narrow views; both exactly what the general paths compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn import ChiralActivation, ChiralConv1d, ChiralConv2d
from symmetrize.nn.blockops import block_apply, grouped_halves
from symmetrize.rep import Rep
from symmetrize.rules.hidden_policy import eigen_layout, sign_layout

PLUS_FIRST = eigen_layout(8, 0.5)   # + + + + - - - -
MINUS_FIRST = sign_layout(8, 0.5)   # - - - - + + + +
WIDE = eigen_layout(64, 0.5)        # wide enough to run in block form (MIN_BLOCK_WIDTH)
WIDE_MINUS_FIRST = sign_layout(64, 0.5)


def test_grouped_halves_needs_equal_contiguous_halves_in_the_same_order() -> None:
    assert grouped_halves(eigenbasis(PLUS_FIRST), eigenbasis(eigen_layout(6, 0.5))) == "+-"
    assert grouped_halves(eigenbasis(MINUS_FIRST), eigenbasis(sign_layout(6, 0.5))) == "-+"
    assert grouped_halves(eigenbasis(PLUS_FIRST), eigenbasis(MINUS_FIRST)) is None
    assert grouped_halves(eigenbasis(eigen_layout(9, 1 / 3)), eigenbasis(PLUS_FIRST)) is None
    assert grouped_halves(eigenbasis(Rep.regular(8)), eigenbasis(PLUS_FIRST)) is None


def _grouped_calls(layer: nn.Module) -> list[str]:
    """Record the calls of ``layer``'s grouped forward (the path taken in inference)."""
    calls: list[str] = []
    original = layer._grouped_forward

    def spy(x: torch.Tensor, order: str) -> torch.Tensor:
        calls.append(order)
        return original(x, order)
    layer._grouped_forward = spy
    return calls


def _reference(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    conv: object = layer
    return block_apply(x, 1, eigenbasis(layer.rep_in), eigenbasis(layer.rep_out),
                       conv._conv_forward, layer.weight_plus, layer.weight_minus,
                       layer.bias_plus)


@pytest.mark.parametrize("rep", [WIDE, WIDE_MINUS_FIRST], ids=["plus-first", "minus-first"])
@pytest.mark.parametrize("options", [dict(), dict(padding=2, padding_mode="reflect", bias=False),
                                     dict(padding="same", dilation=2, padding_mode="circular"),
                                     dict(stride=2, padding=1)])
def test_grouped_conv1d_matches_the_halves_and_is_equivariant(rep: Rep,
                                                              options: dict) -> None:
    torch.manual_seed(0)
    layer = ChiralConv1d(rep, rep, 3, **options).double()
    for p in layer.parameters():  # a nonzero bias too
        nn.init.normal_(p)
    assert layer.execution == "blocks"
    calls = _grouped_calls(layer)
    x = torch.randn(3, 64, 11, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
        assert calls == [grouped_halves(eigenbasis(rep), eigenbasis(rep))]
        assert torch.allclose(y, _reference(layer, x), rtol=0, atol=1e-12)
        assert torch.allclose(y, layer.to_dense()(x), rtol=0, atol=1e-12)
        err = (layer(rep.apply(x, 1)) - rep.apply(y, 1)).norm() / y.norm()
    assert err < 1e-12


def test_training_runs_the_halves_and_agrees_with_inference() -> None:
    torch.manual_seed(1)
    layer = ChiralConv1d(WIDE, WIDE, 3, padding=1).double()
    calls = _grouped_calls(layer)
    x = torch.randn(2, 64, 9, dtype=torch.float64)
    y = layer(x)  # parameters need grad: split halves (their backward is the faster one)
    assert calls == [] and y.requires_grad
    with torch.no_grad():
        assert torch.allclose(layer(x), y, rtol=0, atol=1e-12)
    assert calls == ["+-"]


def test_grouped_conv2d_and_unbatched_input() -> None:
    torch.manual_seed(2)
    layer = ChiralConv2d(WIDE, WIDE, (3, 1), padding=(1, 0)).double()
    conv1 = ChiralConv1d(WIDE, WIDE, 3).double()
    calls = [_grouped_calls(layer), _grouped_calls(conv1)]
    x = torch.randn(2, 64, 7, 5, dtype=torch.float64)
    single = torch.randn(64, 10, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(layer(x), layer.to_dense()(x), rtol=0, atol=1e-12)
        assert torch.allclose(conv1(single), conv1.to_dense()(single), rtol=0, atol=1e-12)
    assert calls == [["+-"], ["+-"]]


@pytest.mark.parametrize("rep", [PLUS_FIRST, MINUS_FIRST, eigen_layout(8, 0.25)],
                         ids=["plus-first", "minus-first", "uneven"])
@pytest.mark.parametrize("dim", [1, -1])
def test_mixed_activation_on_contiguous_signs_matches_where(rep: Rep, dim: int) -> None:
    torch.manual_seed(3)
    act = ChiralActivation(rep, nn.ReLU(), nn.Tanh(), dim=dim)
    assert act._tail is not None
    x = torch.randn(4, 8, 8, dtype=torch.float64)
    shape = [1] * 3
    shape[dim] = 8
    negated = torch.tensor(rep.sign < 0).view(shape)
    assert torch.equal(act(x), torch.where(negated, torch.tanh(x), torch.relu(x)))
    assert torch.equal(act(rep.apply(x, dim % 3)), rep.apply(act(x), dim % 3))


def test_mixed_activation_keeps_the_where_path_for_scattered_signs() -> None:
    rep = Rep(torch.arange(6).numpy(), torch.tensor([1, -1, 1, -1, 1, 1]).numpy())
    act = ChiralActivation(rep)
    assert act._tail is None
    x = torch.randn(5, 6)
    assert torch.allclose(act(x), torch.where(torch.tensor(rep.sign < 0), torch.tanh(x),
                                              torch.relu(x)), rtol=0, atol=1e-6)
