"""ChiralLSTM / ChiralGRU: exact equivariance, and being real LSTM/GRUs (conversion and training:
tests/test_rnn_training.py)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from symmetrize.nn.rnn import ChiralGRU, ChiralLSTM
from symmetrize.rep import Rep
from symmetrize.weight_sharing import weight_sharing
from tests.rnn_support import (  # noqa: F401 - execution, one_thread: autouse fixtures
    CLASSES,
    DENSE,
    NAMED_REPS,
    REP_HIDDEN,
    REP_IN,
    assert_same,
    equivariance_error,
    execution,
    one_thread,
    outputs,
    random_inputs,
)
from tests.strategies import reps


# ------------------------------------------------------------------ equivariance
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_equivariance_architectures(cls: type, num_layers: int, bidirectional: bool,
                                    batch_first: bool) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first, dtype=torch.float64)
    for with_states in (True, False):
        x, states = random_inputs(module, REP_IN, with_states=with_states)
        assert equivariance_error(module, REP_IN, REP_HIDDEN, x, states) < 1e-10


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_equivariance_modes(cls: type, dtype: torch.dtype, tol: float, train: bool,
                            bias: bool) -> None:
    # Eval mode with dropout > 0 (inactive in eval); train mode needs dropout = 0 to be exact.
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, bias=bias, bidirectional=True,
                 dropout=0.0 if train else 0.3, dtype=dtype)
    module.train(train)
    x, states = random_inputs(module, REP_IN, steps=7, dtype=dtype)
    assert equivariance_error(module, REP_IN, REP_HIDDEN, x, states) < tol


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("which", sorted(NAMED_REPS))
def test_equivariance_reps(cls: type, which: str) -> None:
    rep_in, rep_hidden = NAMED_REPS[which]
    module = cls(rep_in, rep_hidden, num_layers=2, bidirectional=True, dtype=torch.float64)
    x, states = random_inputs(module, rep_in)
    assert equivariance_error(module, rep_in, rep_hidden, x, states) < 1e-10


@pytest.mark.parametrize("cls", CLASSES)
def test_equivariance_unbatched_and_packed(cls: type) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, bidirectional=True, dtype=torch.float64)
    rep_out = REP_HIDDEN.repeat(2)
    x = torch.randn(6, REP_IN.size, dtype=torch.float64)
    with torch.no_grad():
        out, _ = module(x)
        out_m, _ = module(REP_IN.apply(x))
    assert float((out_m - rep_out.apply(out)).abs().max()) < 1e-10

    padded = torch.randn(5, 3, REP_IN.size, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    pack = nn.utils.rnn.pack_padded_sequence
    with torch.no_grad():
        out, _ = module(pack(padded, lengths, enforce_sorted=False))
        out_m, _ = module(pack(REP_IN.apply(padded), lengths, enforce_sorted=False))
    assert float((out_m.data - rep_out.apply(out.data)).abs().max()) < 1e-10


@settings(max_examples=25, deadline=None)
@given(rep_in=reps(), rep_hidden=reps(), num_layers=st.integers(1, 3),
       bidirectional=st.booleans(), batch_first=st.booleans(), use_gru=st.booleans(),
       with_states=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_equivariance_property(rep_in: Rep, rep_hidden: Rep, num_layers: int,
                               bidirectional: bool, batch_first: bool, use_gru: bool,
                               with_states: bool, bias: bool, seed: int) -> None:
    torch.manual_seed(seed)
    cls = ChiralGRU if use_gru else ChiralLSTM
    module = cls(rep_in, rep_hidden, num_layers=num_layers, bias=bias,
                 bidirectional=bidirectional, batch_first=batch_first, dtype=torch.float64)
    x, states = random_inputs(module, rep_in, steps=4, batch=2, with_states=with_states,
                               seed=seed)
    assert equivariance_error(module, rep_in, rep_hidden, x, states) < 1e-10


def test_equivariance_check_can_fail() -> None:
    """Negative controls: a plain LSTM, and signed (instead of unsigned) gates, are caught."""
    plain = nn.LSTM(REP_IN.size, REP_HIDDEN.size, dtype=torch.float64)
    x, states = random_inputs(plain, REP_IN)
    assert equivariance_error(plain, REP_IN, REP_HIDDEN, x, states) > 1e-3

    class SignedGates(ChiralLSTM):
        _gate_kinds = "ssss"  # the naive choice: sigmoid gates that flip sign

    signed = SignedGates(REP_IN, REP_HIDDEN, dtype=torch.float64)
    assert equivariance_error(signed, REP_IN, REP_HIDDEN, x, states) > 1e-3


# ------------------------------------------------------------------ it is a real LSTM / GRU
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_plain_module(cls: type, bias: bool) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, bias=bias, bidirectional=True,
                 batch_first=True, dtype=torch.float64)
    dense = module.to_dense()
    assert type(dense) is DENSE[cls]
    by_hand = DENSE[cls](REP_IN.size, REP_HIDDEN.size, num_layers=2, bias=bias,
                         bidirectional=True, batch_first=True, dtype=torch.float64)
    materialised = {name: getattr(module, name).detach() for name in module._flat_weights_names}
    assert all(isinstance(module, DENSE[cls]) for _ in [0])  # still an nn.LSTM / nn.GRU
    by_hand.load_state_dict(materialised)
    x, states = random_inputs(module, REP_IN)
    expected = outputs(module, x, states)
    assert_same(outputs(dense, x, states), expected)
    assert_same(outputs(by_hand, x, states), expected)
    # Not a degenerate cell: the state really is more than the candidate (h != c for an LSTM).
    if cls is ChiralLSTM:
        _, h_n, c_n = expected
        assert float((h_n - c_n).abs().max()) > 1e-2


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_names_and_counts(cls: type, bias: bool) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=3, bias=bias, bidirectional=True)
    plain = DENSE[cls](REP_IN.size, REP_HIDDEN.size, num_layers=3, bias=bias,
                       bidirectional=True)
    assert list(module.to_dense().state_dict()) == list(plain.state_dict())
    assert module._flat_weights_names == plain._flat_weights_names
    for name in plain._flat_weights_names:
        assert getattr(module, name).shape == getattr(plain, name).shape
    assert {k for k in module.state_dict()} == {
        f"{name}_{half}" for name in plain._flat_weights_names
        for half in (("plus",) if name.startswith("bias") else ("plus", "minus"))}

    free = sum(p.numel() for p in module.parameters())
    dense = sum(p.numel() for p in plain.parameters())
    assert free < dense
    assert module.free_parameters() == free and module.dense_parameters() == dense
    gates = cls.gates_rep(REP_HIDDEN)
    expected = 0
    for name in plain._flat_weights_names:
        if name.startswith("bias"):
            rep_from = Rep.trivial(1)
        elif name.startswith("weight_hh"):
            rep_from = REP_HIDDEN
        elif name.startswith("weight_ih_l0"):
            rep_from = REP_IN
        else:
            rep_from = REP_HIDDEN + REP_HIDDEN
        if name.startswith("bias"):
            expected += weight_sharing(rep_from, gates).n_free
            assert module._block_specs[name].rep_in is None
        else:
            expected += weight_sharing(rep_from, gates).n_free
            assert module._block_specs[name].rep_in == rep_from
    assert free == expected


def test_gate_reps() -> None:
    s, u = REP_HIDDEN, REP_HIDDEN.unsigned()
    assert ChiralLSTM.gates_rep(s) == u + u + s + u
    assert ChiralGRU.gates_rep(s) == u + u + s
    module = ChiralLSTM(REP_IN, REP_HIDDEN, num_layers=2, bidirectional=True)
    assert module.layer_input_rep(0) == REP_IN
    assert module.layer_input_rep(1) == s + s
    assert ChiralGRU(REP_IN, REP_HIDDEN, num_layers=2).layer_input_rep(1) == s
    assert module.rep_in is REP_IN and module.rep_hidden is REP_HIDDEN


@pytest.mark.parametrize("cls", CLASSES)
def test_no_dense_weight_per_forward(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block form never builds a dense weight; packed input runs the fused kernel."""
    module = cls(REP_IN, Rep.regular(64) + REP_HIDDEN, num_layers=2, bidirectional=True)
    if module.execution != "blocks":
        pytest.skip("block form only")
    calls = [0]
    plain_dense = type(module).dense_tensor

    def count(self: nn.Module, name: str) -> torch.Tensor:
        calls[0] += 1
        return plain_dense(self, name)

    monkeypatch.setattr(type(module), "dense_tensor", count)
    x = torch.randn(5, 3, REP_IN.size)
    module(x)[0].sum().backward()
    assert calls[0] == 0
    assert module._flat_weights == []
    packed = nn.utils.rnn.pack_padded_sequence(x, torch.tensor([5, 3, 2]))
    module(packed)
    assert calls[0] == len(module._flat_weights_names) and module._flat_weights == []


@pytest.mark.parametrize("cls", CLASSES)
def test_deepcopy_dtype_and_repr(cls: type) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, batch_first=True)
    x32, _ = random_inputs(module, REP_IN, dtype=torch.float32, with_states=False)
    module(x32)[0].sum().backward()
    clone = copy.deepcopy(module)
    assert_same(outputs(clone, x32), outputs(module, x32), atol=0.0)
    module.double()
    x64 = x32.double()
    assert_same(outputs(module, x64), outputs(clone, x32.clone()), atol=1e-5)
    assert equivariance_error(module, REP_IN, REP_HIDDEN, x64, None) < 1e-10
    text = repr(module)
    assert str(REP_IN) in text and str(REP_HIDDEN) in text
    assert "num_layers=2" in text and "batch_first=True" in text


@pytest.mark.parametrize("cls", CLASSES)
def test_forward_silences_only_the_non_contiguous_weights_warning(
        cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    # cuDNN raises this warning on every call (the materialised weights are never one flat
    # buffer); emulate it on CPU by wrapping the plain forward.
    dense_cls = DENSE[cls]
    plain_forward = dense_cls.forward

    def noisy_forward(self: nn.RNNBase, *args: object) -> object:
        warnings.warn("RNN module weights are not part of single contiguous chunk of memory. "
                      "This means they need to be compacted at every call.", UserWarning)
        warnings.warn("some other warning", UserWarning)
        return plain_forward(self, *args)

    monkeypatch.setattr(dense_cls, "forward", noisy_forward)
    module = cls(REP_IN, REP_HIDDEN)
    if module.execution == "blocks":
        pytest.skip("the block form never calls the fused kernel")
    x, states = random_inputs(module, REP_IN, dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module(x, states)
    messages = [str(w.message) for w in caught]
    assert messages == ["some other warning"]
