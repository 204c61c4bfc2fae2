"""Joint maps: the built-in maps commute with the mirror bit for bit, the automatic choice by
joint names, user maps from TOML, and the errors of maps that are wrong or fit nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symmetrize import Skeleton
from symmetrize.data import (
    JointMap,
    JointMapError,
    Motion,
    builtin_maps,
    choose_map,
    load_bvh,
    load_take,
    mirror_motion,
    to_target,
)
from symmetrize.data.cmu import H36M_FROM_CMU

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"

PREFIXED_MAP = """\
name = "mine"
target = "h36m"

[bvh]
metres_per_unit = 0.01

[joints]
pelvis = { "mixamorig:LeftUpLeg" = 0.5, "mixamorig:RightUpLeg" = 0.5 }
right_hip = "mixamorig:RightUpLeg"
right_knee = "mixamorig:RightLeg"
right_foot = "mixamorig:RightFoot"
left_hip = "mixamorig:LeftUpLeg"
left_knee = "mixamorig:LeftLeg"
left_foot = "mixamorig:LeftFoot"
spine = "mixamorig:Spine"
thorax = { "mixamorig:Neck" = 0.5, "mixamorig:Neck1" = 0.5 }
neck_nose = { "mixamorig:Neck1" = 0.5, "mixamorig:Head" = 0.5 }
head = { "mixamorig:Head" = 1.5, "mixamorig:Neck1" = -0.5 }
left_shoulder = "mixamorig:LeftArm"
left_elbow = "mixamorig:LeftForeArm"
left_wrist = "mixamorig:LeftHand"
right_shoulder = "mixamorig:RightArm"
right_elbow = "mixamorig:RightForeArm"
right_wrist = "mixamorig:RightHand"
"""


def _random_motion(names: list[str], seed: int, frames: int = 7) -> Motion:
    """Random positions and offsets; every joint hangs from the first (make it a centre joint
    for a mirror-symmetric tree)."""
    rng = np.random.default_rng(seed)
    parents = [-1] + [0] * (len(names) - 1)
    return Motion(rng.normal(size=(frames, len(names), 3)), names, parents, 30.0,
                  rng.normal(size=(len(names), 3)), source=f"random {seed}")


@pytest.mark.parametrize("index", range(3))
def test_each_builtin_map_commutes_with_the_mirror_bit_for_bit(index: int) -> None:
    joint_map = builtin_maps()[index]
    names = ["Extra", *joint_map.sources]
    for seed in range(5):
        motion = _random_motion(names, seed)
        assert choose_map(motion.names, motion.source) is joint_map
        mapped = joint_map.apply(motion)
        flipped = joint_map.apply(mirror_motion(motion))
        np.testing.assert_array_equal(flipped.positions, mirror_motion(mapped).positions)
        np.testing.assert_array_equal(flipped.offsets, mirror_motion(mapped).offsets)
        assert mapped.names == Skeleton.preset("h36m").names
        assert not np.allclose(flipped.positions, mapped.positions)  # the motion is chiral


def test_builtin_maps_cover_h36m_with_unit_weights() -> None:
    names = [m.name for m in builtin_maps()]
    assert names == ["cmu-cgspeed", "cmu-chest", "cmu-asf"]
    h36m = Skeleton.preset("h36m")
    for joint_map in builtin_maps():
        assert tuple(name for name, _ in joint_map.joints) == h36m.names
        for _, terms in joint_map.joints:
            assert sum(w for _, w in terms) == pytest.approx(1.0, abs=1e-12)
    assert H36M_FROM_CMU["head"] == (("Head", 1.5), ("Neck1", -0.5))
    assert builtin_maps()[0].metres_per_unit == pytest.approx(0.0254 / 0.45, rel=1e-15)
    assert builtin_maps()[0].skip_frames == 1 and builtin_maps()[1].skip_frames == 0


@pytest.mark.skipif(not (DATA / "cmu-formats" / "131_02.bvh").is_file(),
                    reason=f"CMU takes not found under {DATA}")
@pytest.mark.parametrize(("file", "expected"), [("cmu/02_01.bvh", "cmu-cgspeed"),
                                                ("cmu-formats/131_02.bvh", "cmu-chest")])
def test_real_files_choose_their_map_and_commute(file: str, expected: str) -> None:
    motion = load_bvh(DATA / file)
    assert choose_map(motion.names, motion.source).name == expected
    np.testing.assert_array_equal(to_target(mirror_motion(motion)).positions,
                                  mirror_motion(to_target(motion)).positions)
    mapped, name = load_take(DATA / file)
    assert name == expected and mapped.fps == 120.0
    thigh = np.linalg.norm(mapped.positions[:, 5] - mapped.positions[:, 4], axis=-1)
    assert 0.3 < thigh.min() and thigh.max() < 0.6  # metres: a thigh
    raw = load_bvh(DATA / file)
    assert len(mapped) == len(raw) - (1 if expected == "cmu-cgspeed" else 0)


def test_a_user_map_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(PREFIXED_MAP)
    mine = JointMap.load(path)
    assert mine.source == str(path) and mine.metres_per_unit == 0.01
    names = ["mixamorig:" + n for n in builtin_maps()[0].sources]
    motion = _random_motion(names, 3)
    assert choose_map(names, "x", joint_map=path).name == "mine"
    with pytest.raises(JointMapError, match="no joint map fits"):
        choose_map(names, "x")
    mapped = to_target(motion, joint_map=mine)
    plain = _random_motion(list(builtin_maps()[0].sources), 3)  # same numbers, cgspeed names
    np.testing.assert_array_equal(mapped.positions, to_target(plain).positions)
    np.testing.assert_array_equal(to_target(mirror_motion(motion), joint_map=mine).positions,
                                  mirror_motion(mapped).positions)


def test_user_maps_come_before_builtin_ones() -> None:
    data = {"name": "swap", "target": "h36m",
            "joints": {name: dict(terms) for name, terms in builtin_maps()[0].joints}}
    data["joints"]["spine"] = {"Spine": 0.5, "Neck": 0.5}
    swap = JointMap.from_dict(data)
    names = list(builtin_maps()[0].sources)
    assert choose_map(names, "x", joint_map=swap) is swap
    assert choose_map(names, "x").name == "cmu-cgspeed"
    assert choose_map(names, "x", joint_map="cmu-cgspeed") is builtin_maps()[0]


def test_a_file_no_map_fits_names_the_missing_joints_and_the_closest_map() -> None:
    names = [n for n in builtin_maps()[1].sources if n not in ("LeftWrist", "RightWrist")]
    with pytest.raises(JointMapError, match=r"^odd\.bvh: no joint map fits its joints") as info:
        choose_map(names, "odd.bvh")
    text = str(info.value)
    assert text.startswith("odd.bvh: no joint map fits its joints")
    assert "'cmu-chest'" in text and "misses ['LeftWrist', 'RightWrist']" in text
    assert "--joint-map" in text
    with pytest.raises(JointMapError, match="no built-in joint map to 'humaneva'"):
        choose_map(names, "odd.bvh", target="humaneva")


def _map_text(**changes: str) -> str:
    lines = PREFIXED_MAP.splitlines()
    for key, value in changes.items():
        lines = [f"{key} = {value}" if line.startswith(f"{key} =") else line for line in lines]
    return "\n".join(lines) + "\n"


BAD_MAPS = [
    ("left/right", {"left_knee": '{ "mixamorig:LeftLeg" = 0.5, "mixamorig:LeftFoot" = 0.5 }'},
     "left_knee", r"breaks the left/right mirror: 'left_knee' = mixamorig:LeftLeg 0.5 \+ "
                  r"mixamorig:LeftFoot 0.5 mirrors to mixamorig:RightLeg 0.5 \+ "
                  r"mixamorig:RightFoot 0.5, but 'right_knee' = mixamorig:RightLeg 1"),
    ("centre", {"pelvis": '{ "mixamorig:LeftUpLeg" = 0.6, "mixamorig:RightUpLeg" = 0.4 }'},
     "pelvis", r"centre joint 'pelvis' = mixamorig:LeftUpLeg 0.6 \+ mixamorig:RightUpLeg 0.4 "
               r"is not mirror-symmetric"),
    ("weights", {"spine": '{ "mixamorig:Spine" = 0.9 }'}, "spine",
     r"the weights of 'spine' \(mixamorig:Spine 0.9\) sum to 0.9; they must sum to 1"),
    ("no twin", {"spine": '"mixamorig:LeftSpine"'}, "spine",
     r"breaks the left/right mirror: 'spine' use\(s\) 'mixamorig:LeftSpine', which has no "
     r"mirror twin"),
    ("weight type", {"spine": '{ "mixamorig:Spine" = "one" }'}, "spine",
     r"joint 'spine': the weight of 'mixamorig:Spine' must be a finite, non-zero number"),
    ("target", {"target": '"h37m"'}, None, r"unknown target skeleton 'h37m'"),
    ("unit", {"metres_per_unit": "-1"}, "metres_per_unit",
     r"metres_per_unit must be a positive number"),
]


@pytest.mark.parametrize(("changes", "line_key", "message"), [b[1:] for b in BAD_MAPS],
                         ids=[b[0] for b in BAD_MAPS])
def test_bad_maps_are_refused_naming_file_line_and_joints(
        tmp_path: Path, changes: dict[str, str], line_key: str | None, message: str) -> None:
    path = tmp_path / "bad.toml"
    text = _map_text(**changes)
    path.write_text(text)
    with pytest.raises(JointMapError, match=message) as info:
        JointMap.load(path)
    err = info.value
    assert err.source == str(path) and str(err).startswith(str(path))
    if line_key is not None:
        expected = next(i for i, line in enumerate(text.splitlines(), 1)
                        if line.startswith(f"{line_key} ="))
        assert err.line == expected, str(err)


def test_missing_and_unknown_entries(tmp_path: Path) -> None:
    text = PREFIXED_MAP.replace('right_wrist = "mixamorig:RightHand"\n', "")
    with pytest.raises(JointMapError, match=r"has no entry for \['right_wrist'\]"):
        JointMap.parse(text, source="m.toml")
    with pytest.raises(JointMapError, match=r"m.toml:1: unknown key 'nme'"):
        JointMap.parse("nme = 'x'\n" + PREFIXED_MAP, source="m.toml")
    with pytest.raises(JointMapError, match=r"m.toml:3: not valid TOML"):
        JointMap.parse('name = "x"\ntarget = "h36m"\n[joints\n', source="m.toml")
    with pytest.raises(FileNotFoundError, match="no such file"):
        choose_map(["a"], "x", joint_map=str(tmp_path / "absent.toml"))


def test_a_map_to_another_target_is_refused_for_h36m() -> None:
    humaneva = Skeleton.preset("humaneva")
    joints = {name: "Hips" if humaneva.mirror[i] == i else
              ("LeftUpLeg" if name.startswith("left") else "RightUpLeg")
              for i, name in enumerate(humaneva.names)}
    other = JointMap.from_dict({"name": "he", "target": "humaneva", "joints": joints})
    motion = _random_motion(["Hips", "LeftUpLeg", "RightUpLeg"], 0)
    mapped = to_target(motion, "humaneva", joint_map=other)
    assert mapped.names == humaneva.names and mapped.parents == humaneva.parents
    with pytest.raises(JointMapError, match="maps to 'humaneva', but the skeleton here is 'h36m'"):
        choose_map(motion.names, "x", joint_map=other)


def test_a_motion_that_pairs_joints_otherwise_is_refused() -> None:
    joints = {name: dict(terms) for name, terms in builtin_maps()[0].joints}
    joints.update(pelvis={"lhip": 0.5, "rhip": 0.5}, left_hip="lhip", right_hip="rhip")
    joint_map = JointMap.from_dict({"name": "m", "target": "h36m", "joints": joints})
    names = [*joint_map.sources, "left_hip"]  # the file pairs left_hip with rhip, lhip alone
    with pytest.raises(JointMapError, match=r"random 1: joint map 'm': the motion pairs "
                                            r"'(lhip|rhip)' with '(lhip|left_hip)' but the map "
                                            r"with '(rhip|lhip)'"):
        joint_map.apply(_random_motion(names, 1))
    with pytest.raises(JointMapError, match=r"needs the joints \['lhip'\]"):
        joint_map.apply(_random_motion([n for n in joint_map.sources if n != "lhip"], 1))
    ambiguous = [*builtin_maps()[0].sources, "LHand"]  # LeftHand and LHand: two left hands
    with pytest.raises(JointMapError, match="no consistent left/right twins"):
        builtin_maps()[0].apply(_random_motion(ambiguous, 2))


def test_the_documented_example_map_is_valid() -> None:
    text = DOCS.read_text()
    example = text[text.index("```toml\n") + 8: text.index("```", text.index("```toml\n") + 8)]
    mixamo = JointMap.parse(example, source="docs/data.md")
    assert mixamo.name == "mixamo" and mixamo.metres_per_unit == 0.01
    names = ["mixamorig:Hips", *mixamo.sources]
    motion = _random_motion(names, 4)
    np.testing.assert_array_equal(to_target(mirror_motion(motion), joint_map=mixamo).positions,
                                  mirror_motion(to_target(motion, joint_map=mixamo)).positions)
