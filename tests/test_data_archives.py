"""VideoPose3D archives: round trips, joint selection, symmetry checks and every error case."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from symmetrize.data.archives import (
    H36M_KEPT_JOINTS,
    ArchiveError,
    check_symmetry,
    load_positions_2d,
    load_positions_3d,
    save_positions_2d,
    save_positions_3d,
)
from symmetrize.skeleton import Skeleton

H36M_META = {"layout_name": "h36m", "num_joints": 17,
             "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
HUMANEVA_META = {"layout_name": "humaneva15", "num_joints": 15,
                 "keypoints_symmetry": [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]]}


def _positions_3d(joints: int = 32, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {subject: {action: rng.normal(size=(frames, joints, 3)).astype(np.float32)
                      for action, frames in (("Walking", 7), ("Eating 2", 4))}
            for subject in ("S1", "S9")}


def _positions_2d(joints: int = 17, cameras: int = 4, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {subject: {action: [rng.normal(size=(frames, joints, 2)).astype(np.float32)
                               for _ in range(cameras)]
                      for action, frames in (("Walking", 6), ("Sitting 1", 3))}
            for subject in ("S1", "S11")}


def _raw_npz(path: Path, **arrays: object) -> Path:
    """An archive written by NumPy directly (any content, no checks)."""
    with path.open("wb") as f:
        np.savez_compressed(f, **{k: _object(v) for k, v in arrays.items()})
    return path


def _object(value: object) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    wrapped = np.empty((), dtype=object)
    wrapped[()] = value
    return wrapped


# -- round trips ----------------------------------------------------------------------------------

def test_3d_round_trip(tmp_path: Path) -> None:
    positions = _positions_3d()
    save_positions_3d(tmp_path / "data_3d_h36m.npz", positions)
    loaded = load_positions_3d(tmp_path / "data_3d_h36m.npz")
    assert list(loaded) == ["S1", "S9"] and list(loaded["S1"]) == ["Walking", "Eating 2"]
    for subject, actions in positions.items():
        for action, array in actions.items():
            got = loaded[subject][action]
            assert got.dtype == np.float64 and got.shape == array.shape
            np.testing.assert_array_equal(got, array.astype(np.float64))


def test_archive_is_readable_by_numpy_like_videopose3d(tmp_path: Path) -> None:
    positions = _positions_3d()
    save_positions_3d(tmp_path / "a.npz", positions)
    data = np.load(tmp_path / "a.npz", allow_pickle=True)["positions_3d"].item()
    np.testing.assert_array_equal(data["S9"]["Walking"], positions["S9"]["Walking"])
    assert data["S9"]["Walking"].dtype == np.float32  # arrays keep their dtype


def test_h36m17_keeps_videopose3d_joints(tmp_path: Path) -> None:
    assert H36M_KEPT_JOINTS == (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
    positions = _positions_3d(32)
    save_positions_3d(tmp_path / "a.npz", positions)
    loaded = load_positions_3d(tmp_path / "a.npz", joints="h36m17")
    expected = positions["S1"]["Walking"][:, list(H36M_KEPT_JOINTS)]
    assert loaded["S1"]["Walking"].shape == (7, 17, 3) == (7, len(Skeleton.preset("h36m")), 3)
    np.testing.assert_array_equal(loaded["S1"]["Walking"], expected)


def test_h36m17_on_an_archive_already_at_17_joints(tmp_path: Path) -> None:
    positions = _positions_3d(17)
    save_positions_3d(tmp_path / "a.npz", positions)
    loaded = load_positions_3d(tmp_path / "a.npz", joints="h36m17")
    np.testing.assert_array_equal(loaded["S9"]["Eating 2"], positions["S9"]["Eating 2"])


def test_joint_indices_and_their_errors(tmp_path: Path) -> None:
    save_positions_3d(tmp_path / "a.npz", _positions_3d(15))
    loaded = load_positions_3d(tmp_path / "a.npz", joints=[0, 14])
    assert loaded["S1"]["Walking"].shape == (7, 2, 3)
    with pytest.raises(ValueError, match=r"joints \[15\] are outside 0..14"):
        load_positions_3d(tmp_path / "a.npz", joints=[0, 15])
    with pytest.raises(ArchiveError, match="keeps 17 of 32 raw joints, but the arrays have 15"):
        load_positions_3d(tmp_path / "a.npz", joints="h36m17")
    with pytest.raises(ValueError, match="unknown joint selection 'coco'"):
        load_positions_3d(tmp_path / "a.npz", joints="coco")


def test_humaneva_round_trip(tmp_path: Path) -> None:
    positions = {"Train/S1": {"Walk 1 chunk0": np.zeros((5, 15, 3))},
                 "Validate/S2": {"Jog 1 chunk1": np.ones((2, 15, 3), dtype=np.float32)}}
    save_positions_3d(tmp_path / "data_3d_humaneva15.npz", positions)
    loaded = load_positions_3d(tmp_path / "data_3d_humaneva15.npz")
    assert loaded["Validate/S2"]["Jog 1 chunk1"].shape == (2, 15, 3)
    save_positions_2d(tmp_path / "2d.npz", {"Train/S1": {"Walk 1 chunk0": [np.zeros((5, 15, 2))]}},
                      HUMANEVA_META)
    _, meta = load_positions_2d(tmp_path / "2d.npz", skeleton="humaneva")
    assert meta == HUMANEVA_META


def test_2d_round_trip_with_metadata_and_skeleton(tmp_path: Path) -> None:
    positions = _positions_2d()
    path = tmp_path / "data_2d_h36m_gt.npz"
    save_positions_2d(path, positions, H36M_META)
    loaded, meta = load_positions_2d(path, skeleton=Skeleton.preset("h36m"))
    assert meta == H36M_META
    cameras = loaded["S11"]["Sitting 1"]
    assert isinstance(cameras, list) and len(cameras) == 4
    for got, array in zip(cameras, positions["S11"]["Sitting 1"], strict=True):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, array.astype(np.float64))


def test_metadata_may_hold_extra_plain_entries(tmp_path: Path) -> None:
    meta = dict(H36M_META, video_metadata={"clip.mp4": {"w": 1920, "h": 1080}})
    save_positions_2d(tmp_path / "a.npz", _positions_2d(), meta)
    assert load_positions_2d(tmp_path / "a.npz")[1] == meta


@pytest.mark.parametrize("protocol", [2, 3])
def test_reads_numpy1_era_pickles(tmp_path: Path, protocol: int) -> None:
    """VideoPose3D's published archives pickle ``numpy.core.multiarray`` references."""
    data = {"S1": {"Walking": np.arange(12, dtype=np.float32).reshape(1, 4, 3)}}
    pickled = pickle.dumps(_object(data), protocol=protocol)
    pickled = pickled.replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core\nmultiarray" not in pickled and b"numpy.core.multiarray" in pickled
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": ()})
    path = tmp_path / "old.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("positions_3d.npy", header.getvalue() + pickled)
    loaded = load_positions_3d(path)
    np.testing.assert_array_equal(loaded["S1"]["Walking"], data["S1"]["Walking"])


# -- symmetry -------------------------------------------------------------------------------------

def test_check_symmetry_accepts_presets_and_swapped_side_labels() -> None:
    check_symmetry(H36M_META, "h36m")
    check_symmetry(HUMANEVA_META, Skeleton.preset("humaneva"))
    left, right = H36M_META["keypoints_symmetry"]
    check_symmetry({"keypoints_symmetry": [right, left]}, "h36m")  # same mirror permutation
    check_symmetry({"keypoints_symmetry": (np.array(left), np.array(right))}, "h36m")


def test_check_symmetry_names_the_joints_that_disagree() -> None:
    meta = {"keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 16, 15]]}
    with pytest.raises(ValueError, match=r"joint\(s\) \[12, 13, 15, 16\]") as info:
        check_symmetry(meta, "h36m")
    assert "joint 12 ('left_elbow') has 16 ('right_wrist') in the archive" in str(info.value)
    unpaired = {"keypoints_symmetry": [[4, 5, 6, 11, 12], [1, 2, 3, 14, 15]]}
    with pytest.raises(ValueError, match=r"\[13, 16\].*no twin in the archive"):
        check_symmetry(unpaired, "h36m")


def test_check_symmetry_errors() -> None:
    with pytest.raises(ValueError, match="no 'keypoints_symmetry'"):
        check_symmetry({"num_joints": 17}, "h36m")
    with pytest.raises(ValueError, match="num_joints=15 but skeleton 'h36m' has 17"):
        check_symmetry(dict(H36M_META, num_joints=15), "h36m")
    with pytest.raises(ValueError, match="must be"):
        check_symmetry({"keypoints_symmetry": [[1, 2]]}, "h36m")
    with pytest.raises(ValueError, match="2 left but 1 right"):
        check_symmetry({"keypoints_symmetry": [[1, 2], [3]]}, "h36m")
    with pytest.raises(ValueError, match="joint 17, outside 0..16"):
        check_symmetry({"keypoints_symmetry": [[17], [1]]}, "h36m")
    with pytest.raises(ValueError, match="joint 4 more than once"):
        check_symmetry({"keypoints_symmetry": [[4, 4], [1, 2]]}, "h36m")


def test_load_2d_checks_the_skeleton(tmp_path: Path) -> None:
    save_positions_2d(tmp_path / "a.npz", _positions_2d(15), HUMANEVA_META)
    with pytest.raises(ValueError, match="arrays have 15 joints but skeleton 'h36m' has 17"):
        load_positions_2d(tmp_path / "a.npz", skeleton="h36m")
    wrong = dict(H36M_META, keypoints_symmetry=[[1, 2, 3, 14, 15, 16], [4, 5, 6, 11, 13, 12]])
    save_positions_2d(tmp_path / "b.npz", _positions_2d(17), wrong)
    load_positions_2d(tmp_path / "b.npz")  # fine without a skeleton
    with pytest.raises(ValueError, match=r"disagrees with skeleton 'h36m' at joint\(s\)"):
        load_positions_2d(tmp_path / "b.npz", skeleton="h36m")


# -- file-level errors ----------------------------------------------------------------------------

def test_missing_file_directory_and_not_npz(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_positions_3d(tmp_path / "nope.npz")
    with pytest.raises(ArchiveError, match="not a file"):
        load_positions_3d(tmp_path)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ArchiveError, match=r"notes.npz: not an .npz archive"):
        load_positions_3d(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ArchiveError, match="not an .npz archive"):
        load_positions_2d(npy)


def test_missing_key_lists_the_keys_found(tmp_path: Path) -> None:
    path = _raw_npz(tmp_path / "a.npz", positions_2d={}, metadata={})
    with pytest.raises(ArchiveError, match=r"no 'positions_3d' .*'metadata', 'positions_2d'"):
        load_positions_3d(path)
    path = _raw_npz(tmp_path / "b.npz", positions_2d={})
    with pytest.raises(ArchiveError, match=r"no 'metadata' .*keys found: 'positions_2d'"):
        load_positions_2d(path)


def test_plain_array_instead_of_pickled_dict(tmp_path: Path) -> None:
    path = _raw_npz(tmp_path / "a.npz", positions_3d=np.zeros((4, 17, 3)))
    with pytest.raises(ArchiveError, match=r"shape \(4, 17, 3\) and dtype float64, not a pickled"):
        load_positions_3d(path)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (_mark_exploited, ())


_EXPLOITED: list[bool] = []


def _mark_exploited() -> None:
    _EXPLOITED.append(True)


def test_foreign_pickled_objects_are_refused_without_running(tmp_path: Path) -> None:
    path = _raw_npz(tmp_path / "evil.npz", positions_3d={"S1": {"Walking": _Exploit()}})
    with pytest.raises(ArchiveError, match=r"_mark_exploited, which a pose archive never needs"):
        load_positions_3d(path)
    assert not _EXPLOITED


def test_corrupt_member(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("positions_3d.npy", b"\x93NUMPY\x01\x00\x07\x00garbage")
    with pytest.raises(ArchiveError, match="'positions_3d' is not a valid .npy array"):
        load_positions_3d(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("positions_3d.npy", header.getvalue() + pickle.dumps({"S1": {}})[:-3])
    with pytest.raises(ArchiveError, match="could not be unpickled"):
        load_positions_3d(path)


# -- structure errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], r"expected a dict of subjects, got list"),
    ({"S1": [np.zeros((2, 17, 3))]}, r"subject 'S1': expected a dict of actions, got list"),
    ({1: {}}, r"subjects must be named by strings, got 1"),
    ({"S1": {"Walking": [[0.0, 0.0, 0.0]]}}, r"action 'Walking': expected an array .* got list"),
    ({"S1": {"Walking": np.zeros((2, 17, 2))}}, r"expected shape \(.*, 3\), got \(2, 17, 2\)"),
    ({"S1": {"Walking": np.zeros((17, 3))}}, r"got \(17, 3\)"),
    ({"S1": {"Walking": np.array([[["a", "b", "c"]]])}}, r"expected real numbers, got dtype <U1"),
])
def test_3d_structure_errors_name_file_subject_action(tmp_path: Path, data, message) -> None:
    path = _raw_npz(tmp_path / "a.npz", positions_3d=data)
    with pytest.raises(ArchiveError, match=message) as info:
        load_positions_3d(path)
    assert str(info.value).startswith(str(path))


def test_non_finite_values_name_subject_action_and_first_frame(tmp_path: Path) -> None:
    positions = _positions_3d(17)
    positions["S9"]["Eating 2"][2, 5, 1] = np.nan
    positions["S9"]["Eating 2"][3, 0, 0] = np.inf
    path = _raw_npz(tmp_path / "a.npz", positions_3d=positions)
    with pytest.raises(ArchiveError, match=r"a.npz: subject 'S9', action 'Eating 2': 2 NaN/inf "
                                           r"value\(s\) in 2 frame\(s\), the first at frame 2"):
        load_positions_3d(path)


def test_non_finite_2d_names_the_camera(tmp_path: Path) -> None:
    positions = _positions_2d()
    positions["S11"]["Walking"][3][4, 0, 0] = -np.inf
    path = _raw_npz(tmp_path / "a.npz", positions_2d=positions, metadata=H36M_META)
    with pytest.raises(ArchiveError, match=r"subject 'S11', action 'Walking', camera 3: 1 NaN/inf "
                                           r"value\(s\) in 1 frame\(s\), the first at frame 4"):
        load_positions_2d(path)


def test_inconsistent_joint_count(tmp_path: Path) -> None:
    positions = _positions_3d(17)
    positions["S9"]["Walking"] = np.zeros((3, 16, 3))
    path = _raw_npz(tmp_path / "a.npz", positions_3d=positions)
    with pytest.raises(ArchiveError, match=r"subject 'S9', action 'Walking': 16 joints, but "
                                           r".*subject 'S1', action 'Walking' has 17"):
        load_positions_3d(path)


@pytest.mark.parametrize(("positions", "metadata", "message"), [
    ({"S1": {"Walking": np.zeros((2, 17, 2))}}, H36M_META,
     r"action 'Walking': expected a list of arrays \(one per camera\), got ndarray"),
    ({"S1": {"Walking": [np.zeros((2, 17, 3))]}}, H36M_META,
     r"camera 0: expected shape \(frames, joints, 2\)"),
    ({"S1": {"Walking": [None]}}, H36M_META, r"camera 0: expected an array .* got NoneType"),
    ({"S1": {"Walking": [np.zeros((2, 17, 2))]}}, dict(H36M_META, num_joints=15),
     r"num_joints=15 but the arrays have 17 joints"),
    ({"S1": {"Walking": [np.zeros((2, 17, 2))]}}, dict(H36M_META, keypoints_symmetry=[[1], [20]]),
     r"keypoints_symmetry names joint\(s\) \[20\] outside 0..16"),
    ({"S1": {"Walking": [np.zeros((2, 17, 2))]}}, [1, 2], r"expected a dict of metadata"),
    ({"S1": {"Walking": [np.zeros((2, 17, 2))]}}, dict(H36M_META, extra={1, 2}),
     r"metadata\['extra'\]: unexpected set value"),
])
def test_2d_structure_errors(tmp_path: Path, positions, metadata, message) -> None:
    path = _raw_npz(tmp_path / "a.npz", positions_2d=positions, metadata=metadata)
    with pytest.raises(ArchiveError, match=message):
        load_positions_2d(path)
    with pytest.raises(ArchiveError, match=message):  # the writer checks the same things
        save_positions_2d(tmp_path / "out.npz", positions, metadata)
    assert not (tmp_path / "out.npz").exists()


def test_invalid_save_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    save_positions_3d(path, _positions_3d(17))
    before = path.read_bytes()
    with pytest.raises(ArchiveError, match="NaN/inf"):
        save_positions_3d(path, {"S1": {"Walking": np.full((2, 17, 3), np.nan)}})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_save_rejects_tensors_and_odd_nesting(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(ArchiveError, match="positions_3d: subject 'S1', action 'W': expected an "
                                           "array .* got Tensor"):
        save_positions_3d(tmp_path / "a.npz", {"S1": {"W": torch.zeros(2, 17, 3)}})
    with pytest.raises(ArchiveError, match="expected a dict of actions"):
        save_positions_3d(tmp_path / "a.npz", {"S1": np.zeros((2, 17, 3))})
