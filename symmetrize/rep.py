"""Signed permutation representations of the mirror: :class:`Rep`.

A mirror acts on a feature vector of length ``n`` as ``T(x)[i] = sign[i] * x[perm[i]]`` with
``perm[perm[i]] == i`` and ``sign[i] == sign[perm[i]]``, so ``T`` is its own inverse. Such a pair
``(perm, sign)`` is a :class:`Rep`; :mod:`symmetrize.weight_sharing` derives from two Reps the
parameter sharing of the equivariant linear maps between them, :mod:`symmetrize.eigenbasis` their
block-diagonal form, and :mod:`symmetrize.action` the action on a whole tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from symmetrize.skeleton import Skeleton

__all__ = ["Rep", "frozen_array"]


def frozen_array(array: np.ndarray) -> np.ndarray:
    """A contiguous read-only copy or view of ``array``."""
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


_TRIVIAL: dict[int, "Rep"] = {}


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
        self._perm = frozen_array(perm_arr)
        self._sign = frozen_array(sign_arr)
        self._torch_cache: dict[tuple[Any, ...], torch.Tensor] = {}

    @classmethod
    def _trusted(cls, perm: np.ndarray, sign: np.ndarray) -> Rep:
        """A Rep from arrays known to be valid (built from valid Reps), without the checks that
        cost more than the construction on million-element flat Reps."""
        rep = cls.__new__(cls)
        rep._perm = frozen_array(np.asarray(perm, dtype=np.int64))
        rep._sign = frozen_array(np.asarray(sign, dtype=np.int64))
        rep._torch_cache = {}
        return rep

    # ----------------------------------------------------------------- constructors
    @classmethod
    def trivial(cls, n: int) -> Rep:
        """``n`` channels the mirror leaves untouched (an invariant output)."""
        n = _check_size(n, "n")
        if cls is not Rep:
            return cls(np.arange(n))
        rep = _TRIVIAL.get(n)
        if rep is None:  # Reps are immutable: one instance per size serves every caller
            if len(_TRIVIAL) > 4096:
                _TRIVIAL.clear()
            rep = _TRIVIAL[n] = cls._trusted(np.arange(n), np.ones(n, dtype=np.int64))
        return rep

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

    @cached_property
    def n_pairs(self) -> int:
        return int((self._perm > np.arange(self.size)).sum())

    @property
    def n_fixed(self) -> int:
        """Indices the mirror maps to themselves."""
        return self.size - 2 * self.n_pairs

    @cached_property
    def n_negated(self) -> int:
        return int((self._sign < 0).sum())

    @cached_property
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
        return Rep._trusted(perm, sign)  # the product of two involutions on separate axes

    def unsigned(self) -> Rep:
        """The same permutation with every sign ``+1`` (LSTM/GRU gates, BatchNorm scale)."""
        cached = self.__dict__.get("_unsigned")
        if cached is None:
            if self.n_negated == 0:
                cached = self
            else:
                cached = Rep._trusted(self._perm, np.ones(self.size, dtype=np.int64))
            self.__dict__["_unsigned"] = cached
        return cached

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

    def __str__(self) -> str:
        """A one-line summary: ``Rep(34: 12 swapped pairs, 10 fixed; 17 negated)``."""
        return (f"Rep({self.size}: {self.n_pairs} swapped pairs, {self.n_fixed} fixed; "
                f"{self.n_negated} negated)")

    def __repr__(self) -> str:
        """Python that builds this Rep: ``Rep.regular(6)``, ``Rep([1, 0, 2], [1, 1, -1])``."""
        identity = bool((self._perm == np.arange(self.size)).all())
        if identity and self.n_negated == 0:
            return f"Rep.trivial({self.size})"
        if identity and self.n_negated == self.size:
            return f"Rep.negated({self.size})"
        if self.n_negated == 0 and self == Rep.regular(self.size):
            return f"Rep.regular({self.size})"
        perm = [int(i) for i in self._perm]
        if self.n_negated == 0:
            return f"Rep({perm})"
        return f"Rep({perm}, {[int(s) for s in self._sign]})"

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
