"""Tests for symmetrize.joint_names: the name tokeniser and left/right pair inference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symmetrize.skeleton import Skeleton, infer_pairs, tokenize_name

# ---------------------------------------------------------------------------------------
# tokeniser and name inference

CMU_NAMES = [
    "Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RHipJoint",
    "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "LowerBack", "Spine", "Spine1",
    "Neck", "Neck1", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
    "LeftFingerBase", "LeftHandIndex1", "LThumb", "RightShoulder", "RightArm", "RightForeArm",
    "RightHand", "RightFingerBase", "RightHandIndex1", "RThumb",
]


@pytest.mark.parametrize(
    "name, tokens",
    [
        ("LeftUpLeg", ("left", "up", "leg")),
        ("LHipJoint", ("l", "hip", "joint")),
        ("LThumb", ("l", "thumb")),
        ("lShoulder", ("l", "shoulder")),
        ("HandTipLeft", ("hand", "tip", "left")),
        ("RightHandIndex1", ("right", "hand", "index", "1")),
        ("hip.R", ("hip", "r")),
        ("r-ankle", ("r", "ankle")),
        ("L_Knee", ("l", "knee")),
        ("left hand tip", ("left", "hand", "tip")),
        ("Spine1", ("spine", "1")),
        ("LHIP", ("lhip",)),
    ],
)
def test_tokenize(name: str, tokens: tuple[str, ...]) -> None:
    assert tokenize_name(name) == tokens


def _pairs_by_name(sk: Skeleton) -> set[tuple[str, str]]:
    return {(sk.names[a], sk.names[b]) for a, b in sk.pairs}


def test_cmu_bvh_names() -> None:
    sk = Skeleton(CMU_NAMES)
    assert len(sk) == 31
    assert len(sk.pairs) == 12
    assert len(sk.centre) == 7
    assert {sk.names[i] for i in sk.centre} == {"Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head"}
    assert _pairs_by_name(sk) == {
        ("LHipJoint", "RHipJoint"), ("LeftUpLeg", "RightUpLeg"), ("LeftLeg", "RightLeg"),
        ("LeftFoot", "RightFoot"), ("LeftToeBase", "RightToeBase"), ("LeftShoulder", "RightShoulder"),
        ("LeftArm", "RightArm"), ("LeftForeArm", "RightForeArm"), ("LeftHand", "RightHand"),
        ("LeftFingerBase", "RightFingerBase"), ("LeftHandIndex1", "RightHandIndex1"),
        ("LThumb", "RThumb"),
    }
    for left, right in sk.pairs:
        assert sk.names[left].startswith("L") and sk.names[right].startswith("R")


@pytest.mark.parametrize(
    "names, expected",
    [
        (["pelvis", "lhip", "rhip", "lknee", "rknee", "lowerback", "rtoe"], {("lhip", "rhip"), ("lknee", "rknee")}),
        (["LSHO", "RSHO", "LASI", "RASI", "C7", "STRN", "RBAK"], {("LSHO", "RSHO"), ("LASI", "RASI")}),
        (["root", "hip_l", "hip_r", "knee_l", "knee_r", "index_01_l", "index_01_r"],
         {("hip_l", "hip_r"), ("knee_l", "knee_r"), ("index_01_l", "index_01_r")}),
        (["spine", "upper_arm.L", "upper_arm.R", "thigh.L", "thigh.R"],
         {("upper_arm.L", "upper_arm.R"), ("thigh.L", "thigh.R")}),
        (["SpineBase", "ShoulderLeft", "ShoulderRight", "HandTipLeft", "HandTipRight"],
         {("ShoulderLeft", "ShoulderRight"), ("HandTipLeft", "HandTipRight")}),
        (["Head", "L_Knee", "R_Knee", "lShoulder", "rShoulder", "l-ankle", "r-ankle"],
         {("L_Knee", "R_Knee"), ("lShoulder", "rShoulder"), ("l-ankle", "r-ankle")}),
        (["mixamorig:Hips", "mixamorig:LeftArm", "mixamorig:RightArm"],
         {("mixamorig:LeftArm", "mixamorig:RightArm")}),
        # mixed conventions
        (["neck", "left_hip", "RHip", "l_eye", "EyeRight", "lknee", "right_knee", "wrist.L", "r_wrist"],
         {("left_hip", "RHip"), ("l_eye", "EyeRight"), ("lknee", "right_knee"), ("wrist.L", "r_wrist")}),
        # vertebra-style names are not sides
        (["L1", "L5", "T12", "C7", "left_hip", "right_hip"], {("left_hip", "right_hip")}),
    ],
)
def test_inference_conventions(names: list[str], expected: set[tuple[str, str]]) -> None:
    sk = Skeleton(names)
    assert _pairs_by_name(sk) == expected
    paired = {n for p in expected for n in p}
    assert {sk.names[i] for i in sk.centre} == set(names) - paired
    assert infer_pairs(names) == sk.pairs


def test_result_pairs_left_first_sorted() -> None:
    sk = Skeleton(["r_a", "l_b", "l_a", "r_b", "x"])
    assert sk.pairs == ((1, 3), (2, 0))
    assert sk.left == (1, 2) and sk.right == (3, 0) and sk.centre == (4,)
    assert sk.mirror.tolist() == [2, 3, 0, 1, 4]


def test_no_pairs_when_empty_list() -> None:
    sk = Skeleton(["left_a", "right_a"], pairs=[])
    assert sk.pairs == () and sk.centre == (0, 1)




# ---------------------------------------------------------------------------------------
# property test: random base names under random side conventions

_WORDS = st.text(alphabet="abcdefghijkmnopqstuvwxyz", min_size=2, max_size=6).filter(
    lambda w: w[0] not in "lr"
)
_BASES = st.lists(_WORDS, min_size=1, max_size=3).map(tuple)


def _pascal(base: tuple[str, ...]) -> str:
    return "".join(w.capitalize() for w in base)


def _snake(base: tuple[str, ...]) -> str:
    return "_".join(base)


# each convention maps (side letter 'l'/'r', base words) -> name
_CONVENTIONS = [
    lambda s, b: f"{'left' if s == 'l' else 'right'}_{_snake(b)}",
    lambda s, b: f"{s}_{_snake(b)}",
    lambda s, b: f"{_snake(b)}_{s}",
    lambda s, b: f"{_snake(b)}.{s.upper()}",
    lambda s, b: f"{s}-{'-'.join(b)}",
    lambda s, b: f"{'Left' if s == 'l' else 'Right'}{_pascal(b)}",
    lambda s, b: f"{_pascal(b)}{'Left' if s == 'l' else 'Right'}",
    lambda s, b: f"{s.upper()}{_pascal(b)}",
    lambda s, b: f"{s}{_pascal(b)}",
    lambda s, b: f"{s.upper()}_{_snake(b).upper()}",
    lambda s, b: f"{'LEFT' if s == 'l' else 'RIGHT'} {' '.join(b)}",
    lambda s, b: f"{s}{_snake(b)}",  # implicit: lhip / rhip
    lambda s, b: f"{s.upper()}{_snake(b).upper()}",  # implicit: LHIP / RHIP
]
_CENTRE_CONVENTIONS = [_snake, _pascal, lambda b: "-".join(b).upper(), lambda b: ".".join(b)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bases=st.lists(_BASES, min_size=0, max_size=8, unique=True),
    centres=st.lists(_BASES, min_size=0, max_size=5, unique=True),
    data=st.data(),
)
def test_property_random_conventions(bases, centres, data) -> None:
    conv = st.integers(0, len(_CONVENTIONS) - 1)
    entries: list[tuple[str, object]] = []  # (name, tag)
    for k, base in enumerate(bases):
        # left and right may use different conventions
        cl, cr = data.draw(conv), data.draw(conv)
        entries.append((_CONVENTIONS[cl]("l", base), ("l", k)))
        entries.append((_CONVENTIONS[cr]("r", base), ("r", k)))
    for base in centres:
        cc = data.draw(st.integers(0, len(_CENTRE_CONVENTIONS) - 1))
        entries.append((_CENTRE_CONVENTIONS[cc](base), ("c", None)))
    assume(entries)
    names = [n for n, _ in entries]
    assume(len(set(names)) == len(names))
    entries = data.draw(st.permutations(entries))
    names = [n for n, _ in entries]

    sk = Skeleton(names)
    where = {tag: i for i, (_, tag) in enumerate(entries) if tag[0] != "c"}
    expected = tuple(sorted((where[("l", k)], where[("r", k)]) for k in range(len(bases))))
    assert sk.pairs == expected
    assert len(sk.centre) == len(centres)
    m = sk.mirror
    assert np.array_equal(m[m], np.arange(len(sk)))


def test_glued_side_words_pair_or_fail_loudly() -> None:
    sk = Skeleton(["pelvis", "leftarm", "rightarm", "footleft", "foot_right"])
    assert sk.pairs == ((1, 2), (3, 4))
    # a lone glued side word is a sided joint without a twin, not a silent centre joint
    with pytest.raises(ValueError, match=r"joint 1 \('leftarm'\).*no right twin"):
        Skeleton(["pelvis", "leftarm", "neck"])
