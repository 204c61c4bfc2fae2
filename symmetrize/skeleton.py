"""Joint layouts with left/right mirror pairs.

A :class:`Skeleton` names the joints of a pose format and records which joints
swap under a left/right mirror.  Pairs can be given explicitly or inferred from
the joint names (``left_hip``/``right_hip``, ``LeftUpLeg``/``RightUpLeg``,
``hip.L``/``hip.R``, ``lhip``/``rhip``, ...).  Common formats are available via
:meth:`Skeleton.preset`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Skeleton", "infer_pairs", "tokenize_name"]

_SEPARATORS = re.compile(r"[\s_\-.]+")
# An upper-case run followed by a capitalised word ("LHip" -> "L", "Hip"), a
# (capitalised) lower-case word, an upper-case run, a number, or any other
# run of word characters (non-ASCII letters).
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+|[^\W\d_A-Za-z]+")
_SIDE_WORDS = {"left": "l", "right": "r"}
_SIDE_LETTERS = {"l": "l", "r": "r"}
_SIDE_NAME = {"l": "left", "r": "right"}
_OTHER = {"l": "r", "r": "l"}

Base = tuple[str, ...]


def tokenize_name(name: str) -> tuple[str, ...]:
    """Split a joint name into lower-case tokens.

    Splits on ``_ - . whitespace`` and on camelCase / PascalCase boundaries and
    between letters and digits: ``"LHipJoint"`` -> ``("l", "hip", "joint")``,
    ``"RightHandIndex1"`` -> ``("right", "hand", "index", "1")``.
    """
    tokens: list[str] = []
    for part in _SEPARATORS.split(name):
        tokens.extend(m.group(0).lower() for m in _WORD.finditer(part))
    return tuple(tokens)


def _has_letters(tokens: Iterable[str]) -> bool:
    return any(not t.isdigit() for t in tokens)


def _explicit_side(index: int, name: str, tokens: Base) -> tuple[str, Base] | None:
    """Return ``(side, base)`` if the name carries an explicit side marker."""
    marked: dict[int, str] = {}
    for i, tok in enumerate(tokens):
        if tok in _SIDE_WORDS:
            marked[i] = _SIDE_WORDS[tok]
    letter_marks: dict[int, str] = {}
    if len(tokens) > 1:
        for i in (0, len(tokens) - 1):
            if tokens[i] in _SIDE_LETTERS:
                letter_marks[i] = _SIDE_LETTERS[tokens[i]]
    if letter_marks:
        base_wo_letters = [t for i, t in enumerate(tokens) if i not in letter_marks and i not in marked]
        # "L1", "R_2": a lone letter before a number is only an implicit side
        # (lumbar vertebra "L1" must not demand a twin).
        if marked or _has_letters(base_wo_letters):
            marked.update(letter_marks)
    if not marked:
        return _glued_side(index, name, tokens)
    sides = set(marked.values())
    if len(sides) > 1:
        raise _both_sides_error(index, name, tokens)
    base = tuple(t for i, t in enumerate(tokens) if i not in marked)
    return sides.pop(), base


def _both_sides_error(index: int, name: str, tokens: Base) -> ValueError:
    return ValueError(
        f"joint {index} ({name!r}) carries both a left and a right marker in its name "
        f"(tokens {tokens}); rename it or pass pairs=[(left, right), ...] explicitly"
    )


def _glued_side(index: int, name: str, tokens: Base) -> tuple[str, Base] | None:
    """A side word glued to a word, as in ``leftarm`` or ``armright``: ``(side, base)`` with the
    word left over in place of the token (so ``leftarm`` and ``right_arm`` are twins)."""
    found: dict[int, tuple[str, str]] = {}
    for i, tok in enumerate(tokens):
        for word, side in _SIDE_WORDS.items():
            if len(tok) < len(word) + 2:
                continue
            rest = tok[len(word):] if tok.startswith(word) else (
                tok[: -len(word)] if tok.endswith(word) else None)
            if rest is not None and rest.isalpha():
                found[i] = (side, rest)
    if not found:
        return None
    if len({side for side, _ in found.values()}) > 1:
        raise _both_sides_error(index, name, tokens)
    base = tuple(found[i][1] if i in found else t for i, t in enumerate(tokens))
    return next(iter(found.values()))[0], base


def _implicit_sides(tokens: Base) -> list[tuple[str, Base]]:
    """Possible ``(side, base)`` readings used only when the twin exists."""
    out: list[tuple[str, Base]] = []
    if not tokens:
        return out
    first = tokens[0]
    if len(first) >= 3 and first[0] in _SIDE_LETTERS and first[1:3].isalpha():
        out.append((first[0], (first[1:],) + tokens[1:]))
    elif len(tokens) > 1 and first in _SIDE_LETTERS:
        out.append((first, tokens[1:]))  # "L1" / "R1"
    elif len(tokens) > 1 and tokens[-1] in _SIDE_LETTERS:
        out.append((tokens[-1], tokens[:-1]))  # "1_l" / "1_r"
    return out


def _ambiguous(names: Sequence[str], i: int, j: int, side: str, base: Base) -> ValueError:
    return ValueError(
        f"ambiguous mirror twins: joints {i} ({names[i]!r}) and {j} ({names[j]!r}) are both "
        f"{_SIDE_NAME[side]} joints with base name {'_'.join(base)!r}; rename one of them "
        f"or pass pairs=[(left, right), ...] explicitly"
    )


def infer_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Infer ``(left, right)`` mirror pairs from joint names.

    Explicit sides: a ``left``/``right`` token anywhere, or an ``l``/``r`` token
    first or last (``left_hip``, ``ShoulderLeft``, ``hip.R``, ``LThumb``).  Every
    explicitly sided joint must have a twin.  Implicit sides (``lhip``/``rhip``)
    pair only when both exist.  Twins share the token list left after removing
    the side marker.  Pairs are sorted by left index.
    """
    tokens = [tokenize_name(n) for n in names]
    explicit: dict[tuple[str, Base], list[int]] = {}
    implicit: dict[tuple[str, Base], list[int]] = {}
    implicit_of: dict[int, list[tuple[str, Base]]] = {}
    for i, (name, toks) in enumerate(zip(names, tokens)):
        found = _explicit_side(i, name, toks)
        if found is not None:
            explicit.setdefault(found, []).append(i)
        else:
            cands = _implicit_sides(toks)
            implicit_of[i] = cands
            for key in cands:
                implicit.setdefault(key, []).append(i)

    for (side, base), idxs in explicit.items():
        if len(idxs) > 1:
            raise _ambiguous(names, idxs[0], idxs[1], side, base)

    partner: dict[int, int] = {}
    left_of: dict[int, int] = {}  # left index -> right index

    def link(left: int, right: int) -> None:
        partner[left] = right
        partner[right] = left
        left_of[left] = right

    for (side, base), (i,) in sorted(explicit.items(), key=lambda kv: kv[1][0]):
        if i in partner:
            continue
        other = _OTHER[side]
        twins = explicit.get((other, base))
        if twins:
            j = twins[0]
        else:
            cands = [j for j in implicit.get((other, base), []) if j not in partner]
            if len(cands) > 1:
                raise _ambiguous(names, cands[0], cands[1], other, base)
            if not cands:
                example = f"{_SIDE_NAME[other]}_{'_'.join(base)}" if base else _SIDE_NAME[other]
                raise ValueError(
                    f"joint {i} ({names[i]!r}) is marked {_SIDE_NAME[side]} by its name but has no "
                    f"{_SIDE_NAME[other]} twin (expected a joint such as {example!r}); add the twin, "
                    f"rename the joint so it carries no side marker, or pass "
                    f"pairs=[(left, right), ...] explicitly"
                )
            j = cands[0]
        if side == "l":
            link(i, j)
        else:
            link(j, i)

    for i, cands in implicit_of.items():
        for side, base in cands:
            if i in partner:
                break
            other = _OTHER[side]
            twins = [j for j in implicit.get((other, base), []) if j not in partner and j != i]
            if not twins:
                continue
            same = [k for k in implicit.get((side, base), []) if k not in partner]
            if len(same) > 1:
                raise _ambiguous(names, same[0], same[1], side, base)
            if len(twins) > 1:
                raise _ambiguous(names, twins[0], twins[1], other, base)
            if side == "l":
                link(i, twins[0])
            else:
                link(twins[0], i)

    return tuple(sorted(left_of.items()))


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
        return tuple(_PRESETS)

    @classmethod
    def preset(cls, name: str) -> Skeleton:
        """Built-in skeleton by (case-insensitive) name, e.g. ``"h36m"``."""
        if not isinstance(name, str):
            raise TypeError(f"preset name must be a string, got {name!r}")
        key = name.strip().lower()
        if key not in _PRESETS:
            raise ValueError(f"unknown skeleton preset {name!r}; available presets: {', '.join(_PRESETS)}")
        return _PRESETS[key]()

    @classmethod
    def coerce(cls, x: Skeleton | str) -> Skeleton:
        """Return ``x`` if it is a Skeleton, the preset named ``x`` if it is a string."""
        if isinstance(x, Skeleton):
            return x
        if isinstance(x, str):
            return cls.preset(x)
        raise TypeError(f"expected a Skeleton or a preset name ({', '.join(_PRESETS)}), got {type(x).__name__}")

    # -- serialisation ---------------------------------------------------------------
    def preset_name(self) -> str | None:
        """The name of the preset this skeleton equals (same joint names, pairs, parents and
        edges, and its name ``None`` or the preset's), else ``None``."""
        if self._name is not None and self._name.strip().lower() not in _PRESETS:
            return None
        candidates = [self._name.strip().lower()] if self._name is not None else list(_PRESETS)
        for key in candidates:
            other = _PRESETS[key]()
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
        if isinstance(data, str):
            return cls.preset(data)
        if not isinstance(data, Mapping):
            raise ValueError(  # noqa: TRY004 - a file's content: every problem is a ValueError
                f"a skeleton must be a preset name or a table/object with the keys "
                f"'names' (and optionally {', '.join(map(repr, _DICT_KEYS[1:]))}) "
                f"or 'preset', got {type(data).__name__}")
        if "preset" in data:
            extra = sorted(set(data) - {"preset"})
            if extra:
                raise ValueError(f"skeleton key 'preset' excludes other keys, got also "
                                 f"{', '.join(map(repr, extra))}; give either 'preset' or "
                                 f"'names' with {', '.join(map(repr, _DICT_KEYS[1:]))}")
            try:
                return cls.preset(data["preset"])
            except (TypeError, ValueError) as err:
                raise ValueError(f"skeleton key 'preset': {err}") from None
        unknown = [key for key in data if key not in _DICT_KEYS]
        if unknown:
            raise ValueError(f"unknown skeleton key {unknown[0]!r}; allowed keys: 'preset' or "
                             f"{', '.join(map(repr, _DICT_KEYS))}")
        if "names" not in data:
            raise ValueError("skeleton key 'names' is missing: list the joint names (or give "
                             "'preset' = a preset name)")
        return _from_fields(data)

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


# -- preset data ---------------------------------------------------------------------

def _h36m() -> Skeleton:
    names = [
        "pelvis", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot",
        "spine", "thorax", "neck_nose", "head", "left_shoulder", "left_elbow", "left_wrist",
        "right_shoulder", "right_elbow", "right_wrist",
    ]
    parents = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
    return Skeleton(names, parents=parents, name="h36m")


def _humaneva() -> Skeleton:
    names = [
        "pelvis", "thorax", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
        "right_elbow", "right_wrist", "left_hip", "left_knee", "left_ankle", "right_hip",
        "right_knee", "right_ankle", "head",
    ]
    parents = [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1]
    return Skeleton(names, parents=parents, name="humaneva")


def _coco() -> Skeleton:
    names = [
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ]
    edges = [
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ]
    return Skeleton(names, edges=edges, name="coco")


def _openpose() -> Skeleton:
    names = [
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
        "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
    ]
    edges = [
        (4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2),
        (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14),
    ]
    return Skeleton(names, edges=edges, name="openpose")


def _ntu() -> Skeleton:
    names = [
        "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
        "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip",
        "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle",
        "right_foot", "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip",
        "right_thumb",
    ]
    parents = [-1, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7, 11, 11]
    return Skeleton(names, parents=parents, name="ntu")


def _smpl() -> Skeleton:
    names = [
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
        "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hand", "right_hand",
    ]
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
    return Skeleton(names, parents=parents, name="smpl")


_PRESETS: dict[str, Callable[[], Skeleton]] = {
    "h36m": _h36m,
    "humaneva": _humaneva,
    "coco": _coco,
    "openpose": _openpose,
    "ntu": _ntu,
    "smpl": _smpl,
}


_DICT_KEYS = ("names", "name", "pairs", "parents", "edges")


def _field(data: Mapping[str, Any], key: str) -> Any:
    """``data[key]`` (``None`` when absent), checked to be a list where one is expected."""
    value = data.get(key)
    if key == "name":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"skeleton key 'name' must be a string, got {value!r}")
        return value
    if value is not None and (isinstance(value, (str, bytes, Mapping))
                              or not isinstance(value, Sequence)):
        raise ValueError(f"skeleton key {key!r} must be a list, got {type(value).__name__}")
    return value


def _from_fields(data: Mapping[str, Any]) -> Skeleton:
    """Build a skeleton key by key, so that an error names the key it comes from."""
    values = {key: _field(data, key) for key in _DICT_KEYS}
    steps = [("names", {"pairs": ()}), ("pairs", {"pairs": values["pairs"]}),
             ("parents", {"parents": values["parents"]}), ("edges", {"edges": values["edges"]})]
    kwargs: dict[str, Any] = {"names": values["names"], "name": values["name"]}
    skeleton = None
    for key, extra in steps:
        kwargs.update(extra)
        try:
            skeleton = Skeleton(**kwargs)
        except (TypeError, ValueError) as err:
            blame = "names" if key == "pairs" and values["pairs"] is None else key
            raise ValueError(f"skeleton key {blame!r}: {err}") from None
    assert skeleton is not None
    return skeleton
