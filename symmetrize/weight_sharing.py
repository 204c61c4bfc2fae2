"""The parameter sharing of equivariant weights, entry by entry: :class:`WeightSharing`.

A weight ``W`` (``out x in``) is equivariant from ``rep_in`` to ``rep_out`` iff
``W[perm_out[i], perm_in[j]] = sign_out[i] * sign_in[j] * W[i, j]``; the orbits of the entries give
the free parameters. The chiral layers compute in the block form of :mod:`symmetrize.eigenbasis`;
this entry-wise form states the sharing, counts the free parameters and projects dense weights
(the two agree exactly, which the tests check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from symmetrize.rep import Rep, frozen_array

__all__ = ["WeightSharing", "weight_sharing"]


@dataclass(frozen=True, eq=False)
class WeightSharing:
    """Parameter sharing of a weight ``W`` (``out x in``) equivariant from ``rep_in`` to ``rep_out``.

    ``W`` is equivariant iff ``W[perm_out[i], perm_in[j]] = sign_out[i] * sign_in[j] * W[i, j]``.
    The map ``(i, j) -> (perm_out[i], perm_in[j])`` splits the entries into orbits of one or two
    entries. Each two-entry orbit is one free parameter used twice (the second time with its sign
    ``sign2``); a one-entry orbit with sign ``+1`` is one free parameter, with sign ``-1`` it is
    forced to zero. The free parameters ``theta`` are ordered orbit-major: the ``n_pairs`` two-entry
    orbits first, then the one-entry ones.

    With ``W`` flattened to ``out * in`` rows (and any trailing axes, e.g. kernel taps, kept),
    ``W = theta[index] * sign`` (one gather, one multiply); the gradient of ``theta`` is
    ``g[pos1]`` plus ``sign2 * g[pos2]`` on the first ``n_pairs`` rows (two gathers).

    Attributes:
        rep_in, rep_out: the two Reps.
        index: ``int64 (out*in,)``: which free parameter each entry of ``W`` reads.
        sign: ``int64 (out*in,)`` in ``{-1, 0, +1}``: ``0`` marks a forced zero.
        pos1: ``int64 (n_free,)``: the entry each free parameter is stored at (sign ``+1``).
        pos2: ``int64 (n_pairs,)``: the second entry of each two-entry orbit.
        sign2: ``int64 (n_pairs,)``: the sign of that second entry.
    """

    rep_in: Rep
    rep_out: Rep
    index: np.ndarray = field(repr=False)
    sign: np.ndarray = field(repr=False)
    pos1: np.ndarray = field(repr=False)
    pos2: np.ndarray = field(repr=False)
    sign2: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rep_out.size, self.rep_in.size)

    @property
    def n_free(self) -> int:
        """Free parameters = dimension of the space of equivariant ``out x in`` matrices."""
        return int(self.pos1.size)

    @property
    def n_pairs(self) -> int:
        return int(self.pos2.size)

    @property
    def n_zero(self) -> int:
        """Entries forced to zero by the symmetry."""
        return int((self.sign == 0).sum())

    def materialize(self, theta: torch.Tensor) -> torch.Tensor:
        """Dense weight ``(out, in, *extra)`` from free parameters ``(n_free, *extra)``."""
        self._check_theta(theta)
        if self.n_free == 0:
            return theta.new_zeros(*self.shape, *theta.shape[1:])
        index = torch.tensor(self.index, device=theta.device)
        sign = torch.tensor(self.sign, device=theta.device, dtype=theta.dtype)
        flat = theta.index_select(0, index) * sign.view(-1, *([1] * (theta.dim() - 1)))
        return flat.view(*self.shape, *theta.shape[1:])

    def project(self, weight: torch.Tensor) -> torch.Tensor:
        """Free parameters of the closest equivariant weight to a dense ``weight`` (out, in, ...).

        Closest in the Frobenius norm: the orthogonal projection ``(W + T_out W T_in) / 2``.
        """
        flat = self._flatten_dense(weight)
        pos1 = torch.tensor(self.pos1, device=weight.device)
        theta = flat.index_select(0, pos1).clone()
        if self.n_pairs:
            pos2 = torch.tensor(self.pos2, device=weight.device)
            sign2 = torch.tensor(self.sign2, device=weight.device, dtype=weight.dtype)
            extra = [1] * (flat.dim() - 1)
            second = flat.index_select(0, pos2) * sign2.view(-1, *extra)
            theta[: self.n_pairs] = (theta[: self.n_pairs] + second) / 2
        return theta

    def project_dense(self, weight: torch.Tensor) -> torch.Tensor:
        """The closest equivariant dense weight to ``weight``."""
        return self.materialize(self.project(weight))

    def projection_error(self, weight: torch.Tensor) -> float:
        """``||W - P(W)|| / ||W||``: how far a dense weight is from equivariant (0 when it is)."""
        norm = float(weight.detach().norm())
        if norm == 0.0:
            return 0.0
        return float((weight.detach() - self.project_dense(weight.detach())).norm()) / norm

    def sample_like(self, weight: torch.Tensor) -> torch.Tensor:
        """Free parameters read off a randomly initialised dense ``weight`` (out, in, ...) so
        that each output row keeps the variance the dense initialisation gives it.

        Each free parameter takes the value of its first entry (not the orbit average, which would
        halve the variance); rows that lose entries to forced zeros are scaled up by
        ``sqrt(in / nonzero entries)``.
        """
        flat = self._flatten_dense(weight)
        pos1 = torch.tensor(self.pos1, device=weight.device)
        theta = flat.index_select(0, pos1).clone()
        n_out, n_in = self.shape
        nonzero = (self.sign.reshape(n_out, n_in) != 0).sum(axis=1)
        gain = np.sqrt(n_in / np.maximum(nonzero, 1))
        row_gain = torch.tensor(gain[self.pos1 // n_in], dtype=weight.dtype, device=weight.device)
        return theta * row_gain.view(-1, *([1] * (theta.dim() - 1)))

    def _flatten_dense(self, weight: torch.Tensor) -> torch.Tensor:
        if tuple(weight.shape[:2]) != self.shape:
            raise ValueError(
                f"dense weight of shape {tuple(weight.shape)} does not match this sharing's "
                f"(out, in) = {self.shape}")
        return weight.reshape(self.shape[0] * self.shape[1], *weight.shape[2:])

    def _check_theta(self, theta: torch.Tensor) -> None:
        if theta.dim() < 1 or theta.shape[0] != self.n_free:
            raise ValueError(
                f"free parameters of shape {tuple(theta.shape)} do not match this sharing's "
                f"{self.n_free} free parameters")

    def __repr__(self) -> str:
        return (f"WeightSharing({self.rep_out.size}x{self.rep_in.size}: {self.n_free} free "
                f"({self.n_pairs} shared pairs), {self.n_zero} forced zeros)")


_SHARING_CACHE: dict[tuple[Rep, Rep], WeightSharing] = {}


def weight_sharing(rep_in: Rep, rep_out: Rep) -> WeightSharing:
    """The parameter sharing that makes ``W`` (``len(rep_out) x len(rep_in)``) equivariant.

    A bias is the case ``rep_in = Rep.trivial(1)``. Results are cached per Rep pair.
    """
    if not isinstance(rep_in, Rep) or not isinstance(rep_out, Rep):
        raise TypeError(f"weight_sharing expects two Reps, got {type(rep_in).__name__} and "
                        f"{type(rep_out).__name__}")
    key = (rep_in, rep_out)
    cached = _SHARING_CACHE.get(key)
    if cached is not None:
        return cached
    n_in, n_out = rep_in.size, rep_out.size
    pos = np.arange(n_out * n_in, dtype=np.int64)
    partner = (rep_out.perm[:, None] * n_in + rep_in.perm[None, :]).reshape(-1)
    orbit_sign = (rep_out.sign[:, None] * rep_in.sign[None, :]).reshape(-1)
    first = pos < partner
    fixed_free = (pos == partner) & (orbit_sign > 0)
    pos1 = np.concatenate([pos[first], pos[fixed_free]])
    pos2 = partner[first]
    sign2 = orbit_sign[first]
    index = np.zeros(pos.size, dtype=np.int64)
    sign = np.zeros(pos.size, dtype=np.int64)
    free_ids = np.arange(pos1.size, dtype=np.int64)
    index[pos1] = free_ids
    sign[pos1] = 1
    index[pos2] = free_ids[: pos2.size]
    sign[pos2] = sign2
    sharing = WeightSharing(rep_in, rep_out, frozen_array(index), frozen_array(sign), frozen_array(pos1),
                            frozen_array(pos2), frozen_array(sign2))
    if len(_SHARING_CACHE) > 256:
        _SHARING_CACHE.clear()
    _SHARING_CACHE[key] = sharing
    return sharing
