"""Mirror Reps through data-movement ops, read off by running the op on index-encoded tensors.

A tensor's mirror action is held as a *flat Rep*: a :class:`~symmetrize.rep.Rep` over all ``numel``
elements of the tensor in row-major order (batch included; the mirror never mixes batch elements).
Ops that only move, copy or drop elements (view, permute, slicing, cat, pad, expand, roll, ...) need
no hand-written rule: :func:`forward_rep` encodes every input element by a distinct number, runs the
op, and reads from the result where each output element came from. :func:`factor_axes` recovers the
per-axis Reps a layer needs (the channel Rep of a Conv1d input, the feature Rep of a Linear input)
from a flat Rep, and :func:`pull_back_rep` runs a bijective op backwards.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from symmetrize.rep import Rep

__all__ = [
    "NotDataMovementError",
    "NotEquivariantError",
    "factor_axes",
    "flat_rep",
    "forward_rep",
    "pull_back_rep",
]

_EXACT = 2 ** 53  # float64 holds every integer up to here exactly
_SEED = 0x5EED  # relabelling of the encodings; fixed so that results are reproducible

Op = Callable[..., Any] | str


class NotEquivariantError(ValueError):
    """The op is data movement, but no Rep of its output makes it equivariant for the input Reps."""


class NotDataMovementError(ValueError):
    """The op computes new values (arithmetic, reductions, ...): it needs a dedicated rule."""


#: ops that only change the shape: the row-major element order, so the flat Rep, is unchanged
RESHAPES = frozenset({"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
                      "contiguous", "view_as", "reshape_as", torch.reshape, torch.flatten,
                      torch.squeeze, torch.unsqueeze, torch.unflatten})


# ----------------------------------------------------------------------------- flat Reps
def flat_rep(shape: Sequence[int], axes: Mapping[int, Rep]) -> Rep:
    """The flat Rep of a tensor of ``shape`` whose axis ``a`` transforms with ``axes[a]``.

    Every other axis is left alone; the result is the Kronecker product over the axes in order.
    Negative axis keys count from the end.

    Raises:
        ValueError: an axis out of range or given twice, or a Rep whose size is not the axis size.
    """
    shape = _as_shape(shape)
    per_axis: dict[int, Rep] = {}
    for key, rep in axes.items():
        axis = _norm_axis(key, len(shape))
        if axis in per_axis:
            raise ValueError(f"axis {key} of shape {shape} is given twice")
        if not isinstance(rep, Rep):
            raise TypeError(f"axis {key}: expected a Rep, got {type(rep).__name__}")
        if rep.size != shape[axis]:
            raise ValueError(f"axis {key} of shape {shape} has size {shape[axis]} but its Rep has "
                             f"size {rep.size}")
        per_axis[axis] = rep
    perm, sign = _product(shape, per_axis)
    return Rep._trusted(perm, sign)  # a Kronecker product of valid Reps is valid


def factor_axes(shape: Sequence[int], flat: Rep, axes: Sequence[int]) -> dict[int, Rep] | None:
    """Per-axis Reps ``R_a`` with ``flat == flat_rep(shape, {a: R_a for a in axes})``, or ``None``.

    Every axis not listed must be left alone by ``flat``. A sign is only defined up to moving a
    global ``-1`` between factors; the returned Reps put it on the last listed axis (each other
    axis has sign ``+1`` at index 0), and always reproduce ``flat`` exactly. Keys are the axes as
    listed (negative ones included).

    Raises:
        ValueError: ``flat`` does not have ``prod(shape)`` elements, or a bad or repeated axis.
    """
    shape = _as_shape(shape)
    n = math.prod(shape)
    if flat.size != n:
        raise ValueError(f"flat Rep of size {flat.size} does not match shape {shape} "
                         f"({n} elements)")
    norm = [_norm_axis(a, len(shape)) for a in axes]
    if len(set(norm)) != len(norm):
        raise ValueError(f"axes {list(axes)} name an axis of shape {shape} twice")
    found = _candidates(shape, flat.perm, flat.sign, norm, None)
    if found is None:
        return None
    perm, sign = _product(shape, found)
    if not (np.array_equal(perm, flat.perm) and np.array_equal(sign, flat.sign)):
        return None
    return {key: found[axis] for key, axis in zip(axes, norm)}


def _product(shape: tuple[int, ...], per_axis: Mapping[int, Rep]) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``(perm, sign)`` of the Kronecker product of per-axis Reps (identity elsewhere)."""
    perm = np.zeros(1, dtype=np.int64)
    sign = np.ones(1, dtype=np.int64)
    for axis, size in enumerate(shape):
        rep = per_axis.get(axis)
        axis_perm = np.arange(size, dtype=np.int64) if rep is None else rep.perm
        perm = (perm[:, None] * size + axis_perm[None, :]).reshape(-1)
        if rep is None or rep.n_negated == 0:
            sign = np.repeat(sign, size)
        else:
            sign = (sign[:, None] * rep.sign[None, :]).reshape(-1)
    return perm, sign


def _candidates(shape: tuple[int, ...], perm: np.ndarray, sign: np.ndarray, axes: Sequence[int],
                known: np.ndarray | None, values: np.ndarray | None = None,
                ) -> dict[int, Rep] | None:
    """Per-axis Reps read along lines through a reference element (not verified).

    The reference is element 0, or the first ``known`` one. Along each line, an index whose element
    is not ``known`` (a constant in ``values``) reads as fixed; its sign extends the axis's sign at
    the reference for a zero, and makes the element's sign ``+1`` for a non-zero constant.
    Returns ``None`` if a line is no Rep.
    """
    if math.prod(shape) == 0:
        return {a: Rep.trivial(shape[a]) for a in axes}
    ref = 0
    if known is not None:
        first = np.flatnonzero(known)
        if first.size == 0:
            return {a: Rep.trivial(shape[a]) for a in axes}
        ref = int(first[0])
    strides = [math.prod(shape[a + 1:]) for a in range(len(shape))]
    ref_index = np.unravel_index(ref, shape)
    ref_sign = int(sign[ref])
    found: dict[int, Rep] = {}
    for i, axis in enumerate(axes):
        last = i == len(axes) - 1
        k = np.arange(shape[axis], dtype=np.int64)
        line = ref + (k - int(ref_index[axis])) * strides[axis]
        axis_perm = (perm[line] // strides[axis]) % shape[axis]
        # Gauge: every axis but the last listed has sign +1 at the reference.
        axis_sign = sign[line] if last else sign[line] * ref_sign
        if known is not None and values is not None:
            on = known[line]
            extend, plus_one = (ref_sign, 1) if last else (1, ref_sign)
            free_sign = np.where(values[line] == 0, extend, plus_one)
            axis_perm = np.where(on, axis_perm, k)
            axis_sign = np.where(on, axis_sign, free_sign)
        try:
            found[axis] = Rep(axis_perm, axis_sign)
        except ValueError:
            return None
    return found


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
        index = _fmt(np.unravel_index(code - int(self.offsets[leaf]) - 1, shape))
        return f"input element {index}" if len(self.leaves) == 1 else f"element {index} of {where}"


def _output_rep(name: str, where: str, shape: tuple[int, ...], out_a: np.ndarray,
                out_b: np.ndarray, out_c: np.ndarray, book: _Codebook) -> Rep:
    """The flat Rep of one output from its values on the three encodings."""
    n = out_a.size
    constant = _same(out_a, out_c)
    maybe = (~constant & np.isfinite(out_a) & (out_a >= 1) & (out_a <= book.total)
             & (out_a == np.floor(out_a)))
    codes = np.zeros(n, dtype=np.int64)
    codes[maybe] = out_a[maybe].astype(np.int64)
    source = maybe & (out_c == book.relabel[codes])
    bad = np.flatnonzero(~(constant | source))
    if bad.size:
        p = int(bad[0])
        raise NotDataMovementError(
            f"{name} is not pure data movement: {where} at {_fmt(np.unravel_index(p, shape))} is "
            f"{float(out_a[p])!r} on index-encoded inputs, which is neither a copy of one input "
            f"element nor a constant (arithmetic or a reduction?); it needs a dedicated rule")
    expected = np.where(source, book.sign[codes] * book.perm[codes], out_a)
    bad = np.flatnonzero(~_same(out_b, expected))
    if bad.size:
        p = int(bad[0])
        raise NotDataMovementError(
            f"{name} is not pure data movement: on mirrored inputs {where} at "
            f"{_fmt(np.unravel_index(p, shape))} is not the mirror image of what it copies on the "
            f"original inputs (the op depends on the values)")

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
        out_index = _fmt(np.unravel_index(int(src[i]), shape))
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
        perm, sign = _place_constants(name, where, shape, perm, sign, source, out_a)
    return Rep(perm, sign)


def _place_constants(name: str, where: str, shape: tuple[int, ...], perm: np.ndarray,
                     sign: np.ndarray, source: np.ndarray,
                     values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Let constants follow the per-axis mirror action of the copied elements, where one exists.

    A zero may move or flip freely; a non-zero constant may only land on an equal constant with
    sign ``+1``. Constants stay fixed when the copied elements have no per-axis action.
    """
    found = _candidates(shape, perm, sign, range(len(shape)), source, values)
    if found is None:
        return perm, sign
    full_perm, full_sign = _product(shape, found)
    if not (np.array_equal(full_perm[source], perm[source])
            and np.array_equal(full_sign[source], sign[source])):
        return perm, sign
    const = np.flatnonzero(~source)
    image = full_perm[const]
    ok = (~source[image] & _same(values[image], values[const])
          & ((values[const] == 0) | (full_sign[const] == 1)))
    if ok.all():
        return full_perm, full_sign
    offending = const[~ok & (values[const] != 0)]
    if offending.size == 0:
        return perm, sign
    p = int(offending[0])
    q = int(full_perm[p])
    effect = ("would flip its sign (the mirror negates some of the elements alongside the "
              "constants the op writes, but not others)" if q == p else
              f"would move it onto {_fmt(np.unravel_index(q, shape))}, which holds "
              f"{float(values[q])!r}")
    raise NotEquivariantError(
        f"{name} is not equivariant: {where} at {_fmt(np.unravel_index(p, shape))} is the "
        f"constant {float(values[p])!r} written by the op, but the mirror's per-axis action on "
        f"the surrounding elements {effect}; only a zero constant is sign-agnostic (pad with "
        f"zeros, or write constants only where the mirror neither moves nor negates)")


# ----------------------------------------------------------------------------- pull back
def pull_back_rep(op: Op, input_shapes: Sequence[int] | Sequence[Sequence[int]], output_rep: Rep,
                  *, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> Rep:
    """The input flat Rep ``R_in`` with ``op(R_in x) == output_rep op(x)`` for a bijective op.

    Args:
        op: a single-input op that reorders elements (view, reshape, permute, transpose, flatten,
            unflatten, contiguous, ...), called as ``op(x, *args, **kwargs)``; or a method name.
        input_shapes: the input's shape, or a one-element sequence holding it.
        output_rep: the flat Rep wanted on the output.

    Raises:
        ValueError: the op drops, duplicates or invents elements (not a bijection), or the Rep
            size does not match; :class:`NotDataMovementError` (a ValueError) for arithmetic.
    """
    name = _op_name(op)
    fn = _callable(op)
    shape = _single_shape(input_shapes)
    n = math.prod(shape)
    _check_exact(name, n)
    relabel = np.zeros(n + 1, dtype=np.float64)
    relabel[1:] = n + 1 + np.random.default_rng(_SEED).permutation(n)
    codes = np.arange(1, n + 1, dtype=np.int64)
    results = []
    for values in (codes.astype(np.float64), relabel[codes]):
        with torch.no_grad():
            out = fn(torch.from_numpy(values.reshape(shape)), *args, **(kwargs or {}))
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"{name} returns a {type(out).__name__}, not a single tensor, so it "
                             f"is not a bijection of elements")
        results.append(_numpy(name, out))
    (out_a, out_shape), (out_c, _) = results
    constant = _same(out_a, out_c)
    maybe = ~constant & (out_a >= 1) & (out_a <= n) & (out_a == np.floor(out_a))
    got = np.zeros(out_a.size, dtype=np.int64)
    got[maybe] = out_a[maybe].astype(np.int64)
    if not (constant | (maybe & (out_c == relabel[got]))).all():
        raise NotDataMovementError(f"{name} is not pure data movement: its output holds values "
                                   f"that are not copies of input elements")
    if constant.any():
        p = int(np.flatnonzero(constant)[0])
        raise ValueError(f"{name} is not a bijection of elements: output element "
                         f"{_fmt(np.unravel_index(p, out_shape))} is a constant it writes")
    counts = np.bincount(got - 1, minlength=n)
    if (counts != 1).any():
        j = int(np.flatnonzero(counts != 1)[0])
        what = "drops" if counts[j] == 0 else f"copies {counts[j]} times"
        raise ValueError(f"{name} is not a bijection of elements: it {what} input element "
                         f"{_fmt(np.unravel_index(j, shape))} (input shape {shape}, output shape "
                         f"{out_shape})")
    if output_rep.size != n:
        raise ValueError(f"{name}: output Rep of size {output_rep.size} does not match the output "
                         f"shape {out_shape} ({n} elements)")
    gather = got - 1  # out.flat[p] = x.flat[gather[p]]
    inverse = np.empty(n, dtype=np.int64)
    inverse[gather] = np.arange(n, dtype=np.int64)
    return Rep(gather[output_rep.perm[inverse]], output_rep.sign[inverse])


# ----------------------------------------------------------------------------- helpers
def _as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise ValueError(f"shape {out} has a negative size")
    return out


def _single_shape(shapes: Sequence[int] | Sequence[Sequence[int]]) -> tuple[int, ...]:
    items = list(shapes)
    if all(isinstance(s, (int, np.integer)) for s in items):
        return _as_shape(items)  # type: ignore[arg-type]
    if len(items) != 1:
        raise ValueError(f"pull_back_rep takes a single-input op, got {len(items)} input shapes")
    return _as_shape(items[0])  # type: ignore[arg-type]


def _norm_axis(axis: int, ndim: int) -> int:
    if (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))
            or not -ndim <= axis < ndim):
        raise ValueError(f"axis {axis!r} is out of range for a tensor with {ndim} axes")
    return int(axis) % ndim


def _fmt(index: Sequence[Any]) -> str:
    return "(" + ", ".join(str(int(i)) for i in index) + ")"


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


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
