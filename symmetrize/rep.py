"""Signed permutation representations of the mirror and equivariant weight sharing.

A mirror acts on a feature vector of length ``n`` as ``T(x)[i] = sign[i] * x[perm[i]]`` with
``perm[perm[i]] == i`` and ``sign[i] == sign[perm[i]]``, so ``T`` is its own inverse. Such a pair
``(perm, sign)`` is a :class:`Rep`. :func:`weight_sharing` derives, for an input and an output Rep,
the parameter sharing that makes every linear map between them equivariant. This module is the only
place in the package that holds this maths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from symmetrize.skeleton import Skeleton

__all__ = ["Rep", "WeightSharing", "weight_sharing"]


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


class Rep:
    """An involutive signed permutation: how the mirror acts on one tensor axis.

    Args:
        perm: ``perm[i]`` is the index whose value lands at ``i`` under the mirror.
        sign: ``+1`` or ``-1`` per index; defaults to all ``+1``.

    Raises:
        ValueError: naming the first index at which ``perm`` is not an involution, or ``sign`` is
            not ``±1`` or differs between ``i`` and ``perm[i]``.
    """

    def __init__(self, perm: Sequence[int] | np.ndarray | torch.Tensor,
                 sign: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> None:
        perm_arr = np.asarray(perm.tolist() if isinstance(perm, torch.Tensor) else perm)
        if perm_arr.ndim != 1:
            raise ValueError(f"Rep perm must be one-dimensional, got shape {perm_arr.shape}")
        if perm_arr.size and not np.issubdtype(perm_arr.dtype, np.integer):
            raise ValueError(f"Rep perm must hold integers, got dtype {perm_arr.dtype}")
        perm_arr = perm_arr.astype(np.int64)
        n = perm_arr.size
        if sign is None:
            sign_arr = np.ones(n, dtype=np.int64)
        else:
            sign_arr = np.asarray(sign.tolist() if isinstance(sign, torch.Tensor) else sign)
            if sign_arr.shape != (n,):
                raise ValueError(f"Rep sign has shape {sign_arr.shape}, expected ({n},) to match perm")
            bad_values = np.flatnonzero((sign_arr != 1) & (sign_arr != -1))
            if bad_values.size:
                i = int(bad_values[0])
                raise ValueError(f"Rep sign[{i}] = {sign_arr[i].item()!r}: every sign must be +1 or -1")
            sign_arr = sign_arr.astype(np.int64)
        out_of_range = np.flatnonzero((perm_arr < 0) | (perm_arr >= n))
        if out_of_range.size:
            i = int(out_of_range[0])
            raise ValueError(f"Rep perm[{i}] = {perm_arr[i]} is out of range for size {n}")
        not_involution = np.flatnonzero(perm_arr[perm_arr] != np.arange(n))
        if not_involution.size:
            i = int(not_involution[0])
            raise ValueError(
                f"Rep perm is not an involution at index {i}: perm[{i}] = {perm_arr[i]} but "
                f"perm[{perm_arr[i]}] = {perm_arr[perm_arr[i]]} (a mirror must swap indices in pairs)")
        sign_mismatch = np.flatnonzero(sign_arr != sign_arr[perm_arr])
        if sign_mismatch.size:
            i = int(sign_mismatch[0])
            raise ValueError(
                f"Rep sign differs across the pair at index {i}: sign[{i}] = {sign_arr[i]} but "
                f"sign[{perm_arr[i]}] = {sign_arr[perm_arr[i]]} (twins must share their sign)")
        self._perm = _frozen(perm_arr)
        self._sign = _frozen(sign_arr)
        self._torch_cache: dict[tuple[Any, ...], torch.Tensor] = {}

    @classmethod
    def _trusted(cls, perm: np.ndarray, sign: np.ndarray) -> Rep:
        """A Rep from arrays known to be valid (built from valid Reps), without the checks that
        cost more than the construction on million-element flat Reps."""
        rep = cls.__new__(cls)
        rep._perm = _frozen(np.asarray(perm, dtype=np.int64))
        rep._sign = _frozen(np.asarray(sign, dtype=np.int64))
        rep._torch_cache = {}
        return rep

    # ----------------------------------------------------------------- constructors
    @classmethod
    def trivial(cls, n: int) -> Rep:
        """``n`` channels the mirror leaves untouched (an invariant output)."""
        return cls(np.arange(_check_size(n, "n")))

    @classmethod
    def regular(cls, n: int) -> Rep:
        """``n`` channels in adjacent swapped pairs ``(0,1), (2,3), ...``, all signs ``+1``.

        An odd ``n`` leaves the last channel fixed.
        """
        n = _check_size(n, "n")
        perm = np.arange(n)
        paired = n - n % 2
        perm[0:paired:2] += 1
        perm[1:paired:2] -= 1
        return cls(perm)

    @classmethod
    def negated(cls, n: int) -> Rep:
        """``n`` channels that keep their place and flip sign."""
        n = _check_size(n, "n")
        return cls(np.arange(n), -np.ones(n, dtype=np.int64))

    @classmethod
    def joints(cls, skeleton: Skeleton | str) -> Rep:
        """One channel per joint: left and right twins swap, centre joints stay, no sign."""
        from symmetrize.skeleton import Skeleton

        return cls(Skeleton.coerce(skeleton).mirror)

    @classmethod
    def coords(cls, n: int, negate: Iterable[int] = ()) -> Rep:
        """``n`` coordinate channels that keep their place, those in ``negate`` flip sign."""
        n = _check_size(n, "coords")
        sign = np.ones(n, dtype=np.int64)
        for c in negate:
            if not isinstance(c, (int, np.integer)) or not -n <= c < n:
                raise ValueError(f"negated coordinate {c!r} is not an index into {n} coordinates")
            sign[c] = -1
        return cls(np.arange(n), sign)

    @classmethod
    def pose(cls, skeleton: Skeleton | str, coords: int, negate: Iterable[int] = (0,)) -> Rep:
        """A joint-major ``J x C`` pose as ``x.view(N, J * C)`` lays it out.

        Args:
            skeleton: a :class:`~symmetrize.Skeleton` or a preset name such as ``"h36m"``.
            coords: coordinates per joint ``C`` (2 for image keypoints, 3 for 3D).
            negate: coordinate indices that flip sign under the mirror (the horizontal axis).
        """
        return cls.joints(skeleton).kron(cls.coords(coords, negate))

    @classmethod
    def skeleton_hidden(cls, skeleton: Skeleton | str, dims_per_joint: int,
                        negated_per_joint: int) -> Rep:
        """The paper's hidden layout: ``J x D`` joint-major, the first ``negated_per_joint`` of
        each joint's ``D`` dims flip sign."""
        dims = _check_size(dims_per_joint, "dims_per_joint")
        if not 0 <= negated_per_joint <= dims:
            raise ValueError(
                f"negated_per_joint = {negated_per_joint} must lie in [0, dims_per_joint = {dims}]")
        return cls.joints(skeleton).kron(cls.coords(dims, range(negated_per_joint)))

    # ----------------------------------------------------------------- properties
    @property
    def perm(self) -> np.ndarray:
        """Read-only ``int64`` array: ``T(x)[i] = sign[i] * x[perm[i]]``."""
        return self._perm

    @property
    def sign(self) -> np.ndarray:
        """Read-only ``int64`` array of ``±1``."""
        return self._sign

    @property
    def size(self) -> int:
        return int(self._perm.size)

    def __len__(self) -> int:
        return self.size

    @cached_property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """Swapped index pairs ``(i, perm[i])`` with ``i < perm[i]``."""
        idx = np.flatnonzero(self._perm > np.arange(self.size))
        return tuple((int(i), int(self._perm[i])) for i in idx)

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def n_fixed(self) -> int:
        """Indices the mirror maps to themselves."""
        return self.size - 2 * self.n_pairs

    @property
    def n_negated(self) -> int:
        return int((self._sign < 0).sum())

    @property
    def is_trivial(self) -> bool:
        """True when the mirror does nothing on this axis (invariant)."""
        return self.n_pairs == 0 and self.n_negated == 0

    # ----------------------------------------------------------------- algebra
    def __add__(self, other: Rep) -> Rep:
        """Direct sum: the Rep of ``torch.cat([a, b])`` along this axis."""
        if not isinstance(other, Rep):
            return NotImplemented
        return Rep(np.concatenate([self._perm, other._perm + self.size]),
                   np.concatenate([self._sign, other._sign]))

    @staticmethod
    def concat(reps: Iterable[Rep]) -> Rep:
        """Direct sum of several Reps (the empty sum is ``Rep.trivial(0)``)."""
        total = Rep.trivial(0)
        for rep in reps:
            total = total + rep
        return total

    def kron(self, inner: Rep) -> Rep:
        """Kronecker product: the Rep of a flattened ``(self, inner)`` pair of axes, ``self``
        outermost (index ``i * len(inner) + j``)."""
        m = inner.size
        perm = (self._perm[:, None] * m + inner._perm[None, :]).reshape(-1)
        sign = (self._sign[:, None] * inner._sign[None, :]).reshape(-1)
        return Rep(perm, sign)

    def unsigned(self) -> Rep:
        """The same permutation with every sign ``+1`` (LSTM/GRU gates, BatchNorm scale)."""
        return Rep(self._perm)

    def repeat(self, times: int) -> Rep:
        """``times`` copies of this Rep side by side (the Rep of ``torch.cat([x] * times)``)."""
        return Rep.trivial(_check_size(times, "times")).kron(self)

    # ----------------------------------------------------------------- acting on tensors
    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device, dtype)
        cached = self._torch_cache.get(key)
        if cached is None:
            perm = torch.tensor(self._perm, device=device)
            sign = torch.tensor(self._sign, device=device, dtype=dtype)
            cached = self._torch_cache[key] = (perm, sign)  # type: ignore[assignment]
        return cached  # type: ignore[return-value]

    def apply(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Mirror ``x`` along axis ``dim``: ``out[..., i, ...] = sign[i] * x[..., perm[i], ...]``."""
        if x.shape[dim] != self.size:
            raise ValueError(
                f"Rep of size {self.size} cannot act on axis {dim} of a tensor of shape "
                f"{tuple(x.shape)}")
        perm, sign = self._tensors(x.device, x.dtype if x.is_floating_point() or x.is_complex()
                                   else torch.int64)
        out = x.index_select(dim, perm)
        if self.n_negated == 0:
            return out
        shape = [1] * x.dim()
        shape[dim] = self.size
        return out * sign.view(shape)

    def matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The ``n x n`` matrix ``M`` with ``T(x) = M @ x``."""
        m = torch.zeros(self.size, self.size, dtype=dtype)
        m[torch.arange(self.size), torch.tensor(self._perm)] = torch.tensor(
            self._sign, dtype=dtype)
        return m

    # ----------------------------------------------------------------- identity
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rep):
            return NotImplemented
        if self is other:
            return True
        if self.size != other.size or hash(self) != hash(other):
            return False
        return np.array_equal(self._perm, other._perm) and np.array_equal(self._sign, other._sign)

    def __hash__(self) -> int:
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = self._hash = hash((self._perm.tobytes(), self._sign.tobytes()))
        return cached

    def __repr__(self) -> str:
        return (f"Rep({self.size}: {self.n_pairs} swapped pairs, {self.n_fixed} fixed; "
                f"{self.n_negated} negated)")

    def to_dict(self) -> dict[str, list[int]]:
        """Plain JSON-able data, ``{"perm": [...], "sign": [...]}``; :meth:`from_dict` reads it."""
        return {"perm": [int(i) for i in self._perm], "sign": [int(s) for s in self._sign]}

    @classmethod
    def from_dict(cls, data: Any) -> Rep:
        """The Rep :meth:`to_dict` wrote (validated like the constructor)."""
        return cls(data["perm"], data["sign"])

    def __reduce__(self) -> tuple[Any, ...]:
        return (Rep, (self._perm.tolist(), self._sign.tolist()))


def _check_size(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {n!r}")
    return int(n)


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
    sharing = WeightSharing(rep_in, rep_out, _frozen(index), _frozen(sign), _frozen(pos1),
                            _frozen(pos2), _frozen(sign2))
    if len(_SHARING_CACHE) > 256:
        _SHARING_CACHE.clear()
    _SHARING_CACHE[key] = sharing
    return sharing
