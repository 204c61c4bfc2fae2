"""Pose data: real motion capture (BVH), VideoPose3D archives, virtual cameras, temporal windows,
the mirror augmentation and a procedural motion generator."""
