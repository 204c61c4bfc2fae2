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
``bn(T x) = T bn(x)`` in training and in evaluation. Both are stored as their eigenbasis
coordinates: ``weight_plus`` (the ``+`` half of ``rep.unsigned()``) and ``bias_plus`` (the ``+``
half of ``rep``); ``weight`` / ``bias`` read as the dense vectors.

Speed: the batch-statistics path is one ``torch.autograd.Function``
(:mod:`symmetrize.nn.batchnorm_fn`) that also gathers ``gamma`` / ``beta`` from their coordinates
(``C``-sized, forward) and scatters their gradients (backward), so a training step costs about
what a plain ``nn.BatchNorm1d`` step does. The layer runs in the original basis.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symmetrize.eigenbasis import project_vector
from symmetrize.nn.batchnorm_fn import LOW_PRECISION, ChiralBatchNormFn, Plan, as_dtype, gather
from symmetrize.nn.shared import BlockSpec, ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralBatchNorm1d"]


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
        eps: as for ``nn.BatchNorm1d``.
        momentum: as for ``nn.BatchNorm1d``.
        affine: as for ``nn.BatchNorm1d``.
        track_running_stats: as for ``nn.BatchNorm1d``.
        device: as for ``nn.BatchNorm1d``.
        dtype: as for ``nn.BatchNorm1d``.
    """

    def __init__(self, rep: Rep, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        if not isinstance(rep, Rep):
            raise TypeError(f"{type(self).__name__} expects a Rep, got {type(rep).__name__}")
        if rep.size == 0:
            raise ValueError(f"{type(self).__name__} needs at least one channel, got an empty "
                             f"Rep")
        nn.BatchNorm1d.__init__(self, rep.size, eps=eps, momentum=momentum, affine=affine,
                                track_running_stats=track_running_stats, device=device,
                                dtype=dtype)
        self.rep = rep
        if affine:
            ref = self._parameters.pop("weight")
            self._parameters.pop("bias")
            self._register_blocks("weight", BlockSpec(None, rep.unsigned()), ref.device,
                                  ref.dtype)
            self._register_blocks("bias", BlockSpec(None, rep), ref.device, ref.dtype)
            self.reset_parameters()
        self._plans: dict[tuple[Any, ...], Plan] = {}
        self.register_load_state_dict_pre_hook(_symmetrise_running_stats)

    # ----------------------------------------------------------------- parameters
    @property
    def rep_in(self) -> Rep:
        return self.rep

    @property
    def rep_out(self) -> Rep:
        return self.rep

    def reset_parameters(self) -> None:
        """Running statistics reset, ``gamma = 1``, ``beta = 0`` (as ``nn.BatchNorm1d``)."""
        if "_block_specs" not in self.__dict__:
            super().reset_parameters()
            return
        self.reset_running_stats()
        with torch.no_grad():
            ones = torch.ones(self.num_features, dtype=self.weight_plus.dtype,
                              device=self.weight_plus.device)
            self.weight_plus.copy_(project_vector(ones, self.rep.unsigned()))
            self.bias_plus.zero_()

    def _plan(self, device: torch.device, stat_dtype: torch.dtype, param_dtype: torch.dtype,
              coords: bool) -> Plan:
        key = (device, stat_dtype, param_dtype, coords, self.eps)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 8:
                self._plans.clear()
            plan = self._plans[key] = Plan(self.rep, coords, coords, device, stat_dtype,
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
        stat_dtype = torch.float32 if input.dtype in LOW_PRECISION else input.dtype
        if not (self.training or (self.running_mean is None and self.running_var is None)):
            gamma = beta = None
            if self.affine and torch.jit.is_tracing():  # no cached tables in a traced graph
                gamma, beta = self.weight, self.bias
            elif self.affine:  # the dense gamma / beta by the plan's gather (one index_select)
                plan = self._plan(input.device, stat_dtype, self.weight_plus.dtype, True)
                gamma = gather(self.weight_plus, plan.w_index, plan.w_sign)
                beta = gather(self.bias_plus, plan.b_index, plan.b_sign)
            return torch.batch_norm(input, gamma, beta, self.running_mean, self.running_var,
                                    False, 0.0, self.eps, torch.backends.cudnn.enabled)
        if input.numel() == 0:  # as nn.BatchNorm1d: empty output, statistics untouched
            return input.clone()
        if self.affine:
            theta_w, theta_b = self.weight_plus, self.bias_plus
            param_dtype = theta_w.dtype
        else:
            theta_w = theta_b = None
            param_dtype = stat_dtype
        plan = self._plan(input.device, stat_dtype, param_dtype, self.affine)
        y, m, var = ChiralBatchNormFn.apply(input, theta_w, theta_b, plan)
        rm, rv = self.running_mean, self.running_var
        if tracking and rm is not None and rv is not None:
            n = 2 * (input.numel() // self.num_features)  # the augmented batch's count
            with torch.no_grad():
                rm.lerp_(as_dtype(m, rm.dtype), factor)
                rv.lerp_(as_dtype(var, rv.dtype) * (n / (n - 1)), factor)  # var is saved: no in-place
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
                layer.assign_dense("weight", module.weight)
                layer.assign_dense("bias", module.bias)
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
        ref = self.weight_plus if self.affine else self.running_mean
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

    def _check_io(self, batch: int, generator: torch.Generator, dtype: torch.dtype) -> Any:
        shape = (batch + 2, self.num_features) + ((5,) if self._dense_cls is nn.BatchNorm1d
                                                  else (4, 3))
        x = torch.randn(shape, generator=generator, dtype=dtype)
        return (x,), (self.rep.apply(x, 1),), lambda y: self.rep.apply(y, 1)

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
