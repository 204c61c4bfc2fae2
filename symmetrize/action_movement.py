"""Data movement on :class:`~symmetrize.action.Action`\\ s: the mirror's action on the output of
reshape, permute, indexing, concatenation, broadcasting, tiling and padding, computed on the
acting axes only.

Each function takes the input action(s) and the op's arguments and returns the output action,
or raises :class:`NotEquivariantError` when the op keeps an element but drops its mirror image
(an asymmetric slice). The cost is the size of the acting groups, never that of the batch or the
sequence. Ops outside this set go through the flat index trick of
:mod:`symmetrize.flat_movement` (cost: the number of elements).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from symmetrize.action import Action, Group, kron_all
from symmetrize.movement_errors import NotEquivariantError
from symmetrize.rep import Rep

__all__ = ["EntangledError", "concat", "expand", "index", "pad", "permute", "repeat", "reshape",
           "select", "stack", "unsqueeze"]


class EntangledError(NotEquivariantError):
    """An op spreads axes the mirror mixes jointly over other axes (a hidden layout whose twins
    sit in different attention heads, permuted apart)."""



# ----------------------------------------------------------------------------- reshape
def reshape(action: Action, shape: Sequence[int]) -> Action:
    """The action on ``x.reshape(shape)`` (the row-major element order is unchanged).

    Groups are carried over where the new axes keep their boundaries; where a new axis merges
    an untouched axis with an acting one, or a group's boundary falls inside a new axis, the
    merged axes form one group (the Kronecker product of the pieces).
    """
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != math.prod(action.shape):
        raise ValueError(f"cannot reshape {action.shape} to {shape}")
    if shape == action.shape or math.prod(shape) == 0 or not action.groups:
        return Action(shape, (), action.sign) if shape != action.shape else action
    segments = _segments(action)
    cuts = _suffix_products(shape)
    ranges: list[list[int]] = []
    for seg in segments:
        if seg.rep is not None:
            ranges.append(_covering(cuts, seg.lo, seg.hi))
    ranges = _settle(ranges, segments, cuts)
    groups: list[Group] = []
    for first, stop in ranges:
        lo, hi = cuts[stop], cuts[first]
        pieces = []
        for seg in segments:
            top, bottom = min(seg.hi, hi), max(seg.lo, lo)
            if top <= bottom:
                continue
            if seg.rep is not None:
                pieces.append(seg.rep)
            else:
                pieces.append(Rep.trivial(top // bottom))
        groups.append((first, stop, kron_all(pieces)))
    return Action(shape, groups, action.sign)


class _Segment:
    """A run of the flat index: one group, or untouched axes, with its suffix-product span."""

    __slots__ = ("hi", "lo", "rep")

    def __init__(self, lo: int, hi: int, rep: Rep | None) -> None:
        self.lo, self.hi, self.rep = lo, hi, rep


def _segments(action: Action) -> list[_Segment]:
    shape = action.shape
    suffix = _suffix_products(shape)
    out: list[_Segment] = []
    axis = 0
    for first, stop, rep in action.groups:
        if first > axis:
            out.append(_Segment(suffix[first], suffix[axis], None))
        out.append(_Segment(suffix[stop], suffix[first], rep))
        axis = stop
    if axis < len(shape):
        out.append(_Segment(suffix[len(shape)], suffix[axis], None))
    return out


def _suffix_products(shape: Sequence[int]) -> list[int]:
    out = [1] * (len(shape) + 1)
    for k in range(len(shape) - 1, -1, -1):
        out[k] = out[k + 1] * shape[k]
    return out


def _covering(cuts: list[int], lo: int, hi: int) -> list[int]:
    """The fewest new axes ``[first, stop)`` whose span contains ``(lo, hi]``."""
    first = max(k for k, q in enumerate(cuts) if q >= hi)
    stop = min(k for k, q in enumerate(cuts) if q <= lo)
    return [first, stop]


def _settle(ranges: list[list[int]], segments: list[_Segment], cuts: list[int]) -> list[tuple[int, int]]:
    """Grow and merge ranges until each boundary falls where an untouched run may be cut."""
    changed = True
    while changed:
        changed = False
        ranges.sort()
        merged: list[list[int]] = []
        for r in ranges:
            if merged and r[0] < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], r[1])
                changed = True
            else:
                merged.append(list(r))
        ranges = merged
        for r in ranges:
            for q in (cuts[r[0]], cuts[r[1]]):
                seg = next((s for s in segments if s.lo < q < s.hi), None)
                if seg is None:
                    continue
                if seg.rep is None and q % seg.lo == 0 and seg.hi % q == 0:
                    continue
                grown = _covering(cuts, min(seg.lo, cuts[r[1]]), max(seg.hi, cuts[r[0]]))
                if grown != r:
                    r[0], r[1] = grown
                    changed = True
    return [(r[0], r[1]) for r in ranges]


# ----------------------------------------------------------------------------- permute
def permute(action: Action, dims: Sequence[int]) -> Action:
    """The action on ``x.permute(dims)``."""
    ndim = action.ndim
    dims = [int(d) % ndim if ndim else 0 for d in dims]
    if sorted(dims) != list(range(ndim)):
        raise ValueError(f"permute dims {list(dims)} are not a permutation of {ndim} axes")
    position = {old: new for new, old in enumerate(dims)}
    shape = tuple(action.shape[d] for d in dims)
    groups: list[Group] = []
    broken: list[Group] = []
    for first, stop, rep in action.groups:
        new = [position[a] for a in range(first, stop)]
        if new == list(range(new[0], new[0] + len(new))):
            groups.append((new[0], new[-1] + 1, rep))
        else:
            broken.append((first, stop, rep))
    if broken:
        groups = _regroup(action, dims, position, groups, broken)
    return Action(shape, groups, action.sign)


def _regroup(action: Action, dims: list[int], position: dict[int, int], groups: list[Group],
             broken: list[Group]) -> list[Group]:
    """Groups whose axes a permutation scatters or reorders: one group over the new span,
    computed on an index encoding of the axes involved (cost: the span's size)."""
    span = [min(position[a] for g in broken for a in range(g[0], g[1])),
            max(position[a] for g in broken for a in range(g[0], g[1])) + 1]
    while True:
        inside = [g for g in groups if g[0] < span[1] and g[1] > span[0]]
        lo = min([span[0], *(g[0] for g in inside)])
        hi = max([span[1], *(g[1] for g in inside)])
        if [lo, hi] == span:
            break
        span = [lo, hi]
    kept = [g for g in groups if g[1] <= span[0] or g[0] >= span[1]]
    old_axes = sorted(dims[p] for p in range(span[0], span[1]))
    untouched = [a for a in old_axes if action.group_of(a) is None and action.shape[a] > 1]
    if untouched:
        first, stop, _ = broken[0]
        raise EntangledError(
            f"the permute moves axes {list(range(first, stop))}, which the mirror mixes (one "
            f"Rep over them jointly), apart, with untouched axes {untouched} between them: "
            "keep the channels' mirror twins within one axis (hidden='regular' or 'auto' lays "
            "hidden channels out in adjacent pairs, which splitting into heads keeps together)")
    sizes = [action.shape[a] for a in old_axes]
    parts = []
    for a in old_axes:
        group = action.group_of(a)
        if group is None:
            parts.append(Rep.trivial(action.shape[a]))
        elif group[0] == a:
            parts.append(group[2])
    flat = kron_all(parts)
    codes = np.arange(flat.size, dtype=np.int64).reshape(sizes)
    order = [old_axes.index(dims[p]) for p in range(span[0], span[1])]
    moved = codes.transpose(order).reshape(-1)  # new flat index -> old flat index
    inverse = np.empty_like(moved)
    inverse[moved] = np.arange(moved.size)
    rep = Rep._trusted(inverse[flat.perm[moved]], flat.sign[moved])
    return [*kept, (span[0], span[1], rep)]


def unsqueeze(action: Action, axis: int) -> Action:
    """The action on ``x.unsqueeze(axis)``."""
    ndim = action.ndim + 1
    axis = axis % ndim
    shape = (*action.shape[:axis], 1, *action.shape[axis:])
    return reshape(action, shape)


# ----------------------------------------------------------------------------- indexing
def index(action: Action, axis: int, positions: Sequence[int] | np.ndarray,
          what: str = "the op") -> Action:
    """The action on ``x.index_select(axis, positions)`` (slices, chunks, gathers along one
    axis; positions may repeat).

    Raises:
        NotEquivariantError: an element is kept (``count`` times) but its mirror image is not
            (or a different number of times).
    """
    axis = axis % action.ndim
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    size = action.shape[axis]
    if pos.size and (pos.min() < -size or pos.max() >= size):
        raise ValueError(f"positions {pos.tolist()} out of range for axis {axis} of size {size}")
    pos = pos % size if size else pos
    shape = (*action.shape[:axis], int(pos.size), *action.shape[axis + 1:])
    group = action.group_of(axis)
    groups = [g for g in action.groups if g is not group]
    if group is None:
        return Action(shape, groups, action.sign)
    first, stop, rep = group
    if stop - first == 1:
        groups.append((first, stop, _restrict(rep, pos, what, f"axis {axis}")))
        return Action(shape, groups, action.sign)
    sizes = list(action.shape[first:stop])
    codes = np.arange(rep.size, dtype=np.int64).reshape(sizes)
    kept = np.take(codes, pos, axis=axis - first).reshape(-1)
    groups.append((first, stop, _restrict(rep, kept, what, f"axes {first}..{stop - 1}")))
    return Action(shape, groups, action.sign)


def _restrict(rep: Rep, kept: np.ndarray, what: str, where: str) -> Rep:
    """The Rep of ``x[kept]`` for ``x`` transforming with ``rep`` (``kept`` may repeat)."""
    n = kept.size
    order = np.argsort(kept, kind="stable")
    sorted_src = kept[order]
    counts = np.bincount(kept, minlength=rep.size)
    first_of = np.cumsum(counts) - counts
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first_of[sorted_src]
    twin = rep.perm[kept]
    bad = np.flatnonzero(counts[twin] != counts[kept])
    if bad.size:
        i = int(bad[0])
        src, dst = int(kept[i]), int(twin[i])
        raise NotEquivariantError(
            f"{what} is not equivariant: it keeps entry {src} of {where} but "
            + (f"drops its mirror image {dst}" if counts[dst] == 0 else
               f"keeps it {counts[src]} times and its mirror image {dst} {counts[dst]} times")
            + " (slice or select symmetrically, keeping both twins)")
    perm = order[first_of[twin] + rank]
    return Rep._trusted(perm, rep.sign[kept])


def select(action: Action, axis: int, position: int, what: str = "the op") -> Action:
    """The action on ``x.select(axis, position)`` (an integer index)."""
    axis = axis % action.ndim
    picked = index(action, axis, [position], what)
    return reshape(picked, action.shape[:axis] + action.shape[axis + 1:])


# ----------------------------------------------------------------------------- concat
def concat(actions: Sequence[Action], axis: int) -> Action | None:
    """The action on ``torch.cat(tensors, axis)``; ``None`` when the inputs act differently on
    the other axes or mix ``axis`` with another (use the flat index trick then)."""
    ndim = actions[0].ndim
    axis = axis % ndim
    pieces: list[Rep] = []
    rest: Action | None = None
    for act in actions:
        own = act.axis(axis, with_sign=True)
        if own is None:
            return None
        others = Action(act.shape[:axis] + (1,) + act.shape[axis + 1:],
                        [g for g in act.groups if not g[0] <= axis < g[1]])
        if rest is None:
            rest = others
        elif others != rest:
            return None
        pieces.append(own)
    assert rest is not None
    joined = Rep.concat(pieces)
    shape = rest.shape[:axis] + (joined.size,) + rest.shape[axis + 1:]
    return Action(shape, [*rest.groups, (axis, axis + 1, joined)])


def stack(actions: Sequence[Action], axis: int) -> Action | None:
    """The action on ``torch.stack(tensors, axis)``."""
    axis = axis % (actions[0].ndim + 1)
    return concat([unsqueeze(a, axis) for a in actions], axis)


# ----------------------------------------------------------------------------- broadcast
def expand(action: Action, shape: Sequence[int]) -> Action:
    """The action on ``x.expand(shape)`` / broadcasting: new leading axes and size-1 axes
    (never acting) become untouched axes of the new size."""
    shape = tuple(int(s) for s in shape)
    lead = len(shape) - action.ndim
    if lead < 0:
        raise ValueError(f"cannot expand {action.shape} to {shape}")
    for k, size in enumerate(action.shape):
        if size != shape[k + lead] and size != 1:
            raise ValueError(f"cannot expand {action.shape} to {shape}")
    return Action(shape, [(f + lead, s + lead, rep) for f, s, rep in action.groups], action.sign)


def repeat(action: Action, repeats: Sequence[int]) -> Action | None:
    """The action on ``x.repeat(*repeats)`` (tiling); ``None`` when a tiled axis shares a group
    with another."""
    repeats = [int(r) for r in repeats]
    lead = len(repeats) - action.ndim
    if lead < 0:
        raise ValueError(f"repeat needs at least {action.ndim} sizes, got {repeats}")
    shape = tuple(repeats[:lead]) + tuple(s * r for s, r in zip(action.shape, repeats[lead:]))
    groups: list[Group] = []
    for first, stop, rep in action.groups:
        counts = repeats[lead + first: lead + stop]
        if all(c == 1 for c in counts):
            groups.append((first + lead, stop + lead, rep))
        elif stop - first == 1:
            groups.append((first + lead, stop + lead, Rep.trivial(counts[0]).kron(rep)))
        else:
            return None
    return Action(shape, groups, action.sign)


def pad(action: Action, pads: Sequence[int], value: float = 0.0) -> Action:
    """The action on ``F.pad(x, pads, value=value)`` (constant mode). Along an acting axis the
    padded entries stay in place with sign ``+1``; a non-zero value is refused where the
    mirror negates the elements around it.

    Raises:
        NotEquivariantError: a non-zero constant where the mirror flips signs.
    """
    pads = [int(p) for p in pads]
    if len(pads) % 2 or len(pads) // 2 > action.ndim:
        raise ValueError(f"pad sizes {pads} do not fit a tensor with {action.ndim} axes")
    shape = list(action.shape)
    widths = {}
    for k in range(len(pads) // 2):
        axis = action.ndim - 1 - k
        widths[axis] = (pads[2 * k], pads[2 * k + 1])
        shape[axis] += pads[2 * k] + pads[2 * k + 1]
    if value != 0 and action.has_signs and any(w != (0, 0) for w in widths.values()):
        raise NotEquivariantError(
            f"padding with the constant {value!r} is not equivariant: the mirror flips the sign "
            "of the elements it is written next to (pad with zeros)")
    groups: list[Group] = []
    for first, stop, rep in action.groups:
        touched = [a for a in range(first, stop) if widths.get(a, (0, 0)) != (0, 0)]
        if not touched:
            groups.append((first, stop, rep))
            continue
        if stop - first != 1:
            raise NotEquivariantError("padding an axis that the mirror mixes with another has "
                                      "no rule")
        left, right = widths[first]
        n = rep.size
        perm = np.concatenate([np.arange(left), rep.perm + left, np.arange(right) + left + n])
        sign = np.concatenate([np.ones(left, np.int64), rep.sign, np.ones(right, np.int64)])
        groups.append((first, stop, Rep._trusted(perm, sign)))
    return Action(tuple(shape), groups, action.sign)
