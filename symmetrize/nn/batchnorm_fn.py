"""The autograd kernel of :class:`~symmetrize.nn.batchnorm.ChiralBatchNorm1d`: batch norm with
the statistics of the augmented batch ``{x, T x}``.

Forward: PyTorch's batch-norm statistics kernel, channel-sized symmetrisation, then the output in
one fused pass (the evaluation-mode ``batch_norm`` kernel, or a broadcast ``addcmul`` for
``(N, C)`` and short ``(N, C, L)`` inputs on CPU, whichever is faster). Backward: one fused
reduction pass (``sum g`` and ``sum g * xhat`` from ``native_batch_norm_backward`` in evaluation
mode), then ``dx = gamma r g + slope x + const`` as one fused per-channel affine pass over ``x``
plus one in-place ``addcmul`` of ``g``. ``gamma`` / ``beta`` arrive as their eigenbasis
coordinates (``C``-sized gather in forward, ``C``-sized scatter in backward). The function is not
twice differentiable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from symmetrize.eigenbasis import eigenbasis
from symmetrize.rep import Rep

__all__ = ["ChiralBatchNormFn", "Plan", "LOW_PRECISION", "as_dtype", "gather"]

LOW_PRECISION = (torch.float16, torch.bfloat16)
_nbb = torch.ops.aten.native_batch_norm_backward


class Plan:
    """Channel-sized constants of one layer on one device, statistics dtype and parameter dtype.

    ``perm`` / ``sign2``: the Rep (``None`` when trivial / unsigned); ``sign2`` stacks its signs
    over ones, for a (mean-like, variance-like) pair of rows. ``w_*`` / ``b_*``: the gather
    ``dense = theta[index] * coef`` of ``gamma`` / ``beta`` from their eigenbasis coordinates
    (``index = None``: the tensor passed is already dense). ``ones`` / ``zeros``: constant
    statistics for the fused kernels.
    """

    __slots__ = ("perm", "sign2", "w_index", "w_sign", "w_free", "b_index", "b_sign", "b_free",
                 "ones", "zeros", "eps")

    def __init__(self, rep: Rep, w_coords: bool, b_coords: bool, device: torch.device,
                 stat_dtype: torch.dtype, param_dtype: torch.dtype, eps: float) -> None:
        def tensor(values: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
            return torch.tensor(values.tolist(), device=device, dtype=dtype)

        self.perm = None if rep.is_trivial else tensor(rep.perm)
        # (2, C): the Rep's signs over ones, for stacked (mean-like, variance-like) rows.
        self.sign2 = None
        if rep.n_negated:
            self.sign2 = torch.stack([tensor(rep.sign, stat_dtype),
                                      torch.ones(rep.size, device=device, dtype=stat_dtype)])
        self.w_index = self.w_sign = self.b_index = self.b_sign = None
        self.w_free = self.b_free = 0
        if w_coords:  # gamma: the + coordinates of the unsigned Rep
            self.w_index, self.w_sign, self.w_free = _coordinates(rep.unsigned(), tensor,
                                                                  param_dtype)
        if b_coords:  # beta: the + coordinates of the Rep
            self.b_index, self.b_sign, self.b_free = _coordinates(rep, tensor, param_dtype)
        self.ones = torch.ones(rep.size, device=device, dtype=stat_dtype)
        self.zeros = torch.zeros(rep.size, device=device, dtype=stat_dtype)
        self.eps = eps


def _coordinates(rep: Rep, tensor: Any, dtype: torch.dtype) -> tuple[Any, Any, int]:
    """``(index, coef, n_plus)``: ``dense[c] = theta[index[c]] * coef[c]`` from the orbit values
    ``theta`` (:func:`symmetrize.eigenbasis.project_vector`)."""
    basis = eigenbasis(rep)
    index = basis._back[0]
    return tensor(np.asarray(index)), tensor(np.asarray(basis.orbit_coef), dtype), basis.n_plus


def gather(theta: torch.Tensor | None, index: torch.Tensor | None,
           sign: torch.Tensor | None) -> torch.Tensor | None:
    """The dense ``gamma`` / ``beta`` from their free parameters ``theta`` (differentiable):
    ``theta[index] * sign``; ``theta`` itself when ``index`` is ``None``."""
    if theta is None or index is None:
        return theta
    if theta.shape[0] == 0:  # every entry forced to zero (e.g. beta of an all-negated Rep)
        return theta.new_zeros(index.shape[0])
    dense = theta.index_select(0, index)
    return dense if sign is None else dense.mul_(sign)


def _scatter(grad: torch.Tensor, index: torch.Tensor | None, sign: torch.Tensor | None,
             n_free: int) -> torch.Tensor:
    """Transpose of :func:`gather`: the gradient of the free parameters."""
    if index is None:
        return grad
    if n_free == 0:
        return grad.new_zeros(0)
    if sign is not None:
        grad = grad * sign
    return grad.new_zeros(n_free).index_add_(0, index, grad)


def _batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over every axis but 1: PyTorch's own batch-norm
    statistics kernel (two passes per channel, double accumulation, so accurate even when
    ``|mean| >> std``). Half inputs are reduced in float32."""
    if x.dtype in LOW_PRECISION:
        x = x.float()
    return torch.batch_norm_update_stats(x, None, None, 0.0)


def _symmetrise(mu: torch.Tensor, v: torch.Tensor,
                plan: Plan) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance of the augmented batch; exactly symmetric in floating point."""
    if plan.perm is None:  # trivial Rep: nothing to pair
        return mu, v
    stats = torch.stack([mu, v])  # one gather and few ops for both rows (C-sized work)
    partner = stats.index_select(1, plan.perm)
    if plan.sign2 is not None:
        partner.mul_(plan.sign2)  # row 0: T mu = sign * mu[perm]; row 1: v[perm]
    gap2 = mu - partner[0]  # twice the half-gap; the partner's is exactly its negative
    stats.add_(partner).mul_(0.5)
    stats[1].addcmul_(gap2, gap2, value=0.25)  # within + between: never negative
    return stats[0], stats[1]


def _use_elementwise(x: torch.Tensor, coeff_dtype: torch.dtype) -> bool:
    """Whether a per-channel affine map of ``x`` is faster as a broadcast ``addcmul`` than as the
    evaluation-mode ``batch_norm`` kernel: on CPU for ``(N, C)`` and short ``(N, C, L)`` inputs
    (measured crossover near ``L = 8``), and only without mixed precision."""
    return (x.dtype == coeff_dtype and (x.dim() == 2 or x.shape[2] < 8)
            and x.device.type == "cpu")


def _channel_view(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t if x.dim() == 2 else t.view((-1,) + (1,) * (x.dim() - 2))


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


class ChiralBatchNormFn(torch.autograd.Function):
    """Batch norm of ``x`` with the symmetrised statistics of ``{x, T x}``.

    ``apply(x, theta_w, theta_b, plan)`` returns ``(y, m, var)``: the output, and the
    (non-differentiable) augmented-batch mean and biased variance, for the running statistics.
    ``theta_w`` / ``theta_b`` are the free parameters of ``gamma`` / ``beta`` (or ``None``).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, theta_w: torch.Tensor | None,
                theta_b: torch.Tensor | None,
                plan: Plan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gamma = gather(theta_w, plan.w_index, plan.w_sign)
        beta = gather(theta_b, plan.b_index, plan.b_sign)
        m, var = _symmetrise(*_batch_stats(x), plan)
        rstd = (var + plan.eps).rsqrt_()
        scale = rstd if gamma is None else rstd * as_dtype(gamma, rstd.dtype)  # gamma r
        elementwise = _use_elementwise(x, scale.dtype) and (beta is None
                                                            or beta.dtype == scale.dtype)
        if elementwise:
            shift = m * scale.neg() if beta is None else torch.addcmul(beta, m, scale, value=-1.0)
            y = torch.addcmul(_channel_view(shift, x), x, _channel_view(scale, x))
        else:  # the fused kernel, also for mixed precision (half x, float statistics)
            kind = m.dtype if gamma is None else gamma.dtype
            y = torch.batch_norm(x, gamma, beta, as_dtype(m, kind), as_dtype(var, kind), False, 0.0,
                                 plan.eps, False)
        ctx.save_for_backward(x, gamma, m, var, rstd, scale)
        ctx.plan, ctx.elementwise = plan, elementwise
        ctx.mark_non_differentiable(m, var)
        return y, m, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor | None, _gm: Any, _gv: Any) -> tuple[Any, ...]:
        x, gamma, m, var, rstd, scale = ctx.saved_tensors
        plan: Plan = ctx.plan
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if grad_y is None:
            return None, None, None, None
        if not grad_y.is_contiguous() and x.is_contiguous():
            grad_y = grad_y.contiguous()  # e.g. the stride-0 gradient of y.sum()
        # One fused reduction pass; evaluation mode normalises with the m / var passed (ours):
        # H = sum g * xhat, G = sum g.
        kind = m.dtype if gamma is None else gamma.dtype
        # (the CUDA kernel asserts save_mean / save_invstd are given even in eval mode)
        _, h_sum, g_sum = _nbb(grad_y, x, gamma, as_dtype(m, kind), as_dtype(var, kind), as_dtype(m, kind),
                               as_dtype(rstd, kind), False, plan.eps,
                               [False, need_w or need_x, need_b or need_x])
        grad_w = _scatter(h_sum, plan.w_index, plan.w_sign, plan.w_free) if need_w else None
        grad_b = _scatter(g_sum, plan.b_index, plan.b_sign, plan.b_free) if need_b else None
        if not need_x:
            return None, grad_w, grad_b, None
        # With r = rstd, per channel: A = dL/dm = gamma r (r H m - G), B = dL/dvar = -gamma r^2 H/2,
        # dL/dmu_c = (A_c + s_c A_p) / 2, dL/dq_c = (B_c + B_p) / 2 (q = E[x^2]), and
        #     dx = gamma r g + dL/dmu / n + (2 dL/dq / n) x  =  gamma r g + const + slope x.
        # Rows of `coeff`: (s / n) A and (s / n) 2 B (s = 1/2 with pairs, 1 without), then paired.
        rh = as_dtype(h_sum, m.dtype) * rstd
        coeff = torch.stack([torch.addcmul(as_dtype(g_sum, m.dtype), rh, m, value=-1.0), rh])
        n = x.numel() // x.shape[1]
        coeff.mul_(scale * (-1.0 / n if plan.perm is None else -0.5 / n))
        if plan.perm is not None:
            partner = coeff.index_select(1, plan.perm)
            if plan.sign2 is None:
                coeff.add_(partner)
            else:
                coeff.addcmul_(partner, plan.sign2)
        const, slope = coeff[0], coeff[1]
        # slope * x + const in one fused pass, then gamma r g in place.
        if ctx.elementwise:
            grad_x = torch.addcmul(_channel_view(const, x), x, _channel_view(slope, x))
        else:  # the evaluation-mode kernel with unit statistics
            grad_x = torch.batch_norm(x, slope, const, plan.zeros, plan.ones, False, 0.0, 0.0,
                                      False)
        grad_x.addcmul_(grad_y, _channel_view(scale, x))
        return grad_x, grad_w, grad_b, None
