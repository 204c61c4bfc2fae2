"""CMU motion capture (cgspeed's 31-joint BVH) mapped to the 17 joints of Human3.6M.

:func:`to_h36m` turns a CMU :class:`~symmetrize.data.bvh.Motion` into one with the joint names,
order and parents of ``Skeleton.preset("h36m")``. Each H36M joint is a fixed weighted sum of CMU
joint positions (weights sum to 1), chosen to match where H36M puts its joints:

=============== ====================================== =============================================
H36M joint      CMU joints (weight)                    why
=============== ====================================== =============================================
pelvis          LeftUpLeg 0.5, RightUpLeg 0.5          H36M's pelvis lies on the hip-joint line;
                                                       CMU's Hips sits ~10 cm above it
right_hip       RightUpLeg                             hip joint (RHipJoint sits at Hips)
right_knee      RightLeg                               knee
right_foot      RightFoot                              ankle (H36M's "foot" is the ankle)
left_hip        LeftUpLeg                              as right
left_knee       LeftLeg                                as right
left_foot       LeftFoot                               as right
spine           Spine                                  57 % up pelvis->thorax (H36M: ~48 %); mixing
                                                       in Spine1 would put it higher still
thorax          Neck 0.5, Neck1 0.5                    shoulder height (Neck = top of Spine1, zero
                                                       offset; the shoulders are ~5 cm above it)
neck_nose       Neck1 0.5, Head 0.5                    between the top of the neck and the head
head            Head 1.5, Neck1 -0.5                   Head moved half a Neck1->Head bone further
                                                       along the neck (towards the top of the head)
left_shoulder   LeftArm                                shoulder joint (LeftShoulder = clavicle root)
left_elbow      LeftForeArm                            elbow
left_wrist      LeftHand                               wrist
right_shoulder  RightArm                               as left
right_elbow     RightForeArm                           as left
right_wrist     RightHand                              as left
=============== ====================================== =============================================

Every left entry is the mirror of its right entry (same terms, same order) and every centre entry
is mirror-symmetric, so the map commutes exactly with the left/right mirror:
``to_h36m(mirror_motion(m)) == mirror_motion(to_h36m(m))`` bit for bit.
"""

from __future__ import annotations

import numpy as np

from symmetrize.data.bvh import CMU_UNIT_METRES, Motion, load_cmu
from symmetrize.skeleton import Skeleton

__all__ = ["CMU_UNIT_METRES", "H36M_FROM_CMU", "load_cmu", "to_h36m"]

Terms = tuple[tuple[str, float], ...]

H36M_FROM_CMU: dict[str, Terms] = {
    "pelvis": (("LeftUpLeg", 0.5), ("RightUpLeg", 0.5)),
    "right_hip": (("RightUpLeg", 1.0),),
    "right_knee": (("RightLeg", 1.0),),
    "right_foot": (("RightFoot", 1.0),),
    "left_hip": (("LeftUpLeg", 1.0),),
    "left_knee": (("LeftLeg", 1.0),),
    "left_foot": (("LeftFoot", 1.0),),
    "spine": (("Spine", 1.0),),
    "thorax": (("Neck", 0.5), ("Neck1", 0.5)),
    "neck_nose": (("Neck1", 0.5), ("Head", 0.5)),
    "head": (("Head", 1.5), ("Neck1", -0.5)),
    "left_shoulder": (("LeftArm", 1.0),),
    "left_elbow": (("LeftForeArm", 1.0),),
    "left_wrist": (("LeftHand", 1.0),),
    "right_shoulder": (("RightArm", 1.0),),
    "right_elbow": (("RightForeArm", 1.0),),
    "right_wrist": (("RightHand", 1.0),),
}
"""For each H36M joint, the CMU joints and weights whose weighted sum gives its position."""


def _combine(points: np.ndarray, index: dict[str, int], terms: Terms) -> np.ndarray:
    """``sum(w * points[..., index[name], :])`` over ``terms``, in their order."""
    (name, weight), *rest = terms
    out = points[..., index[name], :] * weight
    for name, weight in rest:
        out = out + points[..., index[name], :] * weight
    return out


def _rest_positions(offsets: np.ndarray, parents: tuple[int, ...]) -> np.ndarray:
    """``(J, 3)`` joint positions of the rest pose (offsets summed along each chain)."""
    rest: dict[int, np.ndarray] = {}

    def place(j: int) -> np.ndarray:
        if j not in rest:
            p = parents[j]
            rest[j] = offsets[j] if p < 0 else place(p) + offsets[j]
        return rest[j]

    return np.stack([place(j) for j in range(len(parents))])


def to_h36m(motion: Motion) -> Motion:
    """The CMU ``motion`` as the 17 H36M joints of ``Skeleton.preset("h36m")`` (same units,
    frames, fps and source); offsets are those of the mapped rest pose.

    Raises:
        ValueError: a CMU joint the mapping needs is missing from ``motion.names``.
    """
    index = {name: i for i, name in enumerate(motion.names)}
    missing = sorted({n for terms in H36M_FROM_CMU.values() for n, _ in terms} - set(index))
    if missing:
        raise ValueError(f"to_h36m needs the CMU joints {missing}, missing from the motion of "
                         f"{motion.source} (joints: {list(motion.names)})")
    h36m = Skeleton.preset("h36m")
    assert h36m.parents is not None
    positions = np.stack([_combine(motion.positions, index, H36M_FROM_CMU[name])
                          for name in h36m.names], axis=1)
    rest = _rest_positions(motion.offsets, motion.parents)
    rest_h36m = np.stack([_combine(rest, index, H36M_FROM_CMU[name]) for name in h36m.names])
    offsets = np.array([rest_h36m[j] - (rest_h36m[p] if p >= 0 else 0.0)
                        for j, p in enumerate(h36m.parents)])
    return Motion(positions, h36m.names, h36m.parents, motion.fps, offsets, motion.source)
