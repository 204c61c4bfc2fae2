"""The chiral layers on CUDA, in float64 and under autocast. Skipped without a GPU (CI has none)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from symmetrize import Rep
from symmetrize.export import export_plain
from symmetrize.nn import ChiralBatchNorm1d, ChiralConv1d, ChiralGRU, ChiralLinear, ChiralLSTM
from tests.helpers import max_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

POSE = Rep.pose("h36m", 2)
HIDDEN = Rep.skeleton_hidden("h36m", 6, 2)


@pytest.fixture(autouse=True)
def _no_tf32() -> Iterator[None]:
    """TF32 rounds x and T x differently; exactness checks need full-precision matmuls."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("train", [True, False])
def test_conv_bn_linear_equivariant_on_cuda(train: bool) -> None:
    conv = ChiralConv1d(POSE, HIDDEN, 3, padding=1).cuda().double()
    bn = ChiralBatchNorm1d(HIDDEN).cuda().double()
    linear = ChiralLinear(HIDDEN, POSE).cuda().double()
    model = torch.nn.Sequential(conv, bn)
    model.train(train)
    x = torch.randn(8, POSE.size, 11, device="cuda", dtype=torch.float64)
    h = model(x)
    assert max_err(model(POSE.apply(x, 1)), HIDDEN.apply(h, 1)) < 1e-10
    y = linear(h.transpose(1, 2))
    assert max_err(linear(HIDDEN.apply(h, 1).transpose(1, 2)), POSE.apply(y)) < 1e-10
    y.sum().backward()
    assert conv.weight_plus.grad.is_cuda


@pytest.mark.parametrize("cls", [ChiralLSTM, ChiralGRU])
def test_rnn_equivariant_on_cuda(cls: type) -> None:
    rnn = cls(POSE, HIDDEN, num_layers=2, bidirectional=True, batch_first=True).cuda().double()
    x = torch.randn(4, 7, POSE.size, device="cuda", dtype=torch.float64)
    out, _ = rnn(x)
    mirrored, _ = rnn(POSE.apply(x))
    assert max_err(mirrored, rnn.rep_out.apply(out)) < 1e-10
    dense = rnn.to_dense()
    assert max_err(dense(x)[0], out) < 1e-12


def test_autocast_bf16_runs_close_to_fp32() -> None:
    model = torch.nn.Sequential(ChiralConv1d(POSE, HIDDEN, 3), ChiralBatchNorm1d(HIDDEN)).cuda()
    x = torch.randn(16, POSE.size, 27, device="cuda")
    reference = model(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
        out.float().pow(2).mean().backward()
    assert out.dtype == torch.bfloat16
    assert max_err(out.float(), reference) < 0.1 * reference.abs().max().item()
    assert torch.isfinite(model[0].weight_plus.grad).all()


def test_export_on_cuda_keeps_device() -> None:
    model = torch.nn.Sequential(ChiralLinear(POSE, HIDDEN)).cuda()
    plain = export_plain(model)
    assert plain[0].weight.is_cuda
