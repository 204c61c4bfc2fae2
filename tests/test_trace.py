"""Tests for symmetrize.passes.trace: shadow-execution tracing of pose code as authors write it."""

from __future__ import annotations

import pytest
import torch
from torch import fx, nn

from symmetrize.passes.trace import Specialisation, TraceResult, trace
from tests.helpers import source_line_of
from tests.pose_models import TemporalModel

# --- 1. VideoPose3D-style temporal convolutional model (tests/pose_models.py) -------------


def test_temporal_model_traces_and_generalises_over_batch_and_time() -> None:
    model = TemporalModel(channels=32).eval()
    assert model.receptive_field() == 27
    x = torch.randn(2, 27, 17, 2)
    result = trace(model, (x,))
    gm = result.graph_module
    assert isinstance(result, TraceResult) and isinstance(gm, fx.GraphModule)
    assert type(gm).__name__ == "TemporalModelTraced"
    with torch.no_grad():
        expected = model(x)
        # values computed from the inputs are shape-only stand-ins: the trace never runs them
        assert result.example_outputs.is_meta
        assert result.example_outputs.shape == expected.shape
        assert result.example_outputs.dtype == expected.dtype
        torch.testing.assert_close(gm(x), expected)
        x5 = torch.randn(5, 35, 17, 2)  # another batch size and another T
        out5 = gm(x5)
        assert out5.shape == (5, 35 - 26, 17, 3)
        torch.testing.assert_close(out5, model(x5))
    # all leaves are torch.nn modules; the residual slice stays a graph computation of x.shape[2]
    targets = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    assert {"expand_conv", "expand_bn", "layers_conv.0", "layers_bn.3", "shrink"} <= targets


def test_temporal_model_specialisations_exclude_the_batch_size() -> None:
    model = TemporalModel(channels=32).eval()
    result = trace(model, (torch.randn(2, 27, 17, 2),))
    specs = result.specialisations
    exprs = {s.expr for s in specs}
    assert "len(x.shape)" in exprs
    assert "(x.shape[-2] == 17)" in exprs
    for s in specs:
        assert isinstance(s, Specialisation)
        assert "shape[0]" not in s.expr and "sz[0]" not in s.expr
        assert not (s.kind in ("int", "index") and s.value == 2), s
        assert s.source_line is not None and "pose_models.py:" in s.source_line
    assert any(s.source_line.endswith(source_line_of(TemporalModel.forward, "len(x.shape) == 4"))
               for s in specs)
    # the asserts' size computations are not left behind in the graph
    assert not any(n.op == "call_function" and n.target is torch._assert
                   for n in result.graph_module.graph.nodes)


def test_temporal_model_node_meta() -> None:
    model = TemporalModel(channels=32).eval()
    result = trace(model, (torch.randn(2, 27, 17, 2),))
    nodes = {n.name: n for n in result.graph_module.graph.nodes}
    assert nodes["x"].meta["example_value"].shape == (2, 27, 17, 2)
    conv = nodes["expand_conv"]
    assert conv.meta["example_value"].shape == (2, 32, 25)
    assert not conv.meta["example_value"].requires_grad
    assert conv.meta["source"].endswith(source_line_of(TemporalModel._forward_blocks,
                                                 "self.expand_bn(self.expand_conv(x))"))
    assert "_forward_blocks" in conv.stack_trace
    # values computed from the inputs are shape-only stand-ins (no storage, any batch size)
    assert nodes["expand_bn"].meta["example_value"].is_meta
    size_nodes = [n for n in nodes.values() if n.meta.get("size_derived")]
    assert size_nodes and all(not isinstance(n.meta["example_value"], torch.Tensor)
                              for n in size_nodes)


def test_tracing_in_train_mode_does_not_change_model_state_or_rng() -> None:
    model = TemporalModel(channels=32).train()
    x = torch.randn(2, 27, 17, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    result = trace(model, (x,))
    after_trace = torch.rand(4)
    torch.manual_seed(123)
    assert torch.equal(after_trace, torch.rand(4))  # global RNG untouched (dropout ran in shadow)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # running stats, num_batches_tracked
    assert result.example_outputs.shape == (2, 1, 17, 3)
    # the graph still holds the train-mode leaves: running it updates the stats like the model
    gm = result.graph_module
    gm(x)
    assert int(model.expand_bn.num_batches_tracked) == 1


# --- 2. seq2seq LSTM forecaster -------------------------------------------------------------------

class Seq2SeqForecaster(nn.Module):
    """Encoder-decoder LSTM predicting future poses as residual velocities."""

    def __init__(self, num_joints: int = 5, hidden: int = 16, output_len: int | None = 4,
                 num_layers: int = 2) -> None:
        super().__init__()
        self.input_size = num_joints * 2
        self.output_len = output_len
        self.encoder = nn.LSTM(self.input_size, hidden, num_layers, batch_first=True)
        self.decoder = nn.LSTM(self.input_size, hidden, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden, self.input_size)

    def forward(self, x, target=None, teacher_forcing=False):
        assert x.dim() == 3 and x.shape[2] == self.input_size
        _, (h, c) = self.encoder(x[:, :-1])
        prev = x[:, -1]
        steps = self.output_len if self.output_len is not None else x.shape[1]
        preds = []
        for t in range(steps):
            out, (h, c) = self.decoder(prev.unsqueeze(1), (h, c))
            pred = prev + self.fc(out[:, -1])
            preds.append(pred)
            if teacher_forcing and target is not None:
                prev = target[:, t]
            else:
                prev = pred
        return torch.stack(preds, dim=1)


def test_seq2seq_default_flag_unrolls_the_decoder_loop() -> None:
    model = Seq2SeqForecaster().eval()
    x = torch.randn(3, 8, 10)
    result = trace(model, (x,))
    gm = result.graph_module
    assert result.concrete_args == {"target": None, "teacher_forcing": False}
    calls = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert calls.count("encoder") == 1 and calls.count("decoder") == 4  # LSTMs are leaves
    assert not any(s.kind == "index" for s in result.specialisations)  # range(self.output_len)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))
        x2 = torch.randn(6, 12, 10)  # batch and input length are both free
        torch.testing.assert_close(gm(x2), model(x2))


def test_seq2seq_loop_over_a_tensor_size_is_a_specialisation() -> None:
    model = Seq2SeqForecaster(output_len=None).eval()
    x = torch.randn(2, 6, 10)
    result = trace(model, (x,))
    loops = [s for s in result.specialisations if s.kind == "index"]
    assert len(loops) == 1
    assert loops[0].value == 6 and loops[0].expr == "x.shape[1]"
    assert loops[0].source_line.endswith(source_line_of(Seq2SeqForecaster.forward, "range(steps)"))
    calls = [n.target for n in result.graph_module.graph.nodes if n.op == "call_module"]
    assert calls.count("decoder") == 6
    with torch.no_grad():
        x2 = torch.randn(5, 6, 10)  # another batch size with the specialised T
        torch.testing.assert_close(result.graph_module(x2), model(x2))


def test_seq2seq_teacher_forcing_as_concrete_arg() -> None:
    model = Seq2SeqForecaster().eval()
    x, y = torch.randn(3, 8, 10), torch.randn(3, 4, 10)
    result = trace(model, (x, y), concrete_args={"teacher_forcing": True})
    with torch.no_grad():
        torch.testing.assert_close(result.graph_module(x, y), model(x, y, teacher_forcing=True))
        x2, y2 = torch.randn(2, 5, 10), torch.randn(2, 4, 10)
        torch.testing.assert_close(result.graph_module(x2, y2),
                                   model(x2, y2, teacher_forcing=True))
        with pytest.raises(AssertionError, match="specialized"):  # guarded concrete argument
            result.graph_module(x2, y2, teacher_forcing=False)


# --- 4. return_rep flag ---------------------------------------------------------------------------

class PoseEncoder(nn.Module):
    def __init__(self, joints: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.enc = nn.Linear(joints * 2, hidden)
        self.head = nn.Linear(hidden, joints * 3)
        self.act = nn.ReLU()

    def forward(self, x, return_rep=False):
        n, t = x.shape[:2]
        h = self.act(self.enc(x.reshape(n, t, -1)))
        y = self.head(h).reshape(n, t, -1, 3)
        if return_rep:
            return y, h
        return y


@pytest.mark.parametrize("return_rep", [False, True])
def test_return_rep_flag_both_values(return_rep: bool) -> None:
    model = PoseEncoder()
    x = torch.randn(2, 5, 4, 2)
    concrete = None if not return_rep else {"return_rep": True}
    result = trace(model, (x,), concrete_args=concrete)
    assert result.concrete_args == {"return_rep": return_rep}
    for inp in (x, torch.randn(7, 3, 4, 2)):
        got, want = result.graph_module(inp), model(inp, return_rep=return_rep)
        assert isinstance(got, tuple) == return_rep
        torch.testing.assert_close(got, want)
    # ``n, t = x.shape[:2]`` unpacks a rank (recorded) but keeps n and t symbolic
    assert not any(s.kind in ("int", "index") for s in result.specialisations)


# --- 5. size branches -----------------------------------------------------------------------------

class XYOrXYZ(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 4)

    def forward(self, x):
        if x.shape[-1] == 3:
            x = x[..., :2]
        return self.lin(x)


def test_size_branch_records_a_specialisation_with_source_line() -> None:
    model = XYOrXYZ()
    result = trace(model, (torch.randn(2, 6, 3),))
    (spec,) = result.specialisations
    assert spec.kind == "bool" and spec.value is True
    assert spec.expr == "(x.shape[-1] == 3)"
    assert spec.source_line.endswith(source_line_of(XYOrXYZ.forward, "if x.shape[-1] == 3"))
    assert spec.node_name.startswith("eq")
    x = torch.randn(5, 9, 3)
    torch.testing.assert_close(result.graph_module(x), model(x))
    assert "specialisation" in repr(result) and "x.shape[-1] == 3" in repr(result)


class SizeTricks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        assert x.ndim == 3 and x.dim() == 3
        frames = [self.lin(f) for f in x.unbind(1)]
        h0 = torch.zeros(x.shape[0], 3)
        y = torch.stack(frames, 1) + h0[:, None]
        half = int(x.shape[1] / 2)
        rows = sum(1 for _ in x)  # iterating a tensor unrolls its first dimension
        sign = torch.tensor([1.0, -1.0, 1.0])  # a constant made in forward
        return y[:, :half] * len(x) * rows * sign


def test_len_int_iter_dim_and_factory_sizes() -> None:
    model = SizeTricks()
    x = torch.randn(2, 4, 3)
    result = trace(model, (x,))
    kinds = {(s.kind, s.expr): s.value for s in result.specialisations}
    assert kinds[("dim", "x.ndim")] == 3 and kinds[("dim", "x.dim()")] == 3
    assert kinds[("iter", "len(unbind)")] == 4
    assert kinds[("int", "(x.shape[1] / 2)")] == 2
    assert kinds[("len", "len(x)")] == 2  # len(x) bakes the batch size in, and says so
    assert kinds[("iter", "len(x)")] == 2
    assert hasattr(result.graph_module, "_tensor_constant0")
    assert not hasattr(model, "_tensor_constant0")  # fx's constant is not left on the model
    torch.testing.assert_close(result.graph_module(x), model(x))
    # torch.zeros(x.shape[0], 3) kept the batch size symbolic (fx alone rejects this call)
    zeros = next(n for n in result.graph_module.graph.nodes if n.target is torch.zeros)
    assert isinstance(zeros.args[0], fx.Node)
    assert "wrap(" not in result.graph_module.code
