"""Procedural human motion: walking, running, jumping and boxing on the H36M skeleton.

Poses come from forward kinematics over the skeleton's ``parents``: randomised bone lengths
(twin bones equal, an overall scale), cyclic joint angles per action, a root moving along a
heading at a given speed, and feet kept on the floor. Motion is chiral: within a frame the left
and right limbs differ (gait counter-phase, one punching arm and one guarding, a leading foot),
and the left/right roles alternate so that a clip's mirror statistics balance out.

World frame: metres, Y up, floor at ``y = 0``; the person faces ``heading`` (radians about Y;
0 faces +Z, so the person's left is +X).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from symmetrize.skeleton import Skeleton

__all__ = ["ACTIONS", "generate_dataset", "generate_motion"]

ACTIONS = ("walk", "run", "jump", "box")
DEFAULT_SPEED = {"walk": (0.9, 1.7), "run": (2.2, 4.0), "jump": (0.0, 0.8), "box": (0.0, 0.3)}

# Rest offsets of each H36M joint from its parent, in the body frame (x left, y up, z forward),
# metres at scale 1; mirror-symmetric. Standing height (floor to head) is about 1.68 m.
_OFFSETS = np.array([
    [0.0, 0.0, 0.0],                                          # pelvis
    [-0.13, 0.0, 0.0], [0.0, -0.45, 0.0], [0.0, -0.44, 0.0],  # right hip, knee, foot
    [0.13, 0.0, 0.0], [0.0, -0.45, 0.0], [0.0, -0.44, 0.0],   # left hip, knee, foot
    [0.0, 0.23, 0.0], [0.0, 0.25, 0.0],                       # spine, thorax
    [0.0, 0.11, 0.04], [0.0, 0.11, -0.03],                    # neck/nose, head
    [0.15, -0.01, -0.01], [0.0, -0.28, 0.0], [0.0, -0.25, 0.0],   # left shoulder, elbow, wrist
    [-0.15, -0.01, -0.01], [0.0, -0.28, 0.0], [0.0, -0.25, 0.0],  # right shoulder, elbow, wrist
])
_ANKLE_HEIGHT = 0.08
_SIDES = {"l": 1.0, "r": -1.0}  # the sign of x on each side

Angles = dict[str, np.ndarray]


# -- helpers ------------------------------------------------------------------------------------

def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` about coordinate ``axis`` (0 x, 1 y, 2 z) by ``angle``."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*angle.shape, 3, 3))
    i, j = {0: (1, 2), 1: (2, 0), 2: (0, 1)}[axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _both(angles: Angles, name: str, value: Callable[[float, float], np.ndarray]) -> None:
    """Set ``name_l`` / ``name_r`` from ``value(side_sign, phase_shift)``; the right side runs
    half a cycle (``pi``) behind the left."""
    angles[f"{name}_l"] = value(1.0, 0.0)
    angles[f"{name}_r"] = value(-1.0, math.pi)


# -- actions: joint angles (radians) over time --------------------------------------------------
# Channels: pelvis_yaw, thorax_yaw (twists, negated by a mirror), spine_pitch, neck_pitch (forward
# leans), sway (lateral pelvis shift, m), lift (extra height, m); per side (_l, _r): hip_flex,
# hip_abd, knee, sh_flex, sh_abd, sh_in, elbow (flexion forward, abduction outward).

def _gait(t: np.ndarray, speed: float, rng: np.random.Generator, run: bool) -> Angles:
    amp = rng.uniform(0.85, 1.15)
    if run:
        freq = (1.1 + 0.12 * speed) * rng.uniform(0.95, 1.05)  # cycles (two steps) per second
        hip, arm = (0.4 + 0.06 * speed) * amp, 0.45 * amp
        hip_bias, twist, lean = 0.12, 0.1, 0.15
    else:
        freq = (0.45 + 0.35 * speed) * rng.uniform(0.93, 1.07)
        hip, arm = (0.22 + 0.1 * speed) * amp, (0.15 + 0.15 * speed) * amp
        hip_bias, twist, lean = 0.05, 0.07, 0.04
    phase = 2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi)
    angles: Angles = {}
    # Left leg forward (hip flexed) while the right arm swings forward.
    _both(angles, "hip_flex", lambda s, d: hip * np.sin(phase + d) + hip_bias)
    _both(angles, "hip_abd", lambda s, d: np.full_like(t, 0.03))
    if run:
        _both(angles, "knee",
              lambda s, d: 0.3 + 1.5 * amp * ((1 + np.cos(phase + d + 0.5)) / 2) ** 2)
        _both(angles, "elbow", lambda s, d: 1.4 - 0.2 * np.sin(phase + d))
    else:
        _both(angles, "knee",  # flexed most in mid-swing
              lambda s, d: 0.08 + 0.9 * amp * ((1 + np.cos(phase + d + 0.3)) / 2) ** 3)
        _both(angles, "elbow", lambda s, d: 0.3 + 0.15 * (1 - np.sin(phase + d)))
    _both(angles, "sh_flex", lambda s, d: -arm * np.sin(phase + d) + 0.05)
    _both(angles, "sh_abd", lambda s, d: np.full_like(t, 0.12))
    _both(angles, "sh_in", lambda s, d: np.zeros_like(t))
    angles["pelvis_yaw"] = -twist * amp * np.sin(phase)     # the forward leg's hip leads
    angles["thorax_yaw"] = 1.7 * twist * amp * np.sin(phase)  # shoulders counter-rotate
    angles["sway"] = -(0.015 if run else 0.025) * np.cos(phase)  # over the stance leg
    angles["spine_pitch"] = np.full_like(t, lean)
    angles["neck_pitch"] = np.full_like(t, -0.8 * lean)
    angles["lift"] = np.zeros_like(t)
    return angles


def _walk(t: np.ndarray, speed: float, rng: np.random.Generator) -> Angles:
    return _gait(t, speed, rng, run=False)


def _run(t: np.ndarray, speed: float, rng: np.random.Generator) -> Angles:
    return _gait(t, speed, rng, run=True)


def _jump(t: np.ndarray, speed: float, rng: np.random.Generator) -> Angles:
    """Two-footed jumps: crouch with the arms back, swing them up at take-off, fly. One foot
    leads (and the other arm), switching in the air at every jump."""
    del speed
    ground_share, height, depth = 0.6, rng.uniform(0.15, 0.35), 0.8 * rng.uniform(0.85, 1.15)
    count = rng.uniform(0.8, 1.1) * t + rng.uniform(0.0, 1.0)
    jump = np.floor(count)
    u = count - jump
    ground = u < ground_share
    g = np.where(ground, u / ground_share, 1.0)              # progress on the ground
    tau = np.where(ground, 0.0, (u - ground_share) / (1 - ground_share))  # progress in the air
    crouch = np.sin(math.pi * g) ** 2
    tuck = np.sin(math.pi * tau)
    swing = np.where(ground, -0.8 * np.sin(math.pi * g) + 1.6 * _smoothstep((g - 0.6) / 0.4),
                     1.6 * (1 - _smoothstep(tau)))
    lead = np.cos(math.pi * (jump + np.where(ground, 0.0, _smoothstep(tau))))  # +1: left leads
    angles: Angles = {}
    _both(angles, "hip_flex", lambda s, d: depth * crouch + 0.25 * tuck + 0.12 * s * lead)
    _both(angles, "hip_abd", lambda s, d: np.full_like(t, 0.05))
    _both(angles, "knee", lambda s, d: 1.8 * depth * crouch + 0.5 * tuck + 0.08 * (1 - s * lead))
    _both(angles, "sh_flex", lambda s, d: swing - 0.25 * s * lead)
    _both(angles, "sh_abd", lambda s, d: np.full_like(t, 0.15))
    _both(angles, "sh_in", lambda s, d: np.zeros_like(t))
    _both(angles, "elbow", lambda s, d: 0.3 + 0.4 * crouch)
    angles["pelvis_yaw"] = -0.12 * lead
    angles["thorax_yaw"] = 0.2 * lead
    angles["sway"] = np.zeros_like(t)
    angles["spine_pitch"] = 0.05 + 0.5 * depth * crouch
    angles["neck_pitch"] = -0.3 * depth * crouch
    angles["lift"] = 4 * height * tau * (1 - tau)
    return angles


def _box(t: np.ndarray, speed: float, rng: np.random.Generator) -> Angles:
    """Alternating straight punches: one arm extends while the other guards the chin; the
    shoulders turn into each punch; a bouncing, knees-bent stance."""
    del speed
    phase = 2 * math.pi * rng.uniform(0.6, 0.9) * t + rng.uniform(0, 2 * math.pi)
    reach = rng.uniform(0.85, 1.0)
    extend = {1.0: _smoothstep(2.5 * np.sin(phase)), -1.0: _smoothstep(-2.5 * np.sin(phase))}
    guard = {"sh_flex": 0.7, "sh_abd": 0.3, "sh_in": 0.1, "elbow": 2.1}
    punch = {"sh_flex": 1.45, "sh_abd": 0.1, "sh_in": 0.3, "elbow": 0.1}
    angles: Angles = {}
    for name in guard:
        _both(angles, name,
              lambda s, d, n=name: guard[n] + reach * extend[s] * (punch[n] - guard[n]))
    bounce = 0.06 * (1 - np.cos(2 * phase))
    _both(angles, "hip_flex", lambda s, d: 0.25 + bounce)
    _both(angles, "hip_abd", lambda s, d: np.full_like(t, 0.14))
    _both(angles, "knee", lambda s, d: 0.45 + 2 * bounce)
    side = extend[1.0] - extend[-1.0]  # +1 while the left arm punches
    angles["pelvis_yaw"] = -0.12 * side
    angles["thorax_yaw"] = -0.35 * side  # the punching shoulder forward
    angles["sway"] = 0.02 * side
    angles["spine_pitch"] = np.full_like(t, 0.15)
    angles["neck_pitch"] = np.full_like(t, -0.2)
    angles["lift"] = np.zeros_like(t)
    return angles


_ACTION_FN: dict[str, Callable[[np.ndarray, float, np.random.Generator], Angles]] = {
    "walk": _walk, "run": _run, "jump": _jump, "box": _box,
}


# -- kinematics ---------------------------------------------------------------------------------

def _local_rotations(angles: Angles) -> dict[int, np.ndarray]:
    """Per H36M joint, the rotation that turns its children's offsets (body frame)."""
    rx, ry, rz = partial(_rot, 0), partial(_rot, 1), partial(_rot, 2)
    local = {0: ry(angles["pelvis_yaw"]), 7: rx(angles["spine_pitch"]),
             8: ry(angles["thorax_yaw"]), 9: rx(angles["neck_pitch"])}
    for side, (hip, knee, shoulder, elbow) in (("l", (4, 5, 11, 12)), ("r", (1, 2, 14, 15))):
        s = _SIDES[side]
        local[hip] = rz(s * angles[f"hip_abd_{side}"]) @ rx(-angles[f"hip_flex_{side}"])
        local[knee] = rx(angles[f"knee_{side}"])
        local[shoulder] = (ry(-s * angles[f"sh_in_{side}"]) @ rz(s * angles[f"sh_abd_{side}"])
                           @ rx(-angles[f"sh_flex_{side}"]))
        local[elbow] = rx(-angles[f"elbow_{side}"])
    return local


def _forward_kinematics(parents: Sequence[int], offsets: np.ndarray,
                        local: dict[int, np.ndarray], frames: int) -> np.ndarray:
    """Joint positions ``(T, J, 3)`` relative to the root: ``p_j = p_parent + G_parent o_j``,
    ``G_j = G_parent R_j``."""
    positions = np.zeros((frames, len(parents), 3))
    glob: dict[int, np.ndarray] = {}
    for j, p in enumerate(parents):
        rot = local.get(j)
        if p < 0:
            glob[j] = rot if rot is not None else np.broadcast_to(np.eye(3), (frames, 3, 3))
            continue
        positions[:, j] = positions[:, p] + glob[p] @ offsets[j]
        glob[j] = glob[p] if rot is None else glob[p] @ rot
    return positions


def _bone_scales(skeleton: Skeleton, rng: np.random.Generator,
                 limb_scale_range: tuple[float, float]) -> np.ndarray:
    """Per-joint offset scales: an overall scale times a jitter shared by twin bones."""
    jitter = np.clip(1 + 0.03 * rng.standard_normal(len(skeleton)), 0.94, 1.06)
    jitter = jitter[np.minimum(np.arange(len(skeleton)), skeleton.mirror)]
    return rng.uniform(*limb_scale_range) * jitter


def _h36m(skeleton: Skeleton | str) -> Skeleton:
    skel = Skeleton.coerce(skeleton)
    if skel.preset_name() != "h36m":
        raise ValueError(f"generate_motion supports only the 'h36m' skeleton (17 joints), got "
                         f"{skel!r}; generate H36M motion and map its joints to your layout")
    return skel


def generate_motion(skeleton: Skeleton | str = "h36m", action: str = "walk", frames: int = 500,
                    fps: float = 50.0, rng: np.random.Generator | int | None = None, *,
                    limb_scale_range: tuple[float, float] = (0.9, 1.1),
                    speed_range: tuple[float, float] | None = None,
                    heading: float | None = None, in_place: bool = False) -> np.ndarray:
    """One clip of procedural motion: world joint positions ``(frames, 17, 3)`` in metres.

    ``action`` is one of :data:`ACTIONS`; ``rng`` a numpy Generator or an int seed. The body
    scale is drawn from ``limb_scale_range`` (1 is about 1.68 m tall), the speed (m/s, along
    ``heading``, random when ``None``) from ``speed_range`` (default per action,
    :data:`DEFAULT_SPEED`). Feet rest on the floor (ankles ``0.08 * scale`` above it) except in
    the air while jumping. ``in_place=True`` keeps the pelvis over the origin (a treadmill: the
    limbs move for the drawn speed but the body does not travel), so that a fixed camera keeps
    a long clip in view.
    """
    skel = _h36m(skeleton)
    if action not in _ACTION_FN:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    if frames < 1 or not fps > 0:
        raise ValueError(f"frames must be >= 1 and fps > 0, got frames={frames}, fps={fps}")
    gen = _rng(rng)
    scales = _bone_scales(skel, gen, limb_scale_range)
    speed = float(gen.uniform(*(speed_range or DEFAULT_SPEED[action])))
    if heading is None:
        heading = float(gen.uniform(-math.pi, math.pi))
    t = np.arange(frames) / fps
    angles = _ACTION_FN[action](t, speed, gen)
    offsets = _OFFSETS * scales[:, None]
    body = _forward_kinematics(skel.parents, offsets, _local_rotations(angles), frames)
    feet = body[:, [skel.index("left_foot"), skel.index("right_foot")], 1].min(axis=1)
    scale = float(scales[0])
    root = np.stack([angles["sway"] * scale,
                     _ANKLE_HEIGHT * scale - feet + angles["lift"] * scale,
                     np.zeros_like(t) if in_place else speed * t], axis=1)
    turn = _rot(1, np.float64(heading))
    return (body + root[:, None, :]) @ turn.T


def generate_dataset(n_sequences: int, frames: int | tuple[int, int] = 500,
                     actions: Sequence[str] = ACTIONS,
                     rng: np.random.Generator | int | None = None,
                     **kwargs: object) -> list[np.ndarray]:
    """``n_sequences`` clips mixing ``actions`` (as evenly as the count allows, in random order),
    each of ``frames`` frames or a length drawn from ``(min, max)``. Other keyword arguments go
    to :func:`generate_motion`."""
    if n_sequences < 0:
        raise ValueError(f"n_sequences must be non-negative, got {n_sequences}")
    if not actions:
        raise ValueError("actions must name at least one action")
    gen = _rng(rng)
    chosen = [actions[i % len(actions)] for i in range(n_sequences)]
    gen.shuffle(chosen)
    lengths = (np.full(n_sequences, frames) if isinstance(frames, int)
               else gen.integers(frames[0], frames[1] + 1, size=n_sequences))
    return [generate_motion(action=a, frames=int(n), rng=gen, **kwargs)  # type: ignore[arg-type]
            for a, n in zip(chosen, lengths, strict=True)]
