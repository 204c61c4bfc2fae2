"""Virtual cameras: projection, look-at placement, screen normalisation, noise, mirror property."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symmetrize.data.camera import (
    Camera,
    add_noise,
    camera_to_world,
    normalize_screen,
    project,
    random_cameras,
    unnormalize_screen,
    world_to_camera,
)
from symmetrize.data.windows import flip_pose
from symmetrize.skeleton import Skeleton

H36M = Skeleton.preset("h36m")


def _camera(cx: float = 500.0, cy: float = 400.0) -> Camera:
    return Camera(fx=1000.0, fy=900.0, cx=cx, cy=cy, width=1000, height=800, R=np.eye(3),
                  t=np.zeros(3))


def _poses_in_front(rng: np.random.Generator, frames: int = 20) -> np.ndarray:
    """Random camera-frame poses (T, 17, 3): joints scattered around a root 3-6 m away."""
    root = np.stack([rng.uniform(-1, 1, frames), rng.uniform(-1, 1, frames),
                     rng.uniform(3, 6, frames)], axis=1)
    return root[:, None, :] + rng.normal(0, 0.4, (frames, len(H36M), 3))


def _mirror_image(pixels: np.ndarray, camera: Camera) -> np.ndarray:
    """Mirror keypoints in the image about the principal point and swap twins."""
    out = pixels[..., H36M.mirror, :].copy()
    out[..., 0] = 2 * camera.cx - out[..., 0]
    return out


def test_point_on_the_optical_axis_projects_to_the_principal_point() -> None:
    cam = _camera()
    np.testing.assert_allclose(project([0.0, 0.0, 4.2], cam), [500.0, 400.0])


def test_known_point_projects_to_hand_computed_pixels() -> None:
    cam = _camera()
    # u = 1000 * 0.5 / 2 + 500 = 750; v = 900 * -0.2 / 2 + 400 = 310
    np.testing.assert_allclose(project([0.5, -0.2, 2.0], cam), [750.0, 310.0])
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    moved = Camera(fx=1000.0, fy=900.0, cx=500.0, cy=400.0, width=1000, height=800, R=rot,
                   t=[0.0, 0.0, 1.0])
    world = np.array([-0.2, -0.5, 1.0])   # R @ world + t = (0.5, -0.2, 2.0)
    np.testing.assert_allclose(world_to_camera(world, moved), [0.5, -0.2, 2.0])
    np.testing.assert_allclose(project(world_to_camera(world, moved), moved), [750.0, 310.0])
    np.testing.assert_allclose(camera_to_world([0.5, -0.2, 2.0], moved), world)


def test_projection_is_vectorised_over_leading_axes() -> None:
    rng = np.random.default_rng(0)
    poses = _poses_in_front(rng).reshape(4, 5, 17, 3)
    cam = _camera()
    pixels = project(poses, cam)
    assert pixels.shape == (4, 5, 17, 2)
    np.testing.assert_allclose(pixels[2, 3, 7], project(poses[2, 3, 7], cam))


def test_points_behind_the_camera_are_named() -> None:
    poses = np.ones((3, 17, 3))
    poses[1, 3, 2] = -0.5
    poses[2, 0, 2] = 0.0
    with pytest.raises(ValueError, match=r"2 of 51 points lie behind the camera.*frame 1, joint 3"):
        project(poses, _camera())


def test_normalize_screen_matches_videopose3d_and_round_trips() -> None:
    pixels = np.array([[0.0, 0.0], [1000.0, 1000.0], [500.0, 250.0]])
    np.testing.assert_allclose(normalize_screen(pixels[:2], 1000, 1000), [[-1, -1], [1, 1]])
    np.testing.assert_allclose(normalize_screen(pixels[2], 1000, 500), [0.0, 0.0])
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 1000, (6, 17, 2))
    back = unnormalize_screen(normalize_screen(points, 1000, 700), 1000, 700)
    np.testing.assert_allclose(back, points, rtol=0, atol=1e-9)


@pytest.mark.parametrize("elevation", [-0.6, 0.0, 0.3, 1.2])
def test_look_at_puts_the_target_at_the_image_centre(elevation: float) -> None:
    target = np.array([0.3, 0.9, -1.2])
    for yaw in np.linspace(-math.pi, math.pi, 9):
        cam = Camera.look_at(target, yaw, elevation, 4.5, focal=1100.0, size=(1000, 800))
        np.testing.assert_allclose(project(world_to_camera(target, cam), cam), [500.0, 400.0],
                                   atol=1e-9)
        assert np.linalg.norm(cam.position - target) == pytest.approx(4.5)
        assert world_to_camera(target, cam)[2] == pytest.approx(4.5)
        above = project(world_to_camera(target + [0.0, 0.5, 0.0], cam), cam)
        assert above[1] < 400.0                      # world up is image up (image y points down)


def test_look_at_image_x_is_the_cameras_right() -> None:
    cam = Camera.look_at([0.0, 1.0, 0.0], 0.0, 0.0, 5.0)   # on +Z, looking towards -Z
    np.testing.assert_allclose(cam.position, [0.0, 1.0, 5.0], atol=1e-12)
    right = project(world_to_camera([0.3, 1.0, 0.0], cam), cam)  # +X is the camera's right
    assert right[0] > cam.cx
    np.testing.assert_allclose(np.linalg.det(cam.R), 1.0)


def test_look_at_rejects_a_vertical_camera() -> None:
    with pytest.raises(ValueError, match="elevation"):
        Camera.look_at([0.0, 0.0, 0.0], 0.0, math.pi / 2, 3.0)


@pytest.mark.parametrize("cx", [500.0, 437.5])
def test_mirror_in_camera_frame_equals_mirror_in_image(cx: float) -> None:
    rng = np.random.default_rng(2)
    cam = _camera(cx=cx)
    poses = _poses_in_front(rng, frames=50)
    mirrored = flip_pose(poses, H36M, negate=(0,))      # negate camera x, swap twins
    np.testing.assert_allclose(project(mirrored, cam), _mirror_image(project(poses, cam), cam),
                               rtol=0, atol=1e-9)


def test_mirror_property_through_look_at_cameras_and_normalised_coordinates() -> None:
    rng = np.random.default_rng(3)
    cameras = random_cameras(5, target=(0.0, 1.0, 0.0), rng=rng)
    world = rng.normal(0, 0.3, (10, 17, 3)) + [0.0, 1.0, 0.0]
    for cam in cameras:
        in_cam = world_to_camera(world, cam)
        pixels = project(in_cam, cam)
        flipped = project(flip_pose(in_cam, H36M), cam)
        np.testing.assert_allclose(flipped, _mirror_image(pixels, cam), atol=1e-8)
        # cx = width / 2: the image mirror is the negation of the normalised x coordinate
        normalised = normalize_screen(pixels, cam.width, cam.height)
        np.testing.assert_allclose(normalize_screen(flipped, cam.width, cam.height),
                                   flip_pose(normalised, H36M), atol=1e-12)


def test_random_cameras_are_seeded_and_within_ranges() -> None:
    kwargs = {"distance_range": (4.0, 5.0), "focal_range": (900.0, 1000.0),
              "elevation_range": (0.1, 0.2)}
    a = random_cameras(6, (0.0, 1.0, 0.0), np.random.default_rng(7), **kwargs)
    b = random_cameras(6, (0.0, 1.0, 0.0), 7, **kwargs)
    assert a == b and len(a) == 6
    assert a != random_cameras(6, (0.0, 1.0, 0.0), 8, **kwargs)
    for cam in a:
        offset = cam.position - [0.0, 1.0, 0.0]
        assert 4.0 <= np.linalg.norm(offset) <= 5.0
        assert 900.0 <= cam.fx <= 1000.0
        assert math.sin(0.1) <= offset[1] / np.linalg.norm(offset) <= math.sin(0.2)


def test_camera_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="rotation"):
        Camera(1000.0, 1000.0, 500.0, 500.0, 1000, 1000, R=np.diag([1.0, 1.0, -1.0]), t=np.zeros(3))
    with pytest.raises(ValueError, match="fx"):
        Camera(0.0, 1000.0, 500.0, 500.0, 1000, 1000, R=np.eye(3), t=np.zeros(3))
    cam = _camera()
    assert not cam.R.flags.writeable
    np.testing.assert_allclose(cam.K, [[1000, 0, 500], [0, 900, 400], [0, 0, 1]])
    assert hash(cam) == hash(_camera())


def test_add_noise_is_seeded_gaussian() -> None:
    points = np.zeros((2000, 17, 2))
    noisy = add_noise(points, 2.0, np.random.default_rng(4))
    np.testing.assert_array_equal(noisy, add_noise(points, 2.0, 4))
    assert noisy.std() == pytest.approx(2.0, rel=0.02)
    assert abs(noisy.mean()) < 0.02
    with pytest.raises(ValueError, match="sigma"):
        add_noise(points, -1.0, 0)
