"""ChiralConv2d, InvariantConv2d and ChiralBatchNorm2d on skeleton tensors ``(N, C, T, V)``:
equivariance (channels only, and channels plus a joint permutation on ``V``), parameter counts,
conversion, checkpoints, augmented-batch statistics and errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from symmetrize import Rep, weight_sharing
from symmetrize.nn import ChiralBatchNorm2d, ChiralConv2d, InvariantConv2d
from symmetrize.skeleton import Skeleton
from tests import helpers
from tests.helpers import MIXED, TOL, make_input, max_err, randomise
from tests.strategies import DTYPES, reps

PADDING_MODES = st.sampled_from(["zeros", "reflect", "replicate", "circular"])
SKELETONS = st.sampled_from(["h36m", "coco", "ntu"])
SEEDS = st.integers(0, 2 ** 31 - 1)


def mirror(x: torch.Tensor, channels: Rep, joints: Rep | None = None) -> torch.Tensor:
    """The mirror of an ``(N, C, T, V)`` tensor: ``channels`` on axis 1, ``joints`` on axis 3."""
    x = channels.apply(x, 1)
    return x if joints is None else joints.apply(x, 3)


def bias_free(rep_out: Rep) -> int:
    return weight_sharing(Rep.trivial(1), rep_out).n_free


# =========================================================================== ChiralConv2d
@given(reps(max_size=8), reps(max_size=8), DTYPES, st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(1, 2), PADDING_MODES, st.booleans(), SEEDS)
def test_conv2d_equivariant_on_channels(rep_in: Rep, rep_out: Rep, dtype: torch.dtype, kh: int,
                                        kw: int, stride: int, dilation: int, padding_mode: str,
                                        bias: bool, seed: int) -> None:
    """The mirror acts on channels only: any kernel, stride, dilation and padding mode."""
    torch.manual_seed(seed)
    padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
    layer = ChiralConv2d(rep_in, rep_out, (kh, kw), stride=stride, padding=padding,
                         dilation=dilation, bias=bias, padding_mode=padding_mode, dtype=dtype)
    x = torch.randn(3, rep_in.size, 7, 6, dtype=dtype)
    assert max_err(layer(mirror(x, rep_in)), mirror(layer(x), rep_out)) < TOL[dtype]


@given(reps(max_size=8), reps(max_size=8), DTYPES, SKELETONS, st.integers(1, 5),
       st.integers(1, 2), st.integers(1, 2), PADDING_MODES, SEEDS)
def test_conv2d_temporal_kernel_equivariant_with_joint_permutation(
        rep_in: Rep, rep_out: Rep, dtype: torch.dtype, skeleton: str, k: int, stride: int,
        dilation: int, padding_mode: str, seed: int) -> None:
    """ST-GCN temporal ``(k, 1)`` kernels: the mirror may also permute the joints on ``V``."""
    torch.manual_seed(seed)
    joints = Rep.joints(skeleton)
    layer = ChiralConv2d(rep_in, rep_out, (k, 1), stride=(stride, 1),
                         padding=(dilation * (k - 1) // 2, 0), dilation=(dilation, 1),
                         padding_mode=padding_mode, dtype=dtype)
    x = torch.randn(2, rep_in.size, 9, joints.size, dtype=dtype)
    got = layer(mirror(x, rep_in, joints))
    assert max_err(got, mirror(layer(x), rep_out, joints)) < TOL[dtype]


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_padding_strings_with_joint_permutation(padding: str) -> None:
    rep_in, rep_out = Rep.coords(3, [0]), Rep.coords(3, [0]).repeat(4)
    joints = Rep(Skeleton.preset("ntu").mirror)
    layer = ChiralConv2d(rep_in, rep_out, (5, 1), padding=padding, dtype=torch.float64)
    x = torch.randn(2, 3, 11, 25, dtype=torch.float64)
    assert max_err(layer(mirror(x, rep_in, joints)), mirror(layer(x), rep_out, joints)) < 1e-10


def test_conv2d_kernel_across_joints_is_not_equivariant_under_joint_permutation() -> None:
    """The documented limit: a kernel sliding over the permuted axis mixes joints in order."""
    rep = Rep.regular(4)
    joints = Rep.joints("h36m")
    layer = ChiralConv2d(rep, rep, (1, 3), padding=(0, 1), dtype=torch.float64)
    x = torch.randn(2, 4, 5, joints.size, dtype=torch.float64)
    assert max_err(layer(mirror(x, rep)), mirror(layer(x), rep)) < 1e-10  # channels only: fine
    assert max_err(layer(mirror(x, rep, joints)), mirror(layer(x), rep, joints)) > 1e-3


@given(reps(), reps(), st.integers(1, 3), st.integers(1, 3), st.booleans())
def test_conv2d_parameter_count(rep_in: Rep, rep_out: Rep, kh: int, kw: int, bias: bool) -> None:
    layer = ChiralConv2d(rep_in, rep_out, (kh, kw), bias=bias)
    expected = weight_sharing(rep_in, rep_out).n_free * kh * kw + (bias_free(rep_out) if bias
                                                                   else 0)
    assert layer.free_parameters() == sum(p.numel() for p in layer.parameters()) == expected
    assert layer.dense_parameters() == rep_out.size * rep_in.size * kh * kw + \
        (rep_out.size if bias else 0)


def test_conv2d_is_a_conv2d_with_dense_weights() -> None:
    rep_in, rep_out = Rep.coords(3, [0]), Rep.coords(3, [0]).repeat(8)
    layer = ChiralConv2d(rep_in, rep_out, (9, 1), padding=(4, 0))
    assert isinstance(layer, nn.Conv2d)
    assert layer.weight.shape == (24, 3, 9, 1) and layer.bias.shape == (24,)
    assert set(layer.state_dict()) == {"weight_plus", "weight_minus", "bias_plus"}
    text = repr(layer)
    assert "ChiralConv2d" in text and "kernel_size=(9, 1)" in text and "->" in text


CONV_CONFIGS = [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=(5, 1), stride=(2, 1), padding=(2, 0), dilation=(2, 1),
         padding_mode="reflect"),
    dict(kernel_size=(3, 2), padding="same", padding_mode="replicate", bias=False),
    dict(kernel_size=(2, 3), stride=2, padding="valid", dilation=(1, 2)),
]


@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_conv2d_from_dense_projects_and_to_dense_round_trips(config: dict) -> None:
    rep_in, rep_out = Rep.coords(2, [0]).repeat(3), MIXED
    dense = nn.Conv2d(rep_in.size, rep_out.size, **config).double()
    chiral = ChiralConv2d.from_dense(dense, rep_in, rep_out)
    w = dense.weight.detach()
    expected = (w + torch.einsum("oi,ij...,jk->ok...", rep_out.matrix(), w, rep_in.matrix())) / 2
    assert max_err(chiral.weight, expected) < 1e-12
    if dense.bias is None:
        assert chiral.bias is None
    else:
        b = dense.bias.detach()
        assert max_err(chiral.bias, (b + rep_out.apply(b, 0)) / 2) < 1e-12
    sharing = weight_sharing(rep_in, rep_out)
    assert sharing.projection_error(w.reshape(*sharing.shape, *w.shape[2:])) > 0.1
    for name in ("kernel_size", "stride", "padding", "dilation", "padding_mode"):
        assert getattr(chiral, name) == getattr(dense, name)
    assert chiral.weight.dtype == torch.float64
    plain = chiral.to_dense()
    assert type(plain) is nn.Conv2d
    for name in ("kernel_size", "stride", "padding", "dilation", "padding_mode"):
        assert getattr(plain, name) == getattr(dense, name)
    x = torch.randn(2, rep_in.size, 8, 7, dtype=torch.float64)
    assert max_err(plain(x), chiral(x)) < 1e-12
    assert max_err(chiral(mirror(x, rep_in)), mirror(chiral(x), rep_out)) < 1e-10
    # an already-equivariant dense layer survives the round trip unchanged
    again = ChiralConv2d.from_dense(plain, rep_in, rep_out)
    assert max_err(again.weight, chiral.weight) < 1e-12
    assert max_err(again(x), chiral(x)) < 1e-12


def test_conv2d_state_dicts() -> None:
    rep_in, rep_out = Rep.coords(3, [0]), MIXED
    a = ChiralConv2d(rep_in, rep_out, (3, 1))
    b = ChiralConv2d(rep_in, rep_out, (3, 1))
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 6, 17)
    assert torch.equal(a(x), b(x))
    plain = nn.Conv2d(3, 9, (3, 1))
    c = ChiralConv2d(rep_in, rep_out, (3, 1))
    c.load_state_dict(plain.state_dict())  # dense entries are projected
    projected = ChiralConv2d.from_dense(plain, rep_in, rep_out)
    assert max_err(c.weight, projected.weight) < 1e-7
    assert max_err(c.bias, projected.bias) < 1e-7
    assert max_err(c(mirror(x, rep_in)), mirror(c(x), rep_out)) < 1e-5
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        c.load_state_dict(nn.Conv2d(3, 9, (5, 1)).state_dict())


def test_conv2d_reset_parameters_and_training_keep_equivariance() -> None:
    rep_in, rep_out = Rep.coords(3, [0]), MIXED
    joints = Rep.joints("coco")
    layer = ChiralConv2d(rep_in, rep_out, (3, 1), padding=(1, 0), dtype=torch.float64)
    before = layer.weight.detach().clone()
    layer.reset_parameters()
    assert not torch.equal(layer.weight, before)
    x = torch.randn(4, 3, 6, 17, dtype=torch.float64)
    target = torch.randn(4, 9, 6, 17, dtype=torch.float64)
    losses = []
    for _ in range(5):  # plain gradient descent on the free parameters
        loss = (layer(x) - target).pow(2).mean()
        grads = torch.autograd.grad(loss, list(layer.parameters()))
        with torch.no_grad():
            for p, g in zip(layer.parameters(), grads):
                p.sub_(0.1 * g)
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert max_err(layer(mirror(x, rep_in, joints)), mirror(layer(x), rep_out, joints)) < 1e-10


@given(reps(), st.integers(1, 4))
def test_invariant_conv2d(rep_in: Rep, n_out: int) -> None:
    joints = Rep.joints("h36m")
    conv = InvariantConv2d(rep_in, n_out, (3, 1), padding=(1, 0), dtype=torch.float64)
    assert conv.rep_out.is_trivial and isinstance(conv, ChiralConv2d)
    x = torch.randn(2, rep_in.size, 5, joints.size, dtype=torch.float64)
    assert max_err(conv(mirror(x, rep_in)), conv(x)) < 1e-10
    assert max_err(conv(mirror(x, rep_in, joints)), joints.apply(conv(x), 3)) < 1e-10


def test_invariant_conv2d_from_dense() -> None:
    dense = nn.Conv2d(9, 4, (3, 1), padding=(1, 0)).double()
    conv = InvariantConv2d.from_dense(dense, MIXED)
    assert isinstance(conv, InvariantConv2d) and conv.out_channels == 4
    x = torch.randn(2, 9, 5, 3, dtype=torch.float64)
    assert max_err(conv(MIXED.apply(x, 1)), conv(x)) < 1e-10
    assert max_err(conv.to_dense()(x), conv(x)) < 1e-12
    assert InvariantConv2d.from_dense(dense, MIXED, Rep.trivial(4)).out_channels == 4
    with pytest.raises(ValueError, match="trivial output Rep"):
        InvariantConv2d.from_dense(dense, MIXED, Rep.regular(4))
    with pytest.raises(TypeError, match="expects an nn.Conv2d"):
        InvariantConv2d.from_dense(nn.Conv1d(9, 4, 3), MIXED)  # type: ignore[arg-type]


def test_conv2d_from_dense_errors() -> None:
    with pytest.raises(TypeError, match="expects an nn.Conv2d, got Conv1d"):
        ChiralConv2d.from_dense(nn.Conv1d(4, 4, 3), Rep.regular(4),  # type: ignore[arg-type]
                                Rep.regular(4))
    with pytest.raises(TypeError, match="expects an nn.Conv2d, got Linear"):
        ChiralConv2d.from_dense(nn.Linear(4, 4), Rep.regular(4),  # type: ignore[arg-type]
                                Rep.regular(4))
    with pytest.raises(ValueError, match="groups=2"):
        ChiralConv2d.from_dense(nn.Conv2d(4, 4, 1, groups=2), Rep.regular(4), Rep.regular(4))
    with pytest.raises(ValueError, match="rep_in has size 4 but the layer has 3 inputs"):
        ChiralConv2d.from_dense(nn.Conv2d(3, 4, 1), Rep.regular(4), Rep.regular(4))
    with pytest.raises(ValueError, match="rep_out has size 2 but the layer has 4 outputs"):
        ChiralConv2d.from_dense(nn.Conv2d(4, 4, 1), Rep.regular(4), Rep.regular(2))


# =========================================================================== ChiralBatchNorm2d
def reference(bn: ChiralBatchNorm2d) -> nn.BatchNorm2d:
    """A plain ``nn.BatchNorm2d`` with the chiral layer's ``gamma`` / ``beta``, fresh statistics."""
    ref = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                         track_running_stats=bn.track_running_stats, dtype=torch.float64)
    if bn.affine:
        with torch.no_grad():
            ref.weight.copy_(bn.weight)
            ref.bias.copy_(bn.bias)
    return ref


# (N, C, 3, 5) takes the 1d layer's broadcast path (axis 2 shorter than 8), (N, C, 9, 4) the kernel.
SHAPES = [(5, 9, 3, 5), (3, 9, 9, 4)]


@settings(max_examples=20, deadline=None)
@given(reps(max_size=10), DTYPES, st.sampled_from([(3, 5), (9, 2)]), st.booleans(),
       st.sampled_from([0.1, None]), st.booleans(), SKELETONS, SEEDS)
def test_bn2d_equivariant_train_and_eval(rep: Rep, dtype: torch.dtype, hw: tuple[int, int],
                                         affine: bool, momentum: float | None, track: bool,
                                         skeleton: str, seed: int) -> None:
    torch.manual_seed(seed)
    joints = Rep.joints(skeleton)
    bn = randomise(ChiralBatchNorm2d(rep, momentum=momentum, affine=affine,
                                     track_running_stats=track, dtype=dtype))
    shape = (4, rep.size, hw[0], joints.size)
    tol = TOL[dtype]
    for _ in range(2):  # training: batch statistics, also fills the running statistics
        x = make_input(shape, dtype)
        assert max_err(bn(mirror(x, rep)), mirror(bn(x), rep)) < tol
        assert max_err(bn(mirror(x, rep, joints)), mirror(bn(x), rep, joints)) < tol
    if track:
        assert max_err(rep.apply(bn.running_mean, 0), bn.running_mean) < tol
        assert max_err(bn.running_var[torch.tensor(rep.perm.tolist())], bn.running_var) < tol
    bn.eval()
    x = make_input(shape, dtype)
    assert max_err(bn(mirror(x, rep)), mirror(bn(x), rep)) < tol
    assert max_err(bn(mirror(x, rep, joints)), mirror(bn(x), rep, joints)) < tol


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_bn2d_equals_plain_batchnorm2d_on_augmented_batch(momentum: float | None,
                                                         shape: tuple[int, ...],
                                                         affine: bool) -> None:
    bn = randomise(ChiralBatchNorm2d(MIXED, momentum=momentum, affine=affine,
                                     dtype=torch.float64))
    helpers.check_augmented_batch(bn, reference(bn), shape, steps=3)


@pytest.mark.parametrize("shape", SHAPES)
def test_bn2d_gradients_match_reference(shape: tuple[int, ...]) -> None:
    """Input and free-parameter gradients equal autograd through plain BN on cat[x, T x]."""
    bn = randomise(ChiralBatchNorm2d(MIXED, dtype=torch.float64))
    x = make_input(shape)
    target = torch.randn(shape, dtype=torch.float64)
    free = [bn.weight_plus, bn.bias_plus]
    x1 = x.clone().requires_grad_()
    got = torch.autograd.grad(((bn(x1) - target) ** 3).sum(), [x1, *free])
    x2 = x.clone().requires_grad_()
    y = nn.functional.batch_norm(torch.cat([x2, mirror(x2, MIXED)]), None, None, bn.weight,
                                 bn.bias, True, 0.0, bn.eps)[: shape[0]]
    want = torch.autograd.grad(((y - target) ** 3).sum(), [x2, *free])
    for g, w in zip(got, want):
        assert max_err(g, w) < 1e-10 * max(1.0, w.abs().max().item())


def test_bn2d_channels_last_input() -> None:
    bn = randomise(ChiralBatchNorm2d(MIXED, dtype=torch.float64))
    x = make_input((3, 9, 6, 5)).to(memory_format=torch.channels_last).requires_grad_()
    y = bn(x)
    (g,) = torch.autograd.grad(y.pow(2).sum(), [x])
    x2 = x.detach().contiguous().requires_grad_()
    y2 = bn(x2)
    (g2,) = torch.autograd.grad(y2.pow(2).sum(), [x2])
    assert max_err(y, y2) < 1e-12 and max_err(g, g2) < 1e-10


def test_bn2d_without_running_stats_uses_batch_stats_in_eval() -> None:
    bn = randomise(ChiralBatchNorm2d(MIXED, track_running_stats=False, dtype=torch.float64))
    assert bn.running_mean is None and bn.running_var is None
    x = make_input((4, 9, 3, 5))
    train_out = bn(x)
    bn.eval()
    assert max_err(bn(x), train_out) < 1e-14
    ref = reference(bn).eval()
    assert max_err(bn(x), ref(torch.cat([x, mirror(x, MIXED)]))[:4]) < 1e-12


def test_bn2d_to_dense_and_from_dense() -> None:
    bn = randomise(ChiralBatchNorm2d(MIXED, eps=1e-3, momentum=0.2, dtype=torch.float64))
    for _ in range(3):
        bn(make_input((4, 9, 3, 5)))
    bn.eval()
    dense = bn.to_dense()
    assert type(dense) is nn.BatchNorm2d and not dense.training
    assert (dense.eps, dense.momentum) == (1e-3, 0.2) and dense.num_batches_tracked.item() == 3
    x = make_input((2, 9, 4, 5))
    assert max_err(dense(x), bn(x)) < 1e-12
    assert ChiralBatchNorm2d(MIXED, affine=False).to_dense().weight is None
    assert ChiralBatchNorm2d(MIXED, track_running_stats=False).to_dense().running_mean is None
    # symmetric statistics and shared parameters pass through to_dense / from_dense unchanged
    again = ChiralBatchNorm2d.from_dense(dense, MIXED)
    assert isinstance(again, ChiralBatchNorm2d) and not again.training
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(again, name), getattr(bn, name))
    assert (again.eps, again.momentum, again.affine, again.track_running_stats) == \
        (1e-3, 0.2, True, True)
    plain = nn.BatchNorm2d(9, momentum=None, affine=False)
    plain(make_input((4, 9, 2, 2), torch.float32))
    converted = ChiralBatchNorm2d.from_dense(plain, MIXED)
    assert (converted.momentum, converted.affine) == (None, False) and converted.training
    assert converted.running_mean.dtype == torch.float32
    assert converted.num_batches_tracked.item() == 1


def test_bn2d_plain_checkpoint_loads_projected_and_symmetrised() -> None:
    bn = ChiralBatchNorm2d(MIXED)
    helpers.check_plain_checkpoint(nn.BatchNorm2d(9), bn, MIXED, weight_tol=1e-7)
    # a chiral checkpoint round-trips, and a plain BatchNorm2d takes the dense one
    other = ChiralBatchNorm2d(MIXED)
    other.load_state_dict(bn.state_dict())
    bn.eval()
    other.eval()
    x = make_input((2, 9, 3, 4), torch.float32)
    assert torch.equal(other(x), bn(x))
    assert max_err(bn(mirror(x, MIXED)), mirror(bn(x), MIXED)) < 1e-5
    fresh = nn.BatchNorm2d(9).eval()
    fresh.load_state_dict(bn.to_dense().state_dict())
    assert max_err(fresh(x), bn(x)) < 1e-6


def test_bn2d_errors_and_repr() -> None:
    bn = ChiralBatchNorm2d(MIXED)
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input"):
        bn(torch.randn(2, 9, 3))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 5D input"):
        bn(torch.randn(2, 9, 3, 4, 1))
    bn.eval()
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input"):
        bn(torch.randn(2, 9))
    with pytest.raises(ValueError, match=r"C = 9.*\(2, 8, 3, 4\)"):
        bn(torch.randn(2, 8, 3, 4))
    with pytest.raises(TypeError, match="ChiralBatchNorm2d expects a Rep"):
        ChiralBatchNorm2d(9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expects an nn.BatchNorm2d, got BatchNorm1d"):
        ChiralBatchNorm2d.from_dense(nn.BatchNorm1d(9), MIXED)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size 4"):
        ChiralBatchNorm2d.from_dense(nn.BatchNorm2d(9), Rep.regular(4))
    text = repr(bn)
    assert "ChiralBatchNorm2d" in text and "momentum=0.1" in text and "swapped pairs" in text
