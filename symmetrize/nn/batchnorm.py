"""Chirality-equivariant batch normalisation.

:class:`ChiralBatchNorm1d` normalises every channel with the statistics of the *augmented* batch
``{x, T x}`` (the batch together with its mirror image), as in "Chirality Nets". Per channel ``c``
with ``mu_c = E[x_c]``, ``v_c = Var[x_c]`` over batch (and length), ``p = perm[c]`` and
``s = sign[c]``::

    m_c   = (mu_c + s * mu_p) / 2                              # mean of {x_c, s x_p}
    var_c = (v_c + v_p) / 2 + ((mu_c - s * mu_p) / 2) ** 2     # within-half + between-half

(the same quantity as ``(q_c + q_p) / 2 - m_c ** 2`` with ``q = E[x^2]``, written so that it
neither cancels nor goes negative). So in training ``bn(x)`` is exactly the first half of a plain
``nn.BatchNorm1d`` applied to ``torch.cat([x, T x])``, and the running statistics it stores are the
ones that plain layer would store (unbiased variance with the augmented count ``2 * N * L``). They
are symmetric: ``running_mean[perm[c]] = sign[c] * running_mean[c]`` and
``running_var[perm[c]] = running_var[c]``.

The scale ``gamma`` is shared across each swapped pair with sign ``+1`` (``rep.unsigned()``), the
shift ``beta`` follows the bias rule (``rep``; zero on negated fixed channels), so
``bn(T x) = T bn(x)`` in training and in evaluation.

Speed: the batch-statistics path is one ``torch.autograd.Function`` that also does the shared
parameters' gather (forward) and scatter (backward), so a training step costs about what a plain
``nn.BatchNorm1d`` step does. Forward: PyTorch's batch-norm statistics kernel, channel-sized
symmetrisation, then the output in one fused pass (the evaluation-mode ``batch_norm`` kernel, or a
broadcast ``addcmul`` for ``(N, C)`` and short ``(N, C, L)`` inputs on CPU, whichever is faster).
Backward: one fused reduction pass (``sum g`` and ``sum g * xhat`` from
``native_batch_norm_backward`` in evaluation mode), then ``dx = gamma r g + slope x + const`` as
one fused per-channel affine pass over ``x`` plus one in-place ``addcmul`` of ``g``. The function
is not twice differentiable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from symmetrize.nn.shared import ChiralModule, SharedParameter, building_from
from symmetrize.rep import Rep
from symmetrize.weight_sharing import WeightSharing

__all__ = ["ChiralBatchNorm1d"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_nbb = torch.ops.aten.native_batch_norm_backward


class _Plan:
    """Channel-sized constants of one layer on one device, statistics dtype and parameter dtype.

    ``perm`` / ``sign2``: the Rep (``None`` when trivial / unsigned); ``sign2`` stacks its signs
    over ones, for a (mean-like, variance-like) pair of rows. ``w_*`` / ``b_*``: the gather
    ``dense = theta[index] * sign`` of the shared ``gamma`` / ``beta`` (``index = None``: the tensor
    passed is already dense). ``ones`` / ``zeros``: constant statistics for the fused kernels.
    """

    __slots__ = ("perm", "sign2", "w_index", "w_sign", "w_free", "b_index", "b_sign", "b_free",
                 "ones", "zeros", "eps")

    def __init__(self, rep: Rep, w_sharing: WeightSharing | None, b_sharing: WeightSharing | None,
                 device: torch.device, stat_dtype: torch.dtype, param_dtype: torch.dtype,
                 eps: float) -> None:
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
        if w_sharing is not None:
            self.w_index, self.w_free = tensor(w_sharing.index), w_sharing.n_free
            if (w_sharing.sign != 1).any():
                self.w_sign = tensor(w_sharing.sign, param_dtype)
        if b_sharing is not None:
            self.b_index, self.b_free = tensor(b_sharing.index), b_sharing.n_free
            if (b_sharing.sign != 1).any():
                self.b_sign = tensor(b_sharing.sign, param_dtype)
        self.ones = torch.ones(rep.size, device=device, dtype=stat_dtype)
        self.zeros = torch.zeros(rep.size, device=device, dtype=stat_dtype)
        self.eps = eps


def _gather(theta: torch.Tensor | None, index: torch.Tensor | None,
            sign: torch.Tensor | None) -> torch.Tensor | None:
    if theta is None or index is None:
        return theta
    if theta.shape[0] == 0:  # every entry forced to zero (e.g. beta of an all-negated Rep)
        return theta.new_zeros(index.shape[0])
    dense = theta.index_select(0, index)
    return dense if sign is None else dense.mul_(sign)


def _scatter(grad: torch.Tensor, index: torch.Tensor | None, sign: torch.Tensor | None,
             n_free: int) -> torch.Tensor:
    """Transpose of :func:`_gather`: the gradient of the free parameters."""
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
    if x.dtype in _LOW_PRECISION:
        x = x.float()
    return torch.batch_norm_update_stats(x, None, None, 0.0)


def _symmetrise(mu: torch.Tensor, v: torch.Tensor,
                plan: _Plan) -> tuple[torch.Tensor, torch.Tensor]:
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


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


class _ChiralBatchNormFn(torch.autograd.Function):
    """Batch norm of ``x`` with the symmetrised statistics of ``{x, T x}``.

    ``apply(x, theta_w, theta_b, plan)`` returns ``(y, m, var)``: the output, and the
    (non-differentiable) augmented-batch mean and biased variance, for the running statistics.
    ``theta_w`` / ``theta_b`` are the free parameters of ``gamma`` / ``beta`` (or ``None``).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, theta_w: torch.Tensor | None,
                theta_b: torch.Tensor | None,
                plan: _Plan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gamma = _gather(theta_w, plan.w_index, plan.w_sign)
        beta = _gather(theta_b, plan.b_index, plan.b_sign)
        m, var = _symmetrise(*_batch_stats(x), plan)
        rstd = (var + plan.eps).rsqrt_()
        scale = rstd if gamma is None else rstd * _as(gamma, rstd.dtype)  # gamma r
        elementwise = _use_elementwise(x, scale.dtype) and (beta is None
                                                            or beta.dtype == scale.dtype)
        if elementwise:
            shift = m * scale.neg() if beta is None else torch.addcmul(beta, m, scale, value=-1.0)
            y = torch.addcmul(_channel_view(shift, x), x, _channel_view(scale, x))
        else:  # the fused kernel, also for mixed precision (half x, float statistics)
            kind = m.dtype if gamma is None else gamma.dtype
            y = torch.batch_norm(x, gamma, beta, _as(m, kind), _as(var, kind), False, 0.0,
                                 plan.eps, False)
        ctx.save_for_backward(x, gamma, m, var, rstd, scale)
        ctx.plan, ctx.elementwise = plan, elementwise
        ctx.mark_non_differentiable(m, var)
        return y, m, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor | None, _gm: Any, _gv: Any) -> tuple[Any, ...]:
        x, gamma, m, var, rstd, scale = ctx.saved_tensors
        plan: _Plan = ctx.plan
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if grad_y is None:
            return None, None, None, None
        if not grad_y.is_contiguous() and x.is_contiguous():
            grad_y = grad_y.contiguous()  # e.g. the stride-0 gradient of y.sum()
        # One fused reduction pass; evaluation mode normalises with the m / var passed (ours):
        # H = sum g * xhat, G = sum g.
        kind = m.dtype if gamma is None else gamma.dtype
        # (the CUDA kernel asserts save_mean / save_invstd are given even in eval mode)
        _, h_sum, g_sum = _nbb(grad_y, x, gamma, _as(m, kind), _as(var, kind), _as(m, kind),
                               _as(rstd, kind), False, plan.eps,
                               [False, need_w or need_x, need_b or need_x])
        grad_w = _scatter(h_sum, plan.w_index, plan.w_sign, plan.w_free) if need_w else None
        grad_b = _scatter(g_sum, plan.b_index, plan.b_sign, plan.b_free) if need_b else None
        if not need_x:
            return None, grad_w, grad_b, None
        # With r = rstd, per channel: A = dL/dm = gamma r (r H m - G), B = dL/dvar = -gamma r^2 H/2,
        # dL/dmu_c = (A_c + s_c A_p) / 2, dL/dq_c = (B_c + B_p) / 2 (q = E[x^2]), and
        #     dx = gamma r g + dL/dmu / n + (2 dL/dq / n) x  =  gamma r g + const + slope x.
        # Rows of `coeff`: (s / n) A and (s / n) 2 B (s = 1/2 with pairs, 1 without), then paired.
        rh = _as(h_sum, m.dtype) * rstd
        coeff = torch.stack([torch.addcmul(_as(g_sum, m.dtype), rh, m, value=-1.0), rh])
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


class ChiralBatchNorm1d(ChiralModule, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` normalising with the statistics of the augmented batch ``{x, T x}``.

    Channels are on axis 1 of an ``(N, C)`` or ``(N, C, L)`` input, ``C = rep.size``. The layer
    is a real ``nn.BatchNorm1d``: ``weight`` / ``bias`` read as dense tensors (``weight`` shared
    across each swapped pair, ``bias`` shared with the Rep's signs), ``running_mean`` /
    ``running_var`` / ``num_batches_tracked`` are the usual buffers and follow the usual rules
    (``momentum=None`` is a cumulative average; evaluation uses the running statistics unless
    ``track_running_stats=False``). ``bn(T x) = T bn(x)`` in every mode.

    Loading a plain ``nn.BatchNorm1d`` state dict projects ``weight`` / ``bias`` onto the shared
    ones and symmetrises ``running_mean`` to ``(rm + T rm) / 2`` and ``running_var`` to the pair
    average, the statistics of the augmented batch they approximate (a chiral checkpoint's
    statistics are already symmetric and load unchanged).

    Args:
        rep: how the mirror acts on the channels.
        eps, momentum, affine, track_running_stats, device, dtype: as for ``nn.BatchNorm1d``.
    """

    def __init__(self, rep: Rep, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        if not isinstance(rep, Rep):
            raise TypeError(f"ChiralBatchNorm1d expects a Rep, got {type(rep).__name__}")
        if rep.size == 0:
            raise ValueError("ChiralBatchNorm1d needs at least one channel, got an empty Rep")
        nn.BatchNorm1d.__init__(self, rep.size, eps=eps, momentum=momentum, affine=affine,
                                track_running_stats=track_running_stats, device=device,
                                dtype=dtype)
        self.rep = rep
        if affine:
            self._share("weight", Rep.trivial(1), rep.unsigned())
            self._share("bias", Rep.trivial(1), rep)
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self.register_load_state_dict_pre_hook(_symmetrise_running_stats)

    # ----------------------------------------------------------------- parameters
    def reset_parameters(self) -> None:
        """Running statistics reset, ``gamma = 1``, ``beta = 0`` (as ``nn.BatchNorm1d``)."""
        if not (self.affine and parametrize.is_parametrized(self, "weight")):
            super().reset_parameters()
            return
        self.reset_running_stats()
        with torch.no_grad():
            self.parametrizations["weight"].original.fill_(1.0)
            self.parametrizations["bias"].original.zero_()

    def _free_parameter(self, name: str) -> tuple[torch.Tensor, WeightSharing | None]:
        """The tensor the fused function reads for ``name``: the free parameters when ``name``
        is our plain shared parametrization (the function gathers and scatters them itself),
        else the dense tensor (e.g. after more parametrizations were registered on it)."""
        plist = self.parametrizations[name]
        stack = plist._modules  # (ParametrizationList's len / [] are slow on the hot path)
        if len(stack) == 1:
            (first,) = stack.values()
            if isinstance(first, SharedParameter):
                return plist.original, first.sharing
        return getattr(self, name), None

    def _plan(self, device: torch.device, stat_dtype: torch.dtype, param_dtype: torch.dtype,
              w_sharing: WeightSharing | None, b_sharing: WeightSharing | None) -> _Plan:
        key = (device, stat_dtype, param_dtype, w_sharing, b_sharing, self.eps)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 8:
                self._plans.clear()
            plan = self._plans[key] = _Plan(self.rep, w_sharing, b_sharing, device, stat_dtype,
                                            param_dtype, self.eps)
        return plan

    # ----------------------------------------------------------------- forward
    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3) or input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, C) or (N, C, L) with "
                f"C = {self.num_features} channels on axis 1, got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        tracking = self.training and self.track_running_stats
        if tracking and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        if not (self.training or (self.running_mean is None and self.running_var is None)):
            return torch.batch_norm(input, self.weight if self.affine else None,
                                    self.bias if self.affine else None, self.running_mean,
                                    self.running_var, False, 0.0, self.eps,
                                    torch.backends.cudnn.enabled)
        if input.numel() == 0:  # as nn.BatchNorm1d: empty output, statistics untouched
            return input.clone()
        stat_dtype = torch.float32 if input.dtype in _LOW_PRECISION else input.dtype
        if self.affine:
            theta_w, w_sharing = self._free_parameter("weight")
            theta_b, b_sharing = self._free_parameter("bias")
            param_dtype = theta_w.dtype
        else:
            theta_w = theta_b = w_sharing = b_sharing = None
            param_dtype = stat_dtype
        plan = self._plan(input.device, stat_dtype, param_dtype, w_sharing, b_sharing)
        y, m, var = _ChiralBatchNormFn.apply(input, theta_w, theta_b, plan)
        rm, rv = self.running_mean, self.running_var
        if tracking and rm is not None and rv is not None:
            n = 2 * (input.numel() // self.num_features)  # the augmented batch's count
            with torch.no_grad():
                rm.lerp_(_as(m, rm.dtype), factor)
                rv.lerp_(_as(var, rv.dtype) * (n / (n - 1)), factor)  # var is saved: no in-place
        return y

    # ----------------------------------------------------------------- conversion
    #: the plain layer this one converts from and exports to
    _dense_cls: type[nn.modules.batchnorm._BatchNorm] = nn.BatchNorm1d

    @classmethod
    def from_dense(cls, module: nn.modules.batchnorm._BatchNorm, rep: Rep) -> Any:
        """A chiral copy of ``module``: ``gamma`` / ``beta`` projected onto the shared ones,
        running statistics symmetrised (``(rm + T rm) / 2``, pair-averaged ``running_var``)."""
        if not isinstance(module, cls._dense_cls):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.{cls._dense_cls.__name__},"
                            f" got {type(module).__name__}")
        if rep.size != module.num_features:
            raise ValueError(f"{cls.__name__}: rep has size {rep.size} but the layer has "
                             f"{module.num_features} features")
        ref = module.weight if module.affine else module.running_mean
        with building_from(module):
            layer = cls(rep, eps=module.eps, momentum=module.momentum, affine=module.affine,
                        track_running_stats=module.track_running_stats,
                        device=None if ref is None else ref.device,
                        dtype=None if ref is None else ref.dtype)
            if module.affine:
                layer._copy_dense_from(module, ("weight", "bias"))
        if module.track_running_stats and module.running_mean is not None:
            with torch.no_grad():
                rm, rv = _symmetric_stats(rep, module.running_mean, module.running_var)
                layer.running_mean.copy_(rm)
                layer.running_var.copy_(rv)
                layer.num_batches_tracked.copy_(module.num_batches_tracked)
        layer.train(module.training)
        return layer

    def to_dense(self) -> Any:
        """A plain batch norm (``nn.BatchNorm1d`` / ``2d``) with the materialised ``gamma`` /
        ``beta`` and these running statistics: identical outputs in evaluation (in training the
        plain layer normalises with the statistics of ``x`` alone, not of ``{x, T x}``)."""
        ref = self.weight if self.affine else self.running_mean
        dense = self._dense_cls(self.num_features, eps=self.eps, momentum=self.momentum,
                               affine=self.affine, track_running_stats=self.track_running_stats,
                               device=None if ref is None else ref.device,
                               dtype=None if ref is None else ref.dtype)
        with torch.no_grad():
            if self.affine:
                dense.weight.copy_(self.weight)
                dense.bias.copy_(self.bias)
            if self.track_running_stats and self.running_mean is not None:
                dense.running_mean.copy_(self.running_mean)
                dense.running_var.copy_(self.running_var)
                dense.num_batches_tracked.copy_(self.num_batches_tracked)
        dense.train(self.training)
        return dense

    def extra_repr(self) -> str:
        return (f"{self.rep}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


def _symmetric_stats(rep: Rep, running_mean: torch.Tensor,
                     running_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``((rm + T rm) / 2, (rv + rv[perm]) / 2)``: exact no-op on symmetric statistics."""
    perm = torch.tensor(rep.perm.tolist(), device=running_mean.device)
    rm = running_mean.detach()
    rv = running_var.detach()
    return (rm + rep.apply(rm, 0)) / 2, (rv + rv.index_select(0, perm)) / 2


def _symmetrise_running_stats(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                              *_: Any) -> None:
    """Load-state-dict pre-hook: symmetrise the running statistics of a (plain) checkpoint."""
    rep: Rep = module.rep  # type: ignore[assignment]
    mean_key, var_key = prefix + "running_mean", prefix + "running_var"
    rm, rv = state_dict.get(mean_key), state_dict.get(var_key)
    if not (isinstance(rm, torch.Tensor) and isinstance(rv, torch.Tensor)):
        return
    if tuple(rm.shape) != (rep.size,) or tuple(rv.shape) != (rep.size,):
        return  # let the usual size-mismatch error report it
    state_dict[mean_key], state_dict[var_key] = _symmetric_stats(rep, rm, rv)
