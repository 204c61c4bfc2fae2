"""Stochastic depth whose keep mask is mirror-symmetric across the samples of its batch axis."""

from __future__ import annotations

import torch
from torch import nn

from symmetrize.rep import Rep

__all__ = ["TiedDropPath"]


class TiedDropPath(nn.Module):
    """Drop a residual branch per sample, with a sample and its mirror twin kept or dropped
    together.

    Transformers over joint tokens fold the joints into the batch axis (``(b n) t c``); plain
    stochastic depth then drops a joint's branch but not its twin's, so the model is equivariant
    in expectation only. Here the batch axis transforms with ``I_outer (x) inner`` (``inner``
    the joint swap), and every sample takes the keep decision of the first sample of its orbit:
    train mode is exactly equivariant, and one random number is drawn per sample as before.

    Args:
        inner: the permutation of one block of the batch axis (the joints).
        p: the drop probability.
        scale_by_keep: divide kept branches by ``1 - p`` (timm's default).
    """

    def __init__(self, inner: Rep, p: float, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.p, self.scale_by_keep, self.inner = float(p), bool(scale_by_keep), inner
        first = torch.minimum(torch.arange(inner.size), torch.tensor(inner.perm.tolist()))
        self.register_buffer("_first", first, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        n, block = x.shape[0], self.inner.size
        if n % block:
            raise ValueError(f"TiedDropPath: a batch axis of {n} samples is not made of blocks "
                             f"of {block} (the mirror's joints)")
        keep = x.new_empty(n).bernoulli_(1.0 - self.p)
        offsets = torch.arange(0, n, block, device=x.device)[:, None]
        keep = keep[(offsets + self._first.to(x.device)[None, :]).reshape(-1)]
        if self.scale_by_keep and self.p < 1.0:
            keep = keep / (1.0 - self.p)
        return x * keep.view(n, *([1] * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f"p={self.p}, tied over {self.inner.size} joints ({self.inner.n_pairs} pairs)"
