"""The per-axis Action and its data movement, checked against the flat index trick (the reference:
``forward_rep`` runs the op on index-encoded tensors) and against the definition ``op(T x) ==
T' op(x)`` on random data."""

from __future__ import annotations

import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from symmetrize import action_movement as mv
from symmetrize.action import Action, split_rep
from symmetrize.flat_movement import NotEquivariantError, flat_rep, forward_rep
from symmetrize.rep import Rep
from tests.strategies import reps

seeded = settings(derandomize=True, max_examples=40, deadline=None)
H36M = Rep.joints("h36m")
X = Rep.coords(2, (0,))


@st.composite
def actions(draw: st.DrawFn, max_axes: int = 4, max_size: int = 4) -> Action:
    """A random action: per-axis Reps on some axes, sometimes a joint group over two axes."""
    shape = tuple(draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_axes)))
    if len(shape) >= 2 and draw(st.booleans()):
        a = draw(st.integers(0, len(shape) - 2))
        size = shape[a] * shape[a + 1]
        rep = draw(reps(min_size=size, max_size=size))
        return Action(shape, [(a, a + 2, rep)], draw(st.sampled_from([1, -1])))
    axes = {a: draw(reps(min_size=s, max_size=s)) for a, s in enumerate(shape)
            if draw(st.booleans())}
    return Action.from_axes(shape, axes, draw(st.sampled_from([1, -1])))


def reference(op, action: Action, *args, **kwargs) -> Action:
    """The output action by the flat index trick."""
    x = torch.zeros(action.shape, dtype=torch.float64)
    out = forward_rep(op, [x, *args], [action.flat(), *([None] * len(args))], kwargs=kwargs)
    shape = op(x, *args, **kwargs).shape
    return Action.from_flat(shape, out)


# ----------------------------------------------------------------------------- Action itself
@seeded
@given(actions())
def test_flat_round_trip(action: Action) -> None:
    assert Action.from_flat(action.shape, action.flat()) == action


@seeded
@given(actions())
def test_apply_is_the_flat_rep(action: Action) -> None:
    x = torch.randn(action.shape, dtype=torch.float64)
    expected = action.flat().apply(x.reshape(-1)).reshape(x.shape)
    torch.testing.assert_close(action.apply(x), expected, rtol=0, atol=0)


def test_canonical_form_moves_signs_and_splits_groups() -> None:
    pose = H36M.kron(X)
    joint_group = Action((4, 17, 2), [(1, 3, pose)])
    assert joint_group == Action.from_axes((4, 17, 2), {1: H36M, 2: X})
    assert joint_group.is_axiswise
    assert joint_group.groups[1][2].sign.tolist() == [1, -1] and joint_group.sign == -1
    assert joint_group.axes(sign_on=2)[2] == X
    negated = Action.from_axes((3, 5), {1: Rep.negated(5)})
    assert negated.groups == () and negated.sign == -1 and negated.has_signs
    assert Action.from_axes((3, 5), {1: Rep.trivial(5)}).is_trivial
    assert Action.from_axes((0, 17), {1: H36M}).is_trivial  # no elements: nothing to mirror


def test_entangled_group_stays_one_group() -> None:
    hidden = Rep.skeleton_hidden("h36m", 2, 1) + Rep.trivial(2)  # 36 channels
    act = mv.reshape(Action.from_axes((2, 36), {1: hidden}), (2, 4, 9))
    assert not act.is_axiswise and act.axes() is None and act.axis(1) is None
    assert act.merged(1, 3, with_sign=True) == hidden


def test_split_rep_factors_a_kronecker_product() -> None:
    a, b = split_rep(H36M.kron(X), 17, 2)
    assert a.kron(b) == H36M.kron(X)
    assert split_rep(Rep.regular(6), 2, 3) is None


def test_constructor_rejects_bad_groups() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Action((3, 4), [(0, 2, Rep.trivial(12)), (1, 2, Rep.trivial(4))])
    with pytest.raises(ValueError, match="has 4 elements but its Rep has size 3"):
        Action((3, 4), [(1, 2, Rep.trivial(3))])
    with pytest.raises(ValueError, match="sign must be"):
        Action((3,), (), 0)
    with pytest.raises(ValueError, match="out of range"):
        Action.from_axes((3,), {2: Rep.trivial(3)})


def test_times_multiplies_signs() -> None:
    a = Action.from_axes((5, 17, 2), {1: H36M, 2: X})
    assert a.times(a) == a.unsigned()
    with pytest.raises(ValueError, match="permutes differently"):
        a.times(Action.trivial((5, 17, 2)))


# ----------------------------------------------------------------------------- movement
def _shapes_like(total: int, draw: st.DrawFn) -> tuple[int, ...]:
    factors = []
    rest = total
    for d in range(2, total + 1):
        while rest % d == 0:
            factors.append(d)
            rest //= d
    draw(st.randoms()).shuffle(factors)
    cut = sorted(draw(st.lists(st.integers(0, len(factors)), max_size=3)))
    bounds = [0, *cut, len(factors)]
    return tuple(math.prod(factors[a:b]) for a, b in zip(bounds, bounds[1:]))


@seeded
@given(actions(), st.data())
def test_reshape_matches_the_index_trick(action: Action, data: st.DataObject) -> None:
    shape = _shapes_like(math.prod(action.shape), data.draw)
    assert mv.reshape(action, shape) == reference(torch.reshape, action, shape)


@seeded
@given(actions(), st.data())
def test_permute_matches_the_index_trick(action: Action, data: st.DataObject) -> None:
    dims = data.draw(st.permutations(range(action.ndim)))
    try:
        got = mv.permute(action, dims)
    except mv.EntangledError:  # only when an untouched axis would land inside a group
        assert not action.is_axiswise
        return
    assert got == reference(torch.permute, action, dims)


@seeded
@given(actions(), st.data())
def test_index_matches_the_index_trick_or_refuses(action: Action, data: st.DataObject) -> None:
    axis = data.draw(st.integers(0, action.ndim - 1))
    size = action.shape[axis]
    positions = data.draw(st.lists(st.integers(0, size - 1), max_size=6))
    index = torch.tensor(positions, dtype=torch.long)
    try:
        expected = reference(torch.index_select, action, axis, index)
    except NotEquivariantError:
        with pytest.raises(NotEquivariantError, match="drops its mirror image|times"):
            mv.index(action, axis, positions)
        return
    assert mv.index(action, axis, positions) == expected


def test_index_names_the_dropped_twin() -> None:
    act = Action.from_axes((2, 17, 2), {1: H36M, 2: X})
    with pytest.raises(NotEquivariantError, match="keeps entry 1 of axis 1 but drops its mirror"
                                                  " image 4"):
        mv.index(act, 1, [0, 1, 2, 3])
    assert mv.index(act, 1, [0, 4, 1]).axis(1) == Rep([0, 2, 1])
    coords = mv.select(act, 2, 0)
    assert coords.sign == -1 and coords.axis(1) == H36M


@seeded
@given(st.lists(st.integers(1, 3), min_size=2, max_size=3), st.data())
def test_concat_matches_the_index_trick(sizes: list[int], data: st.DataObject) -> None:
    base = data.draw(actions(max_axes=3))
    axis = data.draw(st.integers(0, base.ndim - 1))
    parts, tensors = [], []
    for k, size in enumerate(sizes):
        shape = base.shape[:axis] + (size,) + base.shape[axis + 1:]
        own = data.draw(reps(min_size=size, max_size=size))
        rest = {a: g for a, g in (base.axes() or {}).items() if a != axis}
        parts.append(Action.from_axes(shape, {**rest, axis: own}, data.draw(
            st.sampled_from([1, -1]))))
        tensors.append(torch.zeros(shape, dtype=torch.float64))
    got = mv.concat(parts, axis)
    flat = forward_rep(torch.cat, [tensors, axis], [[p.flat() for p in parts], None])
    expected = Action.from_flat(torch.cat(tensors, axis).shape, flat)
    if base.is_axiswise:
        assert got == expected
    else:
        assert got is None or got == expected


def test_concat_of_pose_and_invariant_features() -> None:
    pose = Action.from_axes((4, 34), {1: H36M.kron(X)})
    onehot = Action.trivial((4, 5))
    got = mv.concat([pose, onehot], 1)
    assert got.axis(1, with_sign=True) == H36M.kron(X) + Rep.trivial(5)


@seeded
@given(actions(max_axes=3), st.data())
def test_expand_and_repeat_match_the_index_trick(action: Action, data: st.DataObject) -> None:
    lead = data.draw(st.integers(0, 2))
    shape = (3,) * lead + tuple(s if s != 1 or not data.draw(st.booleans()) else 2
                                for s in action.shape)
    assert mv.expand(action, shape) == reference(lambda x: x.expand(shape), action)
    counts = [data.draw(st.integers(1, 2)) for _ in range(action.ndim + lead)]
    got = mv.repeat(action, counts)
    expected = reference(lambda x: x.repeat(*counts), action)
    assert got == expected or (got is None and not action.is_axiswise)


@seeded
@given(actions(max_axes=3), st.data())
def test_zero_pad_matches_the_definition(action: Action, data: st.DataObject) -> None:
    pads = [data.draw(st.integers(0, 2)) for _ in range(2 * data.draw(st.integers(1, action.ndim)))]
    acting = {a for g in action.groups for a in range(g[0], g[1]) if g[1] - g[0] > 1}
    padded = {action.ndim - 1 - k for k in range(len(pads) // 2) if pads[2 * k] or pads[2 * k + 1]}
    if acting & padded:
        with pytest.raises(NotEquivariantError,
                           match="padding an axis that the mirror mixes with another has no rule"):
            mv.pad(action, pads)
        return
    out = mv.pad(action, pads)
    x = torch.randn(action.shape, dtype=torch.float64)
    torch.testing.assert_close(F.pad(action.apply(x), pads), out.apply(F.pad(x, pads)),
                               rtol=0, atol=0)


def test_nonzero_pad_next_to_negated_elements_is_refused() -> None:
    act = Action.from_axes((2, 3), {1: X + Rep.trivial(1)})
    with pytest.raises(NotEquivariantError, match="pad with zeros"):
        mv.pad(act, [0, 0, 1, 1], value=1.0)


def test_costs_do_not_grow_with_untouched_axes() -> None:
    """A published-size token grid: the action never materialises the batch or time axes."""
    act = Action.from_axes((64, 243, 17, 512), {2: H36M, 3: Rep.regular(512)})
    merged = mv.reshape(mv.permute(act, (0, 2, 1, 3)), (64 * 17, 243, 512))
    assert merged.axis(0) is not None and merged.axis(0).size == 64 * 17
    heads = mv.reshape(act, (64, 243, 17, 8, 64))
    assert heads.axis(4) == Rep.regular(64) and heads.axis(3) == Rep.trivial(8)
    flat = mv.reshape(act, (64, 243 * 17 * 512))
    assert flat.axis(1).size == 243 * 17 * 512
    assert mv.reshape(flat, act.shape) == act


def test_reshape_merging_untouched_and_acting_axes_round_trips() -> None:
    act = Action.from_axes((6, 4, 17), {2: H36M})
    assert mv.reshape(mv.reshape(act, (24, 17)), (6, 4, 17)) == act
    odd = mv.reshape(Action.from_axes((6, 4), {1: Rep.regular(4)}), (4, 6))
    assert odd == reference(torch.reshape, Action.from_axes((6, 4), {1: Rep.regular(4)}), (4, 6))


def test_permute_scattering_an_entangled_group() -> None:
    hidden = Rep.skeleton_hidden("h36m", 2, 1) + Rep.trivial(2)
    act = mv.reshape(Action.from_axes((1, 36), {1: hidden}), (1, 4, 9))
    dims = (1, 0, 2)  # a size-1 axis lands inside the group: harmless
    assert mv.permute(act, dims) == reference(torch.permute, act, dims)
    np.testing.assert_array_equal(mv.permute(mv.permute(act, dims), dims).flat().perm,
                                  act.flat().perm)
    batched = mv.reshape(Action.from_axes((3, 36), {1: hidden}), (3, 4, 9))
    with pytest.raises(mv.EntangledError, match=r"moves axes \[1, 2\].*apart, with untouched "
                                                r"axes \[0\] between them"):
        mv.permute(batched, dims)  # the group would grow by the batch axis


def test_flat_rep_and_action_agree_on_the_pose_layout() -> None:
    act = Action.from_axes((2, 9, 17, 2), {2: H36M, 3: X})
    assert act.flat() == flat_rep((2, 9, 17, 2), {2: H36M, 3: X})


def test_sequence_of_moves_on_a_video_pose() -> None:
    """(N, T, J, C) -> (N, J*C, T) as VideoPose3D does, and back."""
    act = Action.from_axes((2, 27, 17, 2), {2: H36M, 3: X})
    conv_in = mv.permute(mv.reshape(act, (2, 27, 34)), (0, 2, 1))
    assert conv_in.axis(1, with_sign=True) == H36M.kron(X)
    back = mv.reshape(mv.permute(conv_in, (0, 2, 1)), (2, 27, 17, 2))
    assert back == act


# ----------------------------------------------------------------------------- ops by target
def test_move_and_move_back_round_trip_bijective_ops() -> None:
    from einops import rearrange

    from symmetrize.movement_ops import move, move_back
    act = Action.from_axes((2, 9, 17, 2), {2: H36M, 3: X})
    shape = act.shape
    calls = [("view", (2, 9, 34)), ("permute", (0, 2, 1, 3)), ("transpose", (1, 2)),
             (rearrange, ("n t j c -> (n t) j c",))]
    for target, args in calls:
        values = (torch.empty(shape, device="meta"), *args)
        out_shape = tuple((getattr(values[0], target)(*args) if isinstance(target, str) else
                           target(values[0], *args)).shape)
        out = move(target, values, {}, [act, *([None] * len(args))], [out_shape])
        assert move_back(target, values, {}, shape, out) == act
        x = torch.randn(shape, dtype=torch.float64)
        run = (lambda t: getattr(t, target)(*args)) if isinstance(target, str) else \
            (lambda t: target(t, *args))
        torch.testing.assert_close(run(act.apply(x)), out.apply(run(x)), rtol=0, atol=0)
    assert move_back(torch.flip, (None, 0), {}, shape, act) is None  # not followed backwards


def test_einops_patterns_as_steps() -> None:
    from symmetrize.einops_pattern import plan
    steps = plan("(b f) n c -> (b n) f c", (6, 17, 8), {"f": 3})
    assert steps.elementary == (2, 3, 17, 8) and steps.order == (0, 2, 1, 3)
    assert steps.output == (34, 3, 8)
    grown = plan("() n d -> b n d", (1, 17, 8), {"b": 4}, "repeat")
    assert grown.inserted == ((0, 4),) and grown.output == (4, 17, 8)
    with pytest.raises(ValueError, match="drops axes"):
        plan("b n c -> b c", (2, 3, 4))
    with pytest.raises(ValueError, match="cannot be split"):
        plan("(b f) n -> b f n", (7, 3), {"f": 3})
