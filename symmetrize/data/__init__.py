"""Pose data: real motion capture (BVH, ASF/AMC, folders mixing them, joint maps onto skeleton
presets), VideoPose3D archives, virtual cameras, temporal windows, the mirror augmentation and a
procedural motion generator.

The readers raise :class:`DataError` s (``ValueError`` s) that name the file, and the line for
text files (:class:`BVHError`, :class:`ASFError`, :class:`AMCError`, :class:`JointMapError`;
``symmetrize.data.archives.ArchiveError`` for ``.npz`` archives); a missing file raises
``FileNotFoundError``. See ``docs/data.md``.
"""

from symmetrize.data.amc import load_asf_amc
from symmetrize.data.bvh import load_bvh, load_cmu
from symmetrize.data.errors import (
    AMCError,
    ASFError,
    BVHError,
    DataError,
    DataFileError,
    JointMapError,
)
from symmetrize.data.joint_maps import JointMap, builtin_maps, choose_map, to_target
from symmetrize.data.motion import CMU_UNIT_METRES, Motion, mirror_motion
from symmetrize.data.takes import load_take, load_takes

__all__ = [
    "AMCError",
    "ASFError",
    "BVHError",
    "CMU_UNIT_METRES",
    "DataError",
    "DataFileError",
    "JointMap",
    "JointMapError",
    "Motion",
    "builtin_maps",
    "choose_map",
    "load_asf_amc",
    "load_bvh",
    "load_cmu",
    "load_take",
    "load_takes",
    "mirror_motion",
    "to_target",
]
