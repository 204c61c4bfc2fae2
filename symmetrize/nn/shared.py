"""Shared (equivariant) parameters: the gather that builds them and the base of every chiral layer.

A shared tensor is stored as its free parameters ``theta`` and materialised on access through a
``torch.nn.utils.parametrize`` parametrization, so a chiral layer stays an ``nn.Linear`` /
``nn.Conv1d`` / ``nn.LSTM`` / ... and its ``weight`` attribute is the full dense tensor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from symmetrize.rep import Rep
from symmetrize.weight_sharing import WeightSharing, weight_sharing

__all__ = ["ChiralModule", "SharedParameter", "SymmetricTensor", "building_from", "share_tensor"]

_SOURCE: ContextVar[nn.Module | None] = ContextVar("symmetrize_dense_source", default=None)


@contextmanager
def building_from(source: nn.Module) -> Iterator[None]:
    """Build a chiral layer as a copy of the plain layer ``source``.

    Inside the block, chiral layers skip their random initialisation, and each shared tensor
    takes its value from ``source``'s tensor of the same name. The value is projected once.
    Without this, ``from_dense`` would initialise the layer randomly, project that, and then
    project the copied weights a second time. For a 1024-channel layer those steps cost more
    than the copy itself.
    """
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


class _SharedGather(torch.autograd.Function):
    """``theta[index] * sign`` forward; backward as two gathers over the orbit-major layout.

    ``theta`` is ``(n_free,)`` or ``(n_free, taps)`` and ``sign`` / ``sign2`` have the full shape
    of the rows they multiply (a broadcast multiply over a short trailing axis is several times
    slower on CPU than an elementwise one).
    """

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, index: torch.Tensor, sign: torch.Tensor,
                pos1: torch.Tensor, pos2: torch.Tensor, sign2: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(pos1, pos2, sign2)
        return theta.index_select(0, index).mul_(sign)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        pos1, pos2, sign2 = ctx.saved_tensors
        grad_theta = grad.index_select(0, pos1)
        n_pairs = pos2.shape[0]
        if n_pairs:
            grad_theta[:n_pairs].addcmul_(grad.index_select(0, pos2), sign2)
        return grad_theta, None, None, None, None, None


class SharedParameter(nn.Module):
    """Parametrization mapping free parameters ``theta`` to an equivariant dense tensor.

    Args:
        sharing: the :class:`~symmetrize.rep.WeightSharing` of the tensor's first two axes
            ``(out, in)``; a bias uses ``in = Rep.trivial(1)``.
        shape: the dense tensor's shape: ``(out, in, *extra)``, or ``(out,)`` for a bias.
    """

    def __init__(self, sharing: WeightSharing, shape: tuple[int, ...],
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        super().__init__()
        dtype = torch.get_default_dtype() if dtype is None else dtype
        n_out, n_in = sharing.shape
        self.sharing = sharing
        self.shape = tuple(shape)
        numel = 1
        for s in self.shape:
            numel *= s
        if numel % (n_out * n_in) or self.shape[0] != n_out:
            raise ValueError(f"tensor shape {self.shape} does not start with the sharing's "
                             f"(out, in) = {sharing.shape}")
        self.extra = tuple(self.shape[2:])
        #: elements of the tensor per (out, in) entry (kernel taps); 1 for Linear weights, biases
        self.taps = numel // (n_out * n_in)

        def buffer(name: str, array: Any, float_dtype: torch.dtype | None = None) -> None:
            if float_dtype is None:  # indices: int32 halves their memory, index_select takes it
                value = torch.tensor(array, device=device, dtype=torch.int32)
            else:  # signs: full row shape, so the multiply is elementwise
                value = torch.tensor(array, device=device, dtype=float_dtype)
                if self.taps > 1:
                    value = value[:, None].expand(-1, self.taps).contiguous()
            self.register_buffer(name, value, persistent=False)

        buffer("index", sharing.index)
        buffer("sign", sharing.sign, dtype)
        buffer("pos1", sharing.pos1)
        buffer("pos2", sharing.pos2)
        buffer("sign2", sharing.sign2, dtype)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        if theta.shape[0] == 0:  # every entry is forced to zero by the symmetry
            return theta.new_zeros(self.shape)
        sign, sign2 = self.sign, self.sign2
        if sign.dtype != theta.dtype:
            sign, sign2 = sign.to(theta.dtype), sign2.to(theta.dtype)
        rows = theta.reshape(theta.shape[0], self.taps) if self.taps > 1 else theta.reshape(-1)
        flat = _SharedGather.apply(rows, self.index, sign, self.pos1, self.pos2, sign2)
        return flat.view(self.shape)

    def right_inverse(self, dense: torch.Tensor) -> torch.Tensor:
        """Project a dense tensor onto the equivariant ones and return its free parameters."""
        if tuple(dense.shape) != self.shape:
            raise ValueError(f"cannot assign a tensor of shape {tuple(dense.shape)} to a shared "
                             f"tensor of shape {self.shape}")
        return self.sharing.project(dense.reshape(*self.sharing.shape, *self.extra))

    def extra_repr(self) -> str:
        return f"{self.sharing!r}"


class SymmetricTensor(nn.Module):
    """Parametrization of a learned tensor that must equal its mirror image (a per-joint bias or
    embedding, an ST-GCN edge importance): ``T t = t`` for the flat Rep ``rep`` of its elements.

    Stored as one free parameter per orbit of ``rep`` (a swapped pair shares one value; an entry
    that the mirror negates in place is zero).
    """

    def __init__(self, rep: Rep, shape: tuple[int, ...], dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.rep = rep
        # the bias rule: a vector the mirror leaves unchanged
        self.gather = SharedParameter(weight_sharing(Rep.trivial(1), rep), (rep.size,),
                                      dtype=dtype, device=device)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return self.gather(theta).view(self.shape)

    def right_inverse(self, dense: torch.Tensor) -> torch.Tensor:
        """The free parameters of the closest symmetric tensor (orbit averages)."""
        return self.gather.right_inverse(dense.reshape(-1))


def share_tensor(module: nn.Module, name: str, rep: Rep) -> None:
    """Make ``module.<name>`` (a parameter) mirror-symmetric under ``rep``, projecting its value."""
    tensor = getattr(module, name)
    if rep.size != tensor.numel():
        raise ValueError(f"a Rep of size {rep.size} cannot act on '{name}' of shape "
                         f"{tuple(tensor.shape)}")
    parametrize.register_parametrization(
        module, name, SymmetricTensor(rep, tuple(tensor.shape), tensor.dtype, tensor.device),
        unsafe=True)


class ChiralModule:
    """Mixin for chiral layers: shared tensors, state-dict compatibility with plain layers.

    A chiral layer's state dict stores each shared tensor's free parameters under
    ``parametrizations.<name>.original``. Loading a plain layer's state dict (dense ``<name>``)
    projects each dense tensor onto the equivariant ones, so plain checkpoints load directly.
    """

    _shared_names: tuple[str, ...] = ()

    def _share(self, name: str, rep_in: Rep, rep_out: Rep) -> None:
        """Replace the dense parameter ``name`` by a shared one initialised from its current value.

        The current value is read as a dense random initialisation (see
        :meth:`WeightSharing.sample_like`), so the layer keeps its plain counterpart's scale.
        """
        module: nn.Module = self  # type: ignore[assignment]
        dense = getattr(module, name)
        sharing = weight_sharing(rep_in, rep_out)
        shape = tuple(dense.shape)
        source = _SOURCE.get()
        pretrained = None if source is None else getattr(source, name, None)
        theta = None
        with torch.no_grad():
            if pretrained is not None and tuple(pretrained.shape) == shape:
                dense.copy_(pretrained)  # registering projects it (SharedParameter.right_inverse)
            else:
                theta = sharing.sample_like(dense.detach().reshape(*sharing.shape, *shape[2:]))
        parametrization = SharedParameter(sharing, shape, dtype=dense.dtype, device=dense.device)
        parametrize.register_parametrization(module, name, parametrization, unsafe=True)
        if theta is not None:
            with torch.no_grad():
                module.parametrizations[name].original.copy_(theta)
        self._shared_names = (*self._shared_names, name)
        if len(self._shared_names) == 1:
            module.register_load_state_dict_pre_hook(_project_dense_entries)

    def _share_weight_and_bias(self, rep_in: Rep, rep_out: Rep, bias: bool) -> None:
        """Record the Reps and share ``weight`` (``rep_in -> rep_out``) and ``bias``."""
        self.rep_in = rep_in
        self.rep_out = rep_out
        self._share("weight", rep_in, rep_out)
        if bias:
            self._share("bias", Rep.trivial(1), rep_out)

    def reset_parameters(self) -> None:
        """Re-initialise like the plain layer (its default init, read as in :meth:`_share`).

        The plain ``reset_parameters`` would initialise the materialised tensors in place, which
        never reaches the stored free parameters.
        """
        if not self._shared_names:  # inside the plain class's __init__, before sharing
            if _SOURCE.get() is None:  # (building_from: the weights come from the source)
                super().reset_parameters()  # type: ignore[misc]
            return
        module: nn.Module = self  # type: ignore[assignment]
        plain = self.to_dense()  # type: ignore[attr-defined]
        plain.reset_parameters()
        with torch.no_grad():
            for name in self._shared_names:
                dense = getattr(plain, name)
                sharing = self.shared_sharing(name)
                theta = sharing.sample_like(dense.reshape(*sharing.shape, *dense.shape[2:]))
                module.parametrizations[name].original.copy_(theta)

    def shared_sharing(self, name: str) -> WeightSharing:
        """The :class:`WeightSharing` of shared tensor ``name``."""
        module: nn.Module = self  # type: ignore[assignment]
        return module.parametrizations[name][0].sharing

    def free_parameters(self) -> int:
        """Number of trainable scalars (what ``sum(p.numel() for p in parameters())`` counts)."""
        module: nn.Module = self  # type: ignore[assignment]
        return sum(p.numel() for p in module.parameters())

    def dense_parameters(self) -> int:
        """Number of scalars the plain layer of the same shape has."""
        module: nn.Module = self  # type: ignore[assignment]
        total = 0
        for name, p in module.named_parameters():
            if name.startswith("parametrizations."):
                continue
            total += p.numel()
        for name in self._shared_names:
            total += getattr(module, name).numel()
        return total

    def _copy_dense_from(self, other: nn.Module, names: tuple[str, ...]) -> None:
        """Assign ``other``'s tensors to this layer, projecting the shared ones."""
        module: nn.Module = self  # type: ignore[assignment]
        built_from_other = _SOURCE.get() is other
        with torch.no_grad():
            for name in names:
                value = getattr(other, name)
                if value is None:
                    continue
                if name in self._shared_names:
                    if built_from_other:  # _share already took (and projected) it
                        continue
                    setattr(module, name, value.detach().to(getattr(module, name)))
                else:
                    getattr(module, name).copy_(value.detach())


def _project_dense_entries(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                           *_: Any) -> None:
    """Load-state-dict pre-hook: turn dense ``<name>`` entries into free parameters."""
    for name in getattr(module, "_shared_names", ()):
        dense_key = prefix + name
        shared_key = f"{prefix}parametrizations.{name}.original"
        if dense_key in state_dict and shared_key not in state_dict:
            dense = state_dict.pop(dense_key)
            param = module.parametrizations[name]
            if tuple(dense.shape) != param[0].shape:
                raise RuntimeError(
                    f"size mismatch for {dense_key}: checkpoint has {tuple(dense.shape)}, the chiral "
                    f"layer {type(module).__name__} expects {param[0].shape}")
            state_dict[shared_key] = param[0].right_inverse(
                dense.to(param.original.dtype))
