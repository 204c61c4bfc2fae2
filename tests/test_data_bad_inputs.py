"""A corpus of bad inputs for every data reader (BVH, ASF/AMC, npz archives, joint maps, folders
of takes): each case asserts the exception type and the key words of its message (the file, the
line where there is one, and what is wrong). Then deep hierarchies, and truncation/mutation
fuzzing: no reader ever lets a raw exception (IndexError, KeyError, ...) escape."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from symmetrize.data import (
    AMCError,
    ASFError,
    BVHError,
    DataError,
    JointMapError,
    JointMap,
    load_asf_amc,
    load_bvh,
    load_take,
    load_takes,
)
from symmetrize.data.amc import parse_amc
from symmetrize.data.archives import ArchiveError, load_positions_2d, load_positions_3d
from symmetrize.data.asf import parse_asf
from symmetrize.data.bvh import parse_bvh
from tests.test_data_asf_amc import TINY_AMC, TINY_ASF
from tests.test_data_bvh import TWO_JOINTS
from tests.test_data_joint_maps import PREFIXED_MAP

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# -- building the files -----------------------------------------------------------------------

def _pickled_npz(path: Path, **members: object) -> None:
    wrapped = {}
    for key, value in members.items():
        holder = np.empty((), dtype=object)
        holder[()] = value
        wrapped[key] = holder
    with path.open("wb") as f:
        np.savez_compressed(f, **wrapped)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (print, ("this must never run",))


def _good_npz(path: Path) -> None:
    _pickled_npz(path, positions_3d={"S1": {"Walk": np.zeros((4, 17, 3))}})


def _truncated_npz(path: Path) -> None:
    _good_npz(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _chain(depth: int, close: bool = True) -> str:
    """A BVH chain ``j0 -> j1 -> ... `` of ``depth`` joints, each 1 unit along x."""
    lines = ["HIERARCHY", "ROOT j0", "{", "OFFSET 0 0 0", "CHANNELS 3 Xposition Yposition "
             "Zposition"]
    for k in range(1, depth):
        lines += [f"JOINT j{k}", "{", "OFFSET 1 0 0", "CHANNELS 1 Zrotation"]
    lines += ["}"] * (depth if close else depth - 1)
    lines += ["MOTION", "Frames: 1", "Frame Time: 0.01", " ".join(["0"] * (depth + 2))]
    return "\n".join(lines) + "\n"


def _cut(text: str, marker: str, keep: int = 0) -> str:
    """``text`` up to ``marker`` plus ``keep`` of its characters (a file cut short)."""
    return text[: text.index(marker) + keep]


# -- the corpus -----------------------------------------------------------------------------------

BVH = "take.bvh"
Files = dict[str, "str | bytes | Callable[[Path], None]"]


def _read(kind: str, folder: Path) -> object:
    if kind == "bvh":
        return load_bvh(folder / BVH)
    if kind == "amc":
        return load_asf_amc(folder / "s.asf", folder / "s_01.amc")
    if kind == "npz3d":
        return load_positions_3d(folder / "a.npz")
    if kind == "npz2d":
        return load_positions_2d(folder / "a.npz")
    if kind == "map":
        return JointMap.load(folder / "m.toml")
    if kind == "take":
        return load_take(folder / BVH, joint_map=folder / "m.toml")
    return load_takes(folder)


# (id, reader, files, exception, file at fault, line marker, message regex). The line marker is
# the number, text first found on that line, "=text" for a line that is exactly text, or None.
CASES: list[tuple] = [
    # BVH
    ("bvh empty", "bvh", {BVH: ""}, BVHError, BVH, 1, "empty file"),
    ("bvh truncated header", "bvh", {BVH: _cut(TWO_JOINTS, "OFFSET 1 0 0", 10)}, BVHError, BVH,
     "OFFSET 1 0", "unexpected end of file, expected three OFFSET values"),
    ("bvh truncated frames", "bvh", {BVH: _cut(TWO_JOINTS, "1 2 3 0 90")}, BVHError, BVH,
     "Frames", "the header declares 3 frames but the file has 2 frame lines"),
    ("bvh truncated line", "bvh", {BVH: _cut(TWO_JOINTS, "1 2 3 0 90", 7)}, BVHError, BVH,
     "=1 2 3 0", r"frame 2: expected 9 values \(one per channel\), found 4"),
    ("bvh channel count", "bvh",
     {BVH: TWO_JOINTS.replace("CHANNELS 3 Zrotation X", "CHANNELS 4 Zrotation X")}, BVHError,
     BVH, "CHANNELS 4", "CHANNELS declares 4 channels but lists 3"),
    ("bvh channel name", "bvh", {BVH: TWO_JOINTS.replace("Zrotation Xrotation Y", "Zrot "
                                                         "Xrotation Y")}, BVHError, BVH,
     "Zrot ", "unknown channel name 'Zrot'"),
    ("bvh non-numeric", "bvh", {BVH: TWO_JOINTS.replace("1 2 3 0 90", "1 2 x3 0 90")}, BVHError,
     BVH, "x3", r"frame 2, value 3 \(root Zposition\) is 'x3', not a number"),
    ("bvh nan", "bvh", {BVH: TWO_JOINTS.replace("0 0 0 90", "0 0 0 nan")}, BVHError, BVH,
     "0 0 0 nan", r"frame 1, value 4 \(root Zrotation\) is 'nan'; values must be finite"),
    ("bvh inf offset", "bvh", {BVH: TWO_JOINTS.replace("OFFSET 1 0 0", "OFFSET 1 inf 0")},
     BVHError, BVH, "inf", "OFFSET value 2 is 'inf'; values must be finite"),
    ("bvh huge offset", "bvh", {BVH: TWO_JOINTS.replace("OFFSET 1 0 0", "OFFSET 1e400 0 0")},
     BVHError, BVH, "1e400", "OFFSET value 1 is '1e400'; values must be finite"),
    ("bvh frame time", "bvh", {BVH: TWO_JOINTS.replace("Frame Time: 0.5", "Frame Time: inf")},
     BVHError, BVH, "Frame Time", "Frame Time is 'inf'; values must be finite"),
    ("bvh frame sizes", "bvh", {BVH: TWO_JOINTS.replace("1 2 3 0 90", "1 2 3 0 0 90")},
     BVHError, BVH, "1 2 3 0 0 90", "frame 2: expected 9 values .*found 10"),
    ("bvh Frames too many", "bvh", {BVH: TWO_JOINTS.replace("Frames: 3", "Frames: 5")},
     BVHError, BVH, "Frames", "declares 5 frames but the file has 3 frame lines"),
    ("bvh Frames too few", "bvh", {BVH: TWO_JOINTS.replace("Frames: 3", "Frames: 2")},
     BVHError, BVH, "Frames", "declares 2 frames but the file has 3 frame lines"),
    ("bvh Frames negative", "bvh", {BVH: TWO_JOINTS.replace("Frames: 3", "Frames: -1")},
     BVHError, BVH, "Frames", "frame count is '-1', not a whole number"),
    ("bvh binary", "bvh", {BVH: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}, BVHError, BVH, 1,
     "unexpected token"),
    ("bvh deep unclosed", "bvh", {BVH: _chain(900, close=False)}, BVHError, BVH, "MOTION",
     r"missing '\}' closing ROOT 'j0' \(opened at line 2\)"),
    ("bvh missing", "bvh", {}, FileNotFoundError, BVH, None, "no such BVH file"),
    ("bvh folder", "bvh", {BVH: "/"}, DataError, BVH, None, "a folder, not a BVH file"),
    # ASF
    ("asf empty", "amc", {"s.asf": "", "s_01.amc": TINY_AMC}, ASFError, "s.asf", 1,
     "empty file"),
    ("asf bone missing", "amc",
     {"s.asf": TINY_ASF.replace("lthigh lshin", "lthigh lshinbone"), "s_01.amc": TINY_AMC},
     ASFError, "s.asf", "lthigh lshinbone",
     "hierarchy names 'lshinbone', which is not a bone of ':bonedata'"),
    ("asf bone unplaced", "amc",
     {"s.asf": TINY_ASF.replace("    lthigh lshin\n", ""), "s_01.amc": TINY_AMC}, ASFError,
     "s.asf", "name lshin", r"bone 'lshin' is not connected to the root"),
    ("asf cycle", "amc",
     {"s.asf": TINY_ASF.replace("root lthigh rthigh", "root rthigh\n    lshin lthigh"),
      "s_01.amc": TINY_AMC}, ASFError, "s.asf", "name lthigh", "not connected to the root"),
    ("asf two parents", "amc",
     {"s.asf": TINY_ASF.replace("root lthigh rthigh", "root lthigh rthigh lshin"),
      "s_01.amc": TINY_AMC}, ASFError, "s.asf", "lthigh lshin",
     "bone 'lshin' is given a second parent"),
    ("asf truncated", "amc", {"s.asf": _cut(TINY_ASF, "name rthigh"), "s_01.amc": TINY_AMC},
     ASFError, "s.asf", "id 3", r"bone block opened at line \d+ has no 'end'"),
    ("asf direction", "amc",
     {"s.asf": TINY_ASF.replace("direction 1 0 0", "direction 1 0"), "s_01.amc": TINY_AMC},
     ASFError, "s.asf", "direction 1 0", r"direction needs 3 number\(s\), found 2"),
    ("asf nan length", "amc",
     {"s.asf": TINY_ASF.replace("length 2", "length NaN", 1), "s_01.amc": TINY_AMC}, ASFError,
     "s.asf", "length NaN", "length value 1 is 'NaN'; values must be finite"),
    ("asf dof", "amc", {"s.asf": TINY_ASF.replace("dof rx\n", "dof rw\n"), "s_01.amc": TINY_AMC},
     ASFError, "s.asf", "dof rw", "unknown dof 'rw'; dofs are rx ry rz"),
    ("asf no root", "amc",
     {"s.asf": TINY_ASF[: TINY_ASF.index(":root")] + TINY_ASF[TINY_ASF.index(":bonedata"):],
      "s_01.amc": TINY_AMC}, ASFError, "s.asf", None, "no ':root' section"),
    ("asf angle unit", "amc",
     {"s.asf": TINY_ASF.replace("angle deg", "angle grad"), "s_01.amc": TINY_AMC}, ASFError,
     "s.asf", "angle grad", "':units angle' must be 'deg' or 'rad', got 'grad'"),
    ("asf missing", "amc", {"s_01.amc": TINY_AMC}, FileNotFoundError, "s.asf", None,
     "no such ASF file"),
    # AMC
    ("amc truncated frame", "amc", {"s.asf": TINY_ASF, "s_01.amc": _cut(TINY_AMC, "lthigh 90")},
     AMCError, "s_01.amc", "=4", r"frame 4 gives no values for lthigh, lshin .*truncated"),
    ("amc truncated line", "amc", {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC[:-3]}, AMCError,
     "s_01.amc", "=lshin", r"frame 4: lshin needs 1 value\(s\) \(rx\), found 0"),
    ("amc bone missing from asf", "amc",
     {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("lshin 90", "lknee 90")}, AMCError,
     "s_01.amc", "lknee", "frame 2: 'lknee' is not a bone of .*s.asf"),
    ("amc bone without dof", "amc",
     {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("lshin 90", "rthigh 90")}, AMCError,
     "s_01.amc", "rthigh", r"frame 2: 'rthigh' has no dof"),
    ("amc value count", "amc",
     {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("lthigh 0 0 90", "lthigh 0 90")},
     AMCError, "s_01.amc", "lthigh 0 90", r"frame 2: lthigh needs 3 value\(s\) \(rx ry rz\), "
                                          r"found 2"),
    ("amc non-numeric", "amc",
     {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("root 1 2 3", "root 1 two 3")}, AMCError,
     "s_01.amc", "two", "root ty is 'two', not a number"),
    ("amc nan", "amc", {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("lshin 90", "lshin nan")},
     AMCError, "s_01.amc", "lshin nan", "lshin rx is 'nan'; values must be finite"),
    ("amc inf", "amc",
     {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("root 1 2 3", "root 1 -inf 3")}, AMCError,
     "s_01.amc", "-inf", "root ty is '-inf'; values must be finite"),
    ("amc frame jump", "amc", {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("\n3\n", "\n5\n")},
     AMCError, "s_01.amc", "=5", "frame number 5 follows frame 2"),
    ("amc bone twice", "amc",
     {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("lshin 90", "lshin 90\nlshin 45")},
     AMCError, "s_01.amc", "lshin 45", "frame 2 gives 'lshin' twice"),
    ("amc no frame number", "amc", {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("\n1\n", "\n")},
     AMCError, "s_01.amc", "root 0 0 0", "expected a frame number before 'root'"),
    ("amc late header", "amc",
     {"s.asf": TINY_ASF, "s_01.amc": TINY_AMC.replace("\n2\n", "\n:RADIANS\n2\n")}, AMCError,
     "s_01.amc", ":RADIANS", "the header holds only"),
    ("amc empty", "amc", {"s.asf": TINY_ASF, "s_01.amc": "\n"}, AMCError, "s_01.amc", 1,
     "empty file"),
    ("amc no frames", "amc", {"s.asf": TINY_ASF, "s_01.amc": ":DEGREES\n"}, AMCError,
     "s_01.amc", 1, "no frames"),
    ("amc missing", "amc", {"s.asf": TINY_ASF}, FileNotFoundError, "s_01.amc", None,
     "no such AMC file"),
    # npz archives
    ("npz empty", "npz3d", {"a.npz": b""}, ArchiveError, "a.npz", None, "not an .npz archive"),
    ("npz truncated", "npz3d", {"a.npz": _truncated_npz}, ArchiveError, "a.npz", None,
     "not an .npz archive|damaged"),
    ("npz list", "npz3d", {"a.npz": lambda p: _pickled_npz(p, positions_3d=[1, 2])},
     ArchiveError, "a.npz", None, "expected a dict of subjects, got list"),
    ("npz not arrays", "npz3d",
     {"a.npz": lambda p: _pickled_npz(p, positions_3d={"S1": {"Walk": "frames"}})},
     ArchiveError, "a.npz", None, r"subject 'S1', action 'Walk': expected an array"),
    ("npz nan", "npz3d",
     {"a.npz": lambda p: _pickled_npz(p, positions_3d={"S1": {"W": np.full((3, 17, 3), np.nan)}})},
     ArchiveError, "a.npz", None, r"NaN/inf value\(s\) in 3 frame\(s\), the first at frame 0"),
    ("npz frame sizes", "npz3d",
     {"a.npz": lambda p: _pickled_npz(p, positions_3d={"S1": {"A": np.zeros((3, 17, 3)),
                                                              "B": np.zeros((3, 16, 3))}})},
     ArchiveError, "a.npz", None, r"action 'B': 16 joints, but .*action 'A' has 17"),
    ("npz exploit", "npz3d",
     {"a.npz": lambda p: _pickled_npz(p, positions_3d={"S1": {"A": _Exploit()}})},
     ArchiveError, "a.npz", None, "refusing to load it"),
    ("npz 2d cameras", "npz2d",
     {"a.npz": lambda p: _pickled_npz(p, positions_2d={"S1": {"A": np.zeros((2, 17, 2))}},
                                      metadata={})},
     ArchiveError, "a.npz", None, r"expected a list of arrays \(one per camera\)"),
    ("npz missing", "npz3d", {}, FileNotFoundError, "a.npz", None, "no such file"),
    # joint maps
    ("map bad toml", "map", {"m.toml": PREFIXED_MAP.replace("[joints]", "[joints")},
     JointMapError, "m.toml", "[joints", "not valid TOML"),
    ("map breaks the mirror", "map",
     {"m.toml": PREFIXED_MAP.replace('left_wrist = "mixamorig:LeftHand"',
                                    'left_wrist = "mixamorig:LeftForeArm"')},
     JointMapError, "m.toml", "right_wrist",
     r"breaks the left/right mirror: 'right_wrist' use\(s\) 'mixamorig:RightHand', which has "
     r"no mirror twin"),
    ("map absent joint", "take", {"m.toml": PREFIXED_MAP, BVH: TWO_JOINTS}, JointMapError, BVH,
     None, r"no joint map fits its joints; the closest, the given map 'mine'.*misses "
           r"\['mixamorig:Head'"),
    ("map missing", "take", {BVH: TWO_JOINTS}, FileNotFoundError, "m.toml", None,
     "no such file"),
    # folders
    ("folder empty", "folder", {"notes.txt": "x"}, DataError, "", None,
     "holds no .bvh or .amc takes"),
    ("folder amc without asf", "folder", {"07_01.amc": TINY_AMC}, DataError, "07_01.amc", None,
     "no ASF skeleton 07.asf beside this AMC take"),
    ("folder bad take", "folder", {"07_01.bvh": TWO_JOINTS.replace("Frames: 3", "Frames: 9")},
     BVHError, "07_01.bvh", "Frames", "declares 9 frames"),
]


def _expected_line(text: str, marker: int | str | None) -> int | None:
    if marker is None or isinstance(marker, int):
        return marker
    lines = text.splitlines()
    if marker.startswith("="):
        return lines.index(marker[1:]) + 1
    return next(i for i, line in enumerate(lines, 1) if marker in line)


@pytest.mark.parametrize(("kind", "files", "error", "culprit", "marker", "message"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path: Path, kind: str, files: Files, error: type, culprit: str,
                   marker: int | str | None, message: str) -> None:
    for name, content in files.items():
        path = tmp_path / name
        if content == "/":
            path.mkdir()
        elif callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    with pytest.raises(error, match=message) as info:
        _read(kind, tmp_path)
    text = str(info.value)
    assert str(tmp_path / culprit) in text, text  # names the file (or folder) at fault
    content = files.get(culprit)
    line = _expected_line(content, marker) if isinstance(content, str) else marker
    if isinstance(info.value, DataError) and hasattr(info.value, "line"):
        assert info.value.line == line, text
        assert text.startswith(f"{tmp_path / culprit}:{line}: " if line else
                               f"{tmp_path / culprit}: "), text
    assert isinstance(info.value, (DataError, FileNotFoundError))


@pytest.mark.skipif(not (DATA / "cmu-formats" / "01_01.amc").is_file(),
                    reason=f"CMU ASF/AMC not found under {DATA}")
def test_a_truncated_cmu_amc_names_its_last_frame(tmp_path: Path) -> None:
    lines = (DATA / "cmu-formats" / "01_01.amc").read_text().splitlines()[:1000]
    cut = tmp_path / "01_01.amc"
    cut.write_text("\n".join(lines) + "\n")
    last = max(i for i, line in enumerate(lines, 1) if line.strip().isdigit())
    with pytest.raises(AMCError, match=rf"01_01.amc:{last}: frame {lines[last - 1]} gives no "
                                       r"values for .*the file may be truncated"):
        load_asf_amc(DATA / "cmu-formats" / "01.asf", cut)


# -- deep hierarchies -----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [900, 5000])
def test_deep_hierarchies_parse_without_recursion(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.bvh"
    path.write_text(_chain(depth))
    motion = load_bvh(path)
    assert len(motion.names) == depth and motion.parents[-1] == depth - 2
    np.testing.assert_allclose(motion.positions[0, :, 0], np.arange(depth), atol=1e-9)


def test_deep_asf_hierarchy(tmp_path: Path) -> None:
    depth = 2000
    bones = "".join(f"  begin\n    name b{k}\n    direction 1 0 0\n    length 1\n"
                    f"    axis 0 0 0 XYZ\n    dof rz\n  end\n" for k in range(depth))
    chain = "root b0\n" + "".join(f"b{k} b{k + 1}\n" for k in range(depth - 1))
    asf = parse_asf(":units\n  length 1\n:root\n  order TX TY TZ RX RY RZ\n  axis XYZ\n"
                    f":bonedata\n{bones}:hierarchy\nbegin\n{chain}end\n")
    frame = "1\nroot 0 0 0 0 0 0\n" + "".join(f"b{k} 0\n" for k in range(depth))
    motion = parse_amc(frame, asf, scale=1.0)
    np.testing.assert_allclose(motion.positions[0, :, 0], np.arange(depth + 1), atol=1e-9)


# -- fuzzing: only documented errors ------------------------------------------------------------

_TOKENS = ["", "nan", "inf", "-1", "1e999", "x", "{", "}", "JOINT", "End", "MOTION", "begin",
           "end", ":root", ":hierarchy", "(", "root", "lthigh", "7", "0", "=", "[joints]", '"']


def _mutations(text: str, seed: int, count: int) -> list[str]:
    """``text`` cut at every ``len/120``-th character, and ``count`` copies with one token
    replaced by a token drawn from a list of troublemakers (seeded)."""
    rng = np.random.default_rng(seed)
    step = max(1, len(text) // 120)
    out = [text[:k] for k in range(0, len(text), step)]
    tokens = re.split(r"(\s+)", text)
    for _ in range(count):
        copy = list(tokens)
        spot = int(rng.integers(0, len(copy)))
        copy[spot] = _TOKENS[int(rng.integers(0, len(_TOKENS)))]
        out.append("".join(copy))
    return out


def _only_documented(parse: Callable[[str], object], texts: list[str], source: str) -> int:
    failures = 0
    for text in texts:
        try:
            parse(text)
        except DataError as err:
            assert str(err).startswith(source), str(err)
            failures += 1
    return failures


def test_fuzzed_files_raise_only_documented_errors() -> None:
    asf = parse_asf(TINY_ASF)
    readers = [
        (TWO_JOINTS, lambda t: parse_bvh(t, source="f.bvh"), "f.bvh"),
        (TINY_ASF, lambda t: parse_asf(t, source="f.asf"), "f.asf"),
        (TINY_AMC, lambda t: parse_amc(t, asf, source="f.amc"), "f.amc"),
        (PREFIXED_MAP, lambda t: JointMap.parse(t, source="f.toml"), "f.toml"),
    ]
    for seed, (text, parse, source) in enumerate(readers):
        texts = _mutations(text, seed, 300)
        failures = _only_documented(parse, texts, source)
        assert failures > len(texts) // 4, source  # the corpus does hit errors
