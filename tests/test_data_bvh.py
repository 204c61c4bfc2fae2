"""BVH reader: hand-computed forward kinematics, every error naming its line (the CMU takes:
tests/test_data_cmu.py)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from symmetrize.data.bvh import (
    BVHError,
    Motion,
    load_bvh,
    mirror_motion,
    parse_bvh,
)

CMU_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu"

# -- tiny hand-written files -------------------------------------------------------------------

TWO_JOINTS = """\
HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT child
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 2 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.5
0 0 0 0 0 0 0 0 0
0 0 0 90 0 0 0 0 0
1 2 3 0 90 0 90 0 0
"""


def _line_of(text: str, marker: str) -> int:
    """1-based number of the first line of ``text`` containing ``marker``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_two_joints_forward_kinematics() -> None:
    motion = parse_bvh(TWO_JOINTS)
    assert motion.names == ("root", "child")
    assert motion.parents == (-1, 0)
    assert motion.fps == 2.0 and len(motion) == 3 and motion.source == "<string>"
    expected = [
        [[0, 0, 0], [1, 0, 0]],  # rest
        [[0, 0, 0], [0, 1, 0]],  # root turned 90 degrees about z: (1,0,0) -> (0,1,0)
        [[1, 2, 3], [1, 2, 2]],  # root moved, turned 90 about y: (1,0,0) -> (0,0,-1)
    ]
    np.testing.assert_allclose(motion.positions, expected, atol=1e-12)
    np.testing.assert_array_equal(motion.offsets, [[0, 0, 0], [1, 0, 0]])
    assert motion.positions.dtype == np.float64 and not motion.positions.flags.writeable


def test_end_sites_and_scale() -> None:
    motion = parse_bvh(TWO_JOINTS, include_end_sites=True, scale=2.0, drop_first=1)
    assert motion.names == ("root", "child", "child_end") and motion.parents == (-1, 0, 1)
    # frame 1: child turned by the root (z 90), End Site offset (0,2,0) -> (-2,0,0) from it
    np.testing.assert_allclose(motion.positions[0], 2 * np.array([[0, 0, 0], [0, 1, 0],
                                                                  [-2, 1, 0]]), atol=1e-12)
    # frame 2: child's own z 90 then the root's y 90: (0,2,0) -> (-2,0,0) -> (0,0,2)
    np.testing.assert_allclose(motion.positions[1, 2], 2 * np.array([1, 2, 4]), atol=1e-12)
    np.testing.assert_array_equal(motion.offsets[2], [0, 4, 0])


def _chain(order: str, values: str) -> str:
    return f"""HIERARCHY
ROOT root
{{
  OFFSET 0 0 0
  CHANNELS 3 {order}
  JOINT tip
  {{
    OFFSET 1 0 0
    CHANNELS 0
  }}
}}
MOTION
Frames: 1
Frame Time: .0083333
{values}
"""


@pytest.mark.parametrize(("order", "values", "tip"), [
    ("Xrotation Yrotation Zrotation", "90 90 0", [0, 1, 0]),  # Rx @ Ry: (1,0,0)->(0,0,-1)->(0,1,0)
    ("Yrotation Xrotation Zrotation", "90 90 0", [0, 0, -1]),  # Ry @ Rx: (1,0,0) -> (0,0,-1)
    ("Zrotation Yrotation Xrotation", "90 0 90", [0, 1, 0]),  # Rz @ Rx: x fixed, then z turns it
    ("Zrotation Xrotation Yrotation", "0 90 90", [0, 1, 0]),  # Rx @ Ry: as the first row
    ("Xrotation Zrotation Yrotation", "0 90 0", [0, 1, 0]),  # Rz alone
])
def test_rotation_order_is_intrinsic_in_listed_order(order: str, values: str,
                                                     tip: list[float]) -> None:
    motion = parse_bvh(_chain(order, values))
    assert motion.fps == 120.0
    np.testing.assert_allclose(motion.positions[0, 1], tip, atol=1e-12)


THREE_JOINTS = """\
HIERARCHY
ROOT root
{
\tOFFSET 0.5 0 0
\tCHANNELS 4 Zrotation Xposition Yposition Zposition
\tJOINT left_arm
\t{
\t\tOFFSET 1 0 0
\t\tCHANNELS 4 Zrotation Yposition Xposition Zposition
\t\tJOINT hand
\t\t{
\t\t\tOFFSET 1 0 0
\t\t\tCHANNELS 1 Xrotation
\t\t\tEnd Site
\t\t\t{
\t\t\t\tOFFSET 0 1 0
\t\t\t}
\t\t}
\t}
\tJOINT right_arm
\t{
\t\tOFFSET -1 0 0
\t\tCHANNELS 0
\t}
}
MOTION
Frames: 2
Frame Time: 0.01
0 0 0 0   0 0 0 0   0
90 -0.5 0 0   90 0.5 1 0   0
"""


def test_positions_on_a_child_joint_and_remapped_parents() -> None:
    motion = parse_bvh(THREE_JOINTS, source="three.bvh")
    assert motion.names == ("root", "left_arm", "hand", "right_arm")
    assert motion.parents == (-1, 0, 1, 0)  # the End Site before right_arm is gone
    np.testing.assert_allclose(motion.positions[0], [[0.5, 0, 0], [1.5, 0, 0], [2.5, 0, 0],
                                                     [-0.5, 0, 0]], atol=1e-12)
    # root at offset + (-0.5,0,0) = 0, turned z 90; left_arm's local (1,0,0)+(1,0.5,0) = (2,0.5,0)
    # turns to (-0.5,2,0); its own z 90 makes z 180, so hand's (1,0,0) goes to (-1,0,0).
    np.testing.assert_allclose(motion.positions[1], [[0, 0, 0], [-0.5, 2, 0], [-1.5, 2, 0],
                                                     [0, -1, 0]], atol=1e-12)
    assert motion.skeleton.pairs == ((1, 3),)
    with_ends = parse_bvh(THREE_JOINTS, include_end_sites=True)
    assert with_ends.names == ("root", "left_arm", "hand", "hand_end", "right_arm")
    assert with_ends.parents == (-1, 0, 1, 2, 0)


def test_motion_helpers_and_mirror() -> None:
    motion = parse_bvh(THREE_JOINTS)
    assert len(motion.select(slice(1, None))) == 1
    assert len(motion.select([1, 0, 1])) == 3 and len(motion.select(0)) == 1
    np.testing.assert_array_equal(motion.select(np.array([False, True])).positions,
                                  motion.positions[1:])
    mirrored = mirror_motion(motion)
    np.testing.assert_array_equal(mirrored.positions[:, 1], motion.positions[:, 3] * [-1, 1, 1])
    np.testing.assert_array_equal(mirrored.positions[:, 0], motion.positions[:, 0] * [-1, 1, 1])
    np.testing.assert_array_equal(mirror_motion(mirrored).positions, motion.positions)
    np.testing.assert_array_equal(mirror_motion(motion, axis=2).offsets[3], [1, 0, 0])
    with pytest.raises(ValueError, match="axis"):
        mirror_motion(motion, axis=3)
    with pytest.raises(ValueError, match="joints"):
        Motion(np.zeros((2, 3, 3)), ("a", "b"), (-1, 0), 30.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="drop_first"):
        parse_bvh(THREE_JOINTS, drop_first=3)


def test_crlf_blank_lines_and_braces_on_the_name_line() -> None:
    text = "HIERARCHY\r\nROOT hips {\r\n OFFSET 0 0 0 CHANNELS 1 Yposition }\r\n\r\nMOTION\r\n" \
           "Frames: 2\r\nFrame Time: 0.04\r\n1.5\r\n\r\n-2\r\n\r\n"
    motion = parse_bvh(text)
    assert motion.fps == 25.0
    np.testing.assert_array_equal(motion.positions[:, 0, 1], [1.5, -2])


# -- errors --------------------------------------------------------------------------------------

ERRORS = [
    ("empty", "", "", "empty file"),
    ("blank", "  \n\n", "", "empty file"),
    ("no HIERARCHY", TWO_JOINTS.replace("HIERARCHY", "HIERARCHIE"), "HIERARCHIE",
     "unexpected token 'HIERARCHIE'"),
    ("unexpected token", TWO_JOINTS.replace("    End Site", "    BONE x"), "BONE",
     "unexpected token 'BONE'"),
    ("two OFFSETs", TWO_JOINTS.replace("OFFSET 1 0 0", "OFFSET 1 0 0\n OFFSET 1.0 0 0"),
     "OFFSET 1.0", "unexpected token 'OFFSET'"),
    ("two CHANNELS", TWO_JOINTS.replace("Xrotation Yrotation\n", "Xrotation Yrotation\n CHANNELS 0\n"),
     "CHANNELS 0", "unexpected token 'CHANNELS' in JOINT 'child'"),
    ("token after root", TWO_JOINTS.replace("MOTION", "}\nMOTION"), 16,
     "unexpected token '}', expected ROOT or MOTION"),
    ("missing {", TWO_JOINTS.replace("JOINT child\n  {", "JOINT child"), "OFFSET 1 0 0",
     "missing '{' after JOINT 'child'"),
    ("missing }", TWO_JOINTS.replace("  }\n}\nMOTION", "  }\nMOTION"), "MOTION",
     "missing '}' closing ROOT 'root' (opened at line 2)"),
    ("no MOTION", TWO_JOINTS.split("MOTION")[0], 15, "unexpected end of file, expected MOTION"),
    ("truncated", "HIERARCHY\nROOT a\n{\n  OFFSET 0 0", "OFFSET", "three OFFSET values"),
    ("unknown channel", TWO_JOINTS.replace("Zrotation Xrotation Yrotation", "Zrotation "
                                           "Wrotation Yrotation"), "Wrotation",
     "unknown channel name 'Wrotation'"),
    ("channel list", TWO_JOINTS.replace("CHANNELS 3 Zrotation X", "CHANNELS 4 Zrotation X"),
     "CHANNELS 4", "declares 4 channels but lists 3"),
    ("repeated channel", TWO_JOINTS.replace("Xrotation Yrotation\n", "Xrotation Xrotation\n"),
     "Xrotation Xrotation", "listed twice"),
    ("offset not a number", TWO_JOINTS.replace("OFFSET 1 0 0", "OFFSET 1,5 0 0"), "1,5",
     "OFFSET value 1 is '1,5', not a number"),
    ("offset nan", TWO_JOINTS.replace("OFFSET 1 0 0", "OFFSET 1 nan 0"), "nan",
     "OFFSET value 2 is 'nan'; values must be finite"),
    ("frame too short", TWO_JOINTS.replace("0 0 0 90 0 0 0 0 0", "0 0 0 90 0 0 0 0"), "0 0 0 90",
     "frame 1: expected 9 values (one per channel), found 8"),
    ("frame too long", TWO_JOINTS.replace("1 2 3 0 90", "1 2 3 4 0 90"), "1 2 3 4",
     "frame 2: expected 9 values (one per channel), found 10"),
    ("frame count", TWO_JOINTS.replace("Frames: 3", "Frames: 4"), "Frames",
     "declares 4 frames but the file has 3 frame lines"),
    ("frame not a number", TWO_JOINTS.replace("1 2 3 0 90", "1 2 abc 0 90"), "abc",
     "frame 2, value 3 (root Zposition) is 'abc', not a number"),
    ("underscore", TWO_JOINTS.replace("1 2 3 0 90", "1 2 3_0 0 90"), "3_0", "not a number"),
    ("frame nan", TWO_JOINTS.replace("0 0 0 90", "0 0 0 NaN"), "NaN",
     "frame 1, value 4 (root Zrotation) is 'NaN'; values must be finite"),
    ("frame inf", TWO_JOINTS.replace("1 2 3 0 90 0 90", "1 2 3 0 90 0 -inf"), "-inf",
     "frame 2, value 7 (child Zrotation) is '-inf'; values must be finite"),
    ("frame overflow", TWO_JOINTS.replace("1 2 3 0 90", "1 2 3 1e999 90"), "1e999",
     "must be finite"),
    ("no Frames", TWO_JOINTS.replace("Frames: 3", "Frame count 3"), "Frame count",
     "expected 'Frames: <count>'"),
    ("bad Frames", TWO_JOINTS.replace("Frames: 3", "Frames: three"), "Frames",
     "frame count is 'three'"),
    ("bad Frame Time", TWO_JOINTS.replace("Frame Time: 0.5", "Frame Time: 0"), "Frame Time",
     "it must be positive"),
    ("no data header", TWO_JOINTS.split("Frames")[0], "MOTION", "expected 'Frames: <count>'"),
]


@pytest.mark.parametrize(("text", "marker", "message"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_file_and_line(text: str, marker: str | int, message: str) -> None:
    """``marker``: the line number, or text first found on that line ("": line 1)."""
    line = marker if isinstance(marker, int) else _line_of(text, marker) if marker else 1
    with pytest.raises(BVHError, match=re.escape(message)) as info:
        parse_bvh(text, source="bad.bvh")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.source, err.line) == ("bad.bvh", line), str(err)
    assert str(err).startswith(f"bad.bvh:{line}: "), str(err)
    assert message in str(err)
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_load_bvh_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "take.bvh"
    path.write_text(TWO_JOINTS.replace("Frames: 3", "Frames: 2"))
    with pytest.raises(BVHError, match=rf"take\.bvh:{_line_of(TWO_JOINTS, 'Frames')}: "):
        load_bvh(path)
    path.write_text(TWO_JOINTS)
    assert load_bvh(path).source == str(path)
