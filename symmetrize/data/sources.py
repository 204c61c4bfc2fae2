"""3D motion for training, by name: procedural motion, a folder of CMU BVH takes, or a
VideoPose3D ``data_3d_*.npz`` archive; split into training and validation by subject."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MotionSplit", "load_motion_split"]


@dataclass
class MotionSplit:
    """World positions ``(T, 17, 3)`` in metres (Human3.6M joints) per sequence."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    description: str

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
                           f"seed {seed}) of: {self.description}")


def load_motion_split(source: str, val_subjects: list[str] | None = None, seed: int = 0,
                      downsample: int | None = None) -> MotionSplit:
    """Load ``source`` and split it by subject.

    Args:
        source: ``"synthetic"`` or ``"synthetic:N"`` (N procedural clips, a quarter as many for
            validation from another seed); a folder of CMU ``.bvh`` takes (subject = the file
            name before ``_``; mapped to the Human3.6M joints); or a VideoPose3D
            ``data_3d_*.npz`` archive (subjects are its keys).
        val_subjects: subjects held out for validation; default: the last one in sorted order
            (``S9``/``S11`` for Human3.6M).
        seed: seed of the procedural motion.
        downsample: keep every n-th frame (default 2 for 120 fps BVH, else 1).

    Raises:
        FileNotFoundError: no such folder or file.
        ValueError: an unknown source, an empty split, or unreadable data (named by file).
    """
    if source == "synthetic" or source.startswith("synthetic:"):
        return _synthetic(source, seed)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--data {source!r}: no such file or folder (give 'synthetic', "
                                "a folder of .bvh files or a data_3d_*.npz archive)")
    if path.is_dir():
        by_subject = _bvh_folder(path, downsample or 2)
    elif path.suffix == ".npz":
        by_subject = _archive(path, downsample or 1)
    else:
        raise ValueError(f"--data {source!r}: expected 'synthetic', a folder of .bvh files or a "
                         ".npz archive")
    return _split(by_subject, val_subjects, source)


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


def _bvh_folder(folder: Path, step: int) -> dict[str, list[np.ndarray]]:
    from symmetrize.data.bvh import load_cmu
    from symmetrize.data.cmu import to_h36m

    files = sorted(folder.glob("*.bvh"))
    if not files:
        raise ValueError(f"--data {str(folder)!r}: the folder holds no .bvh files")
    by_subject: dict[str, list[np.ndarray]] = {}
    for file in files:
        subject = file.stem.split("_")[0]
        positions = to_h36m(load_cmu(file)).positions[::step]
        by_subject.setdefault(subject, []).append(positions)
    return by_subject


def _archive(path: Path, step: int) -> dict[str, list[np.ndarray]]:
    from symmetrize.data.archives import load_positions_3d

    data = load_positions_3d(path, joints="h36m17")
    return {subject: [np.asarray(a)[::step] for a in actions.values()]
            for subject, actions in data.items()}


def _split(by_subject: dict[str, list[np.ndarray]], val_subjects: list[str] | None,
           source: str) -> MotionSplit:
    subjects = sorted(by_subject)
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
