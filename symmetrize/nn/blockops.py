"""Running a channel-mixing layer in the eigenbasis, and choosing when to.

In block form a layer changes the basis of its input (``O(n)`` per feature vector), applies its
two half-width maps and changes the basis back: about half the multiply-adds of the plain
layer. Below some width the two basis changes cost more than they save; there the layer computes
its dense weight from the blocks once per forward and runs the plain kernel. The choice is made
once per layer from its Reps (:func:`choose_execution`) and kept in ``layer.execution``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from symmetrize.eigenbasis import EigenBasis, vector_to_plus
from symmetrize.nn.fastbasis import from_sums, scaled_blocks, to_sums, use_fast
from symmetrize.rep import Rep

__all__ = ["BLOCKS", "MAX_BLOCK_FLOPS", "MIN_BLOCK_WIDTH", "block_apply", "choose_execution",
           "flop_fraction", "grouped_halves", "recurrent_execution"]

BLOCKS = "blocks"
#: narrower layers run dense: the basis changes cost more than the halved matmul saves
MIN_BLOCK_WIDTH = 64
#: layers whose blocks keep more than this fraction of the dense multiply-adds run dense
MAX_BLOCK_FLOPS = 0.75

_Op = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def flop_fraction(rep_in: Rep, rep_out: Rep, basis: Callable[[Rep], EigenBasis]) -> float:
    """Multiply-adds of the two blocks over those of the dense map."""
    dense = rep_in.size * rep_out.size
    if dense == 0:
        return 1.0
    b_in, b_out = basis(rep_in), basis(rep_out)
    return (b_out.n_plus * b_in.n_plus + b_out.n_minus * b_in.n_minus) / dense


def choose_execution(rep_in: Rep, rep_out: Rep, basis: Callable[[Rep], EigenBasis]) -> str:
    """``"blocks"``, or ``"dense (<reason>)"`` where the block form would be slower."""
    width = min(rep_in.size, rep_out.size)
    if width < MIN_BLOCK_WIDTH:
        return f"dense (width {width} < {MIN_BLOCK_WIDTH})"
    fraction = flop_fraction(rep_in, rep_out, basis)
    if fraction > MAX_BLOCK_FLOPS:
        return f"dense (blocks keep {fraction:.0%} of the multiply-adds > {MAX_BLOCK_FLOPS:.0%})"
    return BLOCKS


def recurrent_execution(hidden: int) -> str:
    """The execution of a recurrent layer or cell: ``W_hh`` (hidden x hidden) dominates."""
    if hidden < MIN_BLOCK_WIDTH:
        return f"dense (hidden width {hidden} < {MIN_BLOCK_WIDTH})"
    return BLOCKS


def grouped_halves(b_in: EigenBasis, b_out: EigenBasis) -> str | None:
    """``"+-"`` / ``"-+"`` when a layer between ``b_in`` and ``b_out`` is one grouped kernel
    (``groups=2``, the halves' weights stacked in that order): both bases split (no pairs, each
    half contiguous: the ``"eigen"`` hidden layout), into equal halves, the same half first.
    ``None`` otherwise."""
    if b_in.split is None or b_out.split is None:
        return None
    if not (b_in.n_plus == b_in.n_minus > 0 and b_out.n_plus == b_out.n_minus > 0):
        return None
    plus_first = b_in.split[0] < b_in.split[1]
    if plus_first != (b_out.split[0] < b_out.split[1]):
        return None
    return "+-" if plus_first else "-+"


def block_apply(x: torch.Tensor, dim: int, b_in: EigenBasis, b_out: EigenBasis, op: _Op,
                w_plus: torch.Tensor, w_minus: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """``Q_out [op(x+, W+, b+); op(x-, W-)]`` with ``x+, x- = Q_in^T x`` along ``dim``.

    ``op(x, weight, bias)`` is the layer's plain kernel (``F.linear``, a convolution); ``bias``
    the bias by its orbit values (:func:`~symmetrize.eigenbasis.project_vector`). Large
    activations change basis with the slice kernels of :mod:`symmetrize.nn.fastbasis` (the
    weights scaled to match), small ones with gathers; a split basis (no pairs: the ``"eigen"``
    hidden layout) with two ``narrow`` views and a ``cat``. A half whose output is empty is not
    computed; one whose input is empty gives the bias.
    """
    want = ("+" if b_out.n_plus else "") + ("-" if b_out.n_minus else "")
    scale_out = None
    if use_fast(x) and not b_in.is_identity and b_in.split is None:
        x_plus, x_minus = to_sums(b_in, x, dim, want)
        if w_plus.numel() + w_minus.numel() <= x.numel():  # fold D into the (smaller) weights
            w_plus = scaled_blocks(w_plus, b_in, b_out, "plus")
            w_minus = scaled_blocks(w_minus, b_in, b_out, "minus")
            bias_plus = bias  # D_out times the orthonormal coordinates: the orbit values
        else:  # scale the (smaller) activations instead
            x_plus = _scaled(x_plus, b_in, "plus", dim)
            x_minus = _scaled(x_minus, b_in, "minus", dim)
            bias_plus = None if bias is None else vector_to_plus(bias, b_out.rep)
            scale_out = b_out
        fast = True
    else:
        x_plus, x_minus = b_in.to_eigen(x, dim, want)
        bias_plus = None if bias is None else vector_to_plus(bias, b_out.rep)
        fast = False
    y_plus = _half(x_plus, op, w_plus, bias_plus, dim) if b_out.n_plus else None
    y_minus = _half(x_minus, op, w_minus, None, dim) if b_out.n_minus else None
    if y_plus is None and y_minus is None:  # an empty output
        return op(x, w_plus.new_zeros(0, b_in.size, *w_plus.shape[2:]), None)
    if fast and scale_out is not None:
        y_plus = None if y_plus is None else _scaled(y_plus, b_out, "plus", dim)
        y_minus = None if y_minus is None else _scaled(y_minus, b_out, "minus", dim)
    if fast and y_plus is not None and y_minus is not None:
        return from_sums(b_out, y_plus, y_minus, dim)
    if fast:  # one half empty: the other's sums are the orthonormal coordinates over D
        half, y = ("plus", y_plus) if y_plus is not None else ("minus", y_minus)
        assert y is not None
        scale = b_out.tables(y.device, y.dtype)[f"{half}_scale"]
        view = [1] * y.dim()
        view[dim] = -1
        y = y / scale.view(view)
        return b_out.from_eigen(y if half == "plus" else None, y if half == "minus" else None,
                                dim)
    return b_out.from_eigen(y_plus, y_minus, dim)


def _scaled(x: torch.Tensor | None, basis: EigenBasis, half: str, dim: int) -> torch.Tensor | None:
    """``D * x`` along ``dim`` (``1/sqrt(2)`` on pair coordinates): sums to orthonormal
    coordinates and back."""
    if x is None or not getattr(basis, f"{half}_paired").any():
        return x
    scale = basis.tables(x.device, x.dtype)[f"{half}_scale"]
    view = [1] * x.dim()
    view[dim] = -1
    return x * scale.view(view)


def _half(x_half: torch.Tensor | None, op: _Op, weight: torch.Tensor,
          bias: torch.Tensor | None, dim: int) -> torch.Tensor:
    assert x_half is not None
    if x_half.shape[dim] == 0:  # no input channel in this half: the output is the bias
        x_half = x_half.new_zeros(*x_half.shape[:dim], 1, *x_half.shape[dim + 1:])
        weight = weight.new_zeros(weight.shape[0], 1, *weight.shape[2:])
    return op(x_half, weight, bias)
