"""A joint map: how the joints of one motion-capture naming give the joints of a target skeleton
preset, as data (a small TOML file), checked to commute with the left/right mirror.

Each target joint is a weighted sum of source joints (weights sum to 1, so the joint moves with
the body). A map is refused unless every left target joint mirrors its right twin (the same
weights on the mirrored source joints) and every centre target joint is mirror-symmetric; the
sums are then evaluated in a mirror-matched order, so mapping commutes with the mirror bit for
bit: ``apply(mirror_motion(m)) == mirror_motion(apply(m))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from os import PathLike
from typing import Any

import numpy as np

from symmetrize.data.errors import JointMapError, read_text
from symmetrize.data.motion import Motion, rest_positions
from symmetrize.skeleton import Skeleton, infer_pairs

__all__ = ["JointMap", "Terms"]

Terms = tuple[tuple[str, float], ...]
Groups = tuple[Terms, ...]  # a term alone, or a source joint with its mirror twin
_KEYS = {"name", "target", "description", "bvh", "joints"}
_BVH_KEYS = {"metres_per_unit", "skip_frames"}


def _text(terms: Terms) -> str:
    return " + ".join(f"{name} {weight:g}" for name, weight in terms)


@dataclass(frozen=True, eq=False)
class JointMap:
    """For each joint of the ``target`` preset (in its order), the source joints and weights
    whose weighted sum gives its position; ``metres_per_unit`` and ``skip_frames`` say how to
    read BVH files of this naming (the unit's length, and leading frames that are no motion,
    such as a synthetic T-pose); ``source`` is the file the map came from."""

    name: str
    target: str
    joints: tuple[tuple[str, Terms], ...]
    source: str = "<dict>"
    description: str = ""
    metres_per_unit: float | None = None
    skip_frames: int = 0

    def __post_init__(self) -> None:
        self._check()

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | PathLike[str]) -> JointMap:
        """Read a joint map from a TOML file (see ``docs/data.md`` for the format).

        Raises:
            FileNotFoundError: no such file.
            JointMapError: malformed TOML, a wrong entry, or a map that breaks the mirror
                (naming the file, the line where it can, and the joints).
        """
        return cls.parse(read_text(path, "joint map"), source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>") -> JointMap:
        """A joint map from TOML ``text`` (see :meth:`load`)."""
        try:
            data = _toml(text)
        except ValueError as err:
            match = re.search(r"line (\d+)", str(err))
            raise JointMapError(source, int(match.group(1)) if match else None,
                                f"not valid TOML: {err}") from None
        return cls.from_dict(data, source=source, text=text)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>",
                  text: str = "") -> JointMap:
        """A map from parsed TOML (``text``, when given, lets errors name lines)."""
        def fail(message: str, key: str | None = None) -> JointMapError:
            return JointMapError(source, _line(text, key) if key else None, message)

        if not isinstance(data, Mapping):
            raise fail(f"expected a table of name, target, [bvh] and [joints], got "
                       f"{type(data).__name__}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise fail(f"unknown key {unknown[0]!r}; a joint map has {', '.join(sorted(_KEYS))}",
                       unknown[0])
        for key in ("name", "target", "joints"):
            if key not in data:
                raise fail(f"no {key!r} entry")
        for key in ("name", "target", "description"):
            if key in data and not isinstance(data[key], str):
                raise fail(f"{key!r} must be a string, got {data[key]!r}", key)
        bvh = data.get("bvh", {})
        if not isinstance(bvh, Mapping) or set(bvh) - _BVH_KEYS:
            raise fail(f"[bvh] may hold only {', '.join(sorted(_BVH_KEYS))}", "bvh")
        unit = bvh.get("metres_per_unit")
        if unit is not None and (not _is_number(unit) or not 0 < unit < math.inf):
            raise fail(f"[bvh] metres_per_unit must be a positive number, got {unit!r}",
                       "metres_per_unit")
        skip = bvh.get("skip_frames", 0)
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise fail(f"[bvh] skip_frames must be a whole number >= 0, got {skip!r}",
                       "skip_frames")
        joints = data["joints"]
        if not isinstance(joints, Mapping):
            raise fail("[joints] must be a table: target joint = \"Source\" or "
                       "{ SourceA = 0.5, SourceB = 0.5 }", "joints")
        entries = []
        for target, value in joints.items():
            entries.append((target, _terms(value, lambda m, t=target: fail(f"joint {t!r}: {m}",
                                                                            t))))
        try:
            return cls(data["name"], data["target"], tuple(entries), source,
                       data.get("description", ""), None if unit is None else float(unit), skip)
        except JointMapError as err:
            lines = [_line(text, word) for word in re.findall(r"'([^']+)'", err.message)]
            line = next((n for n in lines if n is not None), None)
            if err.line is None and line is not None:
                raise JointMapError(source, line, err.message) from None
            raise

    # -- checks ----------------------------------------------------------------------------------
    def _fail(self, message: str) -> JointMapError:
        return JointMapError(self.source, None, f"joint map {self.name!r}: {message}")

    def _check(self) -> None:
        try:
            target = Skeleton.preset(self.target)
        except (KeyError, ValueError):
            raise self._fail(f"unknown target skeleton {self.target!r}; targets are the presets "
                             f"{', '.join(Skeleton.presets())}") from None
        given = [name for name, _ in self.joints]
        missing = [n for n in target.names if n not in given]
        extra = [n for n in given if n not in target.names]
        if missing or extra or len(set(given)) != len(given):
            what = (f"has no entry for {missing}" if missing else f"names {extra}, not joints "
                    f"of {self.target!r}" if extra else "lists a joint twice")
            raise self._fail(f"{what}; give one entry per joint of {self.target!r}: "
                             f"{', '.join(target.names)}")
        for joint, terms in self.joints:
            total = math.fsum(w for _, w in terms)
            if abs(total - 1.0) > 1e-9:
                raise self._fail(f"the weights of {joint!r} ({_text(terms)}) sum to {total:g}; "
                                 f"they must sum to 1 so the joint moves with the body")
        self._check_mirror(target)

    @cached_property
    def source_twins(self) -> dict[str, str]:
        """Each source joint's mirror twin (itself for a centre joint), from the names."""
        names = sorted({name for _, terms in self.joints for name, _ in terms})
        try:
            pairs = infer_pairs(names)
        except ValueError as err:
            found = re.search(r"\('([^']*)'\)", str(err))
            name = found.group(1) if found else "?"
            users = [t for t, terms in self.joints if any(n == name for n, _ in terms)]
            raise self._fail(f"breaks the left/right mirror: {', '.join(map(repr, users))} "
                             f"use(s) {name!r}, which has no mirror twin among the map's source "
                             f"joints ({err})") from None
        twins = {n: n for n in names}
        for a, b in pairs:
            twins[names[a]], twins[names[b]] = names[b], names[a]
        return twins

    def _mirrored(self, terms: Terms) -> Terms:
        return tuple((self.source_twins[name], weight) for name, weight in terms)

    def _check_mirror(self, target: Skeleton) -> None:
        table = dict(self.joints)
        names = target.names
        twins = [(names[left], names[right]) for left, right in target.pairs]
        twins += [(names[i], names[i]) for i in target.centre]
        for name, twin in twins:
            mirrored = self._mirrored(table[name])
            if sorted(mirrored) == sorted(table[twin]):
                continue
            if name != twin:
                raise self._fail(
                    f"breaks the left/right mirror: {name!r} = {_text(table[name])} mirrors to "
                    f"{_text(mirrored)}, but {twin!r} = {_text(table[twin])}; make the left and "
                    f"right entries mirror each other")
            raise self._fail(
                f"breaks the left/right mirror: centre joint {name!r} = {_text(table[name])} "
                f"is not mirror-symmetric (its mirror is {_text(mirrored)}); give twin "
                f"source joints equal weights")

    # -- use -------------------------------------------------------------------------------------
    @cached_property
    def plan(self) -> tuple[Groups, ...]:
        """Per target joint, the groups of terms summed in a mirror-matched order: a right
        joint repeats its left twin's order on the mirrored sources; a centre joint sums each
        twin pair of sources first."""
        target = Skeleton.preset(self.target)
        table = dict(self.joints)
        plans: dict[str, Groups] = {}
        for left, right in target.pairs:
            terms = table[target.names[left]]
            plans[target.names[left]] = tuple((t,) for t in terms)
            plans[target.names[right]] = tuple((t,) for t in self._mirrored(terms))
        for i in target.centre:
            weights = dict(table[target.names[i]])
            groups, done = [], set()
            for name, weight in table[target.names[i]]:
                if name in done:
                    continue
                twin = self.source_twins[name]
                done.update((name, twin))
                groups.append(((name, weight),) if twin == name else
                              ((name, weight), (twin, weights[twin])))
            plans[target.names[i]] = tuple(groups)
        return tuple(plans[name] for name in target.names)

    @cached_property
    def sources(self) -> tuple[str, ...]:
        """The source joints the map reads, sorted."""
        return tuple(sorted(self.source_twins))

    def missing(self, names: Sequence[str]) -> list[str]:
        """The source joints of the map that ``names`` lacks."""
        have = set(names)
        return [n for n in self.sources if n not in have]

    def apply(self, motion: Motion) -> Motion:
        """``motion`` on the target skeleton (same units, frames, fps and source); offsets are
        those of the mapped rest pose.

        Raises:
            JointMapError: a source joint is missing from the motion, or the motion's names pair
                a source joint with another twin than the map does.
        """
        missing = self.missing(motion.names)
        if missing:
            raise JointMapError(motion.source, None, f"joint map {self.name!r} ({self.source}) "
                                f"needs the joints {missing}, missing from this motion (its "
                                f"joints: {', '.join(motion.names)})")
        index = {name: i for i, name in enumerate(motion.names)}
        try:
            mirror = motion.skeleton.mirror
        except ValueError as err:
            raise JointMapError(motion.source, None, f"its joint names have no consistent "
                                f"left/right twins: {err}") from None
        for name, twin in self.source_twins.items():
            found = motion.names[mirror[index[name]]]
            if found != twin:
                raise JointMapError(motion.source, None, f"joint map {self.name!r}: the motion "
                                    f"pairs {name!r} with {found!r} but the map with {twin!r}")
        target = Skeleton.preset(self.target)
        positions = np.stack([_combine(motion.positions, index, groups) for groups in self.plan],
                             axis=1)
        rest = rest_positions(motion.offsets, motion.parents)
        rest_t = np.stack([_combine(rest, index, groups) for groups in self.plan])
        parents = target.parents if target.parents is not None else (-1,) * len(target)
        offsets = np.array([rest_t[j] - (rest_t[p] if p >= 0 else 0.0)
                            for j, p in enumerate(parents)])
        return Motion(positions, target.names, parents, motion.fps, offsets, motion.source)


def _combine(points: np.ndarray, index: dict[str, int], groups: Groups) -> np.ndarray:
    """The sum over ``groups`` (in order) of each group's ``sum(w * points[..., joint, :])``."""
    out = None
    for group in groups:
        (name, weight), *rest = group
        value = points[..., index[name], :] * weight
        for name, weight in rest:
            value = value + points[..., index[name], :] * weight
        out = value if out is None else out + value
    assert out is not None
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _terms(value: Any, fail: Any) -> Terms:
    """One ``[joints]`` entry as ``((source, weight), ...)``."""
    if isinstance(value, str):
        value = {value: 1.0}
    if not isinstance(value, Mapping) or not value:
        raise fail(f"expected \"Source\" or {{ SourceA = 0.5, SourceB = 0.5 }}, got {value!r}")
    terms = []
    for name, weight in value.items():
        if not _is_number(weight) or not math.isfinite(weight) or weight == 0:
            raise fail(f"the weight of {name!r} must be a finite, non-zero number, got "
                       f"{weight!r}")
        terms.append((str(name), float(weight)))
    return tuple(terms)


def _line(text: str, key: str | None) -> int | None:
    """The line where ``key`` is set (``key =`` or ``[key]``) in TOML ``text``, if any."""
    if not text or not key:
        return None
    pattern = re.compile(rf"^\s*(?:\[\s*{re.escape(key)}\s*\]|[\"']?{re.escape(key)}[\"']?\s*=)")
    for i, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return i
    return None


def _toml(text: str) -> dict[str, Any]:
    """Parse TOML with ``tomllib`` (Python >= 3.11) or ``tomli``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ValueError("reading a TOML joint map needs Python >= 3.11 or the 'tomli' "
                             "package (pip install tomli)") from None
    return tomllib.loads(text)
