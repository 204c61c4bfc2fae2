"""The mirror's eigenbasis: where an equivariant weight is block-diagonal.

The mirror ``T`` of a :class:`~symmetrize.rep.Rep` is an orthogonal involution, so it splits its
feature space into the ``+1`` and ``-1`` eigenspaces. The change of basis ``Q`` used throughout
the package (convention):

- a swapped pair ``(a, b)``, ``a < b``, with sign ``s`` gives ``u = (x_a + s x_b) / sqrt(2)`` in
  the ``+`` half and ``v = (x_a - s x_b) / sqrt(2)`` in the ``-`` half;
- a fixed channel ``i`` goes to the ``+`` half if its sign is ``+1``, else to the ``-`` half,
  unchanged.

Each half lists its coordinates in the order of their orbit's smallest channel index (``a`` for a
pair, ``i`` for a fixed channel). So the halves of a direct sum are the concatenated halves of its
parts (``Rep.concat``: LSTM gates, ``qkv`` projections split cleanly), and the trivial Rep's ``+``
half is the identity. ``Q`` is orthogonal: :meth:`EigenBasis.from_eigen` is the transpose (and the
inverse) of :meth:`EigenBasis.to_eigen`.

An equivariant weight ``W`` (``rep_out x rep_in``) is ``Q_out diag(W+, W-) Q_in^T``; the blocks
are ``Q_out^T W Q_in``'s diagonal blocks, and for any dense ``W`` those diagonal blocks are the
coordinates of the orthogonal projection ``(W + T_out W T_in) / 2`` (:func:`project_blocks`). The
free parameters are exactly the blocks: ``n+_out n+_in + n-_out n-_in``. An equivariant bias is a
vector in the ``+`` half. All functions here are plain differentiable torch ops (``index_select``,
``mul``, ``addcmul``) and are exact up to rounding in any floating dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from symmetrize.rep import Rep

__all__ = ["EigenBasis", "blocks_to_dense", "eigenbasis", "project_blocks", "project_vector",
           "vector_to_dense", "vector_to_plus"]

_R = 1.0 / math.sqrt(2.0)


class EigenBasis:
    """Index and coefficient tables of the eigenbasis of one Rep (see the module docstring).

    Attributes (read-only ``numpy`` arrays, one entry per coordinate of a half):
        plus_first, minus_first: the orbit's smallest channel (``a``, or the fixed channel).
        plus_second, minus_second: its partner (``b``; the channel itself when fixed).
        plus_paired, minus_paired: whether the coordinate comes from a swapped pair.
        plus_sign, minus_sign: the pair's sign ``s`` (``+1`` / ``-1`` for a fixed channel).
        plus_scale, minus_scale: ``1/sqrt(2)`` for a pair, ``1`` for a fixed channel: the
            orthonormal coordinate is ``scale * (x_a +- s x_b)`` (``x_i`` when fixed).
    """

    def __init__(self, rep: Rep) -> None:
        if not isinstance(rep, Rep):
            raise TypeError(f"EigenBasis expects a Rep, got {type(rep).__name__}")
        self.rep = rep
        n = rep.size
        perm, sign = rep.perm, rep.sign
        idx = np.arange(n)
        first = idx[perm >= idx]
        second = perm[first]
        paired = second != first
        s = sign[first]
        for half, keep in (("plus", paired | (s > 0)), ("minus", paired | (s < 0))):
            setattr(self, f"{half}_first", _ro(first[keep]))
            setattr(self, f"{half}_second", _ro(second[keep]))
            setattr(self, f"{half}_paired", _ro(paired[keep]))
            setattr(self, f"{half}_sign", _ro(s[keep]))
            setattr(self, f"{half}_scale", _ro(np.where(paired[keep], _R, 1.0)))
        self.n_plus = int(self.plus_first.size)
        self.n_minus = int(self.minus_first.size)
        # from_eigen: channel c = plus[hp[c]] * dp[c] + minus[hm[c]] * dm[c]
        pos_plus = np.full(n, -1)
        pos_plus[self.plus_first] = np.arange(self.n_plus)
        pos_minus = np.full(n, -1)
        pos_minus[self.minus_first] = np.arange(self.n_minus)
        lowest = np.minimum(idx, perm)
        pair = perm != idx
        is_a = pair & (idx < perm)
        dp = np.where(pair, np.where(is_a, _R, sign * _R), (sign > 0).astype(float))
        dm = np.where(pair, np.where(is_a, _R, -sign * _R), (sign < 0).astype(float))
        self._back = (_ro(np.maximum(pos_plus[lowest], 0)), _ro(np.maximum(pos_minus[lowest], 0)),
                      _ro(dp), _ro(dm))
        # an invariant vector by its orbit values: v[c] = theta[plus position] * orbit_coef[c]
        self.orbit_coef = _ro(np.where(pair, np.where(is_a, 1.0, sign), (sign > 0).astype(float)))
        self._cache: dict[tuple[Any, ...], Any] = {}
        #: adjacent pairs (0, 1), (2, 3), ... with sign +1 (``Rep.regular`` of an even width):
        #: the basis change is two strided slices, no gather
        self.adjacent = bool(n and n % 2 == 0 and self.n_plus == self.n_minus == n // 2
                             and (self.plus_first == idx[0::2]).all()
                             and (self.plus_second == idx[1::2]).all()
                             and (self.plus_sign > 0).all())
        #: no pairs and each half one contiguous run of channels (the ``"eigen"`` hidden layout,
        #: a sign pattern, the trivial Rep): ``(plus_start, minus_start)``; the basis change is
        #: two ``narrow`` views one way and one ``cat`` the other
        self.split: tuple[int, int] | None = None
        if not paired.any() and _contiguous(self.plus_first) and _contiguous(self.minus_first):
            self.split = (int(self.plus_first[0]) if self.n_plus else 0,
                          int(self.minus_first[0]) if self.n_minus else 0)

    # ----------------------------------------------------------------- properties
    @property
    def size(self) -> int:
        return self.rep.size

    @property
    def is_identity(self) -> bool:
        """True for the trivial Rep: the ``+`` half is the input itself, the ``-`` half empty."""
        return self.rep.is_trivial

    @property
    def n_paired(self) -> int:
        return self.rep.n_pairs

    def __repr__(self) -> str:
        return f"EigenBasis({self.size}: {self.n_plus} + / {self.n_minus} -)"

    # ----------------------------------------------------------------- torch tables
    def tables(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The index / coefficient tensors on ``device`` (coefficients in ``dtype``), cached."""
        key = (device, dtype)
        cached = self._cache.get(key)
        if cached is None:
            def ix(a: np.ndarray) -> torch.Tensor:
                return torch.tensor(a.tolist(), dtype=torch.int64, device=device)

            def co(a: np.ndarray) -> torch.Tensor:
                return torch.tensor(np.asarray(a, dtype=np.float64).tolist(), dtype=torch.float64,
                                    device=device).to(dtype)

            hp, hm, dp, dm = self._back
            cached = {}
            for half, sgn in (("plus", 1.0), ("minus", -1.0)):
                paired = getattr(self, f"{half}_paired")
                cached[f"{half}_first"] = ix(getattr(self, f"{half}_first"))
                cached[f"{half}_second"] = ix(getattr(self, f"{half}_second"))
                cached[f"{half}_c1"] = co(getattr(self, f"{half}_scale"))
                cached[f"{half}_c2"] = co(np.where(paired, sgn * _R * getattr(
                    self, f"{half}_sign"), 0.0))
                cached[f"{half}_scale"] = co(getattr(self, f"{half}_scale"))
            cached.update(back_plus=ix(hp), back_minus=ix(hm), back_dp=co(dp), back_dm=co(dm),
                          orbit_coef=co(self.orbit_coef))
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = cached
        return cached

    # ----------------------------------------------------------------- basis change
    def to_eigen(self, x: torch.Tensor, dim: int = -1,
                 halves: str = "+-") -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(x_plus, x_minus)``: ``Q^T x`` along axis ``dim``, split into its halves.

        ``halves`` selects what to compute (``"+"``, ``"-"`` or ``"+-"``); a half not computed
        is ``None``.
        """
        dim = self._check(x, dim, "to_eigen")
        if self.split is not None:
            p0, m0 = self.split
            if halves == "+-" and self.n_plus and self.n_minus:  # one split: its backward is a cat
                first, second = x.split([self.n_plus, self.n_minus] if p0 < m0
                                        else [self.n_minus, self.n_plus], dim)
                return (first, second) if p0 < m0 else (second, first)
            return (x.narrow(dim, p0, self.n_plus) if "+" in halves else None,
                    x.narrow(dim, m0, self.n_minus) if "-" in halves else None)
        if self.adjacent:
            a, b = x.unflatten(dim, (-1, 2)).unbind(dim + 1)
            return ((a + b) * _R if "+" in halves else None,
                    (a - b) * _R if "-" in halves else None)
        t = self.tables(x.device, _coeff_dtype(x))
        shape = [1] * x.dim()
        shape[dim] = -1
        out: list[torch.Tensor | None] = []
        for half, want in (("plus", "+" in halves), ("minus", "-" in halves)):
            if not want:
                out.append(None)
                continue
            n_half = self.n_plus if half == "plus" else self.n_minus
            if self.is_identity and half == "plus":
                out.append(x)
                continue
            if n_half == 0:
                out.append(x.narrow(dim, 0, 0))
                continue
            first = x.index_select(dim, t[f"{half}_first"]) * t[f"{half}_c1"].view(shape)
            if getattr(self, f"{half}_paired").any():
                second = x.index_select(dim, t[f"{half}_second"])
                first = torch.addcmul(first, second, t[f"{half}_c2"].view(shape))
            out.append(first)
        return out[0], out[1]

    def from_eigen(self, plus: torch.Tensor | None, minus: torch.Tensor | None,
                   dim: int = -1) -> torch.Tensor:
        """``Q [plus; minus]`` along ``dim`` (``None`` stands for a zero half)."""
        ref = plus if plus is not None else minus
        if ref is None:
            raise ValueError("from_eigen needs at least one of plus, minus")
        dim = dim % ref.dim()
        if plus is not None and self.is_identity:
            return plus
        if self.split is not None:
            return self._concat(plus, minus, dim)
        if self.adjacent:
            for half, value in (("plus", plus), ("minus", minus)):
                if value is not None and value.shape[dim] != self.size // 2:
                    raise ValueError(f"from_eigen: the {half} half has {value.shape[dim]} "
                                     f"entries on axis {dim}, this basis has {self.size // 2}")
            p = plus if plus is not None else torch.zeros_like(minus)
            m = minus if minus is not None else torch.zeros_like(plus)
            return torch.stack(((p + m) * _R, (p - m) * _R), dim + 1).flatten(dim, dim + 1)
        t = self.tables(ref.device, _coeff_dtype(ref))
        shape = [1] * ref.dim()
        shape[dim] = -1
        out = None
        for half, value in (("plus", plus), ("minus", minus)):
            expected = self.n_plus if half == "plus" else self.n_minus
            if value is None or expected == 0:
                continue
            if value.shape[dim] != expected:
                raise ValueError(f"from_eigen: the {half} half has {value.shape[dim]} entries "
                                 f"on axis {dim}, this basis has {expected}")
            key = "back_plus" if half == "plus" else "back_minus"
            coef = t["back_dp" if half == "plus" else "back_dm"].view(shape)
            gathered = value.index_select(dim, t[key])
            out = gathered * coef if out is None else torch.addcmul(out, gathered, coef)
        if out is None:
            shape_out = list(ref.shape)
            shape_out[dim] = self.size
            return ref.new_zeros(shape_out)
        return out

    def _concat(self, plus: torch.Tensor | None, minus: torch.Tensor | None,
                dim: int) -> torch.Tensor:
        """``from_eigen`` of a split basis: the halves side by side in channel order."""
        parts = []
        for half, value, n in (("plus", plus, self.n_plus), ("minus", minus, self.n_minus)):
            ref = plus if plus is not None else minus
            assert ref is not None
            if value is None:
                shape = list(ref.shape)
                shape[dim] = n
                value = ref.new_zeros(shape)
            elif value.shape[dim] != n:
                raise ValueError(f"from_eigen: the {half} half has {value.shape[dim]} entries "
                                 f"on axis {dim}, this basis has {n}")
            parts.append(value)
        if self.split is not None and self.split[1] < self.split[0]:
            parts.reverse()
        return torch.cat(parts, dim)

    def _check(self, x: torch.Tensor, dim: int, what: str) -> int:
        if x.dim() == 0:
            raise ValueError(f"{what}: expected a tensor with a feature axis, got a scalar")
        dim = dim % x.dim()
        if x.shape[dim] != self.size:
            raise ValueError(f"{what}: axis {dim} of a tensor of shape {tuple(x.shape)} has "
                             f"{x.shape[dim]} entries, this basis acts on {self.size}")
        return dim


def _contiguous(a: np.ndarray) -> bool:
    """Whether ``a`` is empty or ``start, start + 1, ...``."""
    return a.size == 0 or bool((np.diff(a) == 1).all())


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _coeff_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


_CACHE: dict[Rep, EigenBasis] = {}


def eigenbasis(rep: Rep) -> EigenBasis:
    """The (cached) :class:`EigenBasis` of ``rep``."""
    basis = _CACHE.get(rep)
    if basis is None:
        if len(_CACHE) > 512:
            _CACHE.clear()
        basis = _CACHE[rep] = EigenBasis(rep)
    return basis


# --------------------------------------------------------------------- weights and vectors
def project_blocks(weight: torch.Tensor, rep_in: Rep,
                   rep_out: Rep) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W+, W-)``: the diagonal blocks of ``Q_out^T W Q_in`` for a dense ``weight`` of shape
    ``(out, in, *taps)``: the coordinates of its orthogonal projection onto the equivariant
    maps (exactly ``weight``'s own blocks when it is equivariant)."""
    if weight.dim() < 2 or tuple(weight.shape[:2]) != (rep_out.size, rep_in.size):
        raise ValueError(f"a weight of shape {tuple(weight.shape)} does not match (out, in) = "
                         f"({rep_out.size}, {rep_in.size})")
    b_in, b_out = eigenbasis(rep_in), eigenbasis(rep_out)
    cols_plus, cols_minus = b_in.to_eigen(weight, 1)
    w_plus = b_out.to_eigen(cols_plus, 0, "+")[0]
    w_minus = b_out.to_eigen(cols_minus, 0, "-")[1]
    return w_plus, w_minus  # type: ignore[return-value]


def blocks_to_dense(w_plus: torch.Tensor, w_minus: torch.Tensor, rep_in: Rep,
                    rep_out: Rep) -> torch.Tensor:
    """The dense weight ``Q_out diag(W+, W-) Q_in^T`` (``(out, in, *taps)``), differentiable."""
    b_in, b_out = eigenbasis(rep_in), eigenbasis(rep_out)
    expect_p = (b_out.n_plus, b_in.n_plus)
    expect_m = (b_out.n_minus, b_in.n_minus)
    if tuple(w_plus.shape[:2]) != expect_p or tuple(w_minus.shape[:2]) != expect_m:
        raise ValueError(f"blocks of shapes {tuple(w_plus.shape)} and {tuple(w_minus.shape)} do "
                         f"not match the Reps' halves {expect_p} and {expect_m}")
    rows_plus = b_in.from_eigen(w_plus, None, 1) if w_plus.shape[0] else None
    rows_minus = b_in.from_eigen(None, w_minus, 1) if w_minus.shape[0] else None
    if rows_plus is None and rows_minus is None:
        return w_plus.new_zeros(rep_out.size, rep_in.size, *w_plus.shape[2:])
    return b_out.from_eigen(rows_plus, rows_minus, 0)


def project_vector(vector: torch.Tensor, rep: Rep) -> torch.Tensor:
    """The orbit values of ``(v + T v) / 2`` for ``vector`` (``(n, *rest)``): one entry per
    coordinate of the ``+`` half, the projected value at the orbit's smallest channel
    (``(v_a + s v_b) / 2`` for a pair, ``v_i`` for a fixed channel of sign ``+1``).

    Vectors the mirror leaves unchanged (biases, BatchNorm's ``gamma`` / ``beta``) are stored
    this way: exactly (no ``sqrt(2)``), so a bias of ones stays ones. :func:`vector_to_plus`
    gives the orthonormal ``+`` coordinates.
    """
    if vector.dim() < 1 or vector.shape[0] != rep.size:
        raise ValueError(f"a vector of shape {tuple(vector.shape)} does not match a Rep of size "
                         f"{rep.size}")
    basis = eigenbasis(rep)
    first = vector.index_select(0, basis.tables(vector.device, _coeff_dtype(vector))[
        "plus_first"])
    if not basis.plus_paired.any():
        return first
    t = basis.tables(vector.device, _coeff_dtype(vector))
    second = vector.index_select(0, t["plus_second"])
    sign = torch.tensor(basis.plus_sign.tolist(), dtype=first.dtype, device=first.device)
    paired = torch.tensor(basis.plus_paired.tolist(), device=first.device)
    shape = (-1,) + (1,) * (vector.dim() - 1)
    pair_value = (first + second * sign.view(shape)) / 2
    return torch.where(paired.view(shape), pair_value, first)


def vector_to_dense(plus: torch.Tensor, rep: Rep) -> torch.Tensor:
    """The vector with orbit values ``plus`` (see :func:`project_vector`), differentiable."""
    basis = eigenbasis(rep)
    if basis.n_plus == 0:
        return plus.new_zeros(rep.size, *plus.shape[1:])
    t = basis.tables(plus.device, _coeff_dtype(plus))
    shape = (-1,) + (1,) * (plus.dim() - 1)
    return plus.index_select(0, t["back_plus"]) * t["orbit_coef"].view(shape)


def vector_to_plus(plus: torch.Tensor, rep: Rep) -> torch.Tensor:
    """The orthonormal ``+`` coordinates of the vector with orbit values ``plus``."""
    basis = eigenbasis(rep)
    if not basis.plus_paired.any():
        return plus
    scale = basis.tables(plus.device, _coeff_dtype(plus))["plus_scale"]
    return plus / scale.view((-1,) + (1,) * (plus.dim() - 1))
