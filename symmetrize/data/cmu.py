"""CMU motion capture mapped to the 17 joints of Human3.6M.

:func:`to_h36m` turns a CMU :class:`~symmetrize.data.motion.Motion` (cgspeed's BVH conversion,
the ``LeftHip``/``Chest`` BVH naming, or CMU's own ASF/AMC) into one with the joint names, order
and parents of ``Skeleton.preset("h36m")``, with the built-in joint map that fits its joint names
(``symmetrize/data/joint_maps/*.toml``). For cgspeed's naming each H36M joint is:

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

Every left entry is the mirror of its right entry and every centre entry is mirror-symmetric, so
the map commutes exactly with the left/right mirror:
``to_h36m(mirror_motion(m)) == mirror_motion(to_h36m(m))`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

from symmetrize.data.bvh import load_cmu
from symmetrize.data.joint_maps import JointMapSpec, Terms, builtin_maps, to_target
from symmetrize.data.motion import CMU_UNIT_METRES, Motion

__all__ = ["CMU_UNIT_METRES", "H36M_FROM_CMU", "load_cmu", "to_h36m"]

H36M_FROM_CMU: dict[str, Terms] = dict(builtin_maps()[0].joints)
"""For each H36M joint, the CMU joints (cgspeed's naming) and weights whose weighted sum gives
its position (the built-in map ``cmu-cgspeed``)."""


def to_h36m(motion: Motion,
            joint_map: JointMapSpec | Sequence[JointMapSpec] | None = None) -> Motion:
    """``motion`` as the 17 H36M joints of ``Skeleton.preset("h36m")`` (same units, frames, fps
    and source; offsets of the mapped rest pose), with ``joint_map`` or the built-in map that
    fits its joint names.

    Raises:
        JointMapError: no map fits the motion's joints (naming the closest and what it lacks).
    """
    return to_target(motion, "h36m", joint_map)

