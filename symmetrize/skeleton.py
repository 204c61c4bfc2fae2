"""Joint layouts with left/right mirror pairs.

A :class:`Skeleton` names the joints of a pose format and records which joints
swap under a left/right mirror.  Pairs can be given explicitly or inferred from
the joint names (``left_hip``/``right_hip``, ``LeftUpLeg``/``RightUpLeg``,
``hip.L``/``hip.R``, ``lhip``/``rhip``, ...).  Common formats are available via
:meth:`Skeleton.preset`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symmetrize.joint_names import infer_pairs, tokenize_name
from symmetrize.skeleton_presets import PRESETS

__all__ = ["Skeleton", "infer_pairs", "tokenize_name"]

def _as_index(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None


def _as_index_pair(value: Any, what: str) -> tuple[int, int]:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair of two joint indices, got {value!r}") from None
    return _as_index(a, what), _as_index(b, what)


class Skeleton:
    """Named joints plus their left/right mirror pairs and (optional) bones.

    Parameters
    ----------
    names: unique, non-empty joint names; ``len(skeleton)`` is their count.
    pairs: ``(left, right)`` index pairs; inferred from ``names`` when ``None``.
    parents: parent index per joint (``-1`` for a root), optional.
    edges: ``(a, b)`` bones; defaults to ``(parent, child)`` when ``parents`` is given.
    name: optional label (the preset name for presets).
    """

    def __init__(
        self,
        names: Sequence[str],
        pairs: Sequence[tuple[int, int]] | None = None,
        parents: Sequence[int] | None = None,
        edges: Sequence[tuple[int, int]] | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(names, str):
            raise TypeError("names must be a sequence of joint names, not a single string")
        names_t = tuple(names)
        if not names_t:
            raise ValueError("a skeleton needs at least one joint name")
        seen: dict[str, int] = {}
        for i, n in enumerate(names_t):
            if not isinstance(n, str) or not n:
                raise ValueError(f"joint {i}: names must be non-empty strings, got {n!r}")
            if n in seen:
                raise ValueError(
                    f"duplicate joint name {n!r} at indices {seen[n]} and {i}; joint names must be unique"
                )
            seen[n] = i
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {name!r}")
        n_joints = len(names_t)
        self._names = names_t
        self._name = name
        self._index = seen

        pairs_t = infer_pairs(names_t) if pairs is None else self._check_pairs(pairs)
        self._pairs = pairs_t
        mirror = np.arange(n_joints, dtype=np.int64)
        for left, right in pairs_t:
            mirror[left] = right
            mirror[right] = left
        mirror.setflags(write=False)
        self._mirror = mirror
        self._left = tuple(p[0] for p in pairs_t)
        self._right = tuple(p[1] for p in pairs_t)
        self._centre = tuple(i for i in range(n_joints) if mirror[i] == i)

        self._parents = None if parents is None else self._check_parents(parents)
        if edges is None:
            if self._parents is None:
                edges_t: tuple[tuple[int, int], ...] = ()
            else:
                edges_t = tuple((p, c) for c, p in enumerate(self._parents) if p >= 0)
        else:
            edges_t = self._check_edges(edges)
        self._edges = edges_t

    # -- validation -----------------------------------------------------------------
    def _range_text(self) -> str:
        return f"valid joint indices are 0..{len(self._names) - 1} ({len(self._names)} joints)"

    def _describe(self, i: int) -> str:
        return f"{i} ({self._names[i]!r})"

    def _check_pairs(self, pairs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
        n = len(self._names)
        owner: dict[int, tuple[int, int]] = {}
        out: list[tuple[int, int]] = []
        for raw in pairs:
            pair = _as_index_pair(raw, "each entry of pairs")
            for j in pair:
                if not 0 <= j < n:
                    raise ValueError(
                        f"pair {pair} has index {j} out of range: {self._range_text()}; fix the pair"
                    )
            left, right = pair
            if left == right:
                raise ValueError(
                    f"pair {pair} pairs joint {self._describe(left)} with itself; centre joints "
                    f"must simply be left out of pairs"
                )
            for j in pair:
                if j in owner:
                    raise ValueError(
                        f"joint {self._describe(j)} appears in two pairs, {owner[j]} and {pair}; "
                        f"each joint has at most one mirror twin, so remove one of these pairs"
                    )
                owner[j] = pair
            out.append(pair)
        return tuple(sorted(out))

    def _check_parents(self, parents: Sequence[int]) -> tuple[int, ...]:
        n = len(self._names)
        par = tuple(_as_index(p, "each parent") for p in parents)
        if len(par) != n:
            raise ValueError(f"parents has {len(par)} entries but the skeleton has {n} joints; give one per joint")
        for c, p in enumerate(par):
            if not -1 <= p < n:
                raise ValueError(
                    f"parent of joint {self._describe(c)} is {p}, out of range: use -1 for a root or "
                    f"a joint index, {self._range_text()}"
                )
            if p == c:
                raise ValueError(f"joint {self._describe(c)} is its own parent; use -1 for a root")
        state = [0] * n  # 0 unknown, 1 on current path, 2 reaches a root
        for start in range(n):
            path: list[int] = []
            j = start
            while j >= 0 and state[j] == 0:
                state[j] = 1
                path.append(j)
                j = par[j]
            if j >= 0 and state[j] == 1:
                cycle = path[path.index(j):]
                raise ValueError(
                    f"parents contain a cycle through joints {cycle}; every joint must lead to a "
                    f"root (parent -1)"
                )
            for k in path:
                state[k] = 2
        return par

    def _check_edges(self, edges: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
        n = len(self._names)
        out: list[tuple[int, int]] = []
        seen: dict[frozenset[int], tuple[int, int]] = {}
        for raw in edges:
            edge = _as_index_pair(raw, "each edge")
            for j in edge:
                if not 0 <= j < n:
                    raise ValueError(f"edge {edge} has index {j} out of range: {self._range_text()}")
            if edge[0] == edge[1]:
                raise ValueError(f"edge {edge} connects joint {self._describe(edge[0])} to itself")
            key = frozenset(edge)
            if key in seen:
                raise ValueError(f"edge {edge} duplicates edge {seen[key]}; list each bone once")
            seen[key] = edge
            out.append(edge)
        return tuple(out)

    # -- read-only views --------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Joint names."""
        return self._names

    @property
    def name(self) -> str | None:
        """Label of the skeleton (preset name for presets)."""
        return self._name

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """``(left, right)`` mirror pairs sorted by left index."""
        return self._pairs

    @property
    def left(self) -> tuple[int, ...]:
        """Left joint of each pair, in pair order."""
        return self._left

    @property
    def right(self) -> tuple[int, ...]:
        """Right joint of each pair, in pair order."""
        return self._right

    @property
    def centre(self) -> tuple[int, ...]:
        """Joints that map to themselves under the mirror."""
        return self._centre

    @property
    def mirror(self) -> np.ndarray:
        """Read-only int64 permutation: ``mirror[i]`` is the twin of joint ``i``."""
        return self._mirror.view()

    @property
    def parents(self) -> tuple[int, ...] | None:
        """Parent index per joint (``-1`` for roots), or ``None``."""
        return self._parents

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """Bones as ``(a, b)`` index pairs (possibly empty)."""
        return self._edges

    def __len__(self) -> int:
        return len(self._names)

    def index(self, joint_name: str) -> int:
        """Index of the joint called ``joint_name``."""
        try:
            return self._index[joint_name]
        except KeyError:
            raise KeyError(f"no joint named {joint_name!r}; joints are {list(self._names)}") from None

    # -- mirror geometry -------------------------------------------------------------
    def mirror_edges(self) -> tuple[tuple[int, int], ...]:
        """Edges with both ends mapped through the mirror (same order)."""
        m = self._mirror
        return tuple((int(m[a]), int(m[b])) for a, b in self._edges)

    def is_mirror_symmetric(self) -> bool:
        """Whether the undirected edge set maps onto itself under the mirror."""
        original = {frozenset(e) for e in self._edges}
        mirrored = {frozenset(e) for e in self.mirror_edges()}
        return original == mirrored

    # -- derived skeletons -----------------------------------------------------------
    def subset(self, indices: Sequence[int], name: str | None = None) -> Skeleton:
        """Skeleton of the given joints, in the given order.

        Pairs and edges are kept when both ends are kept; a parent that is dropped
        is replaced by its nearest kept ancestor (``-1`` if none).  Keeping a
        sided joint without its twin is an error.
        """
        n = len(self._names)
        idx = [_as_index(i, "each subset index") for i in indices]
        new_of: dict[int, int] = {}
        for k, i in enumerate(idx):
            if not 0 <= i < n:
                raise ValueError(f"subset index {i} out of range: {self._range_text()}")
            if i in new_of:
                raise ValueError(f"joint {self._describe(i)} listed twice in subset indices")
            new_of[i] = k
        for i in idx:
            twin = int(self._mirror[i])
            if twin != i and twin not in new_of:
                raise ValueError(
                    f"subset keeps joint {self._describe(i)} but not its mirror twin "
                    f"{self._describe(twin)}; keep both or neither"
                )
        pairs = [(new_of[a], new_of[b]) for a, b in self._pairs if a in new_of]
        edges = [(new_of[a], new_of[b]) for a, b in self._edges if a in new_of and b in new_of]
        parents = None
        if self._parents is not None:
            parents = []
            for i in idx:
                p = self._parents[i]
                while p >= 0 and p not in new_of:
                    p = self._parents[p]
                parents.append(new_of[p] if p >= 0 else -1)
        return Skeleton([self._names[i] for i in idx], pairs=pairs, parents=parents, edges=edges, name=name)

    # -- presets ---------------------------------------------------------------------
    @classmethod
    def presets(cls) -> tuple[str, ...]:
        """Names accepted by :meth:`preset`."""
        return tuple(PRESETS)

    @classmethod
    def preset(cls, name: str) -> Skeleton:
        """Built-in skeleton by (case-insensitive) name, e.g. ``"h36m"``."""
        if not isinstance(name, str):
            raise TypeError(f"preset name must be a string, got {name!r}")
        key = name.strip().lower()
        if key not in PRESETS:
            raise ValueError(f"unknown skeleton preset {name!r}; available presets: {', '.join(PRESETS)}")
        return Skeleton(name=key, **PRESETS[key])

    @classmethod
    def coerce(cls, x: Skeleton | str) -> Skeleton:
        """Return ``x`` if it is a Skeleton, the preset named ``x`` if it is a string."""
        if isinstance(x, Skeleton):
            return x
        if isinstance(x, str):
            return cls.preset(x)
        raise TypeError(f"expected a Skeleton or a preset name ({', '.join(PRESETS)}), got {type(x).__name__}")

    # -- serialisation ---------------------------------------------------------------
    def preset_name(self) -> str | None:
        """The name of the preset this skeleton equals (same joint names, pairs, parents and
        edges, and its name ``None`` or the preset's), else ``None``."""
        if self._name is not None and self._name.strip().lower() not in PRESETS:
            return None
        candidates = [self._name.strip().lower()] if self._name is not None else list(PRESETS)
        for key in candidates:
            other = Skeleton(name=key, **PRESETS[key])
            if self._full_key() == other._full_key():
                return key
        return None

    def to_dict(self) -> dict[str, Any]:
        """The skeleton as JSON-able data: ``{"preset": name}`` when it equals a preset (see
        :meth:`preset_name`), else ``{"name", "names", "pairs", "parents", "edges"}`` (``parents``
        ``None`` when the skeleton has none). :meth:`from_dict` reads it back."""
        preset = self.preset_name()
        if preset is not None:
            return {"preset": preset}
        return {"name": self._name, "names": list(self._names),
                "pairs": [list(p) for p in self._pairs],
                "parents": None if self._parents is None else list(self._parents),
                "edges": [list(e) for e in self._edges]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Skeleton:
        """Read a skeleton written by :meth:`to_dict` (or by hand): ``{"preset": "h36m"}``, a
        preset name, or ``{"names": [...]}`` with optional ``name``, ``pairs`` (inferred from the
        names when absent), ``parents`` and ``edges``.

        Raises:
            ValueError: not a mapping, an unknown or missing key, or a bad value; the message
                names the key at fault.
        """
        from symmetrize.skeleton_files import skeleton_from_dict
        return skeleton_from_dict(cls, data)

    def _full_key(self) -> tuple[Any, ...]:
        return (self._names, self._pairs, self._parents, self._edges)

    # -- dunder ----------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (self._names, self._pairs, self._edges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Skeleton):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        label = f"{self._name!r}, " if self._name is not None else ""
        return f"Skeleton({label}{len(self)} joints: {len(self._pairs)} pairs, {len(self._centre)} centre)"
