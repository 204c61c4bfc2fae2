"""Tests for symmetrize.skeleton (pure Python/numpy)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symmetrize.skeleton import Skeleton, infer_pairs, tokenize_name

# ---------------------------------------------------------------------------------------
# presets

EXPECTED_COUNTS = {  # joints, pairs, centre
    "h36m": (17, 6, 5),
    "humaneva": (15, 6, 3),
    "coco": (17, 8, 1),
    "openpose": (18, 8, 2),
    "ntu": (25, 10, 5),
    "smpl": (24, 9, 6),
}


def test_preset_list() -> None:
    assert set(Skeleton.presets()) == set(EXPECTED_COUNTS)


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_preset_counts_and_name(name: str) -> None:
    sk = Skeleton.preset(name)
    joints, pairs, centre = EXPECTED_COUNTS[name]
    assert len(sk) == joints == len(sk.names) == len(sk.mirror)
    assert len(sk.pairs) == pairs
    assert len(sk.centre) == centre
    assert sk.name == name
    assert Skeleton.preset(name.upper()) == sk
    assert repr(sk) == f"Skeleton({name!r}, {joints} joints: {pairs} pairs, {centre} centre)"


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_preset_mirror_involution_and_sides(name: str) -> None:
    sk = Skeleton.preset(name)
    m = sk.mirror
    assert m.dtype == np.int64
    assert np.array_equal(m[m], np.arange(len(sk)))
    assert sorted(m.tolist()) == list(range(len(sk)))
    for left, right in sk.pairs:
        assert left < len(sk) and right < len(sk)
        assert m[left] == right and m[right] == left
        assert "left" in sk.names[left] and "right" in sk.names[right]
        assert sk.names[left].replace("left", "right") == sk.names[right]
    for c in sk.centre:
        assert m[c] == c
        assert "left" not in sk.names[c] and "right" not in sk.names[c]
    assert sk.left == tuple(p[0] for p in sk.pairs)
    assert sk.right == tuple(p[1] for p in sk.pairs)
    assert list(sk.left) == sorted(sk.left)
    assert sorted(sk.left + sk.right + sk.centre) == list(range(len(sk)))


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_preset_edges_mirror_symmetric(name: str) -> None:
    sk = Skeleton.preset(name)
    assert len(sk.edges) > 0
    m = sk.mirror
    edge_set = {frozenset(e) for e in sk.edges}
    mirrored = {frozenset((int(m[a]), int(m[b]))) for a, b in sk.edges}
    assert edge_set == mirrored
    assert {frozenset(e) for e in sk.mirror_edges()} == edge_set
    assert sk.is_mirror_symmetric()


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_preset_parents_form_tree(name: str) -> None:
    sk = Skeleton.preset(name)
    if sk.parents is None:
        assert name in ("coco", "openpose")
        return
    parents = sk.parents
    assert len(parents) == len(sk)
    roots = [i for i, p in enumerate(parents) if p == -1]
    assert roots == [0]
    for j in range(len(sk)):
        seen = set()
        while parents[j] != -1:
            assert j not in seen, "cycle"
            seen.add(j)
            j = parents[j]
        assert j == 0
    assert set(sk.edges) == {(p, c) for c, p in enumerate(parents) if p >= 0}


def test_openpose_edges_form_tree() -> None:
    sk = Skeleton.preset("openpose")
    # 17 edges over 18 joints, connected => a tree.
    assert len(sk.edges) == len(sk) - 1
    adj: dict[int, set[int]] = {i: set() for i in range(len(sk))}
    for a, b in sk.edges:
        adj[a].add(b)
        adj[b].add(a)
    seen, stack = {0}, [0]
    while stack:
        for k in adj[stack.pop()] - seen:
            seen.add(k)
            stack.append(k)
    assert seen == set(range(len(sk)))


def test_h36m_exact_sides() -> None:
    sk = Skeleton.preset("h36m")
    assert sk.left == (4, 5, 6, 11, 12, 13)
    assert sk.right == (1, 2, 3, 14, 15, 16)
    assert sk.centre == (0, 7, 8, 9, 10)
    assert sk.pairs == ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))
    assert sk.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)


def test_humaneva_exact_sides() -> None:
    sk = Skeleton.preset("humaneva")
    assert sk.left == (2, 3, 4, 8, 9, 10)
    assert sk.right == (5, 6, 7, 11, 12, 13)
    assert sk.centre == (0, 1, 14)


def test_coco_and_openpose_sides() -> None:
    coco = Skeleton.preset("coco")
    assert coco.pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    assert coco.parents is None
    op = Skeleton.preset("openpose")
    assert op.pairs == ((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10), (15, 14), (17, 16))
    assert op.centre == (0, 1)


def test_ntu_smpl_sides() -> None:
    ntu = Skeleton.preset("ntu")
    assert ntu.centre == (0, 1, 2, 3, 20)
    assert (21, 23) in ntu.pairs and (22, 24) in ntu.pairs and (7, 11) in ntu.pairs
    smpl = Skeleton.preset("smpl")
    assert smpl.centre == (0, 3, 6, 9, 12, 15)
    assert smpl.pairs[0] == (1, 2) and smpl.pairs[-1] == (22, 23)


def test_preset_inferred_pairs_match_explicit() -> None:
    for name in Skeleton.presets():
        sk = Skeleton.preset(name)
        again = Skeleton(sk.names, pairs=[(r, l) for l, r in sk.pairs][::-1], edges=sk.edges)
        # explicit pairs keep the orientation they were given in
        assert again.pairs == tuple(sorted((r, l) for l, r in sk.pairs))
        assert np.array_equal(again.mirror, sk.mirror)


def test_coerce() -> None:
    sk = Skeleton.preset("coco")
    assert Skeleton.coerce(sk) is sk
    assert Skeleton.coerce("COCO") == sk
    with pytest.raises(TypeError, match="Skeleton or a preset name"):
        Skeleton.coerce(17)  # type: ignore[arg-type]


def test_unknown_preset_lists_names() -> None:
    with pytest.raises(ValueError, match="unknown skeleton preset 'mpii'.*h36m.*humaneva.*coco.*smpl"):
        Skeleton.preset("mpii")


# ---------------------------------------------------------------------------------------
# read-only, equality


def test_read_only_attributes() -> None:
    sk = Skeleton.preset("h36m")
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        sk.mirror[0] = 3
    m = sk.mirror
    with pytest.raises(ValueError, match="cannot set WRITEABLE flag to True"):
        m.setflags(write=True)
    assert sk.mirror[0] == 0
    with pytest.raises(AttributeError, match="property 'names' of 'Skeleton' object has no setter"):
        sk.names = ("a",)  # type: ignore[misc]
    with pytest.raises(AttributeError, match="property 'pairs' of 'Skeleton' object has no setter"):
        sk.pairs = ()  # type: ignore[misc]
    assert isinstance(sk.names, tuple) and isinstance(sk.pairs, tuple) and isinstance(sk.edges, tuple)


def test_eq_hash_pickle() -> None:
    a = Skeleton.preset("h36m")
    b = Skeleton(a.names, parents=a.parents)  # unnamed, same names/pairs/edges
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    c = Skeleton(a.names, parents=a.parents, edges=a.edges[:-1])
    assert a != c
    d = Skeleton(a.names, pairs=a.pairs[:-1], parents=a.parents)
    assert a != d
    assert a != "h36m"
    e = pickle.loads(pickle.dumps(a))
    assert e == a and e.name == "h36m"
    assert repr(b) == "Skeleton(17 joints: 6 pairs, 5 centre)"


def test_index_lookup() -> None:
    sk = Skeleton.preset("coco")
    assert sk.index("left_hip") == 11
    with pytest.raises(KeyError, match="no joint named 'tail'"):
        sk.index("tail")


def test_mirror_edges_and_asymmetric_edges() -> None:
    sk = Skeleton(["c", "left_a", "right_a"], edges=[(0, 1)])
    assert sk.mirror_edges() == ((0, 2),)
    assert not sk.is_mirror_symmetric()
    sym = Skeleton(["c", "left_a", "right_a"], edges=[(0, 1), (2, 0)])
    assert sym.is_mirror_symmetric()
    empty = Skeleton(["c", "left_a", "right_a"])
    assert empty.edges == () and empty.is_mirror_symmetric()


def test_edges_from_parents_and_explicit_edges() -> None:
    sk = Skeleton(["root", "l_arm", "r_arm"], parents=[-1, 0, 0])
    assert sk.edges == ((0, 1), (0, 2))
    sk2 = Skeleton(["root", "l_arm", "r_arm"], parents=[-1, 0, 0], edges=[(1, 2)])
    assert sk2.edges == ((1, 2),) and sk2.parents == (-1, 0, 0)


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
# errors


def test_error_sided_without_twin() -> None:
    with pytest.raises(ValueError, match=r"joint 2 \('left_hand'\).*no right twin.*pairs="):
        Skeleton(["head", "left_hip", "left_hand", "right_hip"])
    with pytest.raises(ValueError, match=r"joint 1 \('hip.R'\).*no left twin"):
        Skeleton(["spine", "hip.R"])
    # explicit pairs bypass inference
    sk = Skeleton(["head", "left_hip", "left_hand", "right_hip"], pairs=[(1, 3)])
    assert sk.centre == (0, 2)


def test_error_ambiguous_twins() -> None:
    with pytest.raises(ValueError, match=r"ambiguous.*'left_hip'.*'LHip'"):
        Skeleton(["left_hip", "LHip", "right_hip"])
    with pytest.raises(ValueError, match=r"ambiguous.*'lhip'.*'Lhip'"):
        Skeleton(["lhip", "Lhip", "rhip"])


def test_error_conflicting_markers() -> None:
    with pytest.raises(ValueError, match=r"joint 0 \('left_hand_r'\).*both a left and a right"):
        Skeleton(["left_hand_r"])


def test_error_joint_in_two_pairs() -> None:
    names = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match=r"joint 1 \('b'\) appears in two pairs, \(0, 1\) and \(1, 2\)"):
        Skeleton(names, pairs=[(0, 1), (1, 2)])


def test_error_pair_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"pair \(0, 7\).*out of range.*0\.\.3"):
        Skeleton(["a", "b", "c", "d"], pairs=[(0, 7)])
    with pytest.raises(ValueError, match=r"pair \(-1, 2\).*out of range"):
        Skeleton(["a", "b", "c", "d"], pairs=[(-1, 2)])


def test_error_pair_with_itself_and_malformed() -> None:
    with pytest.raises(ValueError, match=r"joint 2 \('c'\) with itself"):
        Skeleton(["a", "b", "c"], pairs=[(2, 2)])
    with pytest.raises(ValueError, match="pair of two joint indices"):
        Skeleton(["a", "b", "c"], pairs=[(0, 1, 2)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="integer"):
        Skeleton(["a", "b", "c"], pairs=[(0, 1.5)])  # type: ignore[list-item]


def test_error_names() -> None:
    with pytest.raises(ValueError, match=r"duplicate joint name 'knee' at indices 1 and 3"):
        Skeleton(["hip", "knee", "ankle", "knee"])
    with pytest.raises(ValueError, match="non-empty"):
        Skeleton(["hip", ""])
    with pytest.raises(ValueError, match="at least one"):
        Skeleton([])
    with pytest.raises(TypeError, match="single string"):
        Skeleton("hip")


def test_error_parents_and_edges() -> None:
    names = ["root", "l_a", "r_a"]
    with pytest.raises(ValueError, match="parents has 2 entries but the skeleton has 3"):
        Skeleton(names, parents=[-1, 0])
    with pytest.raises(ValueError, match=r"parent of joint 2 \('r_a'\) is 5, out of range"):
        Skeleton(names, parents=[-1, 0, 5])
    with pytest.raises(ValueError, match="own parent"):
        Skeleton(names, parents=[-1, 1, 0])
    with pytest.raises(ValueError, match="cycle"):
        Skeleton(names, parents=[-1, 2, 1])
    with pytest.raises(ValueError, match=r"edge \(0, 3\).*out of range"):
        Skeleton(names, edges=[(0, 3)])
    with pytest.raises(ValueError, match="to itself"):
        Skeleton(names, edges=[(1, 1)])
    with pytest.raises(ValueError, match="duplicates"):
        Skeleton(names, edges=[(0, 1), (1, 0)])


# ---------------------------------------------------------------------------------------
# subset


def test_subset_keeps_pairs_and_edges() -> None:
    h36m = Skeleton.preset("h36m")
    keep = [0, 1, 2, 4, 5, 8, 11, 14]  # pelvis, hips, knees, thorax, shoulders
    sub = h36m.subset(keep)
    assert sub.names == tuple(h36m.names[i] for i in keep)
    assert _pairs_by_name(sub) == {("left_hip", "right_hip"), ("left_knee", "right_knee"),
                                   ("left_shoulder", "right_shoulder")}
    assert sub.centre == (0, 5)
    assert all(sub.mirror[sub.mirror[i]] == i for i in range(len(sub)))
    # edges restricted to kept joints
    assert {frozenset((sub.names[a], sub.names[b])) for a, b in sub.edges} == {
        frozenset(("pelvis", "right_hip")), frozenset(("right_hip", "right_knee")),
        frozenset(("pelvis", "left_hip")), frozenset(("left_hip", "left_knee")),
        frozenset(("thorax", "left_shoulder")), frozenset(("thorax", "right_shoulder")),
    }
    assert sub.is_mirror_symmetric()
    # thorax's parent spine was dropped -> nearest kept ancestor (pelvis)
    assert sub.parents is not None and sub.parents[5] == 0


def test_subset_reorders() -> None:
    coco = Skeleton.preset("coco")
    sub = coco.subset([2, 1, 0])
    assert sub.names == ("right_eye", "left_eye", "nose")
    assert sub.pairs == ((1, 0),)
    assert {frozenset(e) for e in sub.edges} == {frozenset((0, 1)), frozenset((2, 1)), frozenset((2, 0))}


def test_subset_half_pair_error() -> None:
    h36m = Skeleton.preset("h36m")
    with pytest.raises(ValueError, match=r"joint 4 \('left_hip'\) but not its mirror twin 1 \('right_hip'\)"):
        h36m.subset([0, 4, 7])
    with pytest.raises(ValueError, match="listed twice"):
        h36m.subset([0, 0])
    with pytest.raises(ValueError, match="out of range"):
        h36m.subset([0, 17])


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
