"""The action-recognition example's data: CMU takes (or procedural stand-ins) labelled from
the manifest, cut into root-centred clips, split by take or subject, as an ST-GCN ``(C, T, V, M)``
dataset; random yaw augmentation and the mirror of a clip batch."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from symmetrize import Skeleton
from symmetrize.data.windows import flip_pose

TRAIN_SUBJECTS = tuple(f"{s:02d}" for s in range(1, 8))  # the takes hold no subject 04
TEST_SUBJECTS = ("08", "09")
CMU_CLASSES = ("walk", "run", "jump", "dance", "basketball", "other")
SYNTHETIC_CLASSES = ("walk", "run", "jump", "box")
# a manifest action is split into phrases at " - ", "," and "/"; its first phrase found here
# names its class, and an action with none is "other"
PHRASES = {"walk": "walk", "slow walk": "walk", "brisk walk": "walk",
           "walk on uneven terrain": "walk", "navigate": "walk", "run": "run", "jog": "run",
           "jump": "jump", "forward jumps": "jump", "dance": "dance",
           "basketball": "basketball"}
SKELETON = Skeleton.preset("h36m")


@dataclass
class Settings:
    """The run's sizes and schedule."""

    clip_len: int = 32
    clip_stride: int = 16
    frame_step: int = 4  # 120 fps takes -> 30 fps
    train_phases: int = 4  # training clips from frames 0, 1, 2, 3 (mod frame_step) of a take
    channels: tuple[int, ...] = (16, 16, 16, 32, 32, 32)
    temporal_kernel: int = 9
    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-3
    max_steps: int | None = None
    device: str = "auto"
    split: str = "take"


# -- data ----------------------------------------------------------------------------------------

@dataclass
class Take:
    """One recording cut into clips ``(n, clip_len, 17, 3)`` of root-centred 3D poses: the
    training clips ``clips`` (from every phase) and the test clips ``test_clips`` (phase 0)."""

    name: str
    subject: str
    label: str
    clips: np.ndarray
    test_clips: np.ndarray


def action_class(action: str) -> str:
    """The class of a manifest ``action`` (``"dance - expressive arms"`` -> ``"dance"``)."""
    text = action.lower()
    for separator in (" - ", ",", "/"):
        text = text.replace(separator, "|")
    for phrase in (p.strip() for p in text.split("|")):
        if phrase in PHRASES:
            return PHRASES[phrase]
    return "other"


def read_manifest(folder: Path) -> dict[str, str]:
    """``{take: action}`` from ``folder/MANIFEST.tsv`` (take = file name without ``.bvh``)."""
    with open(folder / "MANIFEST.tsv", newline="") as f:
        return {row["file"].removesuffix(".bvh"): row["action"]
                for row in csv.DictReader(f, delimiter="\t")}


def cut_clips(positions: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Clips ``(n, length, J, 3)`` cut every ``stride`` frames, the pelvis subtracted per frame."""
    starts = range(0, len(positions) - length + 1, stride)
    clips = np.stack([positions[s:s + length] for s in starts]) if starts else \
        np.zeros((0, length, *positions.shape[1:]))
    return (clips - clips[:, :, :1]).astype(np.float32)


def make_take(name: str, subject: str, label: str, positions: np.ndarray,
              settings: Settings, phases: int) -> Take:
    """A take of ``positions`` (at ``frame_step`` times 30 fps) cut at 30 fps: training clips
    from ``phases`` frame offsets (distinct 30 fps samplings of one motion), test clips from
    offset 0 only."""
    cuts = [cut_clips(positions[p::settings.frame_step], settings.clip_len, settings.clip_stride)
            for p in range(phases)]
    return Take(name, subject, label, np.concatenate(cuts), cuts[0])


def load_cmu_takes(folder: Path, settings: Settings,
                   joint_map: list[str] | None = None) -> list[Take]:
    """Every take in ``folder`` listed in its manifest, at ``120 / frame_step`` fps."""
    from symmetrize.data.takes import load_takes

    actions = read_manifest(folder)
    takes = []
    for found, motion, _ in load_takes(folder, joint_map=joint_map):  # .bvh, .amc + .asf
        name = found.path.stem
        if name not in actions:
            continue
        take = make_take(name, found.subject, action_class(actions[name]), motion.positions,
                         settings, settings.train_phases)
        if len(take.test_clips):
            takes.append(take)
    return takes


def synthetic_takes(settings: Settings, quick: bool) -> list[Take]:
    """Procedural takes at 30 fps, ``per_class`` training and 2 test takes per action; every
    take draws its own bone lengths, speed and heading."""
    from symmetrize.data.synthetic import generate_motion

    per_class = 2 if quick else 6
    takes = []
    for c, action in enumerate(SYNTHETIC_CLASSES):
        for i in range(per_class + 2):
            motion = generate_motion("h36m", action, frames=160 * settings.frame_step,
                                     fps=30.0 * settings.frame_step, rng=1000 * c + i)
            subject = "train" if i < per_class else "test"
            takes.append(make_take(f"{action}_{i:02d}", subject, action, motion, settings,
                                   settings.train_phases))
    return takes


def split_takes(takes: list[Take], split: str) -> tuple[list[Take], list[Take]]:
    """Training and test takes: by subject (CMU 08-09 or the procedural test takes are held
    out) or, with ``split="take"``, every third take of each class starting with the second."""
    if split == "subject":
        held = {t.name for t in takes if t.subject in TEST_SUBJECTS + ("test",)}
    elif split == "take":
        held = set()
        for label in dict.fromkeys(t.label for t in takes):
            held.update(t.name for t in [t for t in takes if t.label == label][1::3])
    else:
        raise ValueError(f"unknown split {split!r}: choose take or subject")
    return [t for t in takes if t.name not in held], [t for t in takes if t.name in held]


class ClipSet(torch.utils.data.Dataset):
    """Items ``(clip (3, T, 17, 1), label)``: ST-GCN's ``(C, T, V, M)`` layout, one person."""

    def __init__(self, takes: list[Take], classes: Sequence[str], test: bool = False) -> None:
        per_take = [t.test_clips if test else t.clips for t in takes]
        clips = np.concatenate(per_take)
        self.x = torch.from_numpy(clips).permute(0, 3, 1, 2).unsqueeze(-1).contiguous()
        self.y = torch.tensor([classes.index(t.label) for t, c in zip(takes, per_take)
                               for _ in c])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]


def random_yaw(batch: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
    """Rotate every clip by a random angle about the vertical (Y) axis. The set of rotations is
    closed under the mirror, so the augmentation favours neither the plain nor the chiral model."""
    x, label = batch
    angle = torch.rand(len(x), generator=generator).to(x.device, x.dtype) * (2 * math.pi)
    cos, sin = angle.cos().view(-1, 1, 1, 1), angle.sin().view(-1, 1, 1, 1)
    rotated = torch.stack([cos * x[:, 0] + sin * x[:, 2], x[:, 1],
                           -sin * x[:, 0] + cos * x[:, 2]], dim=1)
    return [rotated, label]


def mirror_clips(x: Tensor) -> Tensor:
    """The mirror of clips ``(N, C, T, V, M)``: ``flip_pose`` on ``(N, M, T, V, C)``."""
    return flip_pose(x.permute(0, 4, 2, 3, 1), SKELETON).permute(0, 4, 2, 3, 1)
