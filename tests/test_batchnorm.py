"""ChiralBatchNorm1d: equivariance, equality with plain BatchNorm on the augmented batch {x, T x},
gradients, running statistics, checkpoints and conversion."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from symmetrize.nn.batchnorm import ChiralBatchNorm1d
from symmetrize.nn.batchnorm_fn import ChiralBatchNormFn
from symmetrize.rep import Rep
from tests import helpers
from tests.helpers import MIXED, TOL, make_input, max_err, randomise
from tests.strategies import reps


def reference(bn: ChiralBatchNorm1d, rep: Rep) -> nn.BatchNorm1d:
    """The plain layer with the chiral one's materialised gamma / beta (fresh running stats)."""
    ref = nn.BatchNorm1d(rep.size, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                         track_running_stats=bn.track_running_stats,
                         dtype=bn.running_mean.dtype if bn.running_mean is not None
                         else torch.float64)
    if bn.affine:
        with torch.no_grad():
            ref.weight.copy_(bn.weight)
            ref.bias.copy_(bn.bias)
    return ref


def augmented(ref: nn.Module, rep: Rep, x: torch.Tensor) -> torch.Tensor:
    """First half of ``ref(cat[x, T x])``: what the chiral layer must compute in training."""
    return ref(torch.cat([x, rep.apply(x, 1)]))[: x.shape[0]]


# --------------------------------------------------------------------------- equivariance
@settings(max_examples=30, deadline=None)
@given(reps(max_size=12), st.sampled_from([torch.float64, torch.float32]), st.booleans(),
       st.booleans(), st.sampled_from([0.1, None]), st.booleans(), st.integers(0, 2 ** 31 - 1))
def test_equivariant_train_and_eval(rep: Rep, dtype: torch.dtype, three_d: bool, affine: bool,
                                    momentum: float | None, track: bool, seed: int) -> None:
    torch.manual_seed(seed)
    bn = randomise(ChiralBatchNorm1d(rep, momentum=momentum, affine=affine,
                                     track_running_stats=track, dtype=dtype))
    shape = (6, rep.size, 5) if three_d else (8, rep.size)
    tol = TOL[dtype]
    for _ in range(3):  # training: batch statistics, also fills the running statistics
        x = make_input(shape, dtype)
        assert max_err(bn(rep.apply(x, 1)), rep.apply(bn(x), 1)) < tol
    if track:
        assert max_err(rep.apply(bn.running_mean, 0), bn.running_mean) < tol
        assert max_err(bn.running_var[torch.tensor(rep.perm.tolist())], bn.running_var) < tol
    bn.eval()
    x = make_input(shape, dtype)
    assert max_err(bn(rep.apply(x, 1)), rep.apply(bn(x), 1)) < tol


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(7, 9), (4, 9, 6)])
def test_equivariant_fixed_rep(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    bn = randomise(ChiralBatchNorm1d(MIXED, dtype=dtype))
    x = make_input(shape, dtype)
    y = bn(x)
    assert max_err(bn(MIXED.apply(x, 1)), MIXED.apply(y, 1)) < TOL[dtype]
    # Negated fixed channels have zero shift and (augmented) mean zero: odd in x.
    assert bn.bias[3].item() == 0.0 and bn.bias[7].item() == -bn.bias[8].item()
    # The running statistics are symmetric to the last bit (so checkpoints reload unchanged).
    assert torch.equal(MIXED.apply(bn.running_mean, 0), bn.running_mean)
    assert torch.equal(bn.running_var[torch.tensor(MIXED.perm.tolist())], bn.running_var)
    assert bn.running_mean[3].item() == 0.0
    bn.eval()
    assert max_err(bn(MIXED.apply(x, 1)), MIXED.apply(bn(x), 1)) < TOL[dtype]


# --------------------------------------------------------------------------- augmented batch
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(5, 9), (3, 9, 4)])
@pytest.mark.parametrize("affine", [True, False])
def test_equals_plain_batchnorm_on_augmented_batch(momentum: float | None,
                                                   shape: tuple[int, ...], affine: bool) -> None:
    bn = randomise(ChiralBatchNorm1d(MIXED, momentum=momentum, affine=affine,
                                     dtype=torch.float64))
    helpers.check_augmented_batch(bn, reference(bn, MIXED), shape, steps=4)


def test_single_value_per_channel_uses_the_pair() -> None:
    """N * L = 1 works (the augmented batch has two values), as plain BN on cat[x, T x] does."""
    bn = randomise(ChiralBatchNorm1d(MIXED, dtype=torch.float64))
    ref = reference(bn, MIXED)
    x = make_input((1, 9))
    assert max_err(bn(x), augmented(ref, MIXED, x)) < 1e-12
    assert max_err(bn.running_var, ref.running_var) < 1e-13


def test_no_running_stats_uses_batch_stats_in_eval() -> None:
    bn = randomise(ChiralBatchNorm1d(MIXED, track_running_stats=False, dtype=torch.float64))
    assert bn.running_mean is None and bn.running_var is None
    ref = reference(bn, MIXED)
    x = make_input((6, 9, 3))
    train_out = bn(x)
    bn.eval()
    ref.eval()
    assert max_err(bn(x), train_out) < 1e-14
    assert max_err(bn(x), augmented(ref, MIXED, x)) < 1e-12


def test_eval_uses_running_stats() -> None:
    bn = randomise(ChiralBatchNorm1d(MIXED, dtype=torch.float64))
    for _ in range(3):
        bn(make_input((6, 9, 3)))
    bn.eval()
    x = make_input((6, 9, 3))
    rm, rv = bn.running_mean.view(1, -1, 1), bn.running_var.view(1, -1, 1)
    expected = (x - rm) / torch.sqrt(rv + bn.eps) * bn.weight.view(1, -1, 1) + \
        bn.bias.view(1, -1, 1)
    assert max_err(bn(x), expected) < 1e-12
    before = bn.running_mean.clone()
    bn(x)
    assert torch.equal(bn.running_mean, before) and bn.num_batches_tracked.item() == 3


def test_eval_gradients_reach_the_free_parameters() -> None:
    """In eval mode gamma / beta come from a cached gather: same output and the same gradients
    as through the dense ``weight`` / ``bias`` properties."""
    bn = randomise(ChiralBatchNorm1d(MIXED, dtype=torch.float64)).eval()
    x = make_input((6, 9, 3))
    out = bn(x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    got = bn.weight_plus.grad.clone(), bn.bias_plus.grad.clone()
    bn.zero_grad()
    ref = torch.batch_norm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, False, 0.0,
                           bn.eps, False)
    assert torch.equal(out, ref)
    (ref * torch.linspace(-1, 1, ref.numel(), dtype=ref.dtype).view_as(ref)).sum().backward()
    assert torch.allclose(got[0], bn.weight_plus.grad, atol=1e-12, rtol=0)
    assert torch.allclose(got[1], bn.bias_plus.grad, atol=1e-12, rtol=0)


def test_large_mean_is_stable() -> None:
    """fp32 with |mean| = 1e4 * std: the within-plus-between variance does not cancel (a
    ``E[x^2] - m^2`` variance would lose every digit here)."""
    bn = ChiralBatchNorm1d(MIXED)
    x = (make_input((32, 9, 8)) * 1e-2 + 1e2).float()
    ref = reference(ChiralBatchNorm1d(MIXED, dtype=torch.float64), MIXED)
    assert max_err(bn(x).double(), augmented(ref, MIXED, x.double())) < 1e-2


# --------------------------------------------------------------------------- gradients
def fused(bn: ChiralBatchNorm1d, shared: bool):
    """The layer's fused function of ``(x, gamma, beta)``: eigenbasis coordinates when
    ``shared``, else dense ones."""
    plan = bn._plan(torch.device("cpu"), torch.float64, torch.float64, shared)
    return lambda *args: ChiralBatchNormFn.apply(*args, plan)[0]


@pytest.mark.parametrize(("shape", "mode"), [((3, 9), "shared"), ((2, 9, 2), "shared"),
                                              ((1, 9, 8), "shared"), ((3, 9), "dense"),
                                              ((3, 9), "none")])
def test_gradcheck_function(shape: tuple[int, ...], mode: str) -> None:
    bn = ChiralBatchNorm1d(MIXED, dtype=torch.float64)
    x = make_input(shape).requires_grad_()
    if mode == "none":
        params: tuple[torch.Tensor | None, ...] = (None, None)
    else:
        n_w = bn.weight_plus.numel() if mode == "shared" else 9
        n_b = bn.bias_plus.numel() if mode == "shared" else 9
        params = ((torch.rand(n_w, dtype=torch.float64) + 0.5).requires_grad_(),
                  torch.randn(n_b, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(fused(bn, mode == "shared"), (x, *params))


def test_gradcheck_trivial_rep() -> None:
    bn = ChiralBatchNorm1d(Rep.trivial(4), dtype=torch.float64)
    x = make_input((3, 4, 2)).requires_grad_()
    weight = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_()
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused(bn, True), (x, weight, bias))


# (N, C) and short (N, C, L) take the broadcast-addcmul path, longer L the fused batch_norm kernel.
@pytest.mark.parametrize("shape", [(6, 9), (4, 9, 5), (2, 9, 12)])
@pytest.mark.parametrize("track", [True, False])
def test_gradients_match_reference(shape: tuple[int, ...], track: bool) -> None:
    """Input and free-parameter gradients equal autograd through plain BN on cat[x, T x]."""
    bn = randomise(ChiralBatchNorm1d(MIXED, track_running_stats=track, dtype=torch.float64))
    if not track:
        bn.eval()  # batch statistics in evaluation too
    x = make_input(shape)
    target = torch.randn(shape, dtype=torch.float64)
    free = [bn.weight_plus, bn.bias_plus]

    x1 = x.clone().requires_grad_()
    loss = ((bn(x1) - target) ** 3).sum()
    got = torch.autograd.grad(loss, [x1, *free])

    x2 = x.clone().requires_grad_()
    aug = torch.cat([x2, MIXED.apply(x2, 1)])
    y = nn.functional.batch_norm(aug, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    loss_ref = ((y[: shape[0]] - target) ** 3).sum()
    want = torch.autograd.grad(loss_ref, [x2, *free])
    for g, w in zip(got, want):
        assert max_err(g, w) < 1e-10 * max(1.0, w.abs().max().item())


def test_gradients_without_affine_and_partial_requirements() -> None:
    x = make_input((5, 9, 3))
    bn = ChiralBatchNorm1d(MIXED, affine=False, dtype=torch.float64)
    x1 = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(bn(x1).pow(3).sum(), [x1])
    x2 = x.clone().requires_grad_()
    ref = nn.functional.batch_norm(torch.cat([x2, MIXED.apply(x2, 1)]), None, None,
                                   training=True, eps=bn.eps)[:5]
    (g_ref,) = torch.autograd.grad(ref.pow(3).sum(), [x2])
    assert max_err(g, g_ref) < 1e-10
    # Only the parameters need gradients (a first layer).
    bn = randomise(ChiralBatchNorm1d(MIXED, dtype=torch.float64))
    grads = torch.autograd.grad(bn(x).pow(3).sum(), list(bn.parameters()))
    assert all(torch.isfinite(t).all() for t in grads)


def test_noncontiguous_input_and_grad() -> None:
    bn = randomise(ChiralBatchNorm1d(MIXED, dtype=torch.float64))
    base = make_input((4, 5, 9))
    x = base.transpose(1, 2).requires_grad_()  # (4, 9, 5), channels innermost in memory
    y = bn(x)
    assert max_err(y, bn(x.contiguous())) < 1e-13
    (g,) = torch.autograd.grad(y.sum(), [x])  # y.sum() sends a broadcast (stride-0) gradient
    x2 = x.detach().contiguous().requires_grad_()
    (g2,) = torch.autograd.grad(bn(x2).sum(), [x2])
    assert max_err(g, g2) < 1e-12


def test_extra_parametrization_uses_dense_parameters() -> None:
    """A parametrization stacked on gamma's coordinates is what the layer reads."""

    class Double(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return 2 * w

    bn = randomise(ChiralBatchNorm1d(MIXED, dtype=torch.float64))
    torch.nn.utils.parametrize.register_parametrization(bn, "weight_plus", Double())
    x = make_input((5, 9, 2))
    free = bn.parametrizations["weight_plus"].original
    (got,) = torch.autograd.grad(bn(x).pow(3).sum(), [free])
    y = nn.functional.batch_norm(torch.cat([x, MIXED.apply(x, 1)]), None, None, bn.weight,
                                 bn.bias, True, 0.0, bn.eps)[:5]
    (want,) = torch.autograd.grad(y.pow(3).sum(), [free])
    assert max_err(got, want) < 1e-10


def test_empty_batch() -> None:
    bn = ChiralBatchNorm1d(MIXED)
    assert bn(torch.randn(0, 9, 4)).shape == (0, 9, 4)
    assert torch.equal(bn.running_var, torch.ones(9))


# --------------------------------------------------------------------------- precision
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs(dtype: torch.dtype) -> None:
    bn = randomise(ChiralBatchNorm1d(MIXED))  # float32 parameters, half activations
    ref = reference(ChiralBatchNorm1d(MIXED, dtype=torch.float64), MIXED)
    with torch.no_grad():
        ref.weight.copy_(bn.weight)
        ref.bias.copy_(bn.bias)
    x = make_input((8, 9, 4)).to(dtype)
    xr = x.clone().requires_grad_()
    y = bn(xr)
    assert y.dtype == dtype and bn.running_mean.dtype == torch.float32
    assert max_err(y.double(), augmented(ref, MIXED, x.double())) < 5e-2
    assert max_err(bn.running_mean.double(), ref.running_mean) < 1e-3
    (g,) = torch.autograd.grad(y.float().pow(2).sum(), [xr])
    assert g.dtype == dtype and torch.isfinite(g).all()
    bn.eval()
    assert bn(x).dtype == dtype
    half_bn = randomise(ChiralBatchNorm1d(MIXED, dtype=torch.bfloat16))  # all-bfloat16 module
    out = half_bn(make_input((8, 9)).bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


# --------------------------------------------------------------------------- conversion
def trained(bn: ChiralBatchNorm1d, steps: int = 3) -> ChiralBatchNorm1d:
    for _ in range(steps):
        bn(make_input((6, bn.num_features, 4), bn.running_mean.dtype))
    return bn


def test_to_dense_matches_in_eval() -> None:
    bn = trained(randomise(ChiralBatchNorm1d(MIXED))).eval()
    dense = bn.to_dense()
    assert type(dense) is nn.BatchNorm1d and not dense.training
    x = make_input((5, 9, 7), torch.float32)
    assert max_err(dense(x), bn(x)) < 1e-6
    assert dense.num_batches_tracked.item() == 3
    assert ChiralBatchNorm1d(MIXED, affine=False).to_dense().weight is None


def test_state_dict_round_trip() -> None:
    bn = trained(randomise(ChiralBatchNorm1d(MIXED)))
    state = bn.state_dict()
    assert {"weight_plus", "bias_plus", "running_mean"} <= set(state)
    other = ChiralBatchNorm1d(MIXED)
    other.load_state_dict(state)
    bn.eval()
    other.eval()
    x = make_input((5, 9, 3), torch.float32)
    assert torch.equal(other(x), bn(x))
    assert torch.equal(other.running_var, bn.running_var)


def test_plain_checkpoint_loads_projected_and_symmetrised() -> None:
    bn = ChiralBatchNorm1d(MIXED)
    # 2.5e-7: fp32 rounding of the eigen coordinates
    helpers.check_plain_checkpoint(nn.BatchNorm1d(9), bn, MIXED, weight_tol=2.5e-7)
    bn.eval()
    x = make_input((4, 9, 3), torch.float32)
    assert max_err(bn(MIXED.apply(x, 1)), MIXED.apply(bn(x), 1)) < 1e-5


def test_from_dense_copies_configuration() -> None:
    plain = nn.BatchNorm1d(9, eps=1e-3, momentum=None, affine=False).double()
    plain(make_input((5, 9)))
    plain.eval()
    bn = ChiralBatchNorm1d.from_dense(plain, MIXED)
    assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (1e-3, None, False, True)
    assert bn.running_mean.dtype == torch.float64 and not bn.training
    assert bn.num_batches_tracked.item() == 1
    # Symmetric statistics and shared parameters pass through from_dense / to_dense unchanged.
    chiral = trained(randomise(ChiralBatchNorm1d(MIXED, dtype=torch.float64)))
    again = ChiralBatchNorm1d.from_dense(chiral.to_dense(), MIXED)
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(again, name), getattr(chiral, name))
    with pytest.raises(ValueError, match="size 4"):
        ChiralBatchNorm1d.from_dense(nn.BatchNorm1d(9), Rep.regular(4))
    with pytest.raises(TypeError, match="from_dense expects an nn.BatchNorm1d, got Linear"):
        ChiralBatchNorm1d.from_dense(nn.Linear(9, 9), MIXED)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- init and errors
def test_init_matches_plain_batchnorm() -> None:
    bn = ChiralBatchNorm1d(Rep.regular(17).kron(Rep.coords(8, [0, 1])))
    c = bn.num_features
    assert torch.equal(bn.weight, torch.ones(c))
    assert torch.equal(bn.bias, torch.zeros(c))
    x = torch.randn(64, c, 10)
    plain = nn.BatchNorm1d(c)
    ratio = bn(x).var().item() / plain(x).var().item()
    assert 0.8 < ratio < 1.2
    assert bn.free_parameters() < bn.dense_parameters() == 2 * c


def test_reset_parameters() -> None:
    bn = trained(randomise(ChiralBatchNorm1d(MIXED)))
    bn.reset_parameters()
    assert torch.equal(bn.weight, torch.ones(9)) and torch.equal(bn.bias, torch.zeros(9))
    assert torch.equal(bn.running_mean, torch.zeros(9))
    assert bn.num_batches_tracked.item() == 0


def test_errors_and_repr() -> None:
    bn = ChiralBatchNorm1d(MIXED)
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, L\).*C = 9.*\(2, 9, 3, 4\)"):
        bn(torch.randn(2, 9, 3, 4))
    with pytest.raises(ValueError, match=r"C = 9.*\(2, 8, 3\)"):
        bn(torch.randn(2, 8, 3))
    with pytest.raises(ValueError, match="C = 9"):
        bn(torch.randn(9))
    with pytest.raises(TypeError, match="ChiralBatchNorm1d expects a Rep, got int"):
        ChiralBatchNorm1d(9)  # type: ignore[arg-type]
    text = repr(bn)
    assert "ChiralBatchNorm1d" in text and "momentum=0.1" in text and "swapped pairs" in text
