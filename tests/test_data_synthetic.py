"""Procedural motion: shapes, body size, floor contact, rigid symmetric bones, speed, chirality."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from symmetrize.data import synthetic
from symmetrize.data.synthetic import ACTIONS, generate_dataset, generate_motion
from symmetrize.skeleton import Skeleton

H36M = Skeleton.preset("h36m")
FPS = 50
J = {name: H36M.index(name) for name in H36M.names}
FEET = [J["left_foot"], J["right_foot"]]


def _mirror_gap(clip: np.ndarray) -> np.ndarray:
    """Per frame and joint, pose minus its mirror image (about the body's sagittal plane, X for
    heading 0), both re-centred on the pelvis: ``(T, J, 3)``."""
    centred = clip - clip[:, :1]
    mirrored = centred[:, H36M.mirror] * [-1.0, 1.0, 1.0]
    return centred - mirrored


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    """20 s of each action, facing +Z."""
    return {a: generate_motion(action=a, frames=20 * FPS, fps=FPS, rng=11, heading=0.0)
            for a in ACTIONS}


def test_shapes_and_values_are_finite(clips: dict[str, np.ndarray]) -> None:
    for clip in clips.values():
        assert clip.shape == (20 * FPS, 17, 3) and clip.dtype == np.float64
        assert np.isfinite(clip).all()


@pytest.mark.parametrize("seed", range(6))
def test_body_height_and_feet_on_the_floor(seed: int) -> None:
    for action in ACTIONS:
        clip = generate_motion(action=action, frames=150, rng=seed)
        feet = clip[:, FEET, 1].min(axis=1)
        bones = [("left_foot", "left_knee"), ("left_knee", "left_hip"), ("pelvis", "spine"),
                 ("spine", "thorax"), ("thorax", "neck_nose"), ("neck_nose", "head")]
        standing = feet.min() + sum(np.linalg.norm(clip[0, J[a]] - clip[0, J[b]])
                                    for a, b in bones)
        assert 1.4 <= standing <= 2.0                          # ankle height + bones to the head
        if action == "walk":
            assert 1.4 <= clip[:, J["head"], 1].max() <= 2.0
        assert feet.min() >= 0.0
        assert np.median(feet) < 0.1                           # on the floor (ankles ~8 cm up)
        if action != "jump":
            assert feet.max() < 0.1


def test_jumps_leave_the_floor_with_both_feet(clips: dict[str, np.ndarray]) -> None:
    feet = clips["jump"][:, FEET, 1]
    assert feet.min(axis=1).max() > 0.2
    assert np.corrcoef(feet[:, 0], feet[:, 1])[0, 1] > 0.9


def test_bones_are_rigid_and_symmetric() -> None:
    for action in ACTIONS:
        clip = generate_motion(action=action, frames=200, rng=5)
        lengths = np.stack([np.linalg.norm(clip[:, c] - clip[:, p], axis=-1)
                            for c, p in enumerate(H36M.parents) if p >= 0], axis=1)
        assert lengths.std(axis=0).max() < 1e-9
        by_child = dict(zip([c for c, p in enumerate(H36M.parents) if p >= 0], lengths[0],
                            strict=True))
        for child, length in by_child.items():
            assert length == pytest.approx(by_child[int(H36M.mirror[child])], abs=1e-12)


@pytest.mark.parametrize(("action", "speed"), [("walk", 1.3), ("run", 3.2), ("box", 0.2)])
def test_speed_and_heading_are_as_requested(action: str, speed: float) -> None:
    frames = 10 * FPS + 1
    clip = generate_motion(action=action, frames=frames, rng=2, speed_range=(speed, speed),
                           heading=0.7)
    travel = clip[-1, 0, [0, 2]] - clip[0, 0, [0, 2]]
    assert np.linalg.norm(travel) / 10.0 == pytest.approx(speed, rel=0.03, abs=0.01)
    direction = travel / np.linalg.norm(travel)
    np.testing.assert_allclose(direction, [math.sin(0.7), math.cos(0.7)], atol=0.03)


def test_in_place_motion_stays_over_the_origin() -> None:
    clip = generate_motion(action="run", frames=500, rng=0, in_place=True)
    assert np.abs(clip[:, 0, [0, 2]]).max() < 0.05


def test_frames_are_chiral(clips: dict[str, np.ndarray]) -> None:
    for action, clip in clips.items():
        gap = np.linalg.norm(_mirror_gap(clip), axis=-1)       # (T, J)
        assert np.mean(gap.max(axis=1) > 0.05) > 0.9, action   # some joint moves > 5 cm
        assert np.median(gap.mean(axis=1)) > 0.04, action


def test_mirror_statistics_balance_over_a_clip(clips: dict[str, np.ndarray]) -> None:
    for action, clip in clips.items():
        gap = _mirror_gap(clip)
        typical = np.linalg.norm(gap, axis=-1).mean(axis=0).max()
        balance = np.linalg.norm(gap.mean(axis=0), axis=-1).max()
        assert balance < 0.1 * typical, action


def test_gait_counter_phase(clips: dict[str, np.ndarray]) -> None:
    for action in ("walk", "run"):
        forward = clips[action][..., 2] - clips[action][:, :1, 2]   # along the heading
        left_foot, left_wrist, right_wrist = (forward[:, J[n]] for n in
                                              ("left_foot", "left_wrist", "right_wrist"))
        assert np.corrcoef(left_foot, right_wrist)[0, 1] > 0.7
        assert np.corrcoef(left_foot, left_wrist)[0, 1] < -0.7


def test_boxing_alternates_punching_arms(clips: dict[str, np.ndarray]) -> None:
    forward = clips["box"][..., 2] - clips["box"][:, :1, 2]
    lead = forward[:, J["left_wrist"]] - forward[:, J["right_wrist"]]
    assert np.mean(np.abs(lead) > 0.15) > 0.8               # one arm out, one guarding
    assert 0.35 < np.mean(lead > 0) < 0.65                  # each arm half the time


def test_seeded_determinism() -> None:
    a = generate_motion(action="run", frames=100, rng=3)
    np.testing.assert_array_equal(a, generate_motion(action="run", frames=100,
                                                     rng=np.random.default_rng(3)))
    assert not np.allclose(a, generate_motion(action="run", frames=100, rng=4))


def test_a_long_clip_is_fast() -> None:
    start = time.perf_counter()
    generate_motion(action="walk", frames=10_000, rng=0)
    assert time.perf_counter() - start < 1.0


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown action 'dance'"):
        generate_motion(action="dance")
    with pytest.raises(ValueError, match="only the 'h36m' skeleton"):
        generate_motion(skeleton="coco")


def test_generate_dataset_mixes_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    data = generate_dataset(6, frames=(40, 60), rng=1)
    assert len(data) == 6
    assert all(40 <= len(s) <= 60 and s.shape[1:] == (17, 3) for s in data)
    again = generate_dataset(6, frames=(40, 60), rng=1)
    assert all(np.array_equal(a, b) for a, b in zip(data, again, strict=True))

    seen: list[str] = []
    real = synthetic.generate_motion

    def spy(**kwargs: object) -> np.ndarray:
        seen.append(str(kwargs["action"]))
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(synthetic, "generate_motion", spy)
    generate_dataset(8, frames=20, rng=2, fps=25.0)
    assert sorted(seen) == sorted(ACTIONS * 2)
