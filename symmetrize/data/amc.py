"""Read AMC motion (CMU's own format) against its ASF skeleton into joint positions.

An AMC file is a header (``:FULLY-SPECIFIED``, ``:DEGREES`` or ``:RADIANS``) and frames: a line
holding the frame number, then one line ``bone value ...`` per animated bone, the values in the
order of the bone's ``dof`` (the root's in its ``order``). The joints of the result are the root
and the end point of every bone (named as in the ASF); a bone's local rotation is
``C @ M @ C.T`` (``C`` its ASF axis, ``M`` its AMC rotation) and its end point is its parent's
plus its global rotation applied to ``direction * length``.

``01_01.amc`` of CMU subject 01 gives the same hip, knee, ankle, toe and spine positions as
cgspeed's BVH conversion of that take to within 1 mm on every frame (AMC frame k is BVH frame
k + 1; see ``docs/data.md`` for what differs above the spine).
"""

from __future__ import annotations

import itertools
from os import PathLike

import numpy as np

from symmetrize.data.asf import AsfSkeleton, euler, load_asf
from symmetrize.data.errors import AMCError, parse_number, read_text
from symmetrize.data.motion import INCH_METRES, Motion

__all__ = ["load_asf_amc", "parse_amc"]

_HEADER = {":fully-specified", ":degrees", ":radians"}


def _column_labels(asf: AsfSkeleton) -> dict[str, list[str]]:
    """The names of each animated bone's values, in file order (``root`` first)."""
    labels = {"root": [("t" if kind == "t" else "r") + "xyz"[axis] for kind, axis
                       in asf.root_order]}
    for bone in asf.bones:
        if bone.dofs:
            labels[bone.name] = ["r" + "xyz"[axis] for axis in bone.dofs]
    return labels


def _values(source: str, bone: str, rows: list[tuple[int, list[str]]],
            labels: list[str]) -> np.ndarray:
    """The ``(T, len(labels))`` float values of one bone's lines, finite."""
    flat = list(itertools.chain.from_iterable(toks for _, toks in rows))
    try:
        if "_" in "".join(flat):  # numpy would read "1_0" as 10
            raise ValueError("an underscore")
        values = np.array(flat, dtype=np.float64).reshape(len(rows), len(labels))
    except ValueError:
        for line, toks in rows:
            for col, tok in enumerate(toks):
                parse_number(tok, AMCError, source, line, f"{bone} {labels[col]}")
        raise  # pragma: no cover - every token parses one by one but not together
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        frame, col = divmod(int(bad[0]), len(labels))
        line, toks = rows[frame]
        raise AMCError(source, line, f"{bone} {labels[col]} is {toks[col]!r}; values must be "
                                     f"finite")
    return values


def _frames(text: str, source: str, asf: AsfSkeleton
            ) -> tuple[dict[str, np.ndarray], bool | None, int]:
    """Each animated bone's ``(T, dofs)`` values, whether the header says degrees (``None``: it
    does not say) and the frame count. Every frame must give every animated bone once."""
    labels = _column_labels(asf)
    rows: dict[str, list[tuple[int, list[str]]]] = {name: [] for name in labels}
    degrees: bool | None = None
    frame_line, number, given = 0, None, set()
    lines = text.splitlines()

    def close_frame(at: int) -> None:
        missing = [n for n in labels if n not in given]
        if number is not None and missing:
            raise AMCError(source, frame_line, f"frame {number} gives no values for "
                                               f"{', '.join(missing[:5])}"
                                               f"{' ...' if len(missing) > 5 else ''} (the frame "
                                               f"ends at line {at}); the file may be truncated")

    for i, raw in enumerate(lines, 1):
        toks = (raw[:raw.index("#")] if "#" in raw else raw).split()
        if not toks:
            continue
        head = toks[0]
        if head.startswith(":"):
            if number is not None or head.lower() not in _HEADER or len(toks) > 1:
                raise AMCError(source, i, f"unexpected {raw.strip()!r}; the header holds only "
                                          f":FULLY-SPECIFIED and :DEGREES or :RADIANS, before "
                                          f"the first frame")
            if head.lower() != ":fully-specified":
                degrees = head.lower() == ":degrees"
        elif len(toks) == 1 and head.isdigit():
            close_frame(i - 1)
            if number is not None and int(head) != number + 1:
                raise AMCError(source, i, f"frame number {head} follows frame {number}; frames "
                                          f"must count up by one")
            number, frame_line, given = int(head), i, set()
        elif number is None:
            raise AMCError(source, i, f"expected a frame number before {head!r}")
        elif head not in labels:
            what = ("has no dof (it does not move)" if head in asf.index
                    else f"is not a bone of {asf.source}")
            raise AMCError(source, i, f"frame {number}: {head!r} {what}")
        elif head in given:
            raise AMCError(source, i, f"frame {number} gives {head!r} twice")
        elif len(toks) - 1 != len(labels[head]):
            raise AMCError(source, i, f"frame {number}: {head} needs {len(labels[head])} "
                                      f"value(s) ({' '.join(labels[head])}), found "
                                      f"{len(toks) - 1}")
        else:
            given.add(head)
            rows[head].append((i, toks[1:]))
    close_frame(len(lines))
    if number is None:
        raise AMCError(source, max(len(lines), 1), "no frames: expected a frame number line "
                                                   "followed by one line per bone")
    values = {name: _values(source, name, rows[name], labels[name]) for name in labels}
    return values, degrees, len(rows["root"])


def _forward_kinematics(asf: AsfSkeleton, values: dict[str, np.ndarray], n_frames: int,
                        to_radians: float) -> np.ndarray:
    """``(T, 1 + bones, 3)`` positions in file units: the root, then each bone's end point."""
    pos = np.empty((n_frames, 1 + len(asf.bones), 3))
    root = values["root"]
    trans = np.tile(asf.root_position, (n_frames, 1))
    rot_cols = [c for c, (kind, _) in enumerate(asf.root_order) if kind == "r"]
    for col, (kind, axis) in enumerate(asf.root_order):
        if kind == "t":
            trans[:, axis] += root[:, col]
    rot = euler(tuple(asf.root_order[c][1] for c in rot_cols), root[:, rot_cols] * to_radians)
    pos[:, 0] = trans
    glob = [asf.root_axis @ rot @ asf.root_axis.T]
    for j, bone in enumerate(asf.bones, 1):
        parent = 0 if bone.parent == "root" else asf.index[bone.parent] + 1
        g = glob[parent]
        if bone.dofs:
            local = bone.axis @ euler(bone.dofs, values[bone.name] * to_radians) @ bone.axis.T
            g = g @ local
        glob.append(g)
        pos[:, j] = pos[:, parent] + g @ bone.vector
    return pos


def parse_amc(text: str, asf: AsfSkeleton, *, source: str = "<string>",
              scale: float | None = None, fps: float = 120.0) -> Motion:
    """AMC text as a :class:`~symmetrize.data.motion.Motion` of the skeleton ``asf``.

    ``scale``: metres (or any unit) per file unit; default metres, ``0.0254 / length`` with
    ``length`` the ASF's ``:units length`` (CMU: 0.45, so 5.644 cm per unit). Angles are in
    degrees or radians as the AMC header says (else as the ASF's ``:units angle``). AMC files
    record no frame rate: ``fps`` (CMU captured at 120). Raises
    :class:`~symmetrize.data.errors.AMCError` naming ``source`` and the line.
    """
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise AMCError(source, 1, "empty file: expected AMC frames")
    values, degrees, n_frames = _frames(text, source, asf)
    degrees = asf.degrees if degrees is None else degrees
    positions = _forward_kinematics(asf, values, n_frames, np.pi / 180 if degrees else 1.0)
    names = ("root", *(b.name for b in asf.bones))
    parents = (-1, *(0 if b.parent == "root" else asf.index[b.parent] + 1 for b in asf.bones))
    offsets = np.stack([asf.root_position, *(b.vector for b in asf.bones)])
    factor = INCH_METRES / asf.length if scale is None else scale
    return Motion(positions * factor, names, parents, fps, offsets * factor, source)


def load_asf_amc(asf_path: str | PathLike[str], amc_path: str | PathLike[str], *,
                 scale: float | None = None, fps: float = 120.0) -> Motion:
    """Read an ASF skeleton and an AMC take of it into joint positions (metres by default; the
    root and the end point of every bone, named as in the ASF). See :func:`parse_amc`.

    Raises:
        FileNotFoundError: either file is missing.
        ASFError, AMCError: a malformed file (naming the file and line), or an AMC that does not
            fit the ASF (a bone it lacks, a wrong value count, a missing bone in a frame).
    """
    asf = load_asf(asf_path)
    return parse_amc(read_text(amc_path, "AMC"), asf, source=str(amc_path), scale=scale, fps=fps)
