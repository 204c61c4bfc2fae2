"""Temporal windows (VideoPose3D edge padding), flip_pose, FlipAugment, flip_test_average."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symmetrize.data.camera import (
    normalize_screen,
    project,
    random_cameras,
    world_to_camera,
)
from symmetrize.data.synthetic import generate_motion
from symmetrize.data.windows import (
    FlipAugment,
    PoseWindows,
    flip_pose,
    flip_test_average,
)
from symmetrize.skeleton import Skeleton
from tests.pose_models import TemporalModel

H36M = Skeleton.preset("h36m")
OUT15 = H36M.subset([0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16])


def _ramp(frames: int, offset: float = 0.0) -> np.ndarray:
    """A (T, 1, 1) sequence whose value is its frame index (+ offset)."""
    return (np.arange(frames, dtype=np.float64) + offset).reshape(frames, 1, 1)


def _values(windows: PoseWindows) -> list[tuple[list[float], list[float]]]:
    return [(x.flatten().tolist(), y.flatten().tolist()) for x, y in windows]


def test_windows_pad_the_ends_by_edge_replication() -> None:
    ramp = _ramp(5)
    windows = PoseWindows([(ramp, ramp)], receptive_field=3)
    assert len(windows) == 5 and windows.window == 3
    assert _values(windows) == [([0, 0, 1], [0]), ([0, 1, 2], [1]), ([1, 2, 3], [2]),
                                ([2, 3, 4], [3]), ([3, 4, 4], [4])]


def test_several_output_frames_and_the_last_start() -> None:
    ramp = _ramp(5)
    windows = PoseWindows([(ramp, ramp)], receptive_field=5, frames_out=2)  # stride 2
    assert windows.window == 6
    assert _values(windows) == [([0, 0, 0, 1, 2, 3], [0, 1]), ([0, 1, 2, 3, 4, 4], [2, 3]),
                                ([1, 2, 3, 4, 4, 4], [3, 4])]          # the last start: T - 2


def test_causal_windows_end_at_their_output_frame() -> None:
    ramp = _ramp(4)
    windows = PoseWindows([(ramp, ramp)], receptive_field=3, causal=True)
    assert _values(windows) == [([0, 0, 0], [0]), ([0, 0, 1], [1]), ([0, 1, 2], [2]),
                                ([1, 2, 3], [3])]


def test_stride_skips_output_frames() -> None:
    ramp = _ramp(6)
    windows = PoseWindows([(ramp, ramp)], receptive_field=3, stride=2)
    assert [y.item() for _, y in windows] == [0, 2, 4, 5]


@pytest.mark.parametrize(("receptive_field", "frames_out", "causal"),
                         [(27, 1, False), (9, 4, False), (9, 3, True)])
def test_every_window_aligns_with_its_targets(receptive_field: int, frames_out: int,
                                              causal: bool) -> None:
    lengths = [frames_out, 7, 40, 64]   # values: 1000 * sequence + frame
    sequences = [(_ramp(n, 1000 * k) + np.zeros((1, 17, 2)),
                  _ramp(n, 1000 * k) + np.zeros((1, 17, 3))) for k, n in enumerate(lengths)]
    windows = PoseWindows(sequences, receptive_field, frames_out=frames_out, causal=causal,
                          skeleton=H36M, output_skeleton="h36m")
    pad = receptive_field // 2
    aligned = receptive_field - 1 if causal else pad  # where output frame 0 sits in the window
    covered: set[float] = set()
    for x, y in windows:
        assert x.shape == (receptive_field + frames_out - 1, 17, 2) and x.dtype == torch.float32
        assert y.shape == (frames_out, 17, 3) and y.dtype == torch.float32
        for k in range(frames_out):
            assert torch.equal(x[aligned + k, :, :1], y[k, :, :1])
        covered.update(y[:, 0, 0].tolist())
    expected = {1000 * k + i for k, n in enumerate(lengths) for i in range(n)}
    assert covered == expected                                 # every frame is a target


def test_windows_copy_their_data() -> None:
    ramp = _ramp(4)
    windows = PoseWindows([(ramp, ramp)], receptive_field=1)
    _, y = windows[0]
    y += 100
    ramp += 100
    assert windows[0][1].item() == 0 and windows[-1][1].item() == 3
    with pytest.raises(IndexError, match="window 4 out of range for 4 windows"):
        windows[4]


@pytest.mark.parametrize(("sequences", "kwargs", "message"), [
    ([], {}, "empty split: no sequences"),
    ([(np.zeros((0, 17, 2)), np.zeros((0, 17, 3)))], {}, "empty split: sequence 0 input"),
    ([(np.zeros((5, 17, 2)), np.zeros((4, 17, 3)))], {}, "input has 5 frames but the target has 4"),
    ([(np.zeros((5, 16, 2)), np.zeros((5, 17, 3)))], {"skeleton": "h36m"},
     "sequence 0 input has 16 joints, expected 17"),
    ([(np.zeros((5, 17, 2)), np.zeros((5, 17, 3)))], {"output_skeleton": OUT15},
     "sequence 0 target has 17 joints, expected 15"),
    ([(np.zeros((5, 17, 2)), np.zeros((5, 17, 3))), (np.zeros((5, 16, 2)), np.zeros((5, 17, 3)))],
     {}, "sequence 1 has input frames"),
    ([(np.zeros((2, 17, 2)), np.zeros((2, 17, 3)))], {"frames_out": 3}, "fewer than frames_out"),
    ([(np.zeros((5, 17)), np.zeros((5, 17, 3)))], {}, r"shape \(T, J, C\)"),
    ([(np.zeros((5, 17, 2)), np.zeros((5, 17, 3)))], {"receptive_field": 4}, "odd"),
])
def test_windows_validate_their_input(sequences: list, kwargs: dict, message: str) -> None:
    kwargs = {"receptive_field": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        PoseWindows(sequences, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_windows_name_the_first_non_finite_frame(bad: float) -> None:
    clean = np.zeros((6, 17, 2))
    dirty = clean.copy()
    dirty[3, 5, 1] = bad
    dirty[4, 0, 0] = bad
    with pytest.raises(ValueError, match="sequence 1 input has 2 non-finite .* frame 3, joint 5"):
        PoseWindows([(clean, np.zeros((6, 17, 3))), (dirty, np.zeros((6, 17, 3)))], 3)
    with pytest.raises(ValueError, match="sequence 0 target .* frame 3"):
        PoseWindows([(clean, dirty)], 3)


def _pose() -> np.ndarray:
    return np.arange(17 * 3, dtype=np.float64).reshape(17, 3) + 1


def test_flip_swaps_hips_and_negates_x() -> None:
    pose = _pose()
    flipped = flip_pose(pose, H36M)
    lhip, rhip, pelvis = H36M.index("left_hip"), H36M.index("right_hip"), H36M.index("pelvis")
    np.testing.assert_array_equal(flipped[lhip], pose[rhip] * [-1, 1, 1])
    np.testing.assert_array_equal(flipped[rhip], pose[lhip] * [-1, 1, 1])
    np.testing.assert_array_equal(flipped[pelvis], pose[pelvis] * [-1, 1, 1])
    np.testing.assert_array_equal(flip_pose(pose, "h36m", negate=()), pose[H36M.mirror])


def test_flip_is_an_involution_for_numpy_and_torch() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 17, 3)).astype(np.float32)
    np.testing.assert_array_equal(flip_pose(flip_pose(x, H36M), H36M), x)
    assert flip_pose(x, H36M).dtype == np.float32
    t = torch.from_numpy(x)
    assert torch.equal(flip_pose(flip_pose(t, H36M, (0, 2)), H36M, (0, 2)), t)
    assert torch.equal(flip_pose(t, H36M), torch.from_numpy(flip_pose(x, H36M)))
    assert not torch.equal(flip_pose(t, H36M), t)


def test_flip_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="J = 17"):
        flip_pose(np.zeros((5, 16, 2)), H36M)
    with pytest.raises(ValueError, match="negate index 2"):
        flip_pose(np.zeros((5, 17, 2)), H36M, negate=(2,))


def _windows() -> PoseWindows:
    rng = np.random.default_rng(1)
    sequences = [(rng.normal(size=(12, 17, 2)), rng.normal(size=(12, 15, 3))) for _ in range(2)]
    return PoseWindows(sequences, receptive_field=3, skeleton=H36M, output_skeleton=OUT15)


def test_flip_augment_flips_input_and_target_together() -> None:
    base = _windows()
    always = FlipAugment(base, H36M, OUT15, p=1.0, generator=0)
    never = FlipAugment(base, H36M, OUT15, p=0.0, generator=0)
    assert len(always) == len(base)
    for i in range(len(base)):
        x, y = base[i]
        fx, fy = always[i]
        assert torch.equal(fx, flip_pose(x, H36M)) and torch.equal(fy, flip_pose(y, OUT15))
        assert torch.equal(never[i][0], x) and torch.equal(never[i][1], y)
    z_too = FlipAugment(base, H36M, OUT15, output_negate=(0, 2), p=1.0)
    assert torch.equal(z_too[0][1], flip_pose(base[0][1], OUT15, (0, 2)))


def test_flip_augment_is_seeded() -> None:
    base = _windows()

    def draws(seed: int) -> list[bool]:
        aug = FlipAugment(base, H36M, OUT15, p=0.5, generator=torch.Generator().manual_seed(seed))
        return [not torch.equal(aug[i][0], base[i][0]) for i in range(len(base))]

    assert draws(3) == draws(3)
    assert 0 < sum(draws(3)) < len(base)
    with pytest.raises(ValueError, match="probability"):
        FlipAugment(base, H36M, p=1.5)


def test_flip_test_average_makes_a_plain_model_equivariant() -> None:
    model = TemporalModel(17, 2, 17, filter_widths=(3, 3), channels=32, dropout=0.0).eval()
    x = torch.randn(4, 15, 17, 2)
    with torch.no_grad():
        plain_error = (model(flip_pose(x, H36M)) - flip_pose(model(x), H36M)).abs().max()
        averaged = flip_test_average(model, x, H36M)
        on_flipped = flip_test_average(model, flip_pose(x, H36M), H36M)
    assert plain_error > 1e-2                                   # the plain model is not
    assert averaged.shape == (4, 7, 17, 3)
    assert (on_flipped - flip_pose(averaged, H36M)).abs().max() <= 1e-6
    with torch.no_grad():
        direct = (model(x) + flip_pose(model(flip_pose(x, H36M)), H36M)) / 2
    torch.testing.assert_close(averaged, direct)


def test_flipping_samples_equals_filming_the_mirrored_motion() -> None:
    def sequences(mirror: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for action in ("walk", "box"):
            clip = generate_motion(action=action, frames=40, rng=1, in_place=True)
            camera = random_cameras(1, clip.mean(axis=(0, 1)), rng=5)[0]
            pose = world_to_camera(clip, camera)
            pose = flip_pose(pose, H36M) if mirror else pose  # mirror in the camera frame
            keypoints = normalize_screen(project(pose, camera), camera.width, camera.height)
            out.append((keypoints, pose - pose[:, :1]))
        return out

    flipped = FlipAugment(PoseWindows(sequences(False), 9), H36M, p=1.0, generator=np.int64(3))
    filmed = PoseWindows(sequences(True), 9)
    assert len(flipped) == len(filmed) == 80
    for (fx, fy), (gx, gy) in zip(flipped, filmed, strict=True):
        torch.testing.assert_close(fx, gx, rtol=0, atol=1e-6)
        torch.testing.assert_close(fy, gy, rtol=0, atol=1e-6)
