"""Export a model that contains chiral layers to plain PyTorch modules.

- :func:`export_plain`: every chiral layer becomes its plain twin with the dense weights (same
  outputs, plain ``weight`` / ``bias`` tensors, a plain state dict, the plain layer's speed).
- :func:`export_blocks`: every chiral layer that runs in block form becomes an
  :class:`EigenBlock` of plain modules and ops: two half-width ``nn.Linear`` / ``nn.Conv*d`` whose
  weights absorb the ``1/sqrt(2)`` scales, between exact sum / difference basis changes (slices
  in eager inference, ``index_select`` / ``addcmul`` when exporting, tracing or differentiating):
  about half the multiply-adds of the plain model, no custom autograd function, no
  parametrization; it pickles and exports to ONNX.

Both pickle with ``torch.save(model)`` and no longer enforce the symmetry when trained further:
export for deployment, not for fine-tuning.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn.blockops import BLOCKS
from symmetrize.nn.conv import ChiralConv
from symmetrize.nn.fastbasis import _sums as fast_sums
from symmetrize.nn.fastbasis import _unsums as fast_unsums
from symmetrize.nn.fastbasis import scaled_blocks, use_fast
from symmetrize.nn.linear import ChiralLinear
from symmetrize.nn.shared import ChiralModule, SymmetricTensor
from symmetrize.nn.switched import install_switch, uninstall_switch
from symmetrize.rep import Rep

__all__ = ["EigenBlock", "FromEigen", "ToEigen", "export_blocks", "export_plain"]


def export_plain(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every chiral layer in ``model`` by its plain twin (``layer.to_dense()``).

    Args:
        model: any module; chiral layers may sit anywhere in it, or be the model itself.
        inplace: modify ``model`` itself instead of a deep copy of it.

    Returns:
        The model with plain layers (the same object when ``inplace``, unless ``model`` itself is
        a chiral layer, which cannot replace itself: then its plain twin is returned).
    """
    return _export(model, inplace, _plain_twin)


def export_blocks(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every chiral Linear / Conv layer that runs in block form by an
    :class:`EigenBlock` of plain modules, and every other chiral layer (recurrent layers, batch
    norms, layers that run dense) by its plain twin.

    Args and returns as :func:`export_plain`.
    """
    return _export(model, inplace, _block_twin)


def _export(model: nn.Module, inplace: bool, twin: Any) -> nn.Module:
    target = model if inplace else copy.deepcopy(model)
    if isinstance(target, ChiralModule):
        return twin(target)
    _plain_tensors(target)
    if not getattr(target, "_symmetrize_switched", None):
        uninstall_switch(target)  # nothing left for the converted forward to do
    for name, child in list(target.named_children()):
        if isinstance(child, ChiralModule):
            setattr(target, name, twin(child))
        else:
            _export(child, True, twin)
    return target


def _plain_tensors(module: nn.Module) -> None:
    """Mirror-shared learned tensors (edge importance, per-joint biases) back to plain ones."""
    if not parametrize.is_parametrized(module):
        return
    switched = uninstall_switch(module)  # (the parametrized class sits below the switching one)
    for name, plist in list(module.parametrizations.items()):
        if len(plist) == 1 and isinstance(plist[0], SymmetricTensor):
            # a deep copy shares its parametrized class with the original, and removing a
            # parametrization deletes the property from the class: give this module its own
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if switched:
        install_switch(module, module._symmetrize_switched)


def _plain_twin(layer: ChiralModule) -> nn.Module:
    dense = layer.to_dense()  # type: ignore[attr-defined]
    dense.train(layer.training)  # type: ignore[attr-defined]
    return dense


def _block_twin(layer: ChiralModule) -> nn.Module:
    if not isinstance(layer, (ChiralLinear, ChiralConv)) or layer.execution != BLOCKS:
        return _plain_twin(layer)
    b_in, b_out = eigenbasis(layer.rep_in), eigenbasis(layer.rep_out)
    if 0 in (b_in.n_plus, b_in.n_minus, b_out.n_plus, b_out.n_minus):
        return _plain_twin(layer)  # a half without channels: nothing to split
    plain = layer.to_dense()
    halves = []
    for half, (n_in, n_out) in (("plus", (b_in.n_plus, b_out.n_plus)),
                                ("minus", (b_in.n_minus, b_out.n_minus))):
        bias = layer.plus_bias() if half == "plus" else None
        if isinstance(layer, ChiralLinear):
            module: nn.Module = nn.Linear(n_in, n_out, bias=bias is not None,
                                          device=plain.weight.device, dtype=plain.weight.dtype)
        else:
            conv: Any = plain
            module = type(plain)(n_in, n_out, conv.kernel_size, stride=conv.stride,
                                 padding=conv.padding, dilation=conv.dilation,
                                 bias=bias is not None, padding_mode=conv.padding_mode,
                                 device=plain.weight.device, dtype=plain.weight.dtype)
        with torch.no_grad():  # sum coordinates: D_out W D_in, bias by its orbit values
            module.weight.copy_(scaled_blocks(getattr(layer, f"weight_{half}"), b_in, b_out,
                                              half))
            if bias is not None:
                module.bias.copy_(layer.bias_plus)
        halves.append(module)
    dim = -1 if isinstance(layer, ChiralLinear) else 1
    dtype = plain.weight.dtype
    block = EigenBlock(ToEigen(layer.rep_in, dim, dtype), halves[0], halves[1],
                       FromEigen(layer.rep_out, dim, dtype))
    block.train(layer.training)  # type: ignore[attr-defined]
    return block.to(plain.weight.device)


def _fast(x: torch.Tensor) -> bool:
    return use_fast(x) and not (torch.is_grad_enabled() and x.requires_grad)


class ToEigen(nn.Module):
    """``(P, M) = S x`` along axis ``dim``: ``P = x_a + s x_b`` / ``x_i``, ``M = x_a - s x_b`` /
    ``x_j`` (exact sums; :mod:`symmetrize.nn.fastbasis`), with plain ops. Unbatched convolution
    inputs (one axis fewer) are not supported: use a batch of one."""

    def __init__(self, rep: Rep, dim: int, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        basis = eigenbasis(rep)
        self.rep, self.dim = rep, dim
        for half, sgn in (("plus", 1.0), ("minus", -1.0)):
            coef = np.where(getattr(basis, f"{half}_paired"),
                            sgn * getattr(basis, f"{half}_sign"), 0.0)
            self.register_buffer(f"{half}_first", torch.tensor(
                getattr(basis, f"{half}_first").tolist(), dtype=torch.int64), persistent=False)
            self.register_buffer(f"{half}_second", torch.tensor(
                getattr(basis, f"{half}_second").tolist(), dtype=torch.int64), persistent=False)
            self.register_buffer(f"{half}_coef", torch.tensor(coef.tolist(), dtype=dtype),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        basis = eigenbasis(self.rep)
        if basis.split is not None:  # no pairs, each half contiguous (the eigen layout): views
            plus, minus = basis.to_eigen(x, self.dim)
            assert plus is not None and minus is not None
            return plus, minus
        if _fast(x):
            plus, minus = fast_sums(basis, x, self.dim % x.dim(), "+-")
            assert plus is not None and minus is not None
            return plus, minus
        shape = [1] * x.dim()
        shape[self.dim] = -1
        out = []
        for half in ("plus", "minus"):
            first = x.index_select(self.dim, getattr(self, f"{half}_first"))
            second = x.index_select(self.dim, getattr(self, f"{half}_second"))
            out.append(torch.addcmul(first, second, getattr(self, f"{half}_coef").view(shape)))
        return out[0], out[1]


class FromEigen(nn.Module):
    """``x = R (P, M)`` along axis ``dim``: ``x_a = P + M``, ``x_b = s (P - M)``, ``x_i = P_i`` /
    ``M_j`` (plain ops)."""

    def __init__(self, rep: Rep, dim: int, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        basis = eigenbasis(rep)
        self.rep, self.dim = rep, dim
        hp, hm, dp, dm = basis._back
        scale = np.sqrt(2.0)  # undo the orthonormal 1/sqrt(2) on pairs: exact +-1 / 0
        paired = rep.perm != np.arange(rep.size)
        ep = np.where(paired, np.rint(dp * scale), dp)
        em = np.where(paired, np.rint(dm * scale), dm)
        for name, value, kind in (("index_plus", hp, torch.int64), ("index_minus", hm, torch.int64),
                                  ("coef_plus", ep, dtype), ("coef_minus", em, dtype)):
            self.register_buffer(name, torch.tensor(np.asarray(value).tolist(), dtype=kind),
                                 persistent=False)

    def forward(self, plus: torch.Tensor, minus: torch.Tensor) -> torch.Tensor:
        basis = eigenbasis(self.rep)
        if basis.split is not None:  # the halves side by side: a cat
            return basis.from_eigen(plus, minus, self.dim)
        if _fast(plus):
            return fast_unsums(basis, plus, minus, self.dim % plus.dim())
        shape = [1] * plus.dim()
        shape[self.dim] = -1
        out = plus.index_select(self.dim, self.index_plus) * self.coef_plus.view(shape)
        return torch.addcmul(out, minus.index_select(self.dim, self.index_minus),
                             self.coef_minus.view(shape))


class EigenBlock(nn.Module):
    """A channel-mixing layer in block form: ``from_eigen(plus(x+), minus(x-))`` with
    ``x+, x- = to_eigen(x)``; ``plus`` / ``minus`` are plain ``nn.Linear`` / ``nn.Conv*d``."""

    def __init__(self, to_eigen: ToEigen, plus: nn.Module, minus: nn.Module,
                 from_eigen: FromEigen) -> None:
        super().__init__()
        self.to_eigen, self.plus, self.minus, self.from_eigen = to_eigen, plus, minus, from_eigen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_plus, x_minus = self.to_eigen(x)
        return self.from_eigen(self.plus(x_plus), self.minus(x_minus))
