"""Virtual pinhole cameras: place them around a subject, project 3D poses to pixels, normalise
screen coordinates as VideoPose3D does, and add keypoint noise.

Conventions: the world is Y-up (as this project's motion capture); a camera maps a world point
to its own frame by ``x_cam = R @ x_world + t`` with camera x to the image's right, y down and z
along the optical axis (into the scene). Every function works on arrays of any leading shape,
e.g. ``(T, J, 3)`` poses.

Mirroring a pose in the camera frame (negate camera x, swap left/right twins) and then
projecting gives the same pixels as projecting and then mirroring the image about the principal
point (``u -> 2 cx - u``, swap twins). With ``cx = width / 2`` that image mirror is the negation
of the normalised x coordinate, which is what :func:`symmetrize.data.windows.flip_pose` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "Camera",
    "add_noise",
    "camera_to_world",
    "normalize_screen",
    "project",
    "random_cameras",
    "unnormalize_screen",
    "world_to_camera",
]

WORLD_UP = np.array([0.0, 1.0, 0.0])
H36M_FOCAL = 1145.0  # Human3.6M's cameras: about 1145 px over 1000 x 1000 pixel images


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _points(points: ArrayLike, dims: int, what: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != dims:
        raise ValueError(f"{what} must have {dims} coordinates on the last axis, "
                         f"got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera: intrinsics in pixels and world-to-camera extrinsics.

    ``x_cam = R @ x_world + t``; pixel ``u = fx * x / z + cx``, ``v = fy * y / z + cy``.
    ``R`` must be a rotation (orthonormal, determinant +1).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    R: np.ndarray
    t: np.ndarray

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            value = float(getattr(self, name))
            if not value > 0:
                raise ValueError(f"Camera.{name} must be a positive focal length, got {value}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "cx", float(self.cx))
        object.__setattr__(self, "cy", float(self.cy))
        for name in ("width", "height"):
            value = int(getattr(self, name))
            if value <= 0:
                raise ValueError(f"Camera.{name} must be a positive pixel count, got {value}")
            object.__setattr__(self, name, value)
        rot = np.array(self.R, dtype=np.float64)
        trans = np.array(self.t, dtype=np.float64).reshape(-1)
        if rot.shape != (3, 3):
            raise ValueError(f"Camera.R must be a 3x3 rotation matrix, got shape {rot.shape}")
        if trans.shape != (3,):
            raise ValueError(f"Camera.t must be a 3-vector, got shape {trans.shape}")
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
            raise ValueError("Camera.R must be a rotation (orthonormal with determinant +1)")
        rot.setflags(write=False)
        trans.setflags(write=False)
        object.__setattr__(self, "R", rot)
        object.__setattr__(self, "t", trans)

    @classmethod
    def look_at(cls, target: ArrayLike, yaw: float, elevation: float, distance: float,
                focal: float = H36M_FOCAL, size: tuple[int, int] = (1000, 1000)) -> Camera:
        """A camera on a sphere of radius ``distance`` around ``target``, looking at it.

        ``yaw`` (radians, about world Y) 0 puts the camera on the +Z side of the target (it
        sees a subject facing +Z from the front); ``elevation`` (radians) lifts it above the
        horizontal. The image is upright: camera y is world down projected into the image
        plane, camera x points to the camera's right. ``size`` is ``(width, height)``; the
        principal point is the image centre.
        """
        if not abs(elevation) < math.pi / 2 - 1e-6:
            raise ValueError(f"elevation must lie strictly between -pi/2 and pi/2 (a camera "
                             f"straight above or below has no upright image), got {elevation}")
        if not distance > 0:
            raise ValueError(f"distance must be positive, got {distance}")
        centre = np.asarray(target, dtype=np.float64).reshape(3)
        direction = np.array([math.cos(elevation) * math.sin(yaw), math.sin(elevation),
                              math.cos(elevation) * math.cos(yaw)])
        position = centre + distance * direction
        forward = -direction
        right = np.cross(forward, WORLD_UP)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rot = np.stack([right, down, forward])
        width, height = size
        return cls(fx=focal, fy=focal, cx=width / 2, cy=height / 2, width=width, height=height,
                   R=rot, t=-rot @ position)

    @property
    def K(self) -> np.ndarray:
        """The 3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def position(self) -> np.ndarray:
        """The camera centre in world coordinates (``-R.T @ t``)."""
        return -self.R.T @ self.t

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Camera):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        return (self.fx, self.fy, self.cx, self.cy, self.width, self.height,
                self.R.tobytes(), self.t.tobytes())


def random_cameras(n: int, target: ArrayLike = (0.0, 0.9, 0.0),
                   rng: np.random.Generator | int | None = None, *,
                   yaw_range: tuple[float, float] = (-math.pi, math.pi),
                   elevation_range: tuple[float, float] = (-0.1, 0.5),
                   distance_range: tuple[float, float] = (3.5, 7.0),
                   focal_range: tuple[float, float] = (800.0, 1500.0),
                   size: tuple[int, int] = (1000, 1000)) -> list[Camera]:
    """``n`` cameras looking at ``target`` (shape ``(3,)`` or one per camera ``(n, 3)``) from
    uniformly drawn yaw, elevation (radians), distance (metres) and focal length (pixels)."""
    if n < 0:
        raise ValueError(f"n must be a non-negative number of cameras, got {n}")
    gen = _as_rng(rng)
    targets = np.broadcast_to(np.asarray(target, dtype=np.float64), (n, 3))
    draws = [gen.uniform(lo, hi, size=n) for lo, hi in
             (yaw_range, elevation_range, distance_range, focal_range)]
    return [Camera.look_at(targets[i], float(yaw), float(el), float(dist), float(focal), size)
            for i, (yaw, el, dist, focal) in enumerate(zip(*draws, strict=True))]


def world_to_camera(points_world: ArrayLike, camera: Camera) -> np.ndarray:
    """World points ``(..., 3)`` in the camera's frame: ``R @ x + t``."""
    pts = _points(points_world, 3, "points_world")
    return pts @ camera.R.T + camera.t


def camera_to_world(points_cam: ArrayLike, camera: Camera) -> np.ndarray:
    """Camera-frame points ``(..., 3)`` back in world coordinates: ``R.T @ (x - t)``."""
    pts = _points(points_cam, 3, "points_cam")
    return (pts - camera.t) @ camera.R


def _where(index: tuple[int, ...]) -> str:
    if len(index) >= 2:
        lead = f"sequence {index[:-2]}, " if len(index) > 2 else ""
        return f"{lead}frame {index[-2]}, joint {index[-1]}"
    return f"point {index[0]}" if index else "the point"


def project(points_cam: ArrayLike, camera: Camera) -> np.ndarray:
    """Perspective projection of camera-frame points ``(..., 3)`` to pixels ``(..., 2)``.

    Raises ValueError when a point lies behind the camera or in its plane (``z <= 0``),
    naming how many and the first (frame and joint for ``(T, J, 3)`` input).
    """
    pts = _points(points_cam, 3, "points_cam")
    z = pts[..., 2]
    behind = z <= 0
    if behind.any():
        first = tuple(int(i) for i in np.argwhere(behind)[0])
        raise ValueError(
            f"{int(behind.sum())} of {behind.size} points lie behind the camera (z <= 0), the "
            f"first at {_where(first)} (z = {z[first]:.4g}); pass camera-frame points "
            f"(world_to_camera) and place the camera so the subject is in front of it")
    focal = np.array([camera.fx, camera.fy])
    centre = np.array([camera.cx, camera.cy])
    return pts[..., :2] / z[..., None] * focal + centre


def normalize_screen(pixels: ArrayLike, width: int, height: int) -> np.ndarray:
    """Pixels ``(..., 2)`` to VideoPose3D's normalised screen coordinates,
    ``X / w * 2 - [1, h / w]``: x in ``[-1, 1]``, aspect ratio kept, the image centre at 0."""
    pts = _points(pixels, 2, "pixels")
    return pts / width * 2 - np.array([1.0, height / width])


def unnormalize_screen(coords: ArrayLike, width: int, height: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen`: normalised coordinates ``(..., 2)`` to pixels."""
    pts = _points(coords, 2, "coords")
    return (pts + np.array([1.0, height / width])) * width / 2


def add_noise(points_2d: ArrayLike, sigma: float | ArrayLike,
              rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``points_2d`` plus independent Gaussian noise of standard deviation ``sigma`` (in the
    points' units: pixels or normalised coordinates; an array broadcasts, e.g. per joint)."""
    pts = np.asarray(points_2d, dtype=np.float64)
    scale = np.asarray(sigma, dtype=np.float64)
    if np.any(scale < 0) or not np.all(np.isfinite(scale)):
        raise ValueError(f"sigma must be finite and non-negative, got {sigma!r}")
    return pts + scale * _as_rng(rng).standard_normal(pts.shape)
