"""Chirality-equivariant batch normalisation of ``(N, C, H, W)`` tensors (e.g. ST-GCN's
``(N, C, T, V)``), with the augmented-batch statistics of :class:`ChiralBatchNorm1d`."""

from __future__ import annotations

import torch
from torch import nn

from symmetrize.nn.batchnorm import ChiralBatchNorm1d

__all__ = ["ChiralBatchNorm2d"]


class ChiralBatchNorm2d(ChiralBatchNorm1d):
    """``nn.BatchNorm2d`` normalising with the statistics of the augmented batch ``{x, T x}``.

    Channels are on axis 1 of an ``(N, C, H, W)`` input, ``C = rep.size``; the Rep acts on
    channels only. Per-channel statistics pool over ``N``, ``H`` and ``W`` alike, so the layer is
    also equivariant when the mirror additionally permutes ``H`` or ``W`` (joints on ``V``).
    Everything else (shared ``gamma`` / ``beta``, running statistics, ``momentum=None``,
    evaluation mode, ``affine=False``, ``track_running_stats=False``, loading plain checkpoints)
    is as :class:`ChiralBatchNorm1d`, whose forward runs on the 4-D input unchanged: its
    statistics, output and gradient kernels reduce over every axis but 1.

    The state dict has the keys of ``nn.BatchNorm2d``'s (dense ``weight`` / ``bias`` entries of
    a plain checkpoint are projected, running statistics symmetrised). The layer is an
    ``nn.BatchNorm1d`` subclass (as :class:`ChiralBatchNorm1d`), not an ``nn.BatchNorm2d``.

    Args: ``rep`` (how the mirror acts on the channels), then those of ``nn.BatchNorm2d``.
    """

    _dense_cls = nn.BatchNorm2d

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"{type(self).__name__}: expected 4D input (got {input.dim()}D input "
                             f"of shape {tuple(input.shape)}); lay it out as (N, C, H, W)")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, C, H, W) with "
                f"C = {self.num_features} channels on axis 1, got shape {tuple(input.shape)}")
