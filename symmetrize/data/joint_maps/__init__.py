"""Joint maps: how the joints of a motion-capture naming give the joints of a target skeleton
preset, as small TOML files, checked to commute with the left/right mirror.

Built-in maps (to ``h36m``): ``cmu-cgspeed`` (cgspeed's BVH conversion of CMU: LeftUpLeg,
Spine1, ...), ``cmu-chest`` (the BVH naming of LeftHip, LeftKnee, Chest, Chest2, ...) and
``cmu-asf`` (CMU's ASF bone names). :func:`choose_map` picks the first map whose source joints a
file has, user maps before built-in ones; :func:`to_target` maps a motion with it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from importlib import resources

from symmetrize.data.errors import JointMapError
from symmetrize.data.joint_maps.jointmap import JointMap, Terms
from symmetrize.data.motion import Motion

__all__ = ["JointMap", "JointMapSpec", "Terms", "builtin_maps", "choose_map", "resolve_maps",
           "to_target"]

_BUILTIN_FILES = ("cmu_cgspeed.toml", "cmu_chest.toml", "cmu_asf.toml")

JointMapSpec = str | os.PathLike | JointMap
"""A joint map: a :class:`JointMap`, the name of a built-in map, or the path of a TOML file."""


@functools.cache
def builtin_maps() -> tuple[JointMap, ...]:
    """The built-in joint maps, in the order :func:`choose_map` tries them."""
    folder = resources.files(__name__)
    return tuple(JointMap.parse(folder.joinpath(name).read_text(encoding="utf-8"),
                                source=f"built-in {name}") for name in _BUILTIN_FILES)


def resolve_maps(joint_map: JointMapSpec | Sequence[JointMapSpec] | None
                 ) -> tuple[JointMap, ...]:
    """The maps ``joint_map`` names (one or several; ``None``: none): each a :class:`JointMap`,
    a built-in map's name or a TOML file.

    Raises:
        FileNotFoundError: a path that does not exist (naming it and the built-in names).
        JointMapError: a malformed map file.
    """
    if joint_map is None:
        return ()
    items = [joint_map] if isinstance(joint_map, (str, os.PathLike, JointMap)) else joint_map
    out = []
    builtin = {m.name: m for m in builtin_maps()}
    for item in items:
        if isinstance(item, JointMap):
            out.append(item)
        elif isinstance(item, str) and item in builtin:
            out.append(builtin[item])
        elif isinstance(item, (str, os.PathLike)):
            if not os.path.exists(item):
                raise FileNotFoundError(f"joint map {str(item)!r}: no such file (give a TOML "
                                        f"file or a built-in map: {', '.join(builtin)})")
            out.append(JointMap.load(item))
        else:
            raise TypeError(f"joint_map must be a JointMap, a built-in map name or a TOML file "
                            f"path, got {type(item).__name__}")
    return tuple(out)


def choose_map(names: Sequence[str], source: str, *, target: str = "h36m",
               joint_map: JointMapSpec | Sequence[JointMapSpec] | None = None) -> JointMap:
    """The first map to ``target`` whose source joints are all in ``names`` (the joints of the
    file ``source``): the maps of ``joint_map`` first, then the built-in ones.

    Raises:
        JointMapError: a given map has another target; or no map fits, naming the closest map
            and the joints the file lacks for it.
    """
    given = resolve_maps(joint_map)
    for m in given:
        if m.target != target:
            raise JointMapError(m.source, None, f"joint map {m.name!r} maps to {m.target!r}, but "
                                                f"the skeleton here is {target!r}")
    candidates = [*given, *(m for m in builtin_maps() if m.target == target)]
    for m in candidates:
        if not m.missing(names):
            return m
    if not candidates:
        raise JointMapError(source, None, f"there is no built-in joint map to {target!r}; write "
                                          f"one for this naming (see docs/data.md) and pass it "
                                          f"with --joint-map FILE (joint_map=...)")
    closest = min(candidates, key=lambda m: (_loose_missing(m, names), len(m.missing(names))))
    kind = "given" if closest in given else "built-in"
    raise JointMapError(
        source, None,
        f"no joint map fits its joints; the closest, the {kind} map {closest.name!r} "
        f"({closest.description or closest.source}), misses {closest.missing(names)}. The file "
        f"has: {', '.join(names)}. Fix: write a joint map from these names to {target!r} (see "
        f"docs/data.md) and pass it with --joint-map FILE (joint_map=...)")


def to_target(motion: Motion, target: str = "h36m",
              joint_map: JointMapSpec | Sequence[JointMapSpec] | None = None) -> Motion:
    """``motion`` on the ``target`` preset's joints, with the map :func:`choose_map` picks."""
    return choose_map(motion.names, motion.source, target=target,
                      joint_map=joint_map).apply(motion)


def _loose_missing(joint_map: JointMap, names: Sequence[str]) -> int:
    """How many of the map's joints ``names`` lacks, comparing names without case and without
    a ``namespace:`` prefix (to find the closest map of a renamed naming)."""
    have = {name.rsplit(":", 1)[-1].lower() for name in names}
    return sum(name.rsplit(":", 1)[-1].lower() not in have for name in joint_map.sources)
