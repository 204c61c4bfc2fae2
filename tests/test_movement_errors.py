"""Flat Reps through data movement: the errors (dropped twins, constants, arithmetic, bad arguments)
and realistic chains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from symmetrize.flat_movement import (
    NotDataMovementError,
    NotEquivariantError,
    flat_rep,
    forward_rep,
)
from symmetrize.rep import Rep
from tests.movement_support import H36M, X_NEGATED, check, factor_axes, randn


# ----------------------------------------------------------------------------- errors
def test_dropping_one_twin_is_not_equivariant() -> None:
    x = randn(2, 3, 17, 2)
    rep = flat_rep(x.shape, {2: H36M, 3: X_NEGATED})
    with pytest.raises(NotEquivariantError,
                       match=r"at \(0, 0, 2, 0\) copies input element \(0, 0, 2, 0\).*keeps input "
                             r"element \(0, 0, 2, 0\) but drops its mirror image input element "
                             r"\(0, 0, 5, 0\)"):
        forward_rep(lambda x: x[:, :, :5], [x], [rep])
    with pytest.raises(NotEquivariantError, match=r"holds 2 times but its mirror image input "
                                                  r"element \(0, 0, 4, 0\) 1 times"):
        forward_rep(lambda x: x[:, :, [1, 1, 4]], [x], [rep])
    with pytest.raises(NotEquivariantError, match=r"split is not equivariant: output 0 at .*drops its mirror image"):
        forward_rep(torch.split, [x, [3, 14], 2], [rep, None, None])
    check(lambda x: x[:, :, :7], [x], [rep])  # joints 0-6 hold both twins of each pair


def test_non_zero_constant_where_the_mirror_negates() -> None:
    x = randn(2, 4, 6)
    rep = flat_rep((2, 4, 6), {1: Rep.coords(4, (0, 3))})
    with pytest.raises(NotEquivariantError, match=r"is the constant 1.0 .*would flip its "
                                                  r"sign.*only a zero constant"):
        forward_rep(lambda x: F.pad(x, (1, 1), value=1.0), [x], [rep])
    with pytest.raises(NotEquivariantError, match="constant -2.5"):
        forward_rep(F.pad, [x, (1, 1)], [rep, None], kwargs={"value": -2.5})
    check(lambda x: F.pad(x, (1, 1), value=0.0), [x], [rep])


@pytest.mark.parametrize("op", [lambda x: x * 2, lambda x: x.sum(-1), lambda x: x + 1,
                                lambda x: -x, lambda x: x.sort(-1).values,
                                lambda x: x.argmax(-1), lambda x: x.float(), lambda x: x.shape])
def test_arithmetic_is_not_data_movement(op: Callable[[torch.Tensor], Any]) -> None:
    x = randn(2, 4, 3)
    for rep in (flat_rep(x.shape, {1: Rep.regular(4), 2: X_NEGATED + Rep.trivial(1)}),
                Rep.trivial(24)):
        with pytest.raises(NotDataMovementError, match=r"<lambda>.*not"):
            forward_rep(op, [x], [rep])


def test_abs_is_caught_when_the_mirror_negates() -> None:
    x = randn(2, 4)
    with pytest.raises(NotDataMovementError, match="mirrored inputs"):
        forward_rep(torch.abs, [x], [flat_rep((2, 4), {1: Rep.negated(4)})])


def test_bad_arguments() -> None:
    x = randn(2, 3)
    with pytest.raises(ValueError, match=r"input 0 of shape \(2, 3\) has 6 elements but its Rep "
                                         r"has size 5"):
        forward_rep(lambda x: x, [x], [Rep.trivial(5)])
    with pytest.raises(ValueError, match="floating-point tensor without a Rep"):
        forward_rep(torch.cat, [[x, x]], [None])
    with pytest.raises(ValueError, match="1 inputs but 2 input Reps"):
        forward_rep(lambda x: x, [x], [Rep.trivial(6), None])
    with pytest.raises(ValueError, match=r"2\*\*53"):
        forward_rep(lambda x: x, [torch.empty(2 ** 52, device="meta")], [Rep.trivial(1)])
    index = torch.tensor([2, 0])
    out = forward_rep(lambda x, i: x[:, i], [x, index], [flat_rep((2, 3), {1: Rep([2, 1, 0])}),
                                                         None])
    assert out == flat_rep((2, 2), {1: Rep.regular(2)})


# ----------------------------------------------------------------------------- realistic
def test_videopose3d_input_chain() -> None:
    """(N, T, J, C) keypoints -> view(N, T, J*C) -> permute: what the first Conv1d sees."""
    x = randn(2, 5, 17, 2)
    rep = flat_rep(x.shape, {2: H36M, 3: X_NEGATED})
    assert factor_axes(x.shape, rep, [2, 3]) == {2: H36M, 3: X_NEGATED}
    viewed = check(lambda x: x.view(2, 5, -1), [x], [rep])
    permuted = check(lambda y: y.permute(0, 2, 1), [x.view(2, 5, -1)], [viewed])
    assert factor_axes((2, 34, 5), permuted, [1]) == {1: Rep.pose("h36m", 2, negate=(0,))}
    assert factor_axes((2, 34, 5), permuted, [-1]) is None


def test_large_tensor_is_vectorised() -> None:
    x = torch.empty(4, 81, 17, 2 * 16, dtype=torch.float64)  # ~176k elements
    rep = flat_rep(x.shape, {2: H36M, 3: Rep.coords(32, range(16))})
    out = forward_rep(lambda x: F.pad(x.flatten(2).transpose(1, 2), (1, 1)), [x], [rep])
    assert factor_axes((4, 17 * 32, 83), out, [1]) == {1: H36M.kron(Rep.coords(32, range(16)))}
