"""The mirror augmentation applied to training batches (VideoPose3D's flip augmentation), with
random draws the trainer controls so interrupted runs resume exactly."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from symmetrize.data.windows import PairFlip

__all__ = ["BatchFlip"]


class BatchFlip(PairFlip):
    """Mirror each sample of a batch, input and target together, with probability ``p``.

    Called by :func:`~symmetrize.train.fit` (``augment=BatchFlip(...)``) as
    ``flip(batch, generator)`` with a generator seeded from the run's seed and step, so the
    draws of a resumed run equal an uninterrupted run's. The inputs (every batch entry but the
    last) flip with ``skeleton``/``negate``, the target (the last) with ``output_skeleton``/
    ``output_negate`` (default: the same); see :class:`~symmetrize.data.windows.PairFlip`.
    """

    def __call__(self, batch: Sequence[torch.Tensor],
                 generator: torch.Generator) -> list[torch.Tensor]:
        *inputs, target = batch
        chosen = torch.rand(len(target), generator=generator) < self.p
        return [*(self._where(chosen, x, self.flip_input(x)) for x in inputs),
                self._where(chosen, target, self.flip_target(target))]

    @staticmethod
    def _where(chosen: torch.Tensor, x: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
        mask = chosen.to(x.device).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(mask, flipped, x)
