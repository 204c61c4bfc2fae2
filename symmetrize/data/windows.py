"""Temporal windows over pose sequences, and the left/right mirror augmentation.

:class:`PoseWindows` cuts sequences into the windows a temporal model (VideoPose3D-style, a
receptive field of ``receptive_field`` frames) reads, padding the sequence ends by edge
replication as VideoPose3D does. :func:`flip_pose` mirrors poses (swap every joint with its twin,
negate the horizontal coordinate); :class:`FlipAugment` flips training samples at random and
:func:`flip_test_average` is VideoPose3D's test-time flip averaging, which makes any model
exactly mirror-equivariant (at twice the cost of one forward pass).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import ArrayLike

from symmetrize.skeleton import Skeleton

__all__ = ["FlipAugment", "PairFlip", "PoseWindows", "flip_pose", "flip_test_average"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


# -- flipping -----------------------------------------------------------------------------------

def _sign(channels: int, negate: Sequence[int]) -> np.ndarray:
    sign = np.ones(channels)
    for c in negate:
        if not 0 <= c < channels:
            raise ValueError(f"negate index {c} out of range for {channels} coordinates per joint")
        sign[c] = -1.0
    return sign


def flip_pose(x: ArrayT, skeleton: Skeleton | str, negate: Sequence[int] = (0,)) -> ArrayT:
    """Mirror poses ``(..., J, C)``: swap every joint with its twin (``skeleton.mirror``) on the
    joints axis (second to last) and negate the coordinates listed in ``negate``.

    Works on numpy arrays and torch tensors (any leading axes, any device); the result has
    ``x``'s type and dtype. For normalised screen coordinates (centred at 0) and camera-frame 3D
    poses the mirror is the negation of x, ``negate=(0,)``. Flipping twice gives ``x`` back.
    """
    skel = Skeleton.coerce(skeleton)
    if x.ndim < 2 or x.shape[-2] != len(skel):
        raise ValueError(f"flip_pose expects poses (..., J, C) with J = {len(skel)} joints of "
                         f"{skel!r} on the second-to-last axis, got shape {tuple(x.shape)}")
    sign = _sign(int(x.shape[-1]), negate)
    if isinstance(x, torch.Tensor):
        index = torch.tensor(skel.mirror, device=x.device)  # a copy: mirror is read-only
        return x.index_select(-2, index) * torch.as_tensor(sign, dtype=x.dtype, device=x.device)
    arr = np.asarray(x)
    return arr[..., skel.mirror, :] * sign.astype(arr.dtype, copy=False)


class PairFlip:
    """The mirror of an ``(input, target)`` pair: the input flips with ``skeleton``/``negate``,
    the target with ``output_skeleton``/``output_negate`` (default: the same), each with
    probability ``p`` when drawn at random."""

    def __init__(self, skeleton: Skeleton | str, output_skeleton: Skeleton | str | None = None,
                 negate: Sequence[int] = (0,), output_negate: Sequence[int] | None = None,
                 p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.skeleton = Skeleton.coerce(skeleton)
        self.output_skeleton = (self.skeleton if output_skeleton is None
                                else Skeleton.coerce(output_skeleton))
        self.negate = tuple(negate)
        self.output_negate = self.negate if output_negate is None else tuple(output_negate)
        self.p = p

    def flip_input(self, x: ArrayT) -> ArrayT:
        return flip_pose(x, self.skeleton, self.negate)

    def flip_target(self, y: ArrayT) -> ArrayT:
        return flip_pose(y, self.output_skeleton, self.output_negate)


class FlipAugment(PairFlip, torch.utils.data.Dataset):
    """Wrap a dataset of ``(input, target)`` pairs, mirroring both with probability ``p``.

    The flips are :class:`PairFlip`'s. Draws come from ``generator`` (a
    :class:`torch.Generator` or an int seed), so a seeded run is reproducible; each DataLoader
    worker gets its own copy of the generator. (For training with
    :func:`~symmetrize.train.fit`, :class:`~symmetrize.data.augment.BatchFlip` draws from the
    trainer's generator instead, so resumed runs are exact.)
    """

    def __init__(self, dataset: torch.utils.data.Dataset, skeleton: Skeleton | str,
                 output_skeleton: Skeleton | str | None = None, negate: Sequence[int] = (0,),
                 output_negate: Sequence[int] | None = None, p: float = 0.5,
                 generator: torch.Generator | int | None = None) -> None:
        super().__init__(skeleton, output_skeleton, negate, output_negate, p)
        self.dataset = dataset
        if isinstance(generator, torch.Generator):
            self.generator = generator
        else:
            self.generator = torch.Generator()
            self.generator.manual_seed(operator.index(generator) if generator is not None
                                       else int(torch.randint(2**62, ()).item()))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        x, y = self.dataset[index]
        if torch.rand((), generator=self.generator).item() < self.p:
            x, y = self.flip_input(x), self.flip_target(y)
        return x, y


def flip_test_average(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      skeleton: Skeleton | str, output_skeleton: Skeleton | str | None = None,
                      negate: Sequence[int] = (0,),
                      output_negate: Sequence[int] | None = None) -> torch.Tensor:
    """VideoPose3D's test-time flip augmentation: ``(model(x) + flip(model(flip(x)))) / 2``.

    The result is exactly equivariant, ``g(flip x) == flip g(x)``, for any deterministic model
    (two forward passes, so twice the cost of one).
    """
    out_skel = skeleton if output_skeleton is None else output_skeleton
    out_negate = negate if output_negate is None else output_negate
    flipped = model(flip_pose(x, skeleton, negate))
    return (model(x) + flip_pose(flipped, out_skel, out_negate)) / 2


# -- windows ------------------------------------------------------------------------------------

def _array(value: ArrayLike, k: int, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.array(value, dtype=np.float32)  # a copy: the dataset owns its data
    if arr.ndim != 3:
        raise ValueError(f"sequence {k} {what} must have shape (T, J, C), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"empty split: sequence {k} {what} has no frames")
    bad = ~np.isfinite(arr)
    if bad.any():
        frame, joint, _ = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"sequence {k} {what} has {int(bad.sum())} non-finite values (NaN or "
                         f"inf), the first at frame {frame}, joint {joint}; drop or fill them")
    return arr


def _check_joints(arr: np.ndarray, skeleton: Skeleton | None, k: int, what: str) -> None:
    if skeleton is not None and arr.shape[1] != len(skeleton):
        raise ValueError(f"sequence {k} {what} has {arr.shape[1]} joints, expected "
                         f"{len(skeleton)} (the joints of {skeleton!r}); found shape {arr.shape}")


class PoseWindows(torch.utils.data.Dataset):
    """Windows of ``receptive_field + frames_out - 1`` input frames and their ``frames_out``
    target frames, over a list of ``(input (T, J, Cin), target (T, J', Cout))`` sequences.

    Output frames ``s .. s + frames_out - 1`` read input frames ``s - pad .. s + frames_out - 1 +
    pad`` (``pad = receptive_field // 2``), or with ``causal=True`` ``s - 2 pad .. s + frames_out
    - 1`` (each output frame is the last one its window sees). Frames before the start or past the
    end repeat the first or last frame (VideoPose3D's edge padding). Window starts ``s`` run from
    0 in steps of ``stride`` (default ``frames_out``), plus one last start ``T - frames_out`` so
    every frame is a target; targets are always real frames. Items are float32 tensors.

    Raises ValueError for an empty split, a sequence shorter than ``frames_out``, non-finite
    values, input and target frame counts that differ, joint counts that do not match
    ``skeleton`` (input) or ``output_skeleton`` (target), or shapes that differ between sequences.
    """

    def __init__(self, sequences: Sequence[tuple[ArrayLike, ArrayLike]], receptive_field: int,
                 frames_out: int = 1, stride: int | None = None, causal: bool = False,
                 skeleton: Skeleton | str | None = None,
                 output_skeleton: Skeleton | str | None = None) -> None:
        if receptive_field < 1 or receptive_field % 2 == 0:
            raise ValueError(f"receptive_field must be a positive odd frame count, "
                             f"got {receptive_field}")
        if frames_out < 1:
            raise ValueError(f"frames_out must be at least 1, got {frames_out}")
        stride = frames_out if stride is None else stride
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        if len(sequences) == 0:
            raise ValueError("empty split: no sequences given")
        self.receptive_field = receptive_field
        self.frames_out = frames_out
        self.stride = stride
        self.causal = causal
        self.skeleton = None if skeleton is None else Skeleton.coerce(skeleton)
        self.output_skeleton = (None if output_skeleton is None
                                else Skeleton.coerce(output_skeleton))
        self.inputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        starts: list[np.ndarray] = []
        for k, pair in enumerate(sequences):
            x, y = self._load(k, pair)
            self.inputs.append(torch.from_numpy(x))
            self.targets.append(torch.from_numpy(y))
            starts.append(self._starts(len(x)))
        self.index = np.concatenate([np.stack([np.full(len(s), k), s], axis=1)
                                     for k, s in enumerate(starts)]).astype(np.int64)
        pad = receptive_field // 2
        self._offset = -2 * pad if causal else -pad

    @property
    def window(self) -> int:
        """Input frames per item: ``receptive_field + frames_out - 1``."""
        return self.receptive_field + self.frames_out - 1

    def _load(self, k: int, pair: tuple[ArrayLike, ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
        try:
            raw_x, raw_y = pair
        except (TypeError, ValueError):
            raise ValueError(f"sequence {k} must be an (input, target) pair of arrays") from None
        x = _array(raw_x, k, "input")
        y = _array(raw_y, k, "target")
        if len(x) != len(y):
            raise ValueError(f"sequence {k}: the input has {len(x)} frames but the target has "
                             f"{len(y)}; they must be frame-aligned")
        if len(x) < self.frames_out:
            raise ValueError(f"sequence {k} has {len(x)} frames, fewer than frames_out = "
                             f"{self.frames_out}")
        _check_joints(x, self.skeleton, k, "input")
        _check_joints(y, self.output_skeleton, k, "target")
        if self.inputs and (x.shape[1:] != self.inputs[0].shape[1:]
                            or y.shape[1:] != self.targets[0].shape[1:]):
            raise ValueError(
                f"sequence {k} has input frames {x.shape[1:]} and target frames {y.shape[1:]}, "
                f"but sequence 0 has {tuple(self.inputs[0].shape[1:])} and "
                f"{tuple(self.targets[0].shape[1:])}; all sequences must share (J, C)")
        return x, y

    def _starts(self, frames: int) -> np.ndarray:
        last = frames - self.frames_out
        starts = np.arange(0, last + 1, self.stride)
        if starts[-1] != last:
            starts = np.append(starts, last)
        return starts

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.index)
        if not -n <= item < n:
            raise IndexError(f"window {item} out of range for {n} windows")
        seq, start = (int(v) for v in self.index[item])
        x = self.inputs[seq]
        frames = torch.arange(start + self._offset, start + self._offset + self.window)
        window = x[frames.clamp(0, len(x) - 1)]
        return window, self.targets[seq][start:start + self.frames_out].clone()
