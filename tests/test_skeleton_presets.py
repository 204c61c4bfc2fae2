"""Tests for the skeleton presets (symmetrize.skeleton_presets): counts, mirror pairs, sides,
edges."""

from __future__ import annotations

import numpy as np
import pytest

from symmetrize.skeleton import Skeleton

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
