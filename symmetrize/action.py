"""How the mirror acts on a whole tensor, held per axis: :class:`Action`.

A tensor's mirror is a signed permutation of its elements. In a pose network it nearly always
acts axis by axis: a joints axis is permuted, a coordinates axis has signs, a channel axis has a
hidden :class:`~symmetrize.rep.Rep`, and batch, time, head and person axes are left alone. An
:class:`Action` stores exactly that: a :class:`~symmetrize.rep.Rep` for each *group* of axes the
mirror acts on (one axis, or several consecutive axes that it mixes, such as a skeleton layout
split into attention heads), nothing for the untouched axes, and one global sign. Its cost is the
size of the acting axes, never that of the batch or the sequence.

The flat Rep over all elements (row-major) is the Kronecker product of the groups (identity on
untouched axes) times the global sign; :meth:`Action.flat` builds it, :meth:`Action.from_flat`
reads an action back from one.

Canonical form (so that equal actions compare equal): groups are as fine as the mirror allows
(a group is split wherever its Rep factors at an axis boundary), a group whose Rep is the identity
is dropped, each group's Rep has sign ``+1`` at index 0 (a ``-1`` there moves into the global
sign), and an empty tensor has no action.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from symmetrize.rep import Rep

__all__ = ["Action", "Group", "kron_all", "periodic_block", "split_rep"]

Group = tuple[int, int, Rep]
"""``(first axis, stop axis, Rep over the product of the sizes of axes first..stop-1)``."""


class Action:
    """The mirror's action on a tensor of ``shape``: Reps on groups of axes and a global sign.

    Build one with :meth:`from_axes` (per-axis Reps), :meth:`trivial` or :meth:`from_flat`;
    the constructor canonicalises whatever groups it is given.

    Args:
        shape: the tensor's shape.
        groups: ``(first, stop, rep)`` triples over disjoint ranges of axes, ``rep`` over
            ``prod(shape[first:stop])`` elements in row-major order.
        sign: the global sign, ``+1`` or ``-1``.

    Raises:
        ValueError: overlapping or out-of-range groups, a Rep of the wrong size, a bad sign.
    """

    __slots__ = ("_groups", "_hash", "_shape", "_sign")

    def __init__(self, shape: Sequence[int], groups: Iterable[Group] = (), sign: int = 1) -> None:
        self._shape = _as_shape(shape)
        if sign not in (1, -1):
            raise ValueError(f"an Action's sign must be +1 or -1, got {sign!r}")
        checked = sorted(_check_group(self._shape, g) for g in groups)
        for (_, stop, _), (first, _, _) in zip(checked, checked[1:]):
            if first < stop:
                raise ValueError(f"groups of an Action over {self._shape} overlap: {checked}")
        if math.prod(self._shape) == 0:
            checked, sign = [], 1
        canonical: list[Group] = []
        for first, stop, rep in checked:
            sign *= _canonical_groups(self._shape, first, stop, rep, canonical)
        self._groups: tuple[Group, ...] = tuple(canonical)
        self._sign = int(sign)
        self._hash: int | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def trivial(cls, shape: Sequence[int]) -> Action:
        """A tensor the mirror leaves unchanged."""
        return cls(shape)

    @classmethod
    def from_axes(cls, shape: Sequence[int], axes: Mapping[int, Rep], sign: int = 1) -> Action:
        """Axis ``a`` transforms with ``axes[a]`` (negative keys count from the end), the others
        are untouched."""
        shape = _as_shape(shape)
        groups = []
        seen: set[int] = set()
        for key, rep in axes.items():
            axis = _norm_axis(key, len(shape))
            if axis in seen:
                raise ValueError(f"axis {key} of shape {shape} is given twice")
            seen.add(axis)
            groups.append((axis, axis + 1, rep))
        return cls(shape, groups, sign)

    @classmethod
    def from_flat(cls, shape: Sequence[int], flat: Rep) -> Action:
        """The action whose :meth:`flat` Rep is ``flat`` (cost: the number of elements)."""
        shape = _as_shape(shape)
        if flat.size != math.prod(shape):
            raise ValueError(f"a flat Rep of size {flat.size} does not fit shape {shape}")
        if not shape:
            return cls(shape, (), int(flat.sign[0]) if flat.size else 1)
        return cls(shape, [(0, len(shape), flat)])

    # ------------------------------------------------------------------ reading
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def groups(self) -> tuple[Group, ...]:
        """The acting groups, sorted, canonical (see the module docstring)."""
        return self._groups

    @property
    def sign(self) -> int:
        """The global sign (``-1``: the mirror also negates the whole tensor)."""
        return self._sign

    @property
    def is_trivial(self) -> bool:
        """The mirror leaves the tensor unchanged."""
        return not self._groups and self._sign == 1

    @property
    def has_signs(self) -> bool:
        """Some element flips sign under the mirror (up to the permutation)."""
        return self._sign < 0 or any(rep.n_negated for _, _, rep in self._groups)

    @property
    def moves(self) -> bool:
        """The mirror moves some elements (a non-identity permutation)."""
        return any(rep.n_pairs for _, _, rep in self._groups)

    @property
    def is_axiswise(self) -> bool:
        """Every group is a single axis (the mirror never mixes two axes)."""
        return all(stop - first == 1 for first, stop, _ in self._groups)

    def group_of(self, axis: int) -> Group | None:
        """The group holding ``axis``, or ``None`` when the axis is untouched."""
        axis = _norm_axis(axis, self.ndim)
        return next((g for g in self._groups if g[0] <= axis < g[1]), None)

    def acting_axes(self) -> list[int]:
        """Every axis inside a group, in order."""
        return [a for first, stop, _ in self._groups for a in range(first, stop)]

    def axes(self, sign_on: int = -1) -> dict[int, Rep] | None:
        """A Rep for every axis (the identity for untouched ones), the global sign folded into
        axis ``sign_on``; ``None`` when a group spans several axes."""
        if not self.is_axiswise:
            return None
        out = {a: Rep.trivial(s) for a, s in enumerate(self._shape)}
        for first, _, rep in self._groups:
            out[first] = rep
        if self._sign < 0 and self._shape:
            axis = _norm_axis(sign_on, self.ndim)
            out[axis] = _negate(out[axis])
        return out

    def axis(self, axis: int, with_sign: bool = False) -> Rep | None:
        """The Rep of one axis (identity when untouched); ``None`` when the axis shares a group
        with another. ``with_sign`` folds the global sign into it."""
        axis = _norm_axis(axis, self.ndim)
        group = self.group_of(axis)
        if group is not None and group[1] - group[0] != 1:
            return None
        rep = group[2] if group is not None else Rep.trivial(self._shape[axis])
        return _negate(rep) if with_sign and self._sign < 0 else rep

    def merged(self, first: int, stop: int, with_sign: bool = False) -> Rep | None:
        """The Rep of axes ``first..stop-1`` flattened into one (Kronecker product); ``None``
        when a group reaches across ``first`` or ``stop``."""
        first, stop = _norm_range(first, stop, self.ndim)
        parts = []
        axis = first
        for g_first, g_stop, rep in self._groups:
            if g_stop <= first or g_first >= stop:
                continue
            if g_first < first or g_stop > stop:
                return None
            if g_first > axis:
                parts.append(Rep.trivial(math.prod(self._shape[axis:g_first])))
            parts.append(rep)
            axis = g_stop
        parts.append(Rep.trivial(math.prod(self._shape[axis:stop])))
        rep = kron_all(parts)
        return _negate(rep) if with_sign and self._sign < 0 else rep

    def others_trivial(self, axis: int) -> bool:
        """No group but the one of ``axis`` (signs aside)."""
        axis = _norm_axis(axis, self.ndim)
        return all(first <= axis < stop for first, stop, _ in self._groups)

    # ------------------------------------------------------------------ algebra
    def with_sign(self, sign: int) -> Action:
        """The same permutation with global sign multiplied by ``sign``."""
        return self if sign == 1 else Action(self._shape, self._groups, -self._sign)

    def unsigned(self) -> Action:
        """The same permutation, no sign anywhere (a gate, a BatchNorm scale)."""
        return Action(self._shape, [(f, s, rep.unsigned()) for f, s, rep in self._groups])

    def same_permutation(self, other: Action) -> bool:
        """Whether ``self`` and ``other`` move elements alike (signs aside)."""
        return self.unsigned() == other.unsigned()

    def times(self, other: Action) -> Action:
        """The action on an element-wise product: one permutation, the signs multiplied.

        Raises:
            ValueError: the two actions permute differently or their shapes differ.
        """
        if self._shape != other._shape or not self.same_permutation(other):
            raise ValueError("a product of two tensors that the mirror permutes differently")
        cover = _cover(self._groups, other._groups)
        groups = []
        for first, stop in cover:
            a, b = self.merged(first, stop), other.merged(first, stop)
            assert a is not None and b is not None
            groups.append((first, stop, Rep._trusted(a.perm, a.sign * b.sign)))
        return Action(self._shape, groups, self._sign * other._sign)

    def flat(self) -> Rep:
        """The Rep over all elements, row-major (cost: the number of elements)."""
        rep = self.merged(0, self.ndim) if self.ndim else Rep.trivial(1)
        assert rep is not None
        return _negate(rep) if self._sign < 0 else rep

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Mirror a concrete tensor of this shape."""
        if tuple(x.shape) != self._shape:
            raise ValueError(f"an Action over {self._shape} cannot act on a tensor of shape "
                             f"{tuple(x.shape)}")
        for first, stop, rep in self._groups:
            shape = x.shape
            merged = x.reshape(*shape[:first], -1, *shape[stop:])
            x = rep.apply(merged, first).reshape(shape)
        return -x if self._sign < 0 else x

    # ------------------------------------------------------------------ identity
    def _key(self) -> tuple[Any, ...]:
        return (self._shape, self._sign, tuple((f, s, rep) for f, s, rep in self._groups))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Action):
            return NotImplemented
        return self is other or self._key() == other._key()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def __repr__(self) -> str:
        parts = []
        for first, stop, rep in self._groups:
            axes = str(first) if stop - first == 1 else f"{first}..{stop - 1}"
            parts.append(f"axes {axes}: {rep}" if stop - first > 1 else f"axis {axes}: {rep}")
        sign = ", negated" if self._sign < 0 else ""
        body = "; ".join(parts) if parts else "untouched"
        return f"Action({self._shape}: {body}{sign})"


# ----------------------------------------------------------------------------- helpers
def kron_all(reps: Sequence[Rep]) -> Rep:
    """Kronecker product of Reps, the first outermost (``Rep.trivial(1)`` for none)."""
    perm = np.zeros(1, dtype=np.int64)
    sign = np.ones(1, dtype=np.int64)
    for rep in reps:
        size = rep.size
        perm = (perm[:, None] * size + rep.perm[None, :]).reshape(-1)
        sign = (sign[:, None] * rep.sign[None, :]).reshape(-1)
    return Rep._trusted(perm, sign)


def split_rep(rep: Rep, outer: int, inner: int) -> tuple[Rep, Rep] | None:
    """``(A, B)`` with ``rep == A.kron(B)``, ``A`` over ``outer`` and ``B`` over ``inner``
    entries, both with sign ``+1`` at index 0 except for a global ``-1`` kept on ``A``; ``None``
    when ``rep`` does not factor so."""
    if outer * inner != rep.size:
        raise ValueError(f"cannot split a Rep of size {rep.size} into {outer} x {inner}")
    if rep.size == 0:
        return Rep.trivial(outer), Rep.trivial(inner)
    perm, sign = rep.perm, rep.sign
    # the lines through element 0: along the outer axis (stride inner) and the inner axis
    outer_line = np.arange(outer, dtype=np.int64) * inner
    inner_line = np.arange(inner, dtype=np.int64)
    a_perm = perm[outer_line] // inner
    b_perm = perm[inner_line] % inner
    if (perm[outer_line] % inner != perm[0] % inner).any() or \
            (perm[inner_line] // inner != perm[0] // inner).any():
        return None
    ref = int(sign[0])
    a_sign = sign[outer_line] * ref
    b_sign = sign[inner_line] * ref
    try:
        a, b = Rep(a_perm, a_sign * ref), Rep(b_perm, b_sign)
    except ValueError:
        return None
    if not (np.array_equal((a_perm[:, None] * inner + b_perm[None, :]).reshape(-1), perm)
            and np.array_equal((a.sign[:, None] * b_sign[None, :]).reshape(-1), sign)):
        return None
    return a, b


def periodic_block(rep: Rep) -> Rep:
    """The smallest ``inner`` with ``rep == Rep.trivial(k).kron(inner)``: one block of a batch
    axis that folds joints in (``(b n)``), whose blocks the mirror treats alike and apart
    (``rep`` itself when it has no such period)."""
    n = rep.size
    for block in range(1, n):
        if n % block or (rep.perm[:block] >= block).any():
            continue
        inner = Rep._trusted(rep.perm[:block], rep.sign[:block])
        if Rep.trivial(n // block).kron(inner) == rep:
            return inner
    return rep


def _canonical_groups(shape: tuple[int, ...], first: int, stop: int, rep: Rep,
                      out: list[Group]) -> int:
    """Append the canonical groups of one group to ``out``; return the sign it moves out."""
    if stop - first > 1:
        for cut in range(first + 1, stop):
            parts = split_rep(rep, math.prod(shape[first:cut]), math.prod(shape[cut:stop]))
            if parts is not None:
                sign = _canonical_groups(shape, first, cut, parts[0], out)
                return sign * _canonical_groups(shape, cut, stop, parts[1], out)
    sign = 1
    if rep.size and rep.sign[0] < 0:
        rep, sign = _negate(rep), -1
    if rep.n_pairs or rep.n_negated:
        out.append((first, stop, rep))
    return sign


def _negate(rep: Rep) -> Rep:
    return Rep._trusted(rep.perm, -rep.sign)


def _cover(a: Sequence[Group], b: Sequence[Group]) -> list[tuple[int, int]]:
    """The coarsest ranges that contain every group of ``a`` and ``b`` whole."""
    ranges = sorted([(f, s) for f, s, _ in a] + [(f, s) for f, s, _ in b])
    merged: list[list[int]] = []
    for first, stop in ranges:
        if merged and first < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([first, stop])
    return [(f, s) for f, s in merged]


def _check_group(shape: tuple[int, ...], group: Any) -> Group:
    try:
        first, stop, rep = group
    except (TypeError, ValueError):
        raise ValueError(f"an Action group is (first, stop, Rep), got {group!r}") from None
    if not isinstance(rep, Rep):
        raise TypeError(f"an Action group needs a Rep, got {type(rep).__name__}")
    if not (isinstance(first, (int, np.integer)) and isinstance(stop, (int, np.integer))
            and 0 <= first < stop <= len(shape)):
        raise ValueError(f"group axes {first}..{stop} out of range for shape {shape}")
    size = math.prod(shape[first:stop])
    if rep.size != size:
        raise ValueError(f"group over axes {first}..{stop - 1} of shape {shape} has "
                         f"{size} elements but its Rep has size {rep.size}")
    return int(first), int(stop), rep


def _as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"a shape is a sequence of non-negative integers, got {shape!r}") \
            from None
    if any(s < 0 for s in out):
        raise ValueError(f"shape {out} has a negative size")
    return out


def _norm_axis(axis: int, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or \
            not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis!r} is out of range for a tensor with {ndim} axes")
    return int(axis) % ndim


def _norm_range(first: int, stop: int, ndim: int) -> tuple[int, int]:
    first = first + ndim if first < 0 else first
    stop = stop + ndim if stop < 0 else stop
    if not 0 <= first <= stop <= ndim:
        raise ValueError(f"axes {first}..{stop} out of range for a tensor with {ndim} axes")
    return first, stop
