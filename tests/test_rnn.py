"""ChiralLSTM / ChiralGRU: exact equivariance, being real LSTM/GRUs, conversion, training."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from symmetrize.nn.rnn import ChiralGRU, ChiralLSTM
from symmetrize.rep import Rep
from symmetrize.weight_sharing import weight_sharing
from tests.strategies import reps

CLASSES = [ChiralLSTM, ChiralGRU]
DENSE = {ChiralLSTM: nn.LSTM, ChiralGRU: nn.GRU}

# A mix: two swapped pairs (one negated), a fixed channel, a negated fixed channel.
REP_IN = Rep([1, 0, 2, 4, 3, 5], [1, 1, 1, -1, -1, -1])
REP_HIDDEN = Rep([2, 3, 0, 1, 4, 6, 5], [1, -1, 1, -1, -1, 1, 1])

NAMED_REPS = {
    "all_fixed": (Rep.trivial(3) + Rep.negated(2), Rep.trivial(2) + Rep.negated(3)),
    "no_negated": (Rep.regular(5), Rep.regular(6)),
    "all_negated": (Rep.negated(4), Rep.negated(5)),
    "trivial": (Rep.trivial(3), Rep.trivial(4)),
    "skeleton": (Rep.pose("humaneva", 2), Rep.skeleton_hidden("humaneva", 2, 1)),
    "mixed": (REP_IN, REP_HIDDEN),
}


@pytest.fixture(autouse=True, params=["blocks", "dense"])
def execution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the layers in block form and in dense form (narrow widths)."""
    from symmetrize.nn import blockops
    monkeypatch.setattr(blockops, "MIN_BLOCK_WIDTH", 0 if request.param == "blocks" else 10**6)
    return request.param


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    # The tensors here are tiny: intra-op threads only add contention on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _is_lstm(module: nn.Module) -> bool:
    return isinstance(module, nn.LSTM)


def _random_inputs(module: nn.RNNBase, rep_in: Rep, steps: int = 5, batch: int = 3,
                   dtype: torch.dtype = torch.float64, with_states: bool = True,
                   seed: int = 1) -> tuple[torch.Tensor, object]:
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, steps, rep_in.size) if module.batch_first else (steps, batch, rep_in.size)
    x = torch.randn(*shape, generator=gen, dtype=dtype)
    if not with_states:
        return x, None
    dirs = 2 if module.bidirectional else 1
    state_shape = (module.num_layers * dirs, batch, module.hidden_size)
    h0 = torch.randn(*state_shape, generator=gen, dtype=dtype)
    if _is_lstm(module):
        return x, (h0, torch.randn(*state_shape, generator=gen, dtype=dtype))
    return x, h0


def _mirror_states(states: object, rep_hidden: Rep) -> object:
    if states is None:
        return None
    if isinstance(states, tuple):
        return tuple(rep_hidden.apply(s, -1) for s in states)
    return rep_hidden.apply(states, -1)  # type: ignore[arg-type]


def _flat_states(states: object) -> list[torch.Tensor]:
    return list(states) if isinstance(states, tuple) else [states]  # type: ignore[list-item]


def equivariance_error(module: nn.RNNBase, rep_in: Rep, rep_hidden: Rep, x: torch.Tensor,
                       states: object) -> float:
    """``max |f(T x, S h0) - T f(x, h0)|`` over the output and every final state."""
    dirs = 2 if module.bidirectional else 1
    rep_out = rep_hidden.repeat(dirs)
    with torch.no_grad():
        out, last = module(x, states)
        out_m, last_m = module(rep_in.apply(x, -1), _mirror_states(states, rep_hidden))
    errors = [(out_m - rep_out.apply(out, -1)).abs().max()]
    for a, b in zip(_flat_states(last_m), _flat_states(_mirror_states(last, rep_hidden)),
                    strict=True):
        errors.append((a - b).abs().max())
    return float(max(errors))


def _outputs(module: nn.RNNBase, x: torch.Tensor, states: object = None) -> list[torch.Tensor]:
    with torch.no_grad():
        out, last = module(x, states)
    return [out, *_flat_states(last)]


def _assert_same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-12) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert u.shape == v.shape
        assert float((u - v).abs().max()) <= atol


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
        x, states = _random_inputs(module, REP_IN, with_states=with_states)
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
    x, states = _random_inputs(module, REP_IN, steps=7, dtype=dtype)
    assert equivariance_error(module, REP_IN, REP_HIDDEN, x, states) < tol


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("which", sorted(NAMED_REPS))
def test_equivariance_reps(cls: type, which: str) -> None:
    rep_in, rep_hidden = NAMED_REPS[which]
    module = cls(rep_in, rep_hidden, num_layers=2, bidirectional=True, dtype=torch.float64)
    x, states = _random_inputs(module, rep_in)
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
    x, states = _random_inputs(module, rep_in, steps=4, batch=2, with_states=with_states,
                               seed=seed)
    assert equivariance_error(module, rep_in, rep_hidden, x, states) < 1e-10


def test_equivariance_check_can_fail() -> None:
    """Negative controls: a plain LSTM, and signed (instead of unsigned) gates, are caught."""
    plain = nn.LSTM(REP_IN.size, REP_HIDDEN.size, dtype=torch.float64)
    x, states = _random_inputs(plain, REP_IN)
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
    x, states = _random_inputs(module, REP_IN)
    expected = _outputs(module, x, states)
    _assert_same(_outputs(dense, x, states), expected)
    _assert_same(_outputs(by_hand, x, states), expected)
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
    x32, _ = _random_inputs(module, REP_IN, dtype=torch.float32, with_states=False)
    module(x32)[0].sum().backward()
    clone = copy.deepcopy(module)
    _assert_same(_outputs(clone, x32), _outputs(module, x32), atol=0.0)
    module.double()
    x64 = x32.double()
    _assert_same(_outputs(module, x64), _outputs(clone, x32.clone()), atol=1e-5)
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
    x, states = _random_inputs(module, REP_IN, dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module(x, states)
    messages = [str(w.message) for w in caught]
    assert messages == ["some other warning"]


# ------------------------------------------------------------------ conversion
@pytest.mark.parametrize("cls", CLASSES)
def test_from_dense_of_equivariant_module_is_exact(cls: type) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, bidirectional=True, batch_first=True,
                 dtype=torch.float64)
    dense = module.to_dense()
    again = cls.from_dense(dense, REP_IN, REP_HIDDEN)
    assert isinstance(again, cls)
    assert (again.num_layers, again.bidirectional, again.batch_first, again.bias) == (
        2, True, True, True)
    for name in module._flat_weights_names:  # exact up to rounding of the basis change
        assert float((getattr(again, name) - getattr(module, name)).abs().max()) < 1e-15
    x, states = _random_inputs(module, REP_IN)
    _assert_same(_outputs(again, x, states), _outputs(module, x, states))


@pytest.mark.parametrize("cls", CLASSES)
def test_from_dense_projects(cls: type) -> None:
    plain = DENSE[cls](REP_IN.size, REP_HIDDEN.size, num_layers=2, bidirectional=True,
                       dropout=0.25, dtype=torch.float64)
    module = cls.from_dense(plain, REP_IN, REP_HIDDEN)
    assert module.dropout == 0.25 and module.num_layers == 2 and module.bidirectional
    gates = cls.gates_rep(REP_HIDDEN).matrix()
    checks = {
        "weight_ih_l0": REP_IN.matrix(),
        "weight_hh_l1_reverse": REP_HIDDEN.matrix(),
        "weight_ih_l1_reverse": (REP_HIDDEN + REP_HIDDEN).matrix(),
    }
    for name, m_in in checks.items():
        w = getattr(plain, name).detach()
        projected = (w + gates @ w @ m_in) / 2
        assert torch.allclose(getattr(module, name), projected, atol=1e-14, rtol=0)
    b = plain.bias_hh_l0.detach()
    assert torch.allclose(module.bias_hh_l0, (b + gates @ b) / 2, atol=1e-14, rtol=0)
    # The projection really changed the weights (the plain module was not equivariant).
    assert float((module.weight_ih_l0 - plain.weight_ih_l0).detach().abs().max()) > 1e-3
    assert module.training  # copied from the plain module; dropout = 0.25 is random in training
    module.eval()
    x, states = _random_inputs(module, REP_IN)
    assert equivariance_error(module, REP_IN, REP_HIDDEN, x, states) < 1e-10


@pytest.mark.parametrize("cls", CLASSES)
def test_from_dense_errors(cls: type) -> None:
    other = nn.GRU if cls is ChiralLSTM else nn.LSTM
    with pytest.raises(TypeError, match=other.__name__):
        cls.from_dense(other(REP_IN.size, REP_HIDDEN.size), REP_IN, REP_HIDDEN)
    with pytest.raises(TypeError, match=rf"from_dense expects an nn\.{cls.__name__[6:]}, got "
                                        r"Linear"):
        cls.from_dense(nn.Linear(6, 7), REP_IN, REP_HIDDEN)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rep_in has size 6 .* input_size 5"):
        cls.from_dense(DENSE[cls](5, REP_HIDDEN.size), REP_IN, REP_HIDDEN)
    with pytest.raises(ValueError, match=r"rep_hidden has size 7 .* hidden_size 8"):
        cls.from_dense(DENSE[cls](REP_IN.size, 8), REP_IN, REP_HIDDEN)
    if cls is ChiralLSTM:
        with pytest.raises(ValueError, match="proj_size"):
            cls.from_dense(nn.LSTM(REP_IN.size, REP_HIDDEN.size, proj_size=3), REP_IN,
                           REP_HIDDEN)


@pytest.mark.parametrize("cls", CLASSES)
def test_state_dict_round_trip_and_plain_checkpoint(cls: type) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, bidirectional=True, dtype=torch.float64)
    torch.manual_seed(123)
    fresh = cls(REP_IN, REP_HIDDEN, num_layers=2, bidirectional=True, dtype=torch.float64)
    x, states = _random_inputs(module, REP_IN)
    assert float((_outputs(fresh, x, states)[0] - _outputs(module, x, states)[0]).abs().max()) \
        > 1e-6
    fresh.load_state_dict(module.state_dict())
    _assert_same(_outputs(fresh, x, states), _outputs(module, x, states), atol=0.0)

    plain = DENSE[cls](REP_IN.size, REP_HIDDEN.size, num_layers=2, bidirectional=True,
                       dtype=torch.float64)
    fresh.load_state_dict(plain.state_dict())
    reference = cls.from_dense(plain, REP_IN, REP_HIDDEN)
    for key, value in reference.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    _assert_same(_outputs(fresh, x, states), _outputs(reference, x, states), atol=0.0)


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_reach_every_free_parameter(cls: type) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, bidirectional=True)
    x, states = _random_inputs(module, REP_IN, dtype=torch.float32)
    out, last = module(x, states)
    loss = out.square().mean() + sum(s.square().mean() for s in _flat_states(last))
    loss.backward()
    named = dict(module.named_parameters())
    assert set(named) == {f"{n}_{half}" for n in module._flat_weights_names
                          for half in (("plus",) if n.startswith("bias") else ("plus", "minus"))}
    for name, param in named.items():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert float(param.grad.abs().max()) > 0, name


@pytest.mark.parametrize("cls", CLASSES)
def test_adam_reduces_loss(cls: type) -> None:
    module = cls(REP_IN, REP_HIDDEN, batch_first=True)
    head = nn.Linear(REP_HIDDEN.size, 1)
    x = torch.randn(16, 8, REP_IN.size)
    target = torch.sin(x.cumsum(dim=1)[..., :1])
    params = list(module.parameters()) + list(head.parameters())
    optimiser = torch.optim.Adam(params, lr=1e-2)

    def loss_fn() -> torch.Tensor:
        return (head(module(x)[0]) - target).square().mean()

    with torch.no_grad():
        initial = float(loss_fn())
    for _ in range(40):
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        assert float(loss_fn()) < 0.8 * initial
    assert equivariance_error(module, REP_IN, REP_HIDDEN, x, None) < 1e-5


@pytest.mark.parametrize("cls", CLASSES)
def test_init_scale_matches_plain(cls: type) -> None:
    rep_in = Rep.pose("h36m", 2)
    rep_hidden = Rep.skeleton_hidden("h36m", 2, 1)
    assert rep_hidden.n_pairs and rep_hidden.n_negated
    chiral_var, plain_var = [], []
    for seed in range(4):
        torch.manual_seed(seed)
        x = torch.randn(12, 128, rep_in.size)
        chiral = cls(rep_in, rep_hidden, num_layers=2)
        plain = DENSE[cls](rep_in.size, rep_hidden.size, num_layers=2)
        with torch.no_grad():
            chiral_var.append(float(chiral(x)[0].var()))
            plain_var.append(float(plain(x)[0].var()))
    ratio = np.mean(chiral_var) / np.mean(plain_var)
    assert 0.8 < ratio < 1.2, ratio


@pytest.mark.parametrize("cls", CLASSES)
def test_reset_parameters_redraws_every_block_at_the_plain_scale(cls: type) -> None:
    rep_hidden = Rep.skeleton_hidden("h36m", 2, 1)
    rnn = cls(Rep.pose("h36m", 2), rep_hidden, num_layers=2)
    with torch.no_grad():
        for p in rnn.parameters():
            p.zero_()
    torch.manual_seed(0)
    rnn.reset_parameters()
    drawn = {name: p.detach().clone() for name, p in rnn.named_parameters()}
    # nn.LSTM / nn.GRU draw every weight from U(-k, k), k = 1 / sqrt(hidden): std k / sqrt(3)
    std = 1 / np.sqrt(3 * rep_hidden.size)
    for name in rnn._flat_weights_names:
        if name.startswith("weight"):
            dense = getattr(rnn, name).detach()
            assert 0.9 < float(dense.square().mean().sqrt()) / std < 1.1, name
    for name, p in drawn.items():  # no block left at zero
        assert float(p.square().mean().sqrt()) > 0.5 * std, name
    torch.manual_seed(0)
    rnn.reset_parameters()  # the draw follows the global seed
    assert all(torch.equal(p, drawn[name]) for name, p in rnn.named_parameters())
    assert rnn.self_check() < 1e-10


@pytest.mark.parametrize("cell_cls", [nn.LSTMCell, nn.GRUCell])
def test_chiral_cells_are_equivariant_and_round_trip(cell_cls: type) -> None:
    from symmetrize.nn import ChiralGRUCell, ChiralLSTMCell
    torch.manual_seed(0)
    rep_in, rep_hidden = Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 4, 1)
    twin = ChiralLSTMCell if cell_cls is nn.LSTMCell else ChiralGRUCell
    plain = cell_cls(34, 68, dtype=torch.float64)
    cell = twin.from_dense(plain, rep_in, rep_hidden)
    x = torch.randn(5, 34, dtype=torch.float64)
    h = torch.randn(5, 68, dtype=torch.float64)
    state = (h, torch.randn(5, 68, dtype=torch.float64)) if twin is ChiralLSTMCell else h
    mirrored = tuple(rep_hidden.apply(s) for s in state) if isinstance(state, tuple) else \
        rep_hidden.apply(state)
    out, out_m = cell(x, state), cell(rep_in.apply(x), mirrored)
    outs = out if isinstance(out, tuple) else (out,)
    outs_m = out_m if isinstance(out_m, tuple) else (out_m,)
    for a, b in zip(outs, outs_m):
        assert (rep_hidden.apply(a) - b).abs().max() < 1e-10
    dense = cell.to_dense()
    assert type(dense) is cell_cls
    assert torch.allclose(dense(x, state)[0] if isinstance(state, tuple) else dense(x, state),
                          outs[0])
    gates = twin.gates_rep(rep_hidden)
    expected = (weight_sharing(rep_in, gates).n_free + weight_sharing(rep_hidden, gates).n_free
                + 2 * weight_sharing(Rep.trivial(1), gates).n_free)
    assert sum(p.numel() for p in cell.parameters()) == expected
    with pytest.raises(TypeError, match="expects an nn.GRUCell|expects an nn.LSTMCell"):
        twin.from_dense(nn.Linear(34, 68), rep_in, rep_hidden)
