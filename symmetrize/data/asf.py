"""Read an ASF skeleton (the Acclaim format of CMU's motion capture database), line by line.

An ASF file has sections ``:units`` (``mass``, ``length``, ``angle deg|rad``), ``:root``
(``order`` of the root's AMC values, ``axis`` order, rest ``position`` and ``orientation``),
``:bonedata`` (one ``begin ... end`` block per bone: ``name``, unit ``direction`` in the global
rest frame, ``length``, ``axis`` angles and order, the ``dof`` the AMC file animates, their
``limits``) and ``:hierarchy`` (lines ``parent child child ...``). ``:version``, ``:name``,
``:documentation`` and ``:skin`` are read past.

Conventions: ``axis a b c XYZ`` gives the angle about each letter in turn, and rotations (the
bone axes and the AMC values alike) apply in the order listed about the fixed axes, so ``XYZ``
is the matrix ``Rz @ Ry @ Rx``. Lengths are inches divided by ``:units length`` (CMU: 0.45).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from os import PathLike

import numpy as np

from symmetrize.data.errors import ASFError, parse_number, read_text
from symmetrize.data.kinematics import compose

__all__ = ["AsfBone", "AsfSkeleton", "load_asf", "parse_asf"]

_SECTIONS = {"version", "name", "units", "documentation", "root", "bonedata", "hierarchy", "skin"}
_AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True, eq=False)
class AsfBone:
    """One bone: its ``direction * length`` vector (file units, global rest frame), the local
    frame ``axis`` (a ``(3, 3)`` rotation), the rotation ``dofs`` the AMC file gives (axis
    indices in their order), its ``parent`` (``"root"`` or a bone) and where it was defined."""

    name: str
    vector: np.ndarray
    axis: np.ndarray
    dofs: tuple[int, ...]
    line: int
    parent: str = ""


@dataclass(frozen=True, eq=False)
class AsfSkeleton:
    """An ASF file: ``bones`` with parents before children, the ``root_order`` of the root's
    AMC values (``("t" | "r", axis)`` each), the root's ``root_axis`` rotation and rest
    ``root_position`` (file units), ``length`` (``:units length``) and whether angles are in
    ``degrees``."""

    source: str
    bones: tuple[AsfBone, ...]
    root_order: tuple[tuple[str, int], ...]
    root_axis: np.ndarray
    root_position: np.ndarray
    length: float = 1.0
    degrees: bool = True
    index: dict[str, int] = field(default_factory=dict)


class _Reader:
    """Line-by-line state of one ASF parse."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.i = 0
        self.length = 1.0
        self.degrees = True
        self.root_order: tuple[tuple[str, int], ...] | None = None
        self.root_axis_order = "XYZ"
        self.root_orientation = [0.0, 0.0, 0.0]
        self.root_position = np.zeros(3)
        self.bones: dict[str, dict] = {}
        self.children: dict[str, list[tuple[str, int]]] = {}
        self.seen: set[str] = set()

    def error(self, line: int | None, message: str) -> ASFError:
        return ASFError(self.source, line, message)

    def next_line(self) -> tuple[int, list[str]] | None:
        """The next non-blank, non-comment line as ``(line number, tokens)``."""
        while self.i < len(self.lines):
            self.i += 1
            toks = self.lines[self.i - 1].split("#", 1)[0].split()
            if toks:
                return self.i, toks
        return None

    def last_line(self) -> int:
        """The number of the file's last line that holds something."""
        return next((i for i in range(len(self.lines), 0, -1) if self.lines[i - 1].strip()), 1)

    def numbers(self, toks: list[str], line: int, count: int, what: str) -> list[float]:
        if len(toks) != count:
            raise self.error(line, f"{what} needs {count} number(s), found {len(toks)}")
        return [parse_number(t, ASFError, self.source, line, f"{what} value {k + 1}")
                for k, t in enumerate(toks)]

    def run(self) -> None:
        section = None
        while (item := self.next_line()) is not None:
            line, toks = item
            if toks[0].startswith(":"):
                section = toks[0][1:].lower()
                if section not in _SECTIONS:
                    raise self.error(line, f"unknown section {toks[0]!r}; ASF sections are "
                                           + ", ".join(f":{s}" for s in sorted(_SECTIONS)))
                if section in self.seen:
                    raise self.error(line, f"section {toks[0]!r} appears twice")
                self.seen.add(section)
                rest = toks[1:]
                if section == "units" and rest:
                    self.unit(line, rest)
                continue
            if section is None:
                raise self.error(line, f"unexpected {toks[0]!r} before the first section; an "
                                       f"ASF file starts with a section such as ':version'")
            if section == "units":
                self.unit(line, toks)
            elif section == "root":
                self.root(line, toks)
            elif section == "bonedata":
                self.bone_block(line, toks)
            elif section == "hierarchy":
                self.hierarchy(line, toks)

    def unit(self, line: int, toks: list[str]) -> None:
        key = toks[0].lower()
        if key == "angle":
            if len(toks) != 2 or toks[1].lower() not in ("deg", "rad"):
                raise self.error(line, f"':units angle' must be 'deg' or 'rad', got "
                                       f"{' '.join(toks[1:])!r}")
            self.degrees = toks[1].lower() == "deg"
        elif key in ("length", "mass"):
            (value,) = self.numbers(toks[1:], line, 1, f"units {key}")
            if value <= 0:
                raise self.error(line, f"units {key} is {toks[1]!r}; it must be positive")
            if key == "length":
                self.length = value
        else:
            raise self.error(line, f"unknown unit {toks[0]!r}; ':units' holds mass, length "
                                   f"and angle")

    def root(self, line: int, toks: list[str]) -> None:
        key = toks[0].lower()
        if key == "order":
            order = []
            for tok in toks[1:]:
                low = tok.lower()
                if len(low) != 2 or low[0] not in "tr" or low[1] not in _AXES:
                    raise self.error(line, f"root order entry {tok!r} is not one of TX TY TZ "
                                           f"RX RY RZ")
                entry = (low[0], _AXES[low[1]])
                if entry in order:
                    raise self.error(line, f"root order lists {tok!r} twice")
                order.append(entry)
            self.root_order = tuple(order)
        elif key == "axis":
            self.root_axis_order = self.axis_order(line, toks[1:], "root axis")
        elif key == "position":
            self.root_position = np.array(self.numbers(toks[1:], line, 3, "root position"))
        elif key == "orientation":
            self.root_orientation = self.numbers(toks[1:], line, 3, "root orientation")
        else:
            raise self.error(line, f"unknown root entry {toks[0]!r}; ':root' holds order, "
                                   f"axis, position and orientation")

    def axis_order(self, line: int, toks: list[str], what: str) -> str:
        if len(toks) != 1 or sorted(toks[0].lower()) != ["x", "y", "z"]:
            raise self.error(line, f"{what} order must be a permutation of XYZ, got "
                                   f"{' '.join(toks)!r}")
        return toks[0].upper()

    def bone_block(self, line: int, toks: list[str]) -> None:
        if toks[0].lower() != "begin" or len(toks) != 1:
            raise self.error(line, f"expected 'begin' (a bone's block) in ':bonedata', found "
                                   f"{' '.join(toks)!r}")
        bone: dict = {"line": line, "dofs": ()}
        seen: set[str] = set()
        while True:
            item = self.next_line()
            if item is None or item[1][0].startswith(":"):
                at = item[0] if item else self.last_line()
                raise self.error(at, f"bone block opened at line {line} has no 'end'")
            at, toks = item
            key = toks[0].lower()
            if key == "end":
                break
            if key in seen:
                raise self.error(at, f"bone entry {toks[0]!r} given twice")
            if not key.startswith("("):
                seen.add(key)
            if key == "name":
                if len(toks) != 2:
                    raise self.error(at, "a bone name must be one word")
                bone["name"], bone["line"] = toks[1], at
            elif key == "direction":
                bone["direction"] = self.numbers(toks[1:], at, 3, "direction")
            elif key == "length":
                bone["length"] = self.numbers(toks[1:], at, 1, "length")[0]
            elif key == "axis":
                values = self.numbers(toks[1:4], at, 3, "axis") if len(toks) == 5 else \
                    self.numbers(toks[1:], at, 4, "axis (3 angles and an order)")
                bone["axis"] = (self.axis_order(at, toks[4:], "axis"), values)
            elif key == "dof":
                bone["dofs"] = self.dofs(at, toks[1:])
            elif key in ("limits", "id", "bodymass", "cofmass") or key.startswith("("):
                continue  # read past: limits are not enforced
            else:
                raise self.error(at, f"unknown bone entry {toks[0]!r}; a bone has name, id, "
                                     f"direction, length, axis, dof and limits")
        self.add_bone(bone)

    def dofs(self, line: int, toks: list[str]) -> tuple[int, ...]:
        out: list[int] = []
        for tok in toks:
            low = tok.lower()
            if low in ("tx", "ty", "tz", "l"):
                raise self.error(line, f"dof {tok!r} (a bone translation or stretch) is not "
                                       f"supported; only rx ry rz")
            if len(low) != 2 or low[0] != "r" or low[1] not in _AXES:
                raise self.error(line, f"unknown dof {tok!r}; dofs are rx ry rz")
            if _AXES[low[1]] in out:
                raise self.error(line, f"dof {tok!r} listed twice")
            out.append(_AXES[low[1]])
        return tuple(out)

    def add_bone(self, bone: dict) -> None:
        line = bone["line"]
        for key in ("name", "direction", "length", "axis"):
            if key not in bone:
                raise self.error(line, f"the bone block at line {line} has no {key!r}")
        name = bone["name"]
        if name.lower() == "root" or name in self.bones:
            raise self.error(line, f"bone name {name!r} is used twice (or is 'root')")
        direction = np.array(bone["direction"])
        norm = float(np.linalg.norm(direction))
        if bone["length"] < 0:
            raise self.error(line, f"bone {name!r} has a negative length {bone['length']}")
        if norm == 0 and bone["length"] > 0:
            raise self.error(line, f"bone {name!r} has a zero direction")
        bone["vector"] = direction / (norm or 1.0) * bone["length"]
        self.bones[name] = bone

    def hierarchy(self, line: int, toks: list[str]) -> None:
        if toks[0].lower() in ("begin", "end") and len(toks) == 1:
            return
        parent = "root" if toks[0].lower() == "root" else toks[0]
        if parent != "root" and parent not in self.bones:
            raise self.error(line, f"hierarchy names {parent!r}, which is not a bone of "
                                   f"':bonedata'")
        for child in toks[1:]:
            if child not in self.bones:
                raise self.error(line, f"hierarchy names {child!r}, which is not a bone of "
                                       f"':bonedata'")
            if "parent" in self.bones[child]:
                raise self.error(line, f"bone {child!r} is given a second parent "
                                       f"({parent!r}, after {self.bones[child]['parent']!r})")
            self.bones[child]["parent"] = parent
            self.children.setdefault(parent, []).append((child, line))

    def result(self) -> AsfSkeleton:
        for needed in ("root", "bonedata", "hierarchy"):
            if needed not in self.seen and (needed == "root" or self.bones):
                raise self.error(None, f"no ':{needed}' section")
        if self.root_order is None:
            raise self.error(None, "':root' has no 'order' line (the root's AMC values)")
        order = []  # pre-order from the root, following the hierarchy's order; no recursion
        stack = list(reversed(self.children.get("root", [])))
        while stack:
            name, _ = stack.pop()
            order.append(name)
            stack.extend(reversed(self.children.get(name, [])))
        unplaced = [n for n in self.bones if n not in set(order)]
        if unplaced:
            bone = self.bones[unplaced[0]]
            raise self.error(bone["line"], f"bone {unplaced[0]!r} is not connected to the root "
                                           f"in ':hierarchy' ({len(unplaced)} such bone(s))")
        scale = math.pi / 180 if self.degrees else 1.0
        bones = tuple(AsfBone(n, self.bones[n]["vector"], _axis(*self.bones[n]["axis"], scale),
                              self.bones[n]["dofs"], self.bones[n]["line"],
                              self.bones[n]["parent"]) for n in order)
        root_axis = _axis(self.root_axis_order, self.root_orientation, scale)
        return AsfSkeleton(self.source, bones, self.root_order, root_axis,
                           self.root_position, self.length, self.degrees,
                           {b.name: i for i, b in enumerate(bones)})


def _axis(order: str, values: list[float], scale: float) -> np.ndarray:
    """The rotation of ``values`` (the angle about each letter of ``order`` in turn)."""
    return euler(tuple(_AXES[c] for c in order.lower()), np.array([values]) * scale)[0]


def euler(axes: tuple[int, ...], radians: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)``: rotations about ``axes`` by the columns of ``radians``, applied in the
    order listed about the fixed axes (the matrix product in reverse order)."""
    rot = compose(axes[::-1], radians[:, ::-1])
    return np.broadcast_to(np.eye(3), (radians.shape[0], 3, 3)) if rot is None else rot


def parse_asf(text: str, *, source: str = "<string>") -> AsfSkeleton:
    """Parse ASF text; raises :class:`~symmetrize.data.errors.ASFError` naming ``source`` and
    the line at fault."""
    reader = _Reader(text.removeprefix("\ufeff"), source)
    if not any(line.strip() for line in reader.lines):
        raise ASFError(source, 1, "empty file: expected an ASF skeleton (':units', ':root', "
                                  "':bonedata', ':hierarchy')")
    reader.run()
    return reader.result()


def load_asf(path: str | PathLike[str]) -> AsfSkeleton:
    """Read the ASF file at ``path`` (see :func:`parse_asf`)."""
    return parse_asf(read_text(path, "ASF"), source=str(path))
