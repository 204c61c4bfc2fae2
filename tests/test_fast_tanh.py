"""fast_tanh: tanh through the sigmoid on CPU, exactly odd, torch.tanh wherever a tracer looks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize.nn.fast_tanh import (FAST_TANH_MAX_BYTES, FAST_TANH_MIN_NUMEL, SwitchedTanh,
                                     fast_tanh, fast_tanh_, uses_sigmoid)

SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1e-8, 3.0, -3.0, 9.0, 20.0, -20.0, 1e30, float("inf"),
           float("-inf")]


def _inputs(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 256, generator=gen, dtype=torch.float64) * 3
    x.view(-1)[: len(SPECIAL)] = torch.tensor(SPECIAL, dtype=torch.float64)
    return x.to(dtype)


@pytest.mark.parametrize(("dtype", "bound"), [(torch.float32, 2.0 ** -22),
                                               (torch.float64, 2.0 ** -51)])
def test_close_to_tanh_and_exactly_odd(dtype: torch.dtype, bound: float) -> None:
    x = _inputs(dtype)
    assert uses_sigmoid(x)
    y = fast_tanh(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert (y.double() - torch.tanh(x.double())).abs().max().item() <= bound
    assert torch.equal(fast_tanh(-x), -y)
    assert torch.equal(torch.signbit(y), torch.signbit(x))  # -0.0 stays -0.0


def test_nan_propagates() -> None:
    x = _inputs(torch.float32)
    x[0, 0] = float("nan")
    assert torch.isnan(fast_tanh(x)[0, 0]) and torch.isnan(fast_tanh_(x.clone())[0, 0])


def test_in_place_matches_and_works_on_views() -> None:
    x = _inputs(torch.float32)
    expected = fast_tanh(x)
    buf = torch.zeros(256, 512)
    buf[:, 128:384] = x
    view = buf[:, 128:384]  # non-contiguous: the recurrent layers' gate slices
    assert uses_sigmoid(view)
    assert fast_tanh_(view) is view
    assert torch.equal(buf[:, 128:384], expected)
    assert torch.equal(buf[:, :128], torch.zeros(256, 128))


def test_backward_is_tanh_backward() -> None:
    x = _inputs(torch.float64).requires_grad_(True)
    ref = x.detach().clone().requires_grad_(True)
    grad = torch.randn_like(x)
    fast_tanh(x).backward(grad)
    torch.tanh(ref).backward(grad)
    assert torch.allclose(x.grad, ref.grad, rtol=0, atol=1e-14)  # y within 2^-51
    x = torch.randn(64, 64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast_tanh, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fast_tanh, (x,), fast_mode=True)


def test_in_place_on_a_tensor_that_needs_grad_uses_torch() -> None:
    x = _inputs(torch.float64).requires_grad_(True)
    y = x * 1.0
    fast_tanh_(y)
    y.sum().backward()
    assert torch.allclose(x.grad, 1 - torch.tanh(x.detach()) ** 2, atol=1e-15)


@pytest.mark.parametrize("case", ["small", "large", "half", "bfloat16"])
def test_plain_tanh_where_the_rewrite_does_not_pay(case: str) -> None:
    x = {"small": lambda: torch.randn(FAST_TANH_MIN_NUMEL - 1),
         "large": lambda: torch.randn(FAST_TANH_MAX_BYTES // 4 + 1),
         "half": lambda: torch.randn(256, 256).half(),
         "bfloat16": lambda: torch.randn(256, 256).bfloat16()}[case]()
    assert not uses_sigmoid(x)
    assert torch.equal(fast_tanh(x), torch.tanh(x))


def test_tracers_see_torch_tanh() -> None:
    module = SwitchedTanh()
    traced = torch.jit.trace(module, torch.randn(256, 256))
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert "aten::tanh" in kinds and "aten::sigmoid" not in kinds
    x = torch.randn(256, 256)
    assert torch.allclose(traced(x), torch.tanh(x), atol=0)


def test_switched_tanh_is_an_nn_tanh() -> None:
    module = SwitchedTanh()
    assert isinstance(module, nn.Tanh)
    x = _inputs(torch.float32)
    assert torch.allclose(module(x), torch.tanh(x), rtol=0, atol=2.0 ** -22)


class _Lifter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.act, self.out = nn.Linear(34, 340), nn.ReLU(), nn.Linear(340, 34)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.inp(x.flatten(1)))).view(x.shape[0], 17, 2)


def test_converted_relu_becomes_switched_tanh() -> None:
    from symmetrize import Spec, symmetrize

    torch.manual_seed(0)
    spec = Spec(input="n j c", output="n j c", skeleton="h36m", negate=(0,))
    chiral = symmetrize(_Lifter(), spec, torch.randn(4, 17, 2))
    assert isinstance(chiral.act, SwitchedTanh)
    x = torch.randn(256, 17, 2)  # 256 x 340 activations: the sigmoid form
    assert uses_sigmoid(chiral.inp(x.flatten(1)))
    reference = chiral.out(torch.tanh(chiral.inp(x.flatten(1)))).view(256, 17, 2)
    assert torch.allclose(chiral(x), reference, rtol=0, atol=1e-6)


class _InPlaceLifter(_Lifter):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=True)


def test_an_in_place_relu_becomes_an_in_place_tanh_with_the_same_gradients() -> None:
    from symmetrize import Spec, symmetrize

    spec = Spec(input="n j c", output="n j c", skeleton="h36m", negate=(0,))
    torch.manual_seed(0)
    inplace = symmetrize(_InPlaceLifter(), spec, torch.randn(4, 17, 2))
    torch.manual_seed(0)
    fresh = symmetrize(_Lifter(), spec, torch.randn(4, 17, 2))
    assert isinstance(inplace.act, SwitchedTanh) and inplace.act.inplace
    assert not fresh.act.inplace and "inplace" not in repr(fresh.act)
    fresh.load_state_dict(inplace.state_dict())
    inplace, fresh = inplace.double(), fresh.double()
    x = torch.randn(256, 17, 2, dtype=torch.float64)
    with torch.no_grad():
        hidden = inplace.inp(x.flatten(1))
        assert inplace.act(hidden) is hidden  # overwritten, no new tensor
        assert torch.allclose(inplace(x), fresh(x), rtol=0, atol=1e-14)
    for model in (inplace, fresh):
        model.zero_grad()
        model(x).square().sum().backward()
    for a, b in zip(inplace.parameters(), fresh.parameters(), strict=True):
        # in place under autograd: torch's tanh_; otherwise the sigmoid form (within 2^-51)
        assert torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)
