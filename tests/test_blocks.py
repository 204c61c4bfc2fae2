"""Chiral layers in block form: execution choice, self-check, forward_eigen, tracing, compiling,
autocast, training in float64, and export in block form (also to ONNX)."""

from __future__ import annotations

import importlib.util
import io
import warnings

import pytest
import torch
from torch import nn

from symmetrize import Rep, Spec, symmetrize
from symmetrize.eigenbasis import eigenbasis
from symmetrize.export import EigenBlock, export_blocks, export_plain
from symmetrize.nn import (
    ChiralActivation,
    ChiralBatchNorm1d,
    ChiralConv1d,
    ChiralConv2d,
    ChiralGRU,
    ChiralGRUCell,
    ChiralLinear,
    ChiralLSTM,
    ChiralLSTMCell,
    ChiralModule,
    InvariantLinear,
)
from symmetrize.nn.blockops import BLOCKS, MIN_BLOCK_WIDTH

HIDDEN = Rep.skeleton_hidden("h36m", 6, 2)  # 102 channels: wide enough for blocks
POSE = Rep.pose("h36m", 2)
H36M = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))


def layers() -> list[ChiralModule]:
    torch.manual_seed(0)
    return [ChiralLinear(HIDDEN, HIDDEN), ChiralLinear(POSE, HIDDEN), InvariantLinear(HIDDEN, 70),
            ChiralConv1d(HIDDEN, HIDDEN, 3, padding=1, padding_mode="reflect"),
            ChiralConv2d(HIDDEN, HIDDEN, (3, 1)), ChiralBatchNorm1d(HIDDEN),
            ChiralLSTM(POSE, HIDDEN, num_layers=2, bidirectional=True),
            ChiralGRU(HIDDEN, HIDDEN, batch_first=True), ChiralLSTMCell(POSE, HIDDEN),
            ChiralGRUCell(HIDDEN, HIDDEN)]


@pytest.mark.parametrize("index", range(10))
def test_self_check_in_both_dtypes(index: int) -> None:
    layer = layers()[index]
    assert layer.self_check(torch.float64) < 1e-12
    assert layer.self_check(torch.float32) < 1e-5
    assert next(iter(layer.parameters())).dtype == torch.float32  # left as it was
    # the contract every chiral layer keeps
    assert hasattr(layer, "rep_in") and hasattr(layer, "rep_out")
    assert callable(type(layer).from_dense) and isinstance(layer.to_dense(), nn.Module)


def test_execution_choice() -> None:
    assert ChiralLinear(HIDDEN, HIDDEN).execution == BLOCKS
    narrow = ChiralLinear(Rep.regular(24), Rep.regular(24))
    assert narrow.execution == f"dense (width 24 < {MIN_BLOCK_WIDTH})"
    # almost everything in the + half: blocks would keep ~97% of the multiply-adds
    uneven = ChiralLinear(Rep.trivial(120) + Rep.regular(8), Rep.trivial(128))
    assert uneven.execution.startswith("dense (blocks keep 97%")
    assert ChiralLSTM(POSE, Rep.regular(32)).execution.startswith("dense (hidden width 32")
    # both executions compute the same map
    x = torch.randn(5, 128, dtype=torch.float64)
    layer = ChiralLinear(Rep.regular(128), Rep.regular(128), dtype=torch.float64)
    y = layer(x)
    layer.execution = "dense (forced)"
    assert float((layer(x) - y).abs().max()) < 1e-13


def test_no_dense_weight_in_block_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = ChiralConv1d(HIDDEN, HIDDEN, 3)
    monkeypatch.setattr(ChiralModule, "dense_tensor", lambda *a: pytest.fail("dense weight"))
    layer(torch.randn(2, HIDDEN.size, 7)).sum().backward()
    assert layer.weight_plus.grad is not None and layer.weight_minus.grad is not None


def test_forward_eigen_is_the_layer_in_the_eigenbasis() -> None:
    for layer, dim, x in ((ChiralLinear(HIDDEN, POSE, dtype=torch.float64), -1,
                           torch.randn(4, HIDDEN.size, dtype=torch.float64)),
                          (ChiralConv1d(HIDDEN, HIDDEN, 3, dtype=torch.float64), 1,
                           torch.randn(2, HIDDEN.size, 6, dtype=torch.float64))):
        plus, minus = eigenbasis(layer.rep_in).to_eigen(x, dim)
        y_plus, y_minus = layer.forward_eigen(plus, minus)
        y = eigenbasis(layer.rep_out).from_eigen(y_plus, y_minus, dim)
        assert float((y - layer(x)).abs().max()) < 1e-12


def test_dense_views_state_dict_and_plain_checkpoints() -> None:
    layer = ChiralLinear(HIDDEN, HIDDEN)
    assert isinstance(layer, nn.Linear) and layer.weight.shape == (102, 102)
    assert layer.weight.requires_grad  # a differentiable view of the blocks
    assert set(layer.state_dict()) == {"weight_plus", "weight_minus", "bias_plus"}
    plain = nn.Linear(102, 102)
    layer.weight = plain.weight  # assigning a dense tensor projects it
    projected = (plain.weight + HIDDEN.apply(HIDDEN.apply(plain.weight, 0), 1)) / 2
    assert float((layer.weight - projected).abs().max()) < 1e-6
    other = ChiralLinear(HIDDEN, HIDDEN)
    other.load_state_dict(plain.state_dict())  # plain checkpoint: projected
    assert float((other.weight - projected).abs().max()) < 1e-6
    with pytest.raises(AttributeError, match="computed from its blocks"):
        del layer.weight


def test_adam_in_float64_stays_exactly_equivariant() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(ChiralConv1d(POSE, HIDDEN, 3), ChiralBatchNorm1d(HIDDEN),
                          ChiralActivation(HIDDEN), ChiralConv1d(HIDDEN, HIDDEN, 1),
                          ChiralActivation(HIDDEN), ChiralConv1d(HIDDEN, POSE, 1)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(8, POSE.size, 9, dtype=torch.float64)
    for _ in range(5):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        y = model(x)
        rel = (model(POSE.apply(x, 1)) - POSE.apply(y, 1)).abs().max() / y.abs().max()
    assert float(rel) < 1e-12


class Lifter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(34, 136, 3, padding=1)
        self.bn = nn.BatchNorm1d(136)
        self.hid = nn.Conv1d(136, 136, 3, padding=1)
        self.out = nn.Conv1d(136, 51, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        h = torch.relu(self.bn(self.inp(x.reshape(n, t, -1).transpose(1, 2))))
        h = torch.relu(self.hid(h))
        return self.out(h).transpose(1, 2).reshape(n, t, 17, 3)


@pytest.fixture(scope="module")
def converted() -> nn.Module:
    torch.manual_seed(0)
    return symmetrize(Lifter(), H36M, (torch.randn(2, 9, 17, 2),), hidden="regular").eval()


def test_jit_trace_of_a_converted_model(converted: nn.Module) -> None:
    x = torch.randn(3, 9, 17, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(converted, (x,))
    assert torch.allclose(traced(x), converted(x), atol=1e-6)
    other = torch.randn(5, 9, 17, 2)  # another batch size
    assert torch.allclose(traced(other), converted(other), atol=1e-6)


def test_torch_compile_of_a_converted_model(converted: nn.Module) -> None:
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is unavailable")
    torch._dynamo.reset()
    compiled = torch.compile(converted, backend="aot_eager")  # no C++ toolchain needed
    x = torch.randn(2, 9, 17, 2)
    assert torch.allclose(compiled(x), converted(x), atol=1e-6)


def test_autocast_bf16_on_cpu() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(ChiralConv1d(POSE, HIDDEN, 3), ChiralBatchNorm1d(HIDDEN),
                          ChiralActivation(HIDDEN), ChiralConv1d(HIDDEN, HIDDEN, 1))
    x = torch.randn(4, POSE.size, 11)
    reference = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        out.float().square().mean().backward()
    assert out.dtype == torch.bfloat16
    assert float((out.float() - reference).abs().max()) < 0.1 * float(reference.abs().max())
    assert torch.isfinite(model[0].weight_plus.grad).all()


def test_export_blocks_same_outputs_plain_modules_and_pickles(converted: nn.Module) -> None:
    x = torch.randn(2, 9, 17, 2)
    blocks = export_blocks(converted)
    assert any(isinstance(m, EigenBlock) for m in blocks.modules())
    assert not any(isinstance(m, ChiralModule) for m in blocks.modules())
    assert torch.allclose(blocks(x), converted(x), atol=1e-5)
    buffer = io.BytesIO()
    torch.save(blocks, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.allclose(loaded(x), blocks(x))
    params = sum(p.numel() for p in blocks.parameters())
    assert params < sum(p.numel() for p in export_plain(converted).parameters())


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None
                    or importlib.util.find_spec("onnx") is None,
                    reason="needs onnx and onnxscript (the [dev] extra)")
@pytest.mark.parametrize("hidden", ["regular", "eigen"])
def test_export_blocks_to_onnx(converted: nn.Module, hidden: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if hidden != "regular":
        torch.manual_seed(0)
        converted = symmetrize(Lifter(), H36M, (torch.randn(2, 9, 17, 2),), hidden=hidden).eval()
    blocks = export_blocks(converted)
    path = tmp_path / "lifter.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(blocks, (torch.randn(2, 9, 17, 2),), str(path), dynamo=True)
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert "Conv" in ops
    if hidden == "regular":  # pairs: gathers into the eigenbasis
        assert "Gather" in ops
    else:  # hidden channels already in the eigenbasis: halves split off and concatenated
        assert {"Split", "Concat"} <= ops and "Gather" not in ops


@pytest.mark.parametrize(("rep_in", "rep_out"), [
    (Rep.skeleton_hidden("h36m", 8, 3) + Rep.trivial(4), Rep.skeleton_hidden("h36m", 8, 3)),
    (Rep.regular(128), Rep.regular(96)),
    (Rep.pose("h36m", 2).repeat(3), Rep.negated(70)),
    (Rep.regular(100), Rep.trivial(70)),
    (Rep.negated(80) + Rep.regular(20), Rep.trivial(64) + Rep.negated(30)),
])
def test_slice_kernels_equal_the_gather_path(rep_in: Rep, rep_out: Rep,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Large activations change basis with slices (sums, weights scaled): same values and
    gradients as the gather path, and the mirror commutes exactly."""
    from symmetrize.nn import fastbasis

    torch.manual_seed(0)
    for layer, x, dim in ((ChiralLinear(rep_in, rep_out, dtype=torch.float64),
                           torch.randn(700, rep_in.size, dtype=torch.float64), -1),
                          (ChiralConv1d(rep_in, rep_out, 3, dtype=torch.float64),
                           torch.randn(8, rep_in.size, 90, dtype=torch.float64), 1)):
        layer.execution = BLOCKS
        params = [layer.weight_plus, layer.weight_minus, layer.bias_plus]
        results = []
        for threshold in (0, 10**12):  # slices, then gathers
            monkeypatch.setattr(fastbasis, "FAST_MIN_NUMEL", threshold)
            xr = x.clone().requires_grad_()
            y = layer(xr)
            grads = torch.autograd.grad(y, [xr, *params], torch.ones_like(y) + y.detach(),
                                        allow_unused=True)
            grads = tuple(torch.zeros_like(p) if g is None else g
                          for g, p in zip(grads, [xr, *params], strict=True))
            results.append((y.detach(), grads))
            if threshold == 0:
                mirrored = layer(rep_in.apply(x, dim)).detach()
                assert torch.equal(mirrored, rep_out.apply(y.detach(), dim))  # bit for bit
        (y_fast, g_fast), (y_slow, g_slow) = results
        assert float((y_fast - y_slow).abs().max()) < 1e-12
        for a, b in zip(g_fast, g_slow, strict=True):
            assert a.shape == b.shape and (a.numel() == 0 or float((a - b).abs().max()) < 1e-10)


def test_export_blocks_slices_and_gathers_agree() -> None:
    """Exported blocks use slices in eager inference and gathers otherwise: same outputs."""
    torch.manual_seed(2)
    rep = Rep.skeleton_hidden("h36m", 8, 3) + Rep.trivial(4)
    model = nn.Sequential(ChiralConv1d(rep, rep, 3), ChiralActivation(rep),
                          ChiralConv1d(rep, rep, 1)).eval()
    blocks = export_blocks(model)
    x = torch.randn(16, rep.size, 300)  # large: the slice kernels
    with torch.no_grad():
        fast = blocks(x)
        reference = model(x)
    slow = blocks(x.requires_grad_())  # differentiable: the gather path
    assert float((fast - reference).abs().max()) < 1e-4
    assert float((slow.detach() - fast).abs().max()) < 1e-4
    slow.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
