"""ChiralLSTM / ChiralGRU: conversion from plain modules, training, initialisation, and the chiral
cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from symmetrize.nn.rnn import ChiralLSTM
from symmetrize.rep import Rep
from symmetrize.weight_sharing import weight_sharing
from tests.rnn_support import (  # noqa: F401 - execution, one_thread: autouse fixtures
    CLASSES,
    DENSE,
    REP_HIDDEN,
    REP_IN,
    assert_same,
    equivariance_error,
    execution,
    flat_states,
    one_thread,
    outputs,
    random_inputs,
)


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
    x, states = random_inputs(module, REP_IN)
    assert_same(outputs(again, x, states), outputs(module, x, states))


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
    x, states = random_inputs(module, REP_IN)
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
    x, states = random_inputs(module, REP_IN)
    assert float((outputs(fresh, x, states)[0] - outputs(module, x, states)[0]).abs().max()) \
        > 1e-6
    fresh.load_state_dict(module.state_dict())
    assert_same(outputs(fresh, x, states), outputs(module, x, states), atol=0.0)

    plain = DENSE[cls](REP_IN.size, REP_HIDDEN.size, num_layers=2, bidirectional=True,
                       dtype=torch.float64)
    fresh.load_state_dict(plain.state_dict())
    reference = cls.from_dense(plain, REP_IN, REP_HIDDEN)
    for key, value in reference.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert_same(outputs(fresh, x, states), outputs(reference, x, states), atol=0.0)


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_reach_every_free_parameter(cls: type) -> None:
    module = cls(REP_IN, REP_HIDDEN, num_layers=2, bidirectional=True)
    x, states = random_inputs(module, REP_IN, dtype=torch.float32)
    out, last = module(x, states)
    loss = out.square().mean() + sum(s.square().mean() for s in flat_states(last))
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
