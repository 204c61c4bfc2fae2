"""Read BVH motion capture into joint positions: hierarchy, channels, motion block and forward
kinematics, with errors that name the file and line.

A BVH file is a joint tree (``ROOT``/``JOINT``/``End Site``, each with an ``OFFSET`` from its
parent and ``CHANNELS``) followed by ``MOTION``: a frame count, a frame time and one line of
channel values per frame. Rotation channels (degrees) compose intrinsically in the order listed,
``R = R_first @ R_second @ R_third``; position channels (on any joint) translate the joint in its
parent's frame, so ``pos = parent_pos + parent_R @ (offset + translation)``. The hierarchy is read
without recursion, so any nesting depth works.

:func:`load_cmu` reads the CMU takes (cgspeed's 31-joint conversion) in metres, without the
synthetic T-pose of frame 0. :func:`mirror_motion` is the left/right mirror of a motion.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from os import PathLike

import numpy as np

from symmetrize.data.errors import BVHError, parse_number, read_text
from symmetrize.data.kinematics import axis_rotation
from symmetrize.data.motion import CMU_UNIT_METRES, Motion, drop_empty_lead, mirror_motion

__all__ = [
    "CMU_UNIT_METRES",
    "BVHError",
    "Motion",
    "load_bvh",
    "load_cmu",
    "mirror_motion",
    "parse_bvh",
]

_TOKEN = re.compile(r"[{}]|[^\s{}]+")
_CHANNELS = {f"{axis}{kind}": (kind, i) for i, axis in enumerate("xyz")
             for kind in ("position", "rotation")}
_CHANNEL_NAMES = "Xposition Yposition Zposition Xrotation Yrotation Zrotation"


# -- hierarchy -------------------------------------------------------------------------------

@dataclass
class _Joint:
    name: str
    parent: int
    line: int
    offset: tuple[float, float, float] | None = None
    channels: tuple[tuple[str, int], ...] = ()  # (kind, axis) in file order
    channel_names: tuple[str, ...] | None = None  # None: no CHANNELS line (yet)
    end_site: bool = False
    label: str = ""


def _number(source: str, token: str, line: int, what: str) -> float:
    return parse_number(token, BVHError, source, line, what)


class _HierarchyParser:
    """The header tokens ``(text, line)`` up to ``MOTION`` into joints, parents first. Open
    joints live on an explicit stack (no recursion: any depth)."""

    def __init__(self, tokens: list[tuple[str, int]], source: str, last_line: int) -> None:
        self.tokens = tokens
        self.source = source
        self.last_line = last_line
        self.pos = 0
        self.joints: list[_Joint] = []
        self.names: set[str] = set()
        self.open: list[int] = []  # indices of the joints whose '}' is still to come

    def error(self, line: int, message: str) -> BVHError:
        return BVHError(self.source, line, message)

    def peek(self) -> tuple[str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str) -> tuple[str, int]:
        tok = self.peek()
        if tok is None:
            raise self.error(self.last_line, f"unexpected end of file, expected {expected}")
        self.pos += 1
        return tok

    def rest_of_line(self, line: int) -> list[str]:
        out = []
        while (tok := self.peek()) is not None and tok[1] == line and tok[0] not in "{}":
            out.append(tok[0])
            self.pos += 1
        return out

    def parse(self) -> list[_Joint]:
        tok, line = self.take("HIERARCHY")
        if tok.upper() != "HIERARCHY":
            raise self.error(line, f"unexpected token {tok!r}; a BVH file starts with HIERARCHY")
        while (nxt := self.peek()) is not None and nxt[0].upper() == "ROOT":
            self.pos += 1
            self.start_joint(-1, "ROOT", nxt[1])
            self.bodies()
        nxt = self.peek()
        if nxt is None:
            what = "ROOT" if not self.joints else "MOTION"
            raise self.error(self.last_line, f"unexpected end of file, expected {what}")
        if nxt[0].upper() != "MOTION" or not self.joints:
            expected = "ROOT or MOTION" if self.joints else "ROOT"
            raise self.error(nxt[1], f"unexpected token {nxt[0]!r}, expected {expected}")
        return self.joints

    def start_joint(self, parent: int, kind: str, line: int) -> None:
        """Read a joint's name and its '{', and open it."""
        words = self.rest_of_line(line)
        if kind == "End Site":
            if not words or words[0].upper() != "SITE":
                raise self.error(line, "unexpected token 'End', expected 'End Site'")
            name = f"{self.joints[parent].name}_end"
        elif not words:
            raise self.error(line, f"{kind} without a joint name")
        else:
            name = " ".join(words)
        if name in self.names:
            raise self.error(line, f"duplicate joint name {name!r}; joint names must be unique")
        label = f"{kind} {name!r}" if kind != "End Site" else f"End Site of {name[:-4]!r}"
        joint = _Joint(name, parent, line, end_site=kind == "End Site", label=label)
        self.names.add(name)
        self.joints.append(joint)
        tok, tok_line = self.take(f"'{{' after {label}")
        if tok != "{":
            raise self.error(tok_line, f"missing '{{' after {label}, found {tok!r}")
        self.open.append(len(self.joints) - 1)

    def bodies(self) -> None:
        """The contents of the open joints, until every one is closed."""
        while self.open:
            index = self.open[-1]
            joint = self.joints[index]
            nxt = self.peek()
            if nxt is None or nxt[0].upper() == "MOTION":
                at = self.last_line if nxt is None else nxt[1]
                raise self.error(at, f"missing '}}' closing {joint.label} (opened at line "
                                     f"{joint.line})")
            tok, line = nxt
            word = tok.upper()
            self.pos += 1
            if tok == "}":
                self.open.pop()
                if joint.offset is None:
                    raise self.error(joint.line, f"{joint.label} has no OFFSET")
            elif word == "OFFSET" and joint.offset is None:
                joint.offset = self.offset()
            elif word == "CHANNELS" and not joint.end_site and joint.channel_names is None:
                self.channels(joint, line)
            elif word == "JOINT" and not joint.end_site:
                self.start_joint(index, "JOINT", line)
            elif word == "END" and not joint.end_site:
                self.start_joint(index, "End Site", line)
            else:
                raise self.error(line, f"unexpected token {tok!r} in {joint.label}")

    def offset(self) -> tuple[float, float, float]:
        values = []
        for k in range(3):
            tok, tok_line = self.take("three OFFSET values")
            values.append(_number(self.source, tok, tok_line, f"OFFSET value {k + 1}"))
        return values[0], values[1], values[2]

    def channels(self, joint: _Joint, line: int) -> None:
        tok, tok_line = self.take("a channel count after CHANNELS")
        if not tok.isdigit():
            raise self.error(tok_line, f"CHANNELS count is {tok!r}, not a whole number")
        names = self.rest_of_line(line)
        if len(names) != int(tok):
            raise self.error(line, f"CHANNELS declares {int(tok)} channels but lists {len(names)}")
        specs = []
        for name in names:
            spec = _CHANNELS.get(name.lower())
            if spec is None:
                raise self.error(line, f"unknown channel name {name!r}; channels are "
                                       f"{_CHANNEL_NAMES}")
            if spec in specs:
                raise self.error(line, f"channel {name!r} listed twice")
            specs.append(spec)
        joint.channels = tuple(specs)
        joint.channel_names = tuple(names)


# -- motion block ----------------------------------------------------------------------------

_FRAMES = re.compile(r"frames\s*:\s*(\S+)", re.IGNORECASE)
_FRAME_TIME = re.compile(r"frame\s+time\s*:\s*(\S+)", re.IGNORECASE)


def _header_value(source: str, lines: list[str], start: int, pattern: re.Pattern[str],
                  what: str) -> tuple[str, int]:
    """The value of the first non-blank line from ``start`` matching ``pattern``, and the index
    of that line."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines):
        raise BVHError(source, max(len(lines), 1), f"unexpected end of file, expected '{what}'")
    match = pattern.fullmatch(lines[i].strip())
    if match is None:
        raise BVHError(source, i + 1, f"expected '{what}', found {lines[i].strip()!r}")
    return match.group(1), i


def _frame_rate(frame_time: float) -> float:
    """Frames per second; a rate within 0.01 % of a whole number is snapped to it (files write
    the frame time with few digits, e.g. ``.0083333`` for 120 fps)."""
    fps = 1.0 / frame_time
    whole = round(fps)
    return float(whole) if whole > 0 and abs(fps - whole) <= 1e-4 * whole else fps


def _parse_frames(source: str, lines: list[str], start: int, n_frames: int, frames_line: int,
                  labels: list[str]) -> np.ndarray:
    """The ``(n_frames, len(labels))`` channel values of the lines from index ``start``."""
    n_channels = len(labels)
    rows = [(i + 1, toks) for i, line in enumerate(lines[start:], start) if (toks := line.split())]
    for frame, (line, toks) in enumerate(rows):
        if len(toks) != n_channels:
            raise BVHError(source, line, f"frame {frame}: expected {n_channels} values (one per "
                                         f"channel), found {len(toks)}")
    if len(rows) != n_frames and not (n_channels == 0 and not rows):
        raise BVHError(source, frames_line, f"the header declares {n_frames} frames but the file "
                                            f"has {len(rows)} frame lines")
    if n_channels == 0:
        return np.zeros((n_frames, 0))
    flat = list(itertools.chain.from_iterable(toks for _, toks in rows))
    try:
        if any("_" in line for line in lines[start:]):  # numpy would read "1_0" as 10
            raise ValueError("an underscore")
        values = np.array(flat, dtype=np.float64).reshape(n_frames, n_channels)
    except ValueError:
        for frame, (line, toks) in enumerate(rows):
            for col, tok in enumerate(toks):
                _number(source, tok, line, f"frame {frame}, value {col + 1} ({labels[col]})")
        raise  # pragma: no cover - every token parses one by one but not together
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        frame, col = divmod(int(bad[0]), n_channels)
        line, toks = rows[frame]
        raise BVHError(source, line, f"frame {frame}, value {col + 1} ({labels[col]}) is "
                                     f"{toks[col]!r}; values must be finite")
    return values


# -- forward kinematics ----------------------------------------------------------------------

def _local_transform(joint: _Joint, values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The joint's local rotation ``(T, 3, 3)`` (``None``: identity) and translation ``(T, 3)``
    (its offset plus any position channels), from its columns of ``values``."""
    rot = None
    trans = np.tile(np.asarray(joint.offset, dtype=np.float64), (values.shape[0], 1))
    for col, (kind, axis) in enumerate(joint.channels):
        if kind == "position":
            trans[:, axis] += values[:, col]
        else:
            step = axis_rotation(axis, np.radians(values[:, col]))
            rot = step if rot is None else rot @ step
    return rot, trans


def _forward_kinematics(joints: list[_Joint], values: np.ndarray) -> np.ndarray:
    """``(T, J, 3)`` global joint positions; parents precede their children in ``joints``."""
    n_frames = values.shape[0]
    pos = np.empty((n_frames, len(joints), 3))
    glob: list[np.ndarray | None] = []
    col = 0
    for j, joint in enumerate(joints):
        rot, trans = _local_transform(joint, values[:, col:col + len(joint.channels)])
        col += len(joint.channels)
        if joint.parent < 0:
            pos[:, j] = trans
            glob.append(rot)
            continue
        parent_rot = glob[joint.parent]
        moved = trans if parent_rot is None else np.einsum("tij,tj->ti", parent_rot, trans)
        pos[:, j] = pos[:, joint.parent] + moved
        glob.append(rot if parent_rot is None else parent_rot if rot is None else parent_rot @ rot)
    return pos


# -- entry points ----------------------------------------------------------------------------

def _header_tokens(lines: list[str]) -> tuple[list[tuple[str, int]], int | None]:
    """Tokens ``(text, line)`` up to and including ``MOTION``, and the index of its line."""
    tokens: list[tuple[str, int]] = []
    for i, line in enumerate(lines):
        toks = _TOKEN.findall(line)
        if toks and toks[0].upper() == "MOTION":
            tokens.append((toks[0], i + 1))
            return tokens, i
        tokens.extend((tok, i + 1) for tok in toks)
    return tokens, None


def parse_bvh(text: str, *, source: str = "<string>", scale: float | None = None,
              drop_first: int = 0, include_end_sites: bool = False) -> Motion:
    """Parse BVH text into a :class:`Motion` of global joint positions.

    ``scale`` multiplies positions and offsets (e.g. metres per file unit); ``drop_first``
    frames are dropped from the start; End Sites become joints ``<parent>_end`` only with
    ``include_end_sites``. Raises :class:`BVHError` naming ``source`` and the line at fault.
    """
    lines = text.removeprefix("\ufeff").splitlines()
    if not any(line.strip() for line in lines):
        raise BVHError(source, 1, "empty file: expected a BVH HIERARCHY section")
    tokens, motion_at = _header_tokens(lines)
    parser = _HierarchyParser(tokens, source, len(lines))
    joints = parser.parse()
    if motion_at is None:  # parse() stopped at a MOTION that does not begin its line
        raise BVHError(source, tokens[parser.pos][1], "MOTION must begin its own line (with "
                                                      "'Frames:' on the next)")
    count, frames_at = _header_value(source, lines, motion_at + 1, _FRAMES, "Frames: <count>")
    if not count.isdigit():
        raise BVHError(source, frames_at + 1, f"frame count is {count!r}, not a whole number")
    step, time_at = _header_value(source, lines, frames_at + 1, _FRAME_TIME,
                                  "Frame Time: <seconds>")
    frame_time = _number(source, step, time_at + 1, "Frame Time")
    if not (frame_time > 0 and math.isfinite(1.0 / frame_time)):
        raise BVHError(source, time_at + 1, f"Frame Time is {step!r}; it must be positive")
    labels = [f"{j.name} {c}" for j in joints for c in j.channel_names or ()]
    values = _parse_frames(source, lines, time_at + 1, int(count), frames_at + 1, labels)
    positions = _forward_kinematics(joints, values)
    offsets = np.array([j.offset for j in joints], dtype=np.float64)
    keep = [i for i, j in enumerate(joints) if include_end_sites or not j.end_site]
    new_index = {old: new for new, old in enumerate(keep)}  # End Sites are leaves
    parents = tuple(-1 if joints[i].parent < 0 else new_index[joints[i].parent] for i in keep)
    positions, offsets = positions[:, keep], offsets[keep]
    if scale is not None:
        positions, offsets = positions * scale, offsets * scale
    if not 0 <= drop_first <= positions.shape[0]:
        raise ValueError(f"drop_first={drop_first} but {source} has {positions.shape[0]} frames")
    return Motion(positions[drop_first:], tuple(joints[i].name for i in keep), parents,
                  _frame_rate(frame_time), offsets, source)


def load_bvh(path: str | PathLike[str], *, scale: float | None = None, drop_first: int = 0,
             include_end_sites: bool = False) -> Motion:
    """Read a BVH file; see :func:`parse_bvh` for the options."""
    text = read_text(path, "BVH")
    return parse_bvh(text, source=str(path), scale=scale, drop_first=drop_first,
                     include_end_sites=include_end_sites)


def load_cmu(path: str | PathLike[str], *, drop_zero_frames: bool = True) -> Motion:
    """Read a CMU take (cgspeed BVH) in metres, without its synthetic T-pose (frame 0).

    With ``drop_zero_frames`` the leading frames whose root sits exactly at its rest offset (all
    root translations zero: an empty capture frame, as the first motion frame of 07_12) go too.
    """
    motion = load_bvh(path, scale=CMU_UNIT_METRES, drop_first=1)
    return drop_empty_lead(motion) if drop_zero_frames else motion
