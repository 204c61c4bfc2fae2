"""The mirror augmentation applied to training batches (VideoPose3D's flip augmentation), with
random draws the trainer controls so interrupted runs resume exactly."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from symmetrize.data.windows import flip_pose
from symmetrize.skeleton import Skeleton

__all__ = ["BatchFlip"]


class BatchFlip:
    """Mirror each sample of a batch, input and target together, with probability ``p``.

    Called by :func:`~symmetrize.train.fit` (``augment=BatchFlip(...)``) as
    ``flip(batch, generator)`` with a generator seeded from the run's seed and step, so the
    draws of a resumed run equal an uninterrupted run's. The inputs (every batch entry but the
    last) flip with ``skeleton``/``negate``, the target (the last) with ``output_skeleton``/
    ``output_negate`` (default: the same).
    """

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

    def __call__(self, batch: Sequence[torch.Tensor],
                 generator: torch.Generator) -> list[torch.Tensor]:
        *inputs, target = batch
        chosen = torch.rand(len(target), generator=generator) < self.p
        return [*(self._where(chosen, x, flip_pose(x, self.skeleton, self.negate))
                  for x in inputs),
                self._where(chosen, target,
                            flip_pose(target, self.output_skeleton, self.output_negate))]

    @staticmethod
    def _where(chosen: torch.Tensor, x: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
        mask = chosen.to(x.device).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(mask, flipped, x)
