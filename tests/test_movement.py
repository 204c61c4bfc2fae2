"""Flat Reps through data-movement ops: every op is checked on the property op(T x) == R op(x)
(errors and realistic chains: tests/test_movement_errors.py)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from symmetrize.flat_movement import (
    flat_rep,
    forward_rep,
)
from symmetrize.rep import Rep
from tests.movement_support import (
    H36M,
    X_NEGATED,
    any_flat,
    assert_property,
    check,
    factor_axes,
    product_rep,
    randn,
    seeded,
    shapes,
    sized,
)


# ----------------------------------------------------------------------------- flat_rep
def test_flat_rep_is_the_kronecker_product() -> None:
    a, b = Rep.regular(3), Rep.coords(4, (1, 2))
    assert flat_rep((3, 4), {0: a, 1: b}) == a.kron(b)
    assert flat_rep((2, 3, 4), {-1: b, 1: a}) == Rep.trivial(2).kron(a).kron(b)
    assert flat_rep((2, 5), {}) == Rep.trivial(10)
    assert flat_rep((), {}) == Rep.trivial(1)


def test_flat_rep_rejects_bad_axes() -> None:
    with pytest.raises(ValueError, match=r"axis -1 of shape \(2, 3\) has size 3 but its Rep has "
                                         r"size 4"):
        flat_rep((2, 3), {-1: Rep.trivial(4)})
    with pytest.raises(ValueError, match="given twice"):
        flat_rep((2, 3), {1: Rep.trivial(3), -1: Rep.trivial(3)})
    with pytest.raises(ValueError, match="out of range"):
        flat_rep((2, 3), {2: Rep.trivial(3)})


# ----------------------------------------------------------------------------- factor_axes
@seeded
@given(data=st.data())
def test_factor_axes_round_trip(data: st.DataObject) -> None:
    shape = data.draw(shapes)
    listed = data.draw(st.permutations(range(len(shape))).flatmap(
        lambda order: st.integers(0, len(order)).map(lambda k: list(order[:k]))))
    per_axis = {a: data.draw(sized(shape[a])) for a in listed}
    flat = flat_rep(shape, per_axis)
    negative = [a - len(shape) for a in listed]
    for axes in (listed, negative):
        found = factor_axes(shape, flat, axes)
        assert found is not None and list(found) == axes
        assert flat_rep(shape, found) == flat
        for a in axes:  # the permutation is unique, only signs may move between axes
            assert np.array_equal(found[a].perm, per_axis[a % len(shape)].perm)
    if len(listed) == 1:
        assert factor_axes(shape, flat, listed) == per_axis


def test_factor_axes_pose_with_signs_on_two_axes() -> None:
    shape = (2, 3, 17, 2)
    signed_joints = Rep(H36M.perm, -np.ones(17, dtype=np.int64))
    flat = flat_rep(shape, {2: signed_joints, 3: X_NEGATED})
    assert flat.n_negated > 0
    for axes in ([2, 3], [3, 2], [-2, -1]):
        found = factor_axes(shape, flat, axes)
        assert found is not None and flat_rep(shape, found) == flat
    # The sign goes to the last listed axis: the joints come back unsigned.
    assert factor_axes(shape, flat, [2, 3]) == {2: H36M, 3: Rep.coords(2, (1,))}
    plain = flat_rep(shape, {2: H36M, 3: X_NEGATED})
    assert factor_axes(shape, plain, [2, 3]) == {2: H36M, 3: X_NEGATED}


def test_factor_axes_none_when_axes_do_not_match() -> None:
    channels = Rep.regular(4)
    flat = flat_rep((2, 4, 6), {1: channels})
    moved = forward_rep(lambda x: x.transpose(1, 2), [randn(2, 4, 6)], [flat])
    assert factor_axes((2, 6, 4), moved, [1]) is None  # channels are now on axis 2
    assert factor_axes((2, 6, 4), moved, [2]) == {2: channels}
    # An axis not listed must be left alone.
    for third in (Rep.regular(3), Rep.coords(3, (0,))):
        two = flat_rep((2, 4, 3), {1: channels, 2: third})
        assert factor_axes((2, 4, 3), two, [1]) is None
        assert factor_axes((2, 4, 3), two, [1, 2]) == {1: channels, 2: third}
    # A sign common to a whole axis is global: it may move onto the listed one.
    two = flat_rep((2, 4, 3), {1: channels, 2: Rep.negated(3)})
    assert factor_axes((2, 4, 3), two, [1]) == {1: Rep(channels.perm, -channels.sign)}
    # A permutation that mixes axes is no product.
    assert factor_axes((2, 2), Rep([0, 2, 1, 3]), [0, 1]) is None
    with pytest.raises(ValueError, match="does not match shape"):
        factor_axes((2, 3), Rep.trivial(5), [0])


# ----------------------------------------------------------------------------- bijective ops
def _axis(draw: st.DrawFn, shape: Sequence[int]) -> int:
    return draw(st.integers(0, len(shape) - 1))


BIJECTIVE: dict[str, Callable[[st.DrawFn, tuple[int, ...]], Callable[[torch.Tensor], Any]]] = {
    "view": lambda draw, s: lambda x: x.view(s[0], -1),
    "view_all": lambda draw, s: lambda x: x.view(-1),
    "reshape": lambda draw, s: lambda x: x.reshape(-1, s[-1]),
    "flatten": lambda draw, s: (lambda d: lambda x: x.flatten(d))(_axis(draw, s)),
    "unflatten": lambda draw, s: lambda x: x.flatten().unflatten(0, s),
    "permute": lambda draw, s: (lambda p: lambda x: x.permute(*p))(
        draw(st.permutations(range(len(s))))),
    "transpose": lambda draw, s: (lambda a, b: lambda x: x.transpose(a, b))(
        _axis(draw, s), _axis(draw, s)),
    "contiguous": lambda draw, s: lambda x: x.transpose(0, -1).contiguous(),
    "flip": lambda draw, s: (lambda d: lambda x: x.flip(d))(_axis(draw, s)),
    "roll": lambda draw, s: (lambda d, k: lambda x: torch.roll(x, k, d))(
        _axis(draw, s), draw(st.integers(-5, 5))),
}


@pytest.mark.parametrize("name", sorted(BIJECTIVE))
@seeded
@given(data=st.data())
def test_bijective_ops(name: str, data: st.DataObject) -> None:
    shape = data.draw(shapes)
    rep = data.draw(any_flat(shape))
    op = BIJECTIVE[name](data.draw, shape)
    x = randn(*shape)
    out_rep = check(op, [x], [rep])
    assert isinstance(out_rep, Rep)


def test_method_name_and_non_tensor_arguments() -> None:
    rep = flat_rep((2, 3, 4), {1: Rep.regular(3), 2: Rep.negated(4)})
    x = randn(2, 3, 4)
    out = forward_rep("permute", [x, 2, 0, 1], [rep, None, None, None])
    assert out == flat_rep((4, 2, 3), {0: Rep.negated(4), 2: Rep.regular(3)})
    out = forward_rep(operator.getitem, [x, (slice(None), slice(None), slice(1, 3))], [rep, None])
    assert out == flat_rep((2, 3, 2), {1: Rep.regular(3), 2: Rep.negated(2)})


def test_property_check_can_fail() -> None:
    rep = flat_rep((2, 4), {1: Rep.regular(4)})
    with pytest.raises(AssertionError, match="Tensor-likes are not equal"):
        assert_property(lambda x: x.t(), [randn(2, 4)], [rep], Rep.trivial(8))


# ----------------------------------------------------------------------------- other ops
@st.composite
def channels_time(draw: st.DrawFn, min_time: int = 5) -> tuple[torch.Tensor, Rep, Rep]:
    """(N, C, T) data, its channel Rep and flat Rep; the mirror leaves time alone."""
    n, c, t = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(min_time, 8))
    channels = draw(sized(c))
    return randn(n, c, t), channels, flat_rep((n, c, t), {1: channels})


@st.composite
def pose_video(draw: st.DrawFn) -> tuple[torch.Tensor, Rep]:
    """(N, T, J, C) data and its flat Rep: random joint and coordinate Reps."""
    n, t, j, c = (draw(st.integers(1, 3)), draw(st.integers(3, 6)), draw(st.integers(1, 6)),
                  draw(st.integers(1, 3)))
    return randn(n, t, j, c), draw(product_rep((n, t, j, c), (2, 3)))


TIME_OPS: dict[str, tuple[Callable[[torch.Tensor], Any], int]] = {
    # name: (op on (N, C, T), the axis the channels end up on)
    "slice": (lambda x: x[:, :, 2:-2], 1),
    "step": (lambda x: x[..., ::2], 1),
    "select": (lambda x: x.select(2, 1), 1),
    "index_time": (lambda x: x[:, :, [0, 3, 3, 1]], 1),
    "unsqueeze": (lambda x: x.unsqueeze(2), 1),
    "squeeze": (lambda x: x[:, :, :1].squeeze(2), 1),
    "split": (lambda x: x.split([2, x.shape[2] - 2], 2), 1),
    "chunk": (lambda x: x.chunk(3, 2), 1),
    "chunk_batch": (lambda x: x.chunk(2, 0), 1),
    "pad_zero": (lambda x: F.pad(x, (2, 1)), 1),
    "pad_reflect": (lambda x: F.pad(x, (2, 3), mode="reflect"), 1),
    "pad_replicate": (lambda x: F.pad(x, (3, 2), mode="replicate"), 1),
    "pad_circular": (lambda x: F.pad(x, (1, 2), mode="circular"), 1),
    "expand": (lambda x: x[:, :, :1].expand(-1, -1, 4), 1),
    "repeat": (lambda x: x.repeat(2, 1, 3), 1),
    "flip": (lambda x: x.flip(2), 1),
    "roll": (lambda x: torch.roll(x, 2, 2), 1),
    "broadcast": (lambda x: torch.broadcast_to(x[:, None], (x.shape[0], 2, *x.shape[1:])), 2),
}


@pytest.mark.parametrize("name", sorted(TIME_OPS))
@seeded
@given(sample=channels_time())
def test_time_axis_ops(name: str, sample: tuple[torch.Tensor, Rep, Rep]) -> None:
    x, channels, rep = sample
    op, axis = TIME_OPS[name]
    out_reps = check(op, [x], [rep])
    outs = op(x)
    if isinstance(out_reps, Rep):
        outs, out_reps = [outs], [out_reps]
    for out, out_rep in zip(outs, out_reps):
        # The mirror acts on the channels only, so their Rep carries over unchanged.
        assert factor_axes(out.shape, out_rep, [axis]) == {axis: channels}


@seeded
@given(sample=pose_video())
def test_pose_video_ops(sample: tuple[torch.Tensor, Rep]) -> None:
    x, rep = sample
    ops = [lambda x: x[:, 0], lambda x: x[:, 1:-1], lambda x: x[:, ::2], lambda x: x.unsqueeze(1),
           lambda x: x.flip(1), lambda x: x.expand(2, *x.shape),
           lambda x: x[:, :, :, None].expand(-1, -1, -1, 3, -1)]
    for op in ops:
        check(op, [x], [rep])


@seeded
@given(data=st.data())
def test_cat_and_stack(data: st.DataObject) -> None:
    shape = list(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    dim = data.draw(st.integers(0, len(shape) - 1))
    other = shape.copy()
    other[dim] = data.draw(st.integers(1, 3))
    a, b = randn(*shape), randn(*other)
    rep_a, rep_b = data.draw(any_flat(shape)), data.draw(any_flat(other))
    check(lambda u, v: torch.cat([u, v], dim), [a, b], [rep_a, rep_b])
    # The fx form: one list argument with a list of Reps.
    out = forward_rep(torch.cat, [[a, b], dim], [[rep_a, rep_b], None])
    assert out == forward_rep(lambda u, v: torch.cat([u, v], dim), [a, b], [rep_a, rep_b])
    if dim == 0:
        assert out == rep_a + rep_b
    c = randn(*shape)
    rep_c = data.draw(any_flat(shape))
    stack_dim = data.draw(st.integers(0, len(shape)))
    check(lambda u, w: torch.stack([u, w], stack_dim), [a, c], [rep_a, rep_c])


def test_cat_on_the_mirrored_axis_is_the_direct_sum() -> None:
    left, right = Rep.regular(4), Rep.coords(3, (0, 2))
    time = Rep.trivial(5)
    a, b = randn(2, 4, 5), randn(2, 3, 5)
    out = check(lambda u, v: torch.cat([u, v], 1), [a, b],
                [flat_rep((2, 4, 5), {1: left}), flat_rep((2, 3, 5), {1: right})])
    assert factor_axes((2, 7, 5), out, [1, 2]) == {1: left + right, 2: time}
    out = check(lambda u, v: torch.stack([u, v], -1), [a, a],
                [flat_rep((2, 4, 5), {1: left}), flat_rep((2, 4, 5), {1: Rep.trivial(4)})])
    assert factor_axes((2, 4, 5, 2), out, [1]) is None  # the two stacked copies differ


def test_repeat_on_the_mirrored_axis() -> None:
    channels = Rep([1, 0, 2, 3], [1, 1, -1, -1])
    out = check(lambda x: x.repeat(1, 1, 3), [randn(2, 5, 4)], [flat_rep((2, 5, 4), {2: channels})])
    assert factor_axes((2, 5, 12), out, [2]) == {2: channels.repeat(3)}
    out = check(lambda y: y.repeat(2, 1), [randn(2, 4)], [flat_rep((2, 4), {1: channels})])
    assert factor_axes((4, 4), out, [1]) == {1: channels}


def test_zero_padding_follows_the_channel_rep() -> None:
    channels = Rep([1, 0, 2, 3], [1, 1, -1, -1])
    x = randn(2, 4, 6)
    rep = flat_rep((2, 4, 6), {1: channels})
    for pad, before, after in [((2, 1), 0, 0), ((0, 0, 1, 1), 1, 1), ((1, 1, 2, 0), 2, 0)]:
        out = check(lambda x: F.pad(x, pad), [x], [rep])
        expected = Rep.trivial(before) + channels + Rep.trivial(after)
        assert factor_axes(F.pad(x, pad).shape, out, [1]) == {1: expected}
    # Non-tensor arguments pass through: F.pad(x, pad, value=0.0) in its fx form.
    out = forward_rep(F.pad, [x, (2, 1)], [rep, None], kwargs={"value": 0.0})
    assert factor_axes((2, 4, 9), out, [1]) == {1: channels}


def test_constant_padding_where_the_mirror_does_not_negate() -> None:
    x = randn(2, 4, 6)
    swapped = flat_rep((2, 4, 6), {1: Rep.regular(4)})
    out = check(lambda x: F.pad(x, (1, 2), value=1.0), [x], [swapped])
    assert factor_axes((2, 4, 9), out, [1]) == {1: Rep.regular(4)}
    # New constant channels are invariant: fine even when the old ones flip sign.
    negated = flat_rep((2, 4, 6), {1: Rep.negated(4)})
    out = check(lambda x: F.pad(x, (0, 0, 1, 1), value=1.0), [x], [negated])
    assert factor_axes((2, 6, 6), out, [1]) == {1: Rep.trivial(1) + Rep.negated(4)
                                                + Rep.trivial(1)}
