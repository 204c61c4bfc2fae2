"""The 2D-to-3D lifting task from 3D motion: film each sequence with virtual cameras, and pair
the normalised 2D keypoints (the model's input) with the root-relative 3D pose in the camera's
frame (its target), as VideoPose3D trains on Human3.6M.

Both sides live in the camera's frame, so the mirror is the same on both: negate x (image x
about the principal point, camera x in 3D) and swap the twins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symmetrize.data.camera import add_noise, normalize_screen, project, random_cameras
from symmetrize.data.camera import world_to_camera as to_camera

__all__ = ["lifting_pairs"]


def lifting_pairs(sequences: Sequence[np.ndarray], cameras_per_sequence: int = 2,
                  rng: np.random.Generator | int | None = 0, *, root: int = 0,
                  noise: float = 0.0, margin: float = 3.0
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(keypoints_2d, pose_3d)`` pairs, one per sequence and camera.

    Args:
        sequences: world positions ``(T, J, 3)`` in metres, Y up.
        cameras_per_sequence: virtual cameras filming each sequence (random yaw, elevation,
            distance and focal length around the sequence's centre).
        rng: seed or generator of the cameras and the noise.
        root: the joint the 3D targets are relative to (the pelvis).
        noise: standard deviation of Gaussian noise on the normalised 2D keypoints.
        margin: metres kept between the camera and the farthest excursion of the subject.

    Returns:
        Pairs of normalised screen keypoints ``(T, J, 2)`` and root-relative camera-frame 3D
        poses ``(T, J, 3)``, float32.

    Raises:
        ValueError: a sequence that is not ``(T, J, 3)`` or holds NaN/inf (named by index).
    """
    gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    pairs = []
    for k, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.float64)
        if seq.ndim != 3 or seq.shape[-1] != 3 or seq.shape[0] == 0:
            raise ValueError(f"sequence {k}: expected world positions (T, J, 3), got shape "
                             f"{seq.shape}")
        if not np.isfinite(seq).all():
            frame = int(np.argwhere(~np.isfinite(seq))[0][0])
            raise ValueError(f"sequence {k}: NaN/inf coordinates (first at frame {frame})")
        centre = (seq.reshape(-1, 3).min(0) + seq.reshape(-1, 3).max(0)) / 2
        reach = float(np.linalg.norm(seq - centre, axis=-1).max())
        near = max(3.5, reach + margin)
        for camera in random_cameras(cameras_per_sequence, centre, gen,
                                     distance_range=(near, near + 3.5)):
            cam = to_camera(seq, camera)
            keypoints = normalize_screen(project(cam, camera), camera.width, camera.height)
            if noise:
                keypoints = add_noise(keypoints, noise, gen)
            target = cam - cam[:, root:root + 1]
            pairs.append((keypoints.astype(np.float32), target.astype(np.float32)))
    return pairs
