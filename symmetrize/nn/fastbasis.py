"""The basis change of large activations in about one pass over memory.

:meth:`EigenBasis.to_eigen` gathers with ``index_select`` and multiplies by coefficients: four
passes over the tensor. Here the same change is made with slices: every maximal run of channels
that step regularly (a joint's block of a skeleton layout, the even / odd channels of a regular
Rep) is one ``add`` / ``sub`` / ``copy`` written straight into the output, so the tensor is read
once and written once. The sums are unnormalised (exact, no multiplication):

- ``S x``: ``P = x_a + s x_b`` (pair) / ``x_i`` (fixed, sign ``+1``), ``M = x_a - s x_b`` / ``x_j``;
- ``R (P, M)``: ``y_a = P + M``, ``y_b = s (P - M)``, ``y_i = P_i`` / ``M_j``;

so ``to_eigen(x) = D S x`` and ``from_eigen(e) = R D e`` with ``D = 1/sqrt(2)`` on pair
coordinates (1 on fixed ones), and ``R = S^T``: each is the other's backward. A layer using them
folds ``D`` into its weight: ``W_eff = D_out W D_in`` (see :func:`scaled_blocks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from symmetrize.eigenbasis import EigenBasis
from symmetrize.nn.tracing import under_tracer

__all__ = ["FAST_MIN_NUMEL", "from_sums", "scaled_blocks", "sums", "to_sums", "unsums",
           "use_fast"]

#: activations with fewer elements use the gather path (fewer, cheaper calls)
FAST_MIN_NUMEL = 1 << 16

# op: (kind, length, (out, out_step), (src1, step1), (src2, step2), count, (jumps)): ``count``
# repeats of the run, the k-th shifted by k * jumps = (out, src1, src2); kind: "add", "sub",
# "rsub", "copy1", "copy2"
_Op = tuple[Any, ...]


def _runs(records: list[tuple[str, int, int, int]]) -> list[_Op]:
    """Group ``(kind, out, src1, src2)`` records into runs of one kind whose positions all
    advance by constant positive steps (records of each kind taken in output order)."""
    ops: list[_Op] = []
    kinds = sorted({r[0] for r in records})
    for kind in kinds:
        rows = [r[1:] for r in records if r[0] == kind]
        k = 0
        while k < len(rows):
            j, steps = k + 1, None
            while j < len(rows):
                d = tuple(rows[j][i] - rows[j - 1][i] for i in range(3))
                if steps is None:
                    if min(d) <= 0:
                        break
                    steps = d
                elif d != steps:
                    break
                j += 1
            o, a, b = rows[k]
            so, sa, sb = steps or (1, 1, 1)
            ops.append((kind, j - k, (o, so), (a, sa), (b, sb), 1, (0, 0, 0)))
            k = j
    return _group(ops)


def _group(ops: list[_Op]) -> list[_Op]:
    """Merge consecutive runs of one kind, length and steps whose starts advance by constant
    jumps (a skeleton layout's joints) into one two-level op."""
    out: list[_Op] = []
    for op in ops:
        if out:
            last = out[-1]
            same = last[0] == op[0] and last[1] == op[1] and all(
                last[i][1] == op[i][1] for i in (2, 3, 4))
            if same:
                jumps = tuple(op[i][0] - (last[i][0] + last[6][i - 2] * (last[5] - 1))
                              for i in (2, 3, 4))
                if last[5] == 1 and min(jumps) > 0 or last[5] > 1 and jumps == last[6]:
                    out[-1] = (*last[:5], last[5] + 1, jumps)
                    continue
        out.append(op)
    return out


def _plans(basis: EigenBasis) -> dict[str, list[_Op]]:
    plans = basis.__dict__.get("_fast_plans")
    if plans is not None:
        return plans
    plans = {}
    for half, sgn in (("plus", 1), ("minus", -1)):
        first, second = getattr(basis, f"{half}_first"), getattr(basis, f"{half}_second")
        paired, sign = getattr(basis, f"{half}_paired"), getattr(basis, f"{half}_sign")
        records = [("copy1" if not p else ("add" if sgn * s > 0 else "sub"), k, int(a), int(b))
                   for k, (a, b, p, s) in enumerate(zip(first, second, paired, sign,
                                                        strict=True))]
        plans[half] = _runs(records)
    hp, hm, _, _ = basis._back
    rep = basis.rep
    records = []
    for c in range(rep.size):
        partner, s = int(rep.perm[c]), int(rep.sign[c])
        if partner == c:  # the source not read follows the one read, so runs stay long
            source = int(hp[c]) if s > 0 else int(hm[c])
            records.append(("copy1" if s > 0 else "copy2", c, source, source))
        elif c < partner:
            records.append(("add", c, int(hp[c]), int(hm[c])))
        else:
            records.append(("sub" if s > 0 else "rsub", c, int(hp[c]), int(hm[c])))
    plans["back"] = _runs(records)
    basis.__dict__["_fast_plans"] = plans
    return plans


def _view(t: torch.Tensor, dim: int, start: int, step: int, length: int, count: int,
          jump: int) -> torch.Tensor:
    """Positions ``start + c * jump + i * step`` (``c < count``, ``i < length``) along ``dim``:
    a slice, or a two-level strided view (``count`` before ``length``)."""
    if count == 1:
        index = [slice(None)] * t.dim()
        index[dim] = slice(start, start + step * (length - 1) + 1, step)
        return t[tuple(index)]
    stride = list(t.stride())
    size = list(t.shape)
    size[dim:dim + 1] = [count, length]
    stride[dim:dim + 1] = [jump * stride[dim], step * stride[dim]]
    return t.as_strided(size, stride, t.storage_offset() + start * t.stride(dim))


def _run(ops: list[_Op], out: torch.Tensor, src1: torch.Tensor, src2: torch.Tensor,
         dim: int) -> torch.Tensor:
    for kind, n, (o, so), (a, sa), (b, sb), count, jumps in ops:
        target = _view(out, dim, o, so, n, count, jumps[0])
        if kind == "copy1":
            target.copy_(_view(src1, dim, a, sa, n, count, jumps[1]))
        elif kind == "copy2":
            target.copy_(_view(src2, dim, b, sb, n, count, jumps[2]))
        else:
            x1 = _view(src1, dim, a, sa, n, count, jumps[1])
            x2 = _view(src2, dim, b, sb, n, count, jumps[2])
            if kind == "add":
                torch.add(x1, x2, out=target)
            elif kind == "sub":
                torch.sub(x1, x2, out=target)
            else:
                torch.sub(x2, x1, out=target)
    return out


def _sums(basis: EigenBasis, x: torch.Tensor, dim: int, want: str) -> list[torch.Tensor | None]:
    plans = _plans(basis)
    out: list[torch.Tensor | None] = []
    for half, n, sym in (("plus", basis.n_plus, "+"), ("minus", basis.n_minus, "-")):
        if sym not in want:
            out.append(None)
            continue
        shape = list(x.shape)
        shape[dim] = n
        buf = x.new_empty(shape)
        out.append(_run(plans[half], buf, x, x, dim) if n else buf)
    return out


def _unsums(basis: EigenBasis, p: torch.Tensor, m: torch.Tensor, dim: int) -> torch.Tensor:
    shape = list(p.shape)
    shape[dim] = basis.size
    return _run(_plans(basis)["back"], p.new_empty(shape), p, m, dim)


def sums(basis: EigenBasis, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``S x`` along the last axis, outside autograd (for hand-written backward passes)."""
    p, m = _sums(basis, x, x.dim() - 1, "+-")
    assert p is not None and m is not None
    return p, m


def unsums(basis: EigenBasis, p: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``R (P, M)`` along the last axis, outside autograd."""
    return _unsums(basis, p, m, p.dim() - 1)


class _ToSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, basis: EigenBasis, dim: int,
                want: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        ctx.basis, ctx.dim, ctx.shape = basis, dim, x.shape
        p, m = _sums(basis, x, dim, want)
        return p, m

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gp: torch.Tensor | None, gm: torch.Tensor | None) -> tuple[Any, ...]:
        basis, dim = ctx.basis, ctx.dim
        ref = gp if gp is not None else gm
        assert ref is not None
        shape = list(ctx.shape)
        if gp is None:
            shape[dim] = basis.n_plus
            gp = ref.new_zeros(shape)
        if gm is None:
            shape[dim] = basis.n_minus
            gm = ref.new_zeros(shape)
        return _unsums(basis, gp.contiguous(), gm.contiguous(), dim), None, None, None


class _FromSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, p: torch.Tensor, m: torch.Tensor, basis: EigenBasis,
                dim: int) -> torch.Tensor:
        ctx.basis, ctx.dim = basis, dim
        return _unsums(basis, p, m, dim)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        p, m = _sums(ctx.basis, g.contiguous(), ctx.dim, "+-")
        return p, m, None, None


def to_sums(basis: EigenBasis, x: torch.Tensor, dim: int,
            want: str = "+-") -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(P, M) = S x`` along ``dim`` (a half not in ``want`` is ``None``)."""
    dim = dim % x.dim()
    p, m = _ToSums.apply(x, basis, dim, want)
    return p, m


def from_sums(basis: EigenBasis, p: torch.Tensor, m: torch.Tensor, dim: int) -> torch.Tensor:
    """``R (P, M)`` along ``dim``."""
    return _FromSums.apply(p, m, basis, dim % p.dim())


def use_fast(x: torch.Tensor) -> bool:
    """Whether a tensor is large enough for the slice kernels (and not being traced,
    compiled or exported: :func:`~symmetrize.nn.tracing.under_tracer`)."""
    return x.numel() >= FAST_MIN_NUMEL and not under_tracer()


def scaled_blocks(weight: torch.Tensor, b_in: EigenBasis, b_out: EigenBasis,
                  half: str) -> torch.Tensor:
    """``D_out W D_in`` for one block (the weight the sum kernels need), differentiable."""
    key = (b_in.rep, half, weight.device, weight.dtype)
    cache = b_out.__dict__.setdefault("_scale_cache", {})
    scale = cache.get(key)
    if scale is None:
        d_out = np.asarray(getattr(b_out, f"{half}_scale"), dtype=np.float64)
        d_in = np.asarray(getattr(b_in, f"{half}_scale"), dtype=np.float64)
        outer_np = np.outer(d_out, d_in)
        if outer_np.size and np.all(outer_np == outer_np.flat[0]):
            outer = torch.tensor(float(outer_np.flat[0]), dtype=weight.dtype,
                                 device=weight.device)  # uniform: a scalar multiply
        else:
            outer = torch.tensor(outer_np.reshape(outer_np.shape).tolist() if outer_np.size
                                 else np.zeros(outer_np.shape), dtype=weight.dtype,
                                 device=weight.device).reshape(outer_np.shape)
        if len(cache) > 32:
            cache.clear()
        scale = cache[key] = outer
    if scale.dim() == 0:
        return weight * scale
    return weight * scale.view(*scale.shape, *([1] * (weight.dim() - 2)))
