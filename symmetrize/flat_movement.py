"""The flat index trick: the mirror's action on the output of *any* data-movement op, read off
by running the op on index-encoded tensors.

Here a tensor's mirror action is a *flat Rep*: a :class:`~symmetrize.rep.Rep` over all ``numel``
elements in row-major order (:func:`flat_rep` builds one from per-axis Reps). Ops that only move,
copy or drop elements (view, permute, slicing, cat, pad, expand, roll, ...) need no hand-written
rule: :func:`forward_rep` encodes every input element by a distinct number, runs the op, and
reads from the result where each output element came from. Its cost is the number of elements, so
the conversion uses it only for ops that :mod:`symmetrize.movement_ops` does not follow on the
acting axes alone.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from symmetrize.flat_reps import flat_rep, fmt_index, place_constants, same_values
from symmetrize.movement_errors import NotDataMovementError, NotEquivariantError
from symmetrize.rep import Rep

__all__ = ["NotDataMovementError", "NotEquivariantError", "flat_rep", "forward_rep"]

_EXACT = 2 ** 53  # float64 holds every integer up to here exactly
_SEED = 0x5EED  # relabelling of the encodings; fixed so that results are reproducible

Op = Callable[..., Any] | str


RESHAPES = frozenset({"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
                      "contiguous", "view_as", "reshape_as", torch.reshape, torch.flatten,
                      torch.squeeze, torch.unsqueeze, torch.unflatten})




# ----------------------------------------------------------------------------- forward
def forward_rep(op: Op, inputs: Sequence[torch.Tensor | Any],
                input_reps: Sequence[Rep | None | Sequence[Rep | None]],
                *, kwargs: Mapping[str, Any] | None = None) -> Rep | list[Rep]:
    """Flat Rep(s) of ``op(*inputs, **kwargs)`` such that ``op(T x) == R_out op(x)``.

    Args:
        op: a callable, or a method name (``"view"``) called on the first input.
        inputs: the op's positional arguments; only their shapes are used for tensors.
        input_reps: one entry per input: the input's flat Rep, ``None`` for an argument passed
            through unchanged (a non-tensor, or an integer/bool index tensor), or a list of these
            for a list argument (``torch.cat([a, b])``).
        kwargs: keyword arguments, passed through unchanged.

    Returns:
        The output's flat Rep, or a list of them when the op returns a tuple or list of tensors.
        Constants the op introduces (zero padding) take the mirror action of their neighbours
        along each axis where one exists, else they stay fixed with sign ``+1``.

    Raises:
        NotEquivariantError: the output keeps an element but not its mirror image (asymmetric
            slicing), or has a non-zero constant where the mirror flips or moves it.
        NotDataMovementError: the output holds values that are not copies of input elements.
        ValueError: malformed arguments, or too many elements to encode exactly in float64.
    """
    name = _op_name(op)
    fn = _callable(op)
    if len(inputs) != len(input_reps):
        raise ValueError(f"{name}: {len(inputs)} inputs but {len(input_reps)} input Reps")
    leaves: list[tuple[str, tuple[int, ...], Rep]] = []
    for k, (arg, rep) in enumerate(zip(inputs, input_reps)):
        _collect(arg, rep, f"input {k}", leaves)
    sizes = [math.prod(shape) for _, shape, _ in leaves]
    total = sum(sizes)
    _check_exact(name, total)
    for (where, shape, rep), size in zip(leaves, sizes):
        if rep.size != size:
            raise ValueError(f"{name}: {where} of shape {shape} has {size} elements but its Rep "
                             f"has size {rep.size}")
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

    # Code c in 1..total names one input element; 0 is left to constants the op writes.
    code_perm = np.zeros(total + 1, dtype=np.int64)
    code_sign = np.ones(total + 1, dtype=np.int64)
    relabel = np.zeros(total + 1, dtype=np.float64)
    relabel[1:] = total + 1 + np.random.default_rng(_SEED).permutation(total)
    encoded, mirrored, relabelled = [], [], []
    for (_, shape, rep), start, size in zip(leaves, offsets, sizes):
        codes = np.arange(start + 1, start + size + 1, dtype=np.int64)
        code_perm[codes] = start + 1 + rep.perm
        code_sign[codes] = rep.sign
        values = codes.astype(np.float64)
        encoded.append(values.reshape(shape))
        mirrored.append((rep.sign * values[rep.perm]).astype(np.float64).reshape(shape))
        relabelled.append(relabel[codes].reshape(shape))

    runs = [_run(fn, name, inputs, input_reps, arrays, kwargs)
            for arrays in (encoded, mirrored, relabelled)]
    (out_a, shapes, multi), (out_b, shapes_b, _), (out_c, shapes_c, _) = runs
    if shapes_b != shapes or shapes_c != shapes:
        raise NotDataMovementError(f"{name}: the output shapes depend on the input values, so the "
                                   f"op is not pure data movement")
    codebook = _Codebook(leaves, offsets, code_perm, code_sign, relabel)
    reps = []
    for k, (a, b, c, shape) in enumerate(zip(out_a, out_b, out_c, shapes)):
        where = f"output {k}" if multi else "the output"
        reps.append(_output_rep(name, where, shape, a, b, c, codebook))
    return reps if multi else reps[0]


class _Codebook:
    """Which input element each code names, and how the mirror maps codes."""

    def __init__(self, leaves: list[tuple[str, tuple[int, ...], Rep]], offsets: np.ndarray,
                 perm: np.ndarray, sign: np.ndarray, relabel: np.ndarray) -> None:
        self.leaves, self.offsets = leaves, offsets
        self.perm, self.sign, self.relabel = perm, sign, relabel
        self.total = int(offsets[-1])

    def describe(self, code: int) -> str:
        leaf = int(np.searchsorted(self.offsets, code, side="left")) - 1
        where, shape, _ = self.leaves[leaf]
        index = fmt_index(np.unravel_index(code - int(self.offsets[leaf]) - 1, shape))
        return f"input element {index}" if len(self.leaves) == 1 else f"element {index} of {where}"


def _check_movement(name: str, shape: tuple[int, ...], bad: np.ndarray,
                    why: Callable[[str, int], str]) -> None:
    """Raise :class:`NotDataMovementError` at the first flat position where ``bad`` holds;
    ``why(index text, position)`` says what is wrong there."""
    hits = np.flatnonzero(bad)
    if hits.size:
        p = int(hits[0])
        raise NotDataMovementError(f"{name} is not pure data movement: "
                                   + why(fmt_index(np.unravel_index(p, shape)), p))


def _output_rep(name: str, where: str, shape: tuple[int, ...], out_a: np.ndarray,
                out_b: np.ndarray, out_c: np.ndarray, book: _Codebook) -> Rep:
    """The flat Rep of one output from its values on the three encodings."""
    n = out_a.size
    constant = same_values(out_a, out_c)
    maybe = (~constant & np.isfinite(out_a) & (out_a >= 1) & (out_a <= book.total)
             & (out_a == np.floor(out_a)))
    codes = np.zeros(n, dtype=np.int64)
    codes[maybe] = out_a[maybe].astype(np.int64)
    source = maybe & (out_c == book.relabel[codes])
    _check_movement(name, shape, ~(constant | source), lambda at, p: (
        f"{where} at {at} is {float(out_a[p])!r} on index-encoded inputs, which is neither a copy "
        f"of one input element nor a constant (arithmetic or a reduction?); it needs a dedicated "
        f"rule"))
    expected = np.where(source, book.sign[codes] * book.perm[codes], out_a)
    _check_movement(name, shape, ~same_values(out_b, expected), lambda at, p: (
        f"on mirrored inputs {where} at {at} is not the mirror image of what it copies on the "
        f"original inputs (the op depends on the values)"))

    src = np.flatnonzero(source)
    src_codes = codes[src]
    order = np.argsort(src_codes, kind="stable")
    sorted_codes, sorted_pos = src_codes[order], src[order]
    per_code = np.bincount(src_codes, minlength=book.total + 1)  # copies of each input element
    code_first = np.cumsum(per_code) - per_code  # where each code's copies start in sorted order
    rank = np.empty(src.size, dtype=np.int64)  # k for the k-th copy of its code, in output order
    rank[order] = np.arange(src.size) - code_first[sorted_codes]
    count = per_code[src_codes]
    twin = book.perm[src_codes]
    twin_first, twin_count = code_first[twin], per_code[twin]
    bad = np.flatnonzero(twin_count != count)
    if bad.size:
        i = int(bad[0])
        out_index = fmt_index(np.unravel_index(int(src[i]), shape))
        mine, theirs = book.describe(int(src_codes[i])), book.describe(int(twin[i]))
        if twin_count[i] == 0:
            raise NotEquivariantError(
                f"{name} is not equivariant: {where} at {out_index} copies {mine}, but no output "
                f"element copies its mirror image {theirs}; the op keeps {mine} but drops its "
                f"mirror image {theirs} (slice or select symmetrically, keeping both twins)")
        raise NotEquivariantError(
            f"{name} is not equivariant: {where} at {out_index} copies {mine}, which the output "
            f"holds {count[i]} times but its mirror image {theirs} {twin_count[i]} times")
    perm = np.arange(n, dtype=np.int64)
    sign = np.ones(n, dtype=np.int64)
    perm[src] = sorted_pos[twin_first + rank]
    sign[src] = book.sign[src_codes]
    if src.size < n:
        perm, sign = place_constants(name, where, shape, perm, sign, source, out_a)
    return Rep(perm, sign)




# ----------------------------------------------------------------------------- helpers


def _check_exact(name: str, total: int) -> None:
    if 2 * total + 1 >= _EXACT:
        raise ValueError(f"{name}: {total} input elements are too many to encode exactly in "
                         f"float64 (the encodings need 2 * numel + 1 < 2**53)")


def _op_name(op: Op) -> str:
    if isinstance(op, str):
        return f"Tensor.{op}"
    name = getattr(op, "__name__", None)
    if not isinstance(name, str):
        return repr(op)
    if not isinstance(op, types.BuiltinFunctionType):
        name = getattr(op, "__qualname__", name)
    module = getattr(op, "__module__", None)
    if not isinstance(module, str) or module in ("builtins", "__main__"):
        return name
    return f"{module.removeprefix('_')}.{name}"


def _callable(op: Op) -> Callable[..., Any]:
    if isinstance(op, str):
        return lambda x, *args, **kwargs: getattr(x, op)(*args, **kwargs)
    if not callable(op):
        raise TypeError(f"op must be callable or a method name, got {type(op).__name__}")
    return op


def _has_float_tensor(arg: Any) -> bool:
    if isinstance(arg, torch.Tensor):
        return arg.is_floating_point() or arg.is_complex()
    if isinstance(arg, (list, tuple)):
        return any(_has_float_tensor(a) for a in arg)
    return False


def _collect(arg: Any, rep: Any, where: str,
             leaves: list[tuple[str, tuple[int, ...], Rep]]) -> None:
    """Append ``(where, shape, rep)`` for every tensor argument to encode, in order."""
    if isinstance(rep, Rep):
        if not isinstance(arg, torch.Tensor):
            raise ValueError(f"{where} has a Rep but is a {type(arg).__name__}, not a tensor")
        leaves.append((where, tuple(arg.shape), rep))
    elif rep is None:
        if _has_float_tensor(arg):
            raise ValueError(f"{where} is a floating-point tensor without a Rep; give it one "
                             f"(Rep.trivial(numel) for an invariant tensor)")
    elif isinstance(rep, (list, tuple)) and isinstance(arg, (list, tuple)):
        if len(rep) != len(arg):
            raise ValueError(f"{where} holds {len(arg)} items but {len(rep)} Reps")
        for k, (item, item_rep) in enumerate(zip(arg, rep)):
            _collect(item, item_rep, f"{where}[{k}]", leaves)
    else:
        raise ValueError(f"{where}: expected a Rep, None or a list of them matching the argument, "
                         f"got {type(rep).__name__}")


def _substitute(arg: Any, rep: Any, tensors: Iterator[torch.Tensor]) -> Any:
    if isinstance(rep, Rep):
        return next(tensors)
    if rep is None:
        return arg
    items = [_substitute(a, r, tensors) for a, r in zip(arg, rep)]
    return items if isinstance(arg, list) else tuple(items)


def _numpy(name: str, out: torch.Tensor) -> tuple[np.ndarray, tuple[int, ...]]:
    if out.dtype != torch.float64:
        raise NotDataMovementError(f"{name} returns a {out.dtype} tensor from float64 inputs, so "
                                   f"it is not pure data movement")
    return out.detach().cpu().reshape(-1).numpy(), tuple(out.shape)


def _run(fn: Callable[..., Any], name: str, inputs: Sequence[Any], input_reps: Sequence[Any],
         arrays: list[np.ndarray], kwargs: Mapping[str, Any] | None,
         ) -> tuple[list[np.ndarray], list[tuple[int, ...]], bool]:
    """Run the op with the encoded tensors substituted; flat outputs, their shapes, multi-output."""
    tensors = iter([torch.from_numpy(a) for a in arrays])
    args = [_substitute(arg, rep, tensors) for arg, rep in zip(inputs, input_reps)]
    with torch.no_grad():
        result = fn(*args, **(kwargs or {}))
    if isinstance(result, torch.Tensor):
        outs, multi = [result], False
    elif isinstance(result, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in result):
        outs, multi = list(result), True
    else:
        raise NotDataMovementError(f"{name} returns a {type(result).__name__}, not a tensor or a "
                                   f"tuple of tensors")
    flat = [_numpy(name, t) for t in outs]
    return [f for f, _ in flat], [s for _, s in flat], multi
