"""Tracing errors: data-dependent control flow, tensor data moved into Python, failing example
inputs, leaf submodules and concrete_args."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from symmetrize.nn.shared import ChiralModule
from symmetrize.passes.trace import TraceError, trace
from tests.helpers import source_line_of

# --- 3. data-dependent control flow ---------------------------------------------------------------

class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        if x.sum() > 0:
            y = -y
        return y


class ItemUser(nn.Module):
    def forward(self, x):
        scale = x.abs().max().item()
        return x / scale


class Gate(nn.Module):
    def forward(self, x):
        if (x > 0).any():
            return x.relu()
        return x


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.gate = Gate()

    def forward(self, x):
        return self.gate(self.lin(x))


class Flagged(nn.Module):
    def forward(self, x, flip):
        if flip:
            return -x
        return x


def test_data_dependent_branch_is_a_trace_error() -> None:
    with pytest.raises(TraceError, match="data-dependent") as info:
        trace(DataDependent(), (torch.randn(2, 4),))
    err = info.value
    assert isinstance(err, ValueError)
    message = str(err)
    assert "DataDependent" in message
    assert source_line_of(DataDependent.forward, "if x.sum() > 0") in message
    assert "if x.sum() > 0:" in message
    assert "move the data-dependent branch out of forward" in message
    assert err.source is not None and err.source.endswith(
        source_line_of(DataDependent.forward, "if x.sum() > 0"))


class ListUser(nn.Module):
    def forward(self, x):
        lengths = x[:, 0].long().tolist()
        return x[:, : max(lengths)]


class NumpyUser(nn.Module):
    def forward(self, x):
        return torch.from_numpy(np.asarray(x) * 2)


@pytest.mark.parametrize(("model", "op", "text"), [
    (ItemUser(), r"\.item\(\)", ".item()"),
    (ListUser(), r"\.tolist\(\)", ".tolist()"),
    (NumpyUser(), "NumPy conversion", "np.asarray(x)"),
])
def test_moving_tensor_data_into_python_is_a_trace_error(model: nn.Module, op: str,
                                                         text: str) -> None:
    with pytest.raises(TraceError, match=op) as info:
        trace(model, (torch.randn(2, 4),))
    assert "data-dependent" in str(info.value)
    assert source_line_of(type(model).forward, text) in str(info.value)


def test_failing_example_inputs_name_the_line() -> None:
    with pytest.raises(TraceError, match="running call_module lin on the example inputs") as info:
        trace(DataDependent(), (torch.randn(2, 3),))  # Linear(4, 4) on 3 features
    assert source_line_of(DataDependent.forward, "y = self.lin(x)") in str(info.value)
    with pytest.raises(TraceError, match="no example input for forward argument 'y'"):
        trace(TwoInputs(), (torch.randn(2, 3),))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 3))
        self.register_buffer("offset", torch.ones(3))

    def forward(self, x, y):
        return x @ self.weight + self.offset * y


def test_parameters_and_buffers_become_get_attr_nodes_with_values() -> None:
    model = TwoInputs()
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    result = trace(model, (x, y))
    attrs = {n.target: n for n in result.graph_module.graph.nodes if n.op == "get_attr"}
    assert set(attrs) == {"weight", "offset"}
    torch.testing.assert_close(attrs["weight"].meta["example_value"], model.weight.detach())
    assert not isinstance(attrs["weight"].meta["example_value"], nn.Parameter)
    assert result.example_outputs.shape == model(x, y).shape


def test_data_dependent_submodule_suggests_a_leaf_and_leaf_works() -> None:
    with pytest.raises(TraceError, match=r"leaf_modules=\[Gate\]") as info:
        trace(GatedNet(), (torch.randn(2, 4),))
    assert "GatedNet" in str(info.value)
    assert source_line_of(Gate.forward, "(x > 0).any()") in str(info.value)
    model = GatedNet()
    result = trace(model, (torch.randn(2, 4),), leaf_modules=[Gate])
    assert [n.target for n in result.graph_module.graph.nodes if n.op == "call_module"] == \
        ["lin", "gate"]
    x = torch.randn(3, 4)
    torch.testing.assert_close(result.graph_module(x), model(x))


def test_python_flag_in_example_inputs_suggests_concrete_args() -> None:
    with pytest.raises(TraceError, match=r"concrete_args=\{'flip': True\}"):
        trace(Flagged(), (torch.randn(2, 3), True))
    result = trace(Flagged(), (torch.randn(2, 3),), concrete_args={"flip": True})
    x = torch.randn(4, 3)
    torch.testing.assert_close(result.graph_module(x), -x)


class ChiralThing(ChiralModule, nn.Module):
    """Stands in for a chiral layer: its data-dependent forward must not be traced into."""

    def forward(self, x):
        return x if x.sum() > 0 else -x


def test_chiral_modules_are_leaves() -> None:
    model = nn.Sequential(nn.Linear(3, 3), ChiralThing())
    result = trace(model, (torch.randn(2, 3),))
    assert [n.op for n in result.graph_module.graph.nodes] == \
        ["placeholder", "call_module", "call_module", "output"]
