"""One LSTM / GRU layer over a whole sequence in block form, with a hand-written backward.

The input projection of every time step is one block matmul, done outside (by autograd). Here
the recurrence runs step by step: the hidden state goes to the eigenbasis of the hidden Rep
``S`` (``O(H)``), meets the two half-width blocks of ``W_hh``, and the gate pre-activations
come back from the eigenbasis of the gates' Rep (``U + U + S + U`` for an LSTM, ``U + U + S`` for
a GRU, ``U = S.unsigned()``) for the point-wise gate functions. Both changes of basis use the
exact sum kernels of :mod:`symmetrize.nn.fastbasis` (``S`` in, ``R`` out) with the ``1/sqrt(2)``
scales ``d`` applied to the (small) per-step vectors, so the blocks stay as stored and the input
projections arrive in sum coordinates (``D_gates`` times the orthonormal ones). The backward pass walks the
steps in reverse, then computes the gradient of ``W_hh``'s blocks with one matmul over all steps
(as fused RNN kernels do), not one per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from symmetrize.eigenbasis import EigenBasis
from symmetrize.nn.fast_tanh import fast_tanh, fast_tanh_
from symmetrize.nn.fastbasis import sums as _to, unsums as _back

__all__ = ["GRUSequence", "LSTMSequence"]


def _steps(n: int, reverse: bool) -> range:
    return range(n - 1, -1, -1) if reverse else range(n)


def _backward_steps(n: int, reverse: bool) -> Iterator[tuple[int, int | None]]:
    """``(t, the step run before t, or None)`` for every step, the last one run first."""
    order = list(_steps(n, reverse))
    for k in range(n - 1, -1, -1):
        yield order[k], (order[k - 1] if k else None)


def _gate_buffers(ref: torch.Tensor, steps: int, batch: int,
                  gates: EigenBasis) -> tuple[torch.Tensor, torch.Tensor]:
    """Empty ``(T, B, g+)`` and ``(T, B, g-)`` buffers for the gates' gradient halves."""
    return (ref.new_empty(steps, batch, gates.n_plus), ref.new_empty(steps, batch, gates.n_minus))


def _weight_grads(dz_plus: torch.Tensor, dz_minus: torch.Tensor, h_plus: torch.Tensor,
                  h_minus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrent weight blocks' gradients, summed over steps and batch."""
    return (dz_plus.flatten(0, 1).t() @ h_plus.flatten(0, 1),
            dz_minus.flatten(0, 1).t() @ h_minus.flatten(0, 1))


def _scales(hidden: EigenBasis, gates: EigenBasis, ref: torch.Tensor) -> list[torch.Tensor]:
    """``d`` of the hidden and gate halves (``1/sqrt(2)`` on pair coordinates)."""
    th, tg = hidden.tables(ref.device, ref.dtype), gates.tables(ref.device, ref.dtype)
    return [th["plus_scale"], th["minus_scale"], tg["plus_scale"], tg["minus_scale"]]


def _step(zx: torch.Tensor, h: torch.Tensor, w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``zx + d * (h W^T)``: one half of the gate pre-activations in sum coordinates."""
    if w.shape[1] == 0:
        return zx.clone()
    return torch.addcmul(zx, h @ w.t(), d)


def _mm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x @ w.t() if w.shape[0] and w.shape[1] else x.new_zeros(x.shape[0], w.shape[0])


class LSTMSequence(torch.autograd.Function):
    """``apply(zx_plus, zx_minus, h0, c0, w_plus, w_minus, hidden, gates, reverse)`` ->
    ``(out, h_n, c_n)``.

    ``zx_*`` (``(T, B, g+/-)``): the input projections with both biases, in the gates' sum
    coordinates; ``h0`` / ``c0`` (``(B, H)``) and the outputs in the original basis; ``w_*``: the
    scaled blocks of ``W_hh``; ``hidden`` / ``gates``: the two :class:`EigenBasis`.
    """

    @staticmethod
    def forward(ctx: Any, zx_plus: torch.Tensor, zx_minus: torch.Tensor, h0: torch.Tensor,
                c0: torch.Tensor, w_plus: torch.Tensor, w_minus: torch.Tensor,
                hidden: EigenBasis, gates: EigenBasis,
                reverse: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = _scales(hidden, gates, h0)
        steps, batch = zx_plus.shape[0], h0.shape[0]
        size = h0.shape[1]
        out = h0.new_empty(steps, batch, size)
        acts = h0.new_empty(steps, batch, 4 * size)
        cells = h0.new_empty(steps, batch, size)
        h_plus = h0.new_empty(steps, batch, hidden.n_plus)
        h_minus = h0.new_empty(steps, batch, hidden.n_minus)
        h, c = h0, c0
        for t in _steps(steps, reverse):
            hp, hm = _to(hidden, h)
            hp, hm = hp.mul_(d[0]), hm.mul_(d[1])
            h_plus[t], h_minus[t] = hp, hm
            z = _back(gates, _step(zx_plus[t], hp, w_plus, d[2]),
                      _step(zx_minus[t], hm, w_minus, d[3]))
            z[:, : 2 * size].sigmoid_()
            fast_tanh_(z[:, 2 * size: 3 * size])
            z[:, 3 * size:].sigmoid_()
            i, f, g, o = z.chunk(4, 1)
            c = torch.addcmul(f * c, i, g, out=cells[t])
            h = torch.mul(o, fast_tanh(c), out=out[t])
            acts[t] = z
        ctx.save_for_backward(acts, cells, c0, h_plus, h_minus, w_plus, w_minus)
        ctx.bases, ctx.reverse, ctx.scales = (hidden, gates), reverse, d
        return out, h.clone(), c.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, d_out: torch.Tensor, d_hn: torch.Tensor | None,
                 d_cn: torch.Tensor | None) -> tuple[Any, ...]:
        acts, cells, c0, h_plus, h_minus, w_plus, w_minus = ctx.saved_tensors
        hidden, gates = ctx.bases
        d = ctx.scales
        steps, batch, size = cells.shape
        dz_plus, dz_minus = _gate_buffers(acts, steps, batch, gates)
        dh = torch.zeros_like(c0) if d_hn is None else d_hn.clone()
        dc = torch.zeros_like(c0) if d_cn is None else d_cn.clone()
        dz = acts.new_empty(batch, 4 * size)
        for t, prev in _backward_steps(steps, ctx.reverse):
            if d_out is not None:
                dh = dh + d_out[t]
            i, f, g, o = acts[t].chunk(4, 1)
            c_prev = c0 if prev is None else cells[prev]
            tc = fast_tanh(cells[t])
            dzi, dzf, dzg, dzo = dz.chunk(4, 1)
            torch.mul(dh, tc, out=dzo).mul_(o * (1 - o))
            dc = dc + dh * o * (1 - tc * tc)
            torch.mul(dc, g, out=dzi).mul_(i * (1 - i))
            torch.mul(dc, c_prev, out=dzf).mul_(f * (1 - f))
            torch.mul(dc, i, out=dzg).mul_(1 - g * g)
            dc = dc * f
            zp, zm = _to(gates, dz)
            zp, zm = zp.mul_(d[2]), zm.mul_(d[3])
            dz_plus[t], dz_minus[t] = zp, zm
            dh = _back(hidden, (zp @ w_plus).mul_(d[0]), (zm @ w_minus).mul_(d[1]))
        d_w_plus, d_w_minus = _weight_grads(dz_plus, dz_minus, h_plus, h_minus)
        # the input projections' gradient in sum coordinates: undo the scale taken above
        return (dz_plus / d[2], dz_minus / d[3], dh, dc, d_w_plus, d_w_minus, None, None,
                None)


class GRUSequence(torch.autograd.Function):
    """``apply(zx, h0, w_plus, w_minus, b_plus, hidden, gates, reverse)`` -> ``(out, h_n)``.

    ``zx`` (``(T, B, 3H)``): the input projections with ``b_ih``, in the original basis;
    ``w_*``: the scaled blocks of ``W_hh``; ``b_plus``: ``b_hh`` by its orbit values (``None``
    without bias).
    """

    @staticmethod
    def forward(ctx: Any, zx: torch.Tensor, h0: torch.Tensor, w_plus: torch.Tensor,
                w_minus: torch.Tensor, b_plus: torch.Tensor | None, hidden: EigenBasis,
                gates: EigenBasis, reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        d = _scales(hidden, gates, h0)
        steps, batch = zx.shape[0], h0.shape[0]
        size = h0.shape[1]
        out = h0.new_empty(steps, batch, size)
        acts = h0.new_empty(steps, batch, 4 * size)  # r, z, n, and W_hn h + b_hn
        h_plus = h0.new_empty(steps, batch, hidden.n_plus)
        h_minus = h0.new_empty(steps, batch, hidden.n_minus)
        h = h0
        for t in _steps(steps, reverse):
            hp, hm = _to(hidden, h)
            hp, hm = hp.mul_(d[0]), hm.mul_(d[1])
            h_plus[t], h_minus[t] = hp, hm
            zp = _mm(hp, w_plus).mul_(d[2])
            if b_plus is not None:
                zp.add_(b_plus)
            zh = _back(gates, zp, _mm(hm, w_minus).mul_(d[3]))
            a = acts[t]
            rz = torch.add(zx[t, :, : 2 * size], zh[:, : 2 * size], out=a[:, : 2 * size])
            rz.sigmoid_()
            r, z = a[:, :size], a[:, size: 2 * size]
            a[:, 3 * size:] = zh[:, 2 * size:]
            n = fast_tanh_(torch.addcmul(zx[t, :, 2 * size:], r, zh[:, 2 * size:],
                                         out=a[:, 2 * size: 3 * size]))
            h = torch.addcmul(n, z, h - n, out=out[t])  # (1 - z) n + z h
        ctx.save_for_backward(acts, h0, out, h_plus, h_minus, w_plus, w_minus)
        ctx.bases, ctx.reverse, ctx.has_bias = (hidden, gates), reverse, b_plus is not None
        ctx.scales = d
        return out, h.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, d_out: torch.Tensor | None,
                 d_hn: torch.Tensor | None) -> tuple[Any, ...]:
        acts, h0, out, h_plus, h_minus, w_plus, w_minus = ctx.saved_tensors
        hidden, gates = ctx.bases
        d = ctx.scales
        steps, batch, size = out.shape
        dzx = acts.new_empty(steps, batch, 3 * size)
        dzh_plus, dzh_minus = _gate_buffers(acts, steps, batch, gates)
        dh = torch.zeros_like(h0) if d_hn is None else d_hn.clone()
        dzh = acts.new_empty(batch, 3 * size)
        d_b: torch.Tensor | None = None
        for t, prev in _backward_steps(steps, ctx.reverse):
            if d_out is not None:
                dh = dh + d_out[t]
            a = acts[t]
            r, z, n, hn = a[:, :size], a[:, size: 2 * size], a[:, 2 * size: 3 * size], \
                a[:, 3 * size:]
            h_prev = h0 if prev is None else out[prev]
            dn = (dh * (1 - z)).mul_(1 - n * n)  # through tanh
            dx = dzx[t]
            dx[:, 2 * size:] = dn
            torch.mul(dn, hn, out=dx[:, :size]).mul_(r * (1 - r))
            torch.mul(dh, h_prev - n, out=dx[:, size: 2 * size]).mul_(z * (1 - z))
            dzh[:, : 2 * size] = dx[:, : 2 * size]
            torch.mul(dn, r, out=dzh[:, 2 * size:])
            zp, zm = _to(gates, dzh)
            if ctx.has_bias:
                d_b = zp.sum(0) if d_b is None else d_b + zp.sum(0)
            zp, zm = zp.mul_(d[2]), zm.mul_(d[3])
            dzh_plus[t], dzh_minus[t] = zp, zm
            dh = torch.addcmul(_back(hidden, (zp @ w_plus).mul_(d[0]),
                                     (zm @ w_minus).mul_(d[1])), dh, z)
        d_w_plus, d_w_minus = _weight_grads(dzh_plus, dzh_minus, h_plus, h_minus)
        return dzx, dh, d_w_plus, d_w_minus, d_b, None, None, None
