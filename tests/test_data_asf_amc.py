"""ASF/AMC reader: hand-computed forward kinematics on a tiny skeleton, units and angle units, and
CMU's 01_01.amc against cgspeed's BVH conversion of the same take (``../shared/data``, skipped
when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symmetrize.data import load_asf_amc, load_cmu, mirror_motion, to_target
from symmetrize.data.amc import parse_amc
from symmetrize.data.asf import parse_asf

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FORMATS = DATA / "cmu-formats"

TINY_ASF = """\
# a three-bone skeleton
:version 1.10
:name tiny
:units
  mass 1.0
  length 0.5
  angle deg
:documentation
  hand-made
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name lthigh
     direction 1 0 0
     length 2
     axis 0 0 0 XYZ
    dof rx ry rz
    limits (-160.0 20.0)
           (-70.0 70.0)
           (-60.0 70.0)
  end
  begin
     id 2
     name lshin
     direction 0 -3 0
     length 1
     axis 0 0 90 XYZ
    dof rx
    limits (-10.0 170.0)
  end
  begin
     id 3
     name rthigh
     direction -1 0 0
     length 2
     axis 0 0 0 XYZ
  end
:hierarchy
  begin
    root lthigh rthigh
    lthigh lshin
  end
"""

TINY_AMC = """\
:FULLY-SPECIFIED
:DEGREES
1
root 0 0 0 0 0 0
lthigh 0 0 0
lshin 0
2
root 1 2 3 0 0 0
lthigh 0 0 90
lshin 90
3
root 0 0 0 0 90 0
lthigh 0 0 0
lshin 0
4
root 0 0 0 0 0 0
lthigh 90 90 0
lshin 0
"""

# joints: root, lthigh end, lshin end, rthigh end (file units)
TINY_EXPECTED = [
    [[0, 0, 0], [2, 0, 0], [2, -1, 0], [-2, 0, 0]],  # rest
    # root moved; lthigh turned z 90: (1,0,0) -> (0,1,0); lshin's rx 90 about its axis C x = y,
    # then z 90 from lthigh: (0,-1,0) -> (0,-1,0) -> (1,0,0)
    [[1, 2, 3], [1, 4, 3], [2, 4, 3], [-1, 2, 3]],
    # root turned y 90: (1,0,0) -> (0,0,-1)
    [[0, 0, 0], [0, 0, -2], [0, -1, -2], [0, 0, 2]],
    # rx 90 then ry 90 about the fixed axes (Ry @ Rx): (1,0,0) -> (1,0,0) -> (0,0,-1), and the
    # shin's (0,-1,0) -> (0,0,-1) -> (-1,0,0)
    [[0, 0, 0], [0, 0, -2], [-1, 0, -2], [-2, 0, 0]],
]


def test_tiny_skeleton_forward_kinematics() -> None:
    asf = parse_asf(TINY_ASF, source="tiny.asf")
    assert [b.name for b in asf.bones] == ["lthigh", "lshin", "rthigh"]
    motion = parse_amc(TINY_AMC, asf, source="tiny.amc", scale=1.0, fps=30)
    assert motion.names == ("root", "lthigh", "lshin", "rthigh")
    assert motion.parents == (-1, 0, 1, 0) and motion.fps == 30.0 and len(motion) == 4
    np.testing.assert_allclose(motion.positions, TINY_EXPECTED, atol=1e-12)
    np.testing.assert_allclose(motion.offsets, [[0, 0, 0], [2, 0, 0], [0, -1, 0], [-2, 0, 0]],
                               atol=1e-15)  # the direction (0,-3,0) is a unit vector's


def test_units_length_gives_metres_and_radians_are_read() -> None:
    asf = parse_asf(TINY_ASF)
    metres = parse_amc(TINY_AMC, asf)
    np.testing.assert_allclose(metres.positions, np.array(TINY_EXPECTED) * 0.0254 / 0.5,
                               atol=1e-12)
    radians = TINY_AMC.replace(":DEGREES", ":RADIANS").replace(" 90", f" {np.pi / 2!r}")
    np.testing.assert_allclose(parse_amc(radians, asf, scale=1.0).positions, TINY_EXPECTED,
                               atol=1e-12)
    # no angle header in the AMC: the ASF's ':units angle' decides
    asf_rad = parse_asf(TINY_ASF.replace("angle deg", "angle rad")
                        .replace("axis 0 0 90", f"axis 0 0 {np.pi / 2!r}"))
    no_header = radians.replace(":RADIANS\n", "")
    np.testing.assert_allclose(parse_amc(no_header, asf_rad, scale=1.0).positions,
                               TINY_EXPECTED, atol=1e-12)


def test_root_orientation_frames_the_root_rotation() -> None:
    """The root's rotation is ``C @ M @ C.T`` too: with orientation z 90, an RX of 90 degrees
    turns about ``C x = y``."""
    asf = parse_asf(TINY_ASF.replace("orientation 0 0 0", "orientation 0 0 90"))
    motion = parse_amc("1\nroot 0 0 0 90 0 0\nlthigh 0 0 0\nlshin 0\n", asf, scale=1.0)
    np.testing.assert_allclose(motion.positions[0, 1], [0, 0, -2], atol=1e-12)


def test_bone_lengths_hold_on_every_frame() -> None:
    rng = np.random.default_rng(0)
    frames = "".join(f"{k + 1}\nroot {' '.join(map(str, rng.normal(0, 30, 6)))}\n"
                     f"lthigh {' '.join(map(str, rng.normal(0, 60, 3)))}\n"
                     f"lshin {rng.normal(0, 60)}\n" for k in range(20))
    motion = parse_amc(":DEGREES\n" + frames, parse_asf(TINY_ASF), scale=1.0)
    for j, p in ((1, 0), (2, 1), (3, 0)):
        length = np.linalg.norm(motion.positions[:, j] - motion.positions[:, p], axis=-1)
        np.testing.assert_allclose(length, np.linalg.norm(motion.offsets[j]), rtol=1e-12)


# -- CMU's 01_01.amc against cgspeed's BVH of the same take -----------------------------------

needs_formats = pytest.mark.skipif(
    not (FORMATS / "01_01.amc").is_file() or not (DATA / "cmu" / "01_01.bvh").is_file(),
    reason=f"CMU ASF/AMC or BVH not found under {DATA}")

# cgspeed BVH joint -> the ASF bone whose end point it is
SAME_POINT = {"Hips": "root", "LeftUpLeg": "lhipjoint", "LeftLeg": "lfemur",
              "LeftFoot": "ltibia", "LeftToeBase": "lfoot", "RightUpLeg": "rhipjoint",
              "RightLeg": "rfemur", "RightFoot": "rtibia", "RightToeBase": "rfoot",
              "Spine": "lowerback", "Spine1": "upperback"}
ABOVE_SPINE = {"Neck1": "lowerneck", "Head": "upperneck", "LeftArm": "lclavicle",
               "LeftForeArm": "lhumerus", "LeftHand": "lradius", "RightArm": "rclavicle",
               "RightForeArm": "rhumerus", "RightHand": "rradius"}


@pytest.fixture(scope="module")
def same_take() -> tuple:
    if not (FORMATS / "01_01.amc").is_file() or not (DATA / "cmu" / "01_01.bvh").is_file():
        pytest.skip(f"CMU ASF/AMC or BVH not found under {DATA}")
    amc = load_asf_amc(FORMATS / "01.asf", FORMATS / "01_01.amc")
    bvh = load_cmu(DATA / "cmu" / "01_01.bvh")  # frame 0 (T-pose) dropped: AMC k = BVH k + 1
    return amc, bvh


def _point(motion, name: str) -> np.ndarray:
    return motion.positions[:, motion.names.index(name)]


@needs_formats
def test_amc_agrees_with_bvh_below_the_neck(same_take: tuple) -> None:
    amc, bvh = same_take
    assert len(amc) == len(bvh) == 2751 and amc.fps == bvh.fps == 120.0
    for bvh_name, asf_name in SAME_POINT.items():
        gap = np.linalg.norm(_point(bvh, bvh_name) - _point(amc, asf_name), axis=-1)
        assert gap.max() < 1e-3, (bvh_name, asf_name, gap.max())
    h36m_amc, h36m_bvh = to_target(amc), to_target(bvh)
    for joint in ("pelvis", "left_hip", "left_knee", "left_foot", "right_hip", "right_knee",
                  "right_foot", "spine"):
        j = h36m_amc.names.index(joint)
        gap = np.linalg.norm(h36m_amc.positions[:, j] - h36m_bvh.positions[:, j], axis=-1)
        assert gap.max() < 1e-3, joint


@needs_formats
def test_bvh_drops_the_thorax_bone_above_the_spine(same_take: tuple) -> None:
    """What differs above the spine: cgspeed's BVH leaves out CMU's thorax bone, so every joint
    above it sits one thorax bone lower, along that bone (the rotations are kept)."""
    amc, bvh = same_take
    thorax = _point(amc, "thorax") - _point(amc, "upperback")
    length = np.linalg.norm(amc.offsets[amc.names.index("thorax")])
    assert 0.08 < length < 0.15
    for bvh_name, asf_name in ABOVE_SPINE.items():
        gap = _point(amc, asf_name) - _point(bvh, bvh_name)
        assert np.abs(np.linalg.norm(gap, axis=-1) - length).max() < 1e-3, bvh_name
        assert np.linalg.norm(gap - thorax, axis=-1).max() < 1e-3, bvh_name


@needs_formats
def test_cmu_amc_skeleton_and_mirror(same_take: tuple) -> None:
    amc, _ = same_take
    assert amc.names[0] == "root" and len(amc.names) == 31
    skeleton = amc.skeleton
    named = {(skeleton.names[a], skeleton.names[b]) for a, b in skeleton.pairs}
    assert {("lfemur", "rfemur"), ("lclavicle", "rclavicle"), ("lthumb", "rthumb")} <= named
    assert len(skeleton.pairs) == 12 and skeleton.is_mirror_symmetric()
    pose = amc.positions[0] - amc.positions[0, 0]
    assert pose[amc.names.index("lhumerus"), 0] > 0.05  # body-left is +x, as in the BVH
    mapped = to_target(amc)
    np.testing.assert_array_equal(to_target(mirror_motion(amc)).positions,
                                  mirror_motion(mapped).positions)
