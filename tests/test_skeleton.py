"""Tests for symmetrize.skeleton: the Skeleton class, its errors and subsets (presets:
tests/test_skeleton_presets.py; name inference: tests/test_joint_names.py)."""

from __future__ import annotations

import pickle

import pytest

from symmetrize.skeleton import Skeleton

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
    pairs = {(sub.names[a], sub.names[b]) for a, b in sub.pairs}
    assert pairs == {("left_hip", "right_hip"), ("left_knee", "right_knee"),
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
