"""3D motion for training, by name: procedural motion, a folder of motion-capture takes (BVH of
any supported naming and ASF/AMC, mixed), or a VideoPose3D ``data_3d_*.npz`` archive; split into
training and validation by subject."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from symmetrize.skeleton import Skeleton

if TYPE_CHECKING:
    from symmetrize.data.joint_maps import JointMapSpec

__all__ = ["MotionSplit", "load_motion_split"]


@dataclass
class MotionSplit:
    """World positions ``(T, J, 3)`` in metres per sequence, on the joints of the skeleton
    preset ``skeleton`` (``h36m``: the 17 Human3.6M joints)."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    description: str
    skeleton: str = "h36m"

    def subset(self, fraction: float, seed: int = 0) -> MotionSplit:
        """This split with only ``round(fraction * len(train))`` training sequences (at least
        one), drawn without replacement by a generator seeded with ``seed`` and kept in their
        original order; the validation sequences are unchanged. ``fraction=1`` keeps every
        sequence, in order.

        Raises:
            ValueError: ``fraction`` is not in ``(0, 1]``.
        """
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        count = max(1, round(fraction * len(self.train)))
        keep = np.sort(np.random.default_rng(seed).choice(len(self.train), count, replace=False))
        frames = sum(len(self.train[i]) for i in keep)
        return MotionSplit([self.train[i] for i in keep], self.val,
                           f"{count} of {len(self.train)} training sequences ({frames} frames, "
                           f"seed {seed}) of: {self.description}", self.skeleton)


def load_motion_split(source: str, val_subjects: list[str] | None = None, seed: int = 0,
                      downsample: int | None = None, *, skeleton: str | Skeleton = "h36m",
                      joint_map: JointMapSpec | Sequence[JointMapSpec] | None = None
                      ) -> MotionSplit:
    """Load ``source`` and split it by subject.

    Args:
        source: ``"synthetic"`` or ``"synthetic:N"`` (N procedural clips, a quarter as many for
            validation from another seed; ``h36m`` only); a folder of motion-capture takes,
            ``.bvh`` files of any naming a joint map fits and ``.amc`` files with one ``.asf``
            per subject, mixed (subject = the file name before ``_``; read in metres and mapped
            to ``skeleton`` by :mod:`symmetrize.data.joint_maps`); or a VideoPose3D
            ``data_3d_*.npz`` archive (subjects are its keys; for ``h36m`` the 17 of 32 raw
            joints VideoPose3D keeps, for another preset arrays with its joint count).
        val_subjects: subjects held out for validation; default: the last one in sorted order
            (``S9``/``S11`` for Human3.6M).
        seed: seed of the procedural motion.
        downsample: keep every n-th frame (default ``round(fps / 60)``: 2 for 120 fps takes,
            1 for archives).
        skeleton: the skeleton preset (a name or a preset :class:`~symmetrize.Skeleton`) the
            sequences are on.
        joint_map: joint maps for takes of another naming (TOML files, built-in names or
            :class:`~symmetrize.data.joint_maps.JointMap` s), tried before the built-in ones.

    Raises:
        FileNotFoundError: no such folder, file or joint map.
        ValueError: an unknown source or skeleton, an empty split, or unreadable data (a
            :class:`~symmetrize.data.errors.DataError` naming the file, and the line where it
            can).
    """
    target = _preset_name(skeleton)
    if joint_map and not Path(source).is_dir():
        raise ValueError(f"--joint-map maps the joints of motion-capture takes, but --data "
                         f"{source!r} is not a folder of takes; drop --joint-map")
    if source == "synthetic" or source.startswith("synthetic:"):
        if target != "h36m":
            raise ValueError(f"--data {source!r}: procedural motion is on the h36m skeleton, "
                             f"not {target!r}; give a folder of takes or a data_3d_*.npz")
        return _synthetic(source, seed)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--data {source!r}: no such file or folder (give 'synthetic', "
                                "a folder of .bvh/.amc takes or a data_3d_*.npz archive)")
    if path.is_dir():
        by_subject, about = _takes_folder(path, downsample, target, joint_map)
    elif path.suffix.lower() == ".npz":
        by_subject, about = _archive(path, downsample or 1, target), ""
    else:
        raise ValueError(f"--data {source!r}: expected 'synthetic', a folder of .bvh/.amc takes "
                         "or a .npz archive")
    split = _split(by_subject, val_subjects, source)
    split.skeleton = target
    split.description += about
    return split


def _preset_name(skeleton: str | Skeleton) -> str:
    if isinstance(skeleton, str):
        return Skeleton.preset(skeleton).name or skeleton
    name = skeleton.preset_name()
    if name is None:
        raise ValueError(f"motion data is read onto a skeleton preset "
                         f"({', '.join(Skeleton.presets())}); {skeleton!r} is none of them")
    return name


def _synthetic(source: str, seed: int) -> MotionSplit:
    from symmetrize.data.synthetic import generate_dataset

    count = 32
    if ":" in source:
        text = source.split(":", 1)[1]
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"--data {source!r}: write synthetic:N with N a positive count")
        count = int(text)
    train = generate_dataset(count, frames=(150, 300), rng=seed, in_place=True)
    val = generate_dataset(max(count // 4, 1), frames=(150, 300), rng=seed + 10_007,
                           in_place=True)
    return MotionSplit(train, val, f"{count} procedural clips (+{len(val)} for validation)")


def _takes_folder(folder: Path, downsample: int | None, target: str,
                  joint_map: JointMapSpec | Sequence[JointMapSpec] | None
                  ) -> tuple[dict[str, list[np.ndarray]], str]:
    from symmetrize.data.takes import load_takes

    by_subject: dict[str, list[np.ndarray]] = {}
    used: Counter[str] = Counter()
    for take, motion, name in load_takes(folder, target=target, joint_map=joint_map):
        step = downsample or max(1, round(motion.fps / 60))
        by_subject.setdefault(take.subject, []).append(np.asarray(motion.positions[::step]))
        used[name] += 1
    maps = ", ".join(f"{name} x{count}" for name, count in sorted(used.items()))
    return by_subject, f"; takes mapped to {target} by the joint maps {maps}"


def _archive(path: Path, step: int, target: str) -> dict[str, list[np.ndarray]]:
    from symmetrize.data.archives import ArchiveError, load_positions_3d

    if target == "h36m":
        data = load_positions_3d(path, joints="h36m17")
    else:
        data = load_positions_3d(path)
        joints = len(Skeleton.preset(target))
        for subject, actions in data.items():
            for action, array in actions.items():
                if array.shape[1] != joints:
                    raise ArchiveError(f"{path}: subject {subject!r}, action {action!r} has "
                                       f"{array.shape[1]} joints, but the skeleton {target!r} has "
                                       f"{joints}; give an archive on that skeleton")
    return {subject: [np.asarray(a)[::step] for a in actions.values()]
            for subject, actions in data.items()}


def _split(by_subject: dict[str, list[np.ndarray]], val_subjects: list[str] | None,
           source: str) -> MotionSplit:
    subjects = sorted(by_subject)
    if not any(by_subject.values()):
        raise ValueError(f"--data {source!r}: no sequences to train on")
    held = list(val_subjects) if val_subjects else subjects[-1:]
    unknown = [s for s in held if s not in by_subject]
    if unknown:
        raise ValueError(f"--data {source!r}: no subject {unknown[0]!r} for validation; "
                         f"subjects: {', '.join(subjects)}")
    train = [seq for s in subjects if s not in held for seq in by_subject[s]]
    val = [seq for s in held for seq in by_subject[s]]
    if not train:
        raise ValueError(f"--data {source!r}: the training split is empty (every subject is held "
                         "out for validation); name fewer --val-subjects")
    return MotionSplit(train, val, f"{len(train)} training and {len(val)} validation sequences "
                                   f"(validation subjects {', '.join(held)})")
