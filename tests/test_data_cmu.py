"""The CMU motion-capture takes (load_cmu: loading, sides, floor, speed) and the CMU -> H36M joint
map."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from symmetrize import Skeleton
from symmetrize.data.bvh import (
    CMU_UNIT_METRES,
    Motion,
    load_bvh,
    load_cmu,
    mirror_motion,
    parse_bvh,
)
from symmetrize.data.cmu import H36M_FROM_CMU, to_h36m
from tests.test_data_bvh import TWO_JOINTS

CMU_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu"



# -- the CMU takes ------------------------------------------------------------------------------

needs_cmu = pytest.mark.skipif(not (CMU_DIR / "MANIFEST.tsv").is_file(),
                               reason=f"CMU motion capture not found at {CMU_DIR}")


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict[str, str]]:
    if not (CMU_DIR / "MANIFEST.tsv").is_file():
        pytest.skip(f"CMU motion capture not found at {CMU_DIR}")
    with open(CMU_DIR / "MANIFEST.tsv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def takes(manifest: dict[str, dict[str, str]]) -> dict[str, Motion]:
    return {name: load_cmu(CMU_DIR / name) for name in manifest}


LEFT_OF_BODY = ("LeftUpLeg", "LeftArm", "LeftForeArm", "LeftHand")


@needs_cmu
def test_all_takes_load(manifest: dict[str, dict[str, str]], takes: dict[str, Motion]) -> None:
    assert len(takes) == 36
    for name, motion in takes.items():
        row = manifest[name]
        assert len(motion) == int(row["frames_motion"]) - int(row["zero_root_frames"]), name
        assert motion.positions.shape[1:] == (31, 3) and motion.fps == 120.0
        assert np.isfinite(motion.positions).all(), name
        assert motion.source == str(CMU_DIR / name)
        child = [j for j, p in enumerate(motion.parents) if p >= 0]
        bones = motion.positions[:, child] - motion.positions[:, [motion.parents[j] for j in child]]
        length = np.linalg.norm(bones, axis=-1)
        rest = np.linalg.norm(motion.offsets[child], axis=-1)
        assert np.all(np.abs(length - rest) <= 1e-9 * rest + 1e-12), name
        ys = motion.positions[..., 1]
        assert 1.2 < (ys.max(1) - ys.min(1)).max() < 2.1, name  # without the head top


@needs_cmu
@pytest.mark.parametrize("name", ["01_14", "02_01", "03_02", "05_06", "06_15", "07_01", "08_07",
                                  "09_05"])
def test_vertical_extent_matches_manifest(manifest: dict[str, dict[str, str]], name: str) -> None:
    """With End Sites (the top of the head) the tallest frame matches the manifest's extent;
    composing the rotations in the other order misses it by up to 0.24 m on these takes."""
    motion = load_bvh(CMU_DIR / f"{name}.bvh", scale=CMU_UNIT_METRES, drop_first=1,
                      include_end_sites=True)
    ys = motion.positions[..., 1]
    extent = (ys.max(1) - ys.min(1)).max()
    assert 1.3 <= extent <= 2.1
    assert extent == pytest.approx(float(manifest[f"{name}.bvh"]["max_vertical_extent_m"]),
                                   abs=0.006)  # the manifest rounds to 0.01 m


@needs_cmu
def test_cmu_skeleton_pairs(takes: dict[str, Motion]) -> None:
    motion = takes["02_01.bvh"]
    skeleton = motion.skeleton
    assert skeleton == Skeleton(motion.names, parents=motion.parents)
    assert len(skeleton.pairs) == 12 and len(skeleton.centre) == 7
    named = {(skeleton.names[a], skeleton.names[b]) for a, b in skeleton.pairs}
    assert {("LeftUpLeg", "RightUpLeg"), ("LHipJoint", "RHipJoint"), ("LThumb", "RThumb"),
            ("LeftHandIndex1", "RightHandIndex1")} <= named
    assert skeleton.is_mirror_symmetric()


@needs_cmu
def test_left_is_plus_x_and_walks_go_forward(takes: dict[str, Motion]) -> None:
    tpose = load_bvh(CMU_DIR / "02_01.bvh", scale=CMU_UNIT_METRES)
    for motion, frame in ((takes["02_01.bvh"], 0), (tpose, 0)):
        pose = motion.positions[frame] - motion.positions[frame, motion.names.index("Hips")]
        for left in LEFT_OF_BODY:
            assert pose[motion.names.index(left), 0] > 0.05, left
            assert pose[motion.names.index(left.replace("Left", "Right")), 0] < -0.05, left
    walk = takes["02_01.bvh"]
    hips = walk.positions[:, 0]
    assert hips[-1, 2] - hips[0, 2] > 3.0  # facing +z (left x up), the subject walks to +z
    toes = walk.positions[:, walk.names.index("LeftToeBase")] - \
        walk.positions[:, walk.names.index("LeftFoot")]
    assert np.median(toes[:, 2]) > 0.05


@needs_cmu
def test_walkers_feet_touch_the_floor(manifest: dict[str, dict[str, str]],
                                      takes: dict[str, Motion]) -> None:
    walks = [name for name, row in manifest.items() if row["action"] == "walk"]
    assert len(walks) >= 5
    for name in walks:
        motion = takes[name]
        toes = [motion.names.index("LeftToeBase"), motion.names.index("RightToeBase")]
        assert abs(motion.positions[:, toes, 1].min()) < 0.05, name


@needs_cmu
def test_load_cmu_drops_the_empty_frame_of_07_12(takes: dict[str, Motion]) -> None:
    raw = load_cmu(CMU_DIR / "07_12.bvh", drop_zero_frames=False)
    assert len(raw) == 263 and np.all(raw.positions[0, 0] == 0)
    np.testing.assert_array_equal(takes["07_12.bvh"].positions, raw.positions[1:])


@needs_cmu
def test_parsing_a_long_take_is_fast() -> None:
    start = time.perf_counter()
    motion = load_bvh(CMU_DIR / "01_01.bvh")
    assert len(motion) == 2752
    assert time.perf_counter() - start < 2.0


# -- CMU -> H36M ---------------------------------------------------------------------------------

def _cmu_twin(name: str) -> str:
    for side, other in (("Left", "Right"), ("Right", "Left")):
        if name.startswith(side):
            return other + name[len(side):]
    return name


def test_mapping_table_covers_h36m_and_is_mirror_symmetric() -> None:
    h36m = Skeleton.preset("h36m")
    assert tuple(H36M_FROM_CMU) == h36m.names
    for name, terms in H36M_FROM_CMU.items():
        assert sum(w for _, w in terms) == 1.0, name
        twin = h36m.names[h36m.mirror[h36m.index(name)]]
        mirrored = [(_cmu_twin(cmu), w) for cmu, w in terms]
        assert sorted(H36M_FROM_CMU[twin]) == sorted(mirrored), name


def test_to_h36m_needs_the_cmu_joints() -> None:
    with pytest.raises(ValueError, match=r"no joint map fits its joints; the closest.*misses "
                                         r"\['Head', 'LeftArm'"):
        to_h36m(parse_bvh(TWO_JOINTS))


@needs_cmu
def test_to_h36m(takes: dict[str, Motion]) -> None:
    h36m = Skeleton.preset("h36m")
    for name, motion in takes.items():
        mapped = to_h36m(motion)
        assert mapped.names == h36m.names and mapped.parents == h36m.parents
        assert mapped.positions.shape == (len(motion), 17, 3) and mapped.fps == motion.fps
        assert mapped.skeleton == h36m
        np.testing.assert_array_equal(to_h36m(mirror_motion(motion)).positions,
                                      mirror_motion(mapped).positions, err_msg=name)
        thighs = [(h36m.index(f"{s}_hip"), h36m.index(f"{s}_knee")) for s in ("left", "right")]
        for hip, knee in thighs:
            length = np.linalg.norm(mapped.positions[:, knee] - mapped.positions[:, hip], axis=-1)
            assert length.min() > 0.3 and length.max() < 0.6, name
            assert np.linalg.norm(mapped.offsets[knee]) == pytest.approx(length[0])
    pelvis = to_h36m(takes["02_01.bvh"]).positions[:, 0]
    hips = takes["02_01.bvh"].positions[:, 0]
    assert np.all(np.abs(pelvis[:, 1] - hips[:, 1]) < 0.15)  # pelvis on the hip line, below Hips
