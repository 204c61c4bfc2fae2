"""Shared by the ChiralLSTM / ChiralGRU tests: Reps, the block/dense execution fixture, equivariance
helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize.nn.rnn import ChiralGRU, ChiralLSTM
from symmetrize.rep import Rep

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
def one_thread() -> object:
    # The tensors here are tiny: intra-op threads only add contention on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def is_lstm(module: nn.Module) -> bool:
    return isinstance(module, nn.LSTM)


def random_inputs(module: nn.RNNBase, rep_in: Rep, steps: int = 5, batch: int = 3,
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
    if is_lstm(module):
        return x, (h0, torch.randn(*state_shape, generator=gen, dtype=dtype))
    return x, h0


def mirror_states(states: object, rep_hidden: Rep) -> object:
    if states is None:
        return None
    if isinstance(states, tuple):
        return tuple(rep_hidden.apply(s, -1) for s in states)
    return rep_hidden.apply(states, -1)  # type: ignore[arg-type]


def flat_states(states: object) -> list[torch.Tensor]:
    return list(states) if isinstance(states, tuple) else [states]  # type: ignore[list-item]


def equivariance_error(module: nn.RNNBase, rep_in: Rep, rep_hidden: Rep, x: torch.Tensor,
                       states: object) -> float:
    """``max |f(T x, S h0) - T f(x, h0)|`` over the output and every final state."""
    dirs = 2 if module.bidirectional else 1
    rep_out = rep_hidden.repeat(dirs)
    with torch.no_grad():
        out, last = module(x, states)
        out_m, last_m = module(rep_in.apply(x, -1), mirror_states(states, rep_hidden))
    errors = [(out_m - rep_out.apply(out, -1)).abs().max()]
    for a, b in zip(flat_states(last_m), flat_states(mirror_states(last, rep_hidden)),
                    strict=True):
        errors.append((a - b).abs().max())
    return float(max(errors))


def outputs(module: nn.RNNBase, x: torch.Tensor, states: object = None) -> list[torch.Tensor]:
    with torch.no_grad():
        out, last = module(x, states)
    return [out, *flat_states(last)]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-12) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert u.shape == v.shape
        assert float((u - v).abs().max()) <= atol
