"""Which torch data-movement op a call is, and its effect on :class:`~symmetrize.action.Action`\\ s.

:func:`move` maps a call (a function or method target with its concrete arguments) to the
symbolic movement of :mod:`symmetrize.action_movement`: reshapes, permutes, indexing, slicing,
concatenation, splitting, broadcasting, tiling, padding and einops ``rearrange`` / ``repeat``.
:func:`move_back` runs a bijective one backwards (to pull a wanted output action back to the
layer that produced the input). Anything else raises :class:`UnknownMovement`, and the caller uses
the flat index trick instead.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from symmetrize import action_movement as mv
from symmetrize.action import Action
from symmetrize.einops_pattern import plan

__all__ = ["IDENTITIES", "RESHAPES", "UnknownMovement", "einops_kind", "einops_move", "move",
           "move_back"]


class UnknownMovement(Exception):
    """No symbolic rule for this call: use the flat index trick."""


#: ops that only change the shape (the row-major order of the elements is unchanged)
RESHAPES = frozenset({"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze",
                      "view_as", "reshape_as", torch.reshape, torch.flatten, torch.squeeze,
                      torch.unsqueeze, torch.unflatten})
#: ops that leave every element where it is (copies, dtype and device moves)
IDENTITIES = frozenset({"contiguous", "clone", "detach", "to", "float", "double", "half",
                        "bfloat16", "type", "type_as", "cpu", "cuda", "requires_grad_",
                        torch.clone, torch.Tensor.contiguous, torch.detach})
_PERMUTES = frozenset({"permute", torch.permute, "transpose", torch.transpose, "swapaxes",
                       torch.swapaxes, "swapdims", torch.swapdims, "movedim", torch.movedim,
                       "moveaxis", torch.moveaxis, "t", torch.t})
_EXPANDS = frozenset({"expand", "expand_as", "broadcast_to", torch.broadcast_to})
_CATS = frozenset({torch.cat, torch.concat, torch.concatenate})
_SPLITS = frozenset({"split", torch.split, "chunk", torch.chunk, "unbind", torch.unbind,
                     "tensor_split", torch.tensor_split, "split_with_sizes"})


def _hashable(target: Any) -> bool:
    try:
        hash(target)
    except TypeError:
        return False
    return True


def einops_kind(target: Any) -> str | None:
    """``"rearrange"`` / ``"repeat"`` / ``"reduce"`` for einops' functions, else ``None``."""
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__name__", "")
    if module.startswith("einops") and name in ("rearrange", "repeat", "reduce"):
        return name
    return None


def move(target: Any, args: Sequence[Any], kwargs: dict[str, Any],
         actions: Sequence[Any], out_shapes: Sequence[tuple[int, ...]]) -> Action | list[Action]:
    """The output action(s) of ``target(*args, **kwargs)`` for input actions ``actions`` (one
    per positional argument: an Action, ``None``, or a list of them for a tensor list).

    Raises:
        UnknownMovement: not a movement op this module knows (or a case it does not cover).
        symmetrize.flat_movement.NotEquivariantError: the op drops a mirror twin.
    """
    if not _hashable(target):
        raise UnknownMovement(repr(target))
    first = actions[0] if actions else None
    out = out_shapes[0] if out_shapes else None
    if target in IDENTITIES and isinstance(first, Action):
        return first
    if target in RESHAPES and isinstance(first, Action):
        return mv.reshape(first, out)
    if target in _EXPANDS and isinstance(first, Action):
        return mv.expand(first, out)
    if target in _PERMUTES and isinstance(first, Action):
        return mv.permute(first, _permutation(target, first.ndim, args[1:], kwargs))
    if target in ("repeat", "tile", torch.tile) and isinstance(first, Action):
        counts = _ints(args[1:], kwargs.get("dims") or kwargs.get("repeats"))
        if target != "repeat":
            counts = [1] * (first.ndim - len(counts)) + counts
        result = mv.repeat(first, counts)
        if result is None:
            raise UnknownMovement("repeat of an entangled axis")
        return result
    if target is operator.getitem and isinstance(first, Action):
        return _getitem(first, args[1], out)
    if target in ("narrow", torch.narrow) and isinstance(first, Action):
        dim, start, length = _bound(args[1:], kwargs, ("dim", "start", "length"))
        dim %= first.ndim
        start = start + first.shape[dim] if start < 0 else start
        return mv.index(first, dim, np.arange(start, start + length), "narrow")
    if target in ("select", torch.select) and isinstance(first, Action):
        dim, position = _bound(args[1:], kwargs, ("dim", "index"))
        return mv.select(first, dim, position, "select")
    if target in ("index_select", torch.index_select) and isinstance(first, Action):
        dim, positions = _bound(args[1:], kwargs, ("dim", "index"))
        return mv.index(first, dim, _positions(positions), "index_select")
    if target in _CATS or target is torch.stack:
        return _concat(target, args, kwargs, actions, out)
    if target in _SPLITS and isinstance(first, Action):
        return _split(target, first, args, kwargs, out_shapes)
    if target is F.pad and isinstance(first, Action):
        pads, mode, value = _bound(args[1:], kwargs, ("pad", "mode", "value"),
                                   {"mode": "constant", "value": None})
        touched = {first.ndim - 1 - k for k in range(len(pads) // 2)
                   if pads[2 * k] or pads[2 * k + 1]}
        if mode != "constant":
            if touched & set(first.acting_axes()):
                raise UnknownMovement(f"{mode} padding along an acting axis")
            return Action(_pad_shape(first.shape, pads), first.groups, first.sign)
        return mv.pad(first, pads, 0.0 if value is None else float(value))
    if target in ("flip", torch.flip, "roll", torch.roll) and isinstance(first, Action):
        if out != first.shape or not _untouched(first, target, args, kwargs):
            raise UnknownMovement("flip or roll along an acting axis")
        return first
    kind = einops_kind(target)
    if kind in ("rearrange", "repeat") and isinstance(first, Action):
        return _einops(first, args, kwargs, kind)
    raise UnknownMovement(getattr(target, "__name__", repr(target)))


def move_back(target: Any, args: Sequence[Any], kwargs: dict[str, Any],
              in_shape: tuple[int, ...], wanted: Action) -> Action | None:
    """The input action that ``target`` maps to ``wanted``, for a bijective one-tensor op
    (reshapes, permutes, einops ``rearrange``, copies); ``None`` for any other op."""
    if not _hashable(target):
        return None
    if target in IDENTITIES:
        return wanted
    if target in RESHAPES:
        return mv.reshape(wanted, in_shape)
    if target in _PERMUTES:
        dims = _permutation(target, len(in_shape), args[1:], kwargs)
        inverse = [0] * len(dims)
        for new, old in enumerate(dims):
            inverse[old] = new
        return mv.permute(wanted, inverse)
    if einops_kind(target) == "rearrange":
        steps = plan(args[1], in_shape, {k: v for k, v in kwargs.items()}, "rearrange")
        right = tuple(steps.elementary[i] for i in steps.order)
        back = mv.reshape(wanted, right)
        inverse = [0] * len(steps.order)
        for new, old in enumerate(steps.order):
            inverse[old] = new
        return mv.reshape(mv.permute(back, inverse), in_shape)
    return None


# ----------------------------------------------------------------------------- helpers
def _ints(values: Sequence[Any], fallback: Any = None) -> list[int]:
    if len(values) == 1 and isinstance(values[0], (tuple, list, torch.Size)):
        values = values[0]
    if not values and fallback is not None:
        values = fallback
    return [int(v) for v in values]


def _bound(args: Sequence[Any], kwargs: dict[str, Any], names: Sequence[str],
           defaults: dict[str, Any] | None = None) -> list[Any]:
    values = dict(defaults or {})
    values.update(zip(names, args))
    values.update({k: v for k, v in kwargs.items() if k in names})
    missing = [n for n in names if n not in values]
    if missing:
        raise UnknownMovement(f"missing arguments {missing}")
    return [values[n] for n in names]


def _permutation(target: Any, ndim: int, args: Sequence[Any], kwargs: dict[str, Any]) -> list[int]:
    if target in ("permute", torch.permute):
        return [d % ndim for d in _ints(args, kwargs.get("dims"))]
    if target in ("t", torch.t):
        return [1, 0] if ndim == 2 else list(range(ndim))
    if target in ("movedim", torch.movedim, "moveaxis", torch.moveaxis):
        source, destination = _bound(args, kwargs, ("source", "destination"))
        source = [source] if isinstance(source, int) else list(source)
        destination = [destination] if isinstance(destination, int) else list(destination)
        source = [s % ndim for s in source]
        destination = [d % ndim for d in destination]
        rest = [a for a in range(ndim) if a not in source]
        order: list[int | None] = [None] * ndim
        for s, d in zip(source, destination):
            order[d] = s
        it = iter(rest)
        return [o if o is not None else next(it) for o in order]
    a, b = _bound(args, kwargs, ("dim0", "dim1"))
    dims = list(range(ndim))
    dims[a % ndim], dims[b % ndim] = dims[b % ndim], dims[a % ndim]
    return dims


def _positions(index: Any) -> np.ndarray:
    if isinstance(index, torch.Tensor):
        if index.dtype == torch.bool:
            return index.reshape(-1).nonzero().reshape(-1).cpu().numpy()
        if index.dim() > 1 or index.is_floating_point() or index.is_meta:
            raise UnknownMovement("a multi-dimensional or data-dependent index")
        return index.reshape(-1).cpu().numpy().astype(np.int64)
    if isinstance(index, (list, tuple)) and all(isinstance(i, (int, np.integer)) and
                                                not isinstance(i, bool) for i in index):
        return np.asarray(index, dtype=np.int64)
    if isinstance(index, (list, tuple)) and all(isinstance(i, bool) for i in index):
        return np.flatnonzero(np.asarray(index))
    raise UnknownMovement(f"index {type(index).__name__}")


def _getitem(action: Action, index: Any, out: tuple[int, ...]) -> Action:
    items = list(index) if isinstance(index, tuple) else [index]
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if sum(i is Ellipsis for i in items) > 1:
        raise UnknownMovement("two Ellipsis")
    advanced = [i for i in items if isinstance(i, (list, torch.Tensor))]
    if len(advanced) > 1:
        raise UnknownMovement("several advanced indices")
    axis = 0
    result = action
    for item in items:
        if item is Ellipsis:
            axis += action.ndim - consumed
        elif item is None:
            result = mv.unsqueeze(result, axis)
            axis += 1
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            result = mv.select(result, axis, int(item), "indexing")
        elif isinstance(item, slice):
            size = result.shape[axis]
            positions = np.arange(*item.indices(size))
            if item != slice(None):
                result = mv.index(result, axis, positions, "slicing")
            axis += 1
        else:
            result = mv.index(result, axis, _positions(item), "indexing")
            axis += 1
    if result.shape != tuple(out):
        raise UnknownMovement(f"indexing gave {result.shape}, expected {out}")
    return result


def _concat(target: Any, args: Sequence[Any], kwargs: dict[str, Any], actions: Sequence[Any],
            out: tuple[int, ...]) -> Action:
    tensors, dim = _bound(args, kwargs, ("tensors", "dim"), {"dim": 0})
    parts = actions[0] if actions else None
    if not isinstance(parts, (list, tuple)):
        raise UnknownMovement("cat of a non-list")
    filled = []
    for tensor, act in zip(tensors, parts):
        if act is None:
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                raise UnknownMovement("a floating-point operand without an action")
            act = Action.trivial(tuple(tensor.shape))
        filled.append(act)
    result = mv.stack(filled, dim) if target is torch.stack else mv.concat(filled, dim)
    if result is None:
        raise UnknownMovement("concatenation of differently acting tensors")
    if result.shape != tuple(out):
        raise UnknownMovement(f"cat gave {result.shape}, expected {out}")
    return result


def _split(target: Any, action: Action, args: Sequence[Any], kwargs: dict[str, Any],
           out_shapes: Sequence[tuple[int, ...]]) -> list[Action]:
    if target in ("unbind", torch.unbind):
        (dim,) = _bound(args[1:], kwargs, ("dim",), {"dim": 0})
        return [mv.select(action, dim, k, "unbind") for k in range(action.shape[dim % action.ndim])]
    names = ("split_size_or_sections", "dim") if target in ("split", torch.split) else (
        ("chunks", "dim") if target in ("chunk", torch.chunk) else
        ("indices_or_sections", "dim") if target in ("tensor_split", torch.tensor_split) else
        ("split_sizes", "dim"))
    _, dim = _bound(args[1:], kwargs, names, {"dim": 0})
    dim %= action.ndim
    outs, start = [], 0
    for shape in out_shapes:
        length = shape[dim]
        outs.append(mv.index(action, dim, np.arange(start, start + length), "split"))
        start += length
    return outs


def _pad_shape(shape: tuple[int, ...], pads: Sequence[int]) -> tuple[int, ...]:
    out = list(shape)
    for k in range(len(pads) // 2):
        out[len(shape) - 1 - k] += pads[2 * k] + pads[2 * k + 1]
    return tuple(out)


def _untouched(action: Action, target: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    if target in ("flip", torch.flip):
        (dims,) = _bound(args[1:], kwargs, ("dims",))
    else:
        _, dims = _bound(args[1:], kwargs, ("shifts", "dims"), {"dims": None})
        if dims is None:
            return action.is_trivial
    dims = [dims] if isinstance(dims, int) else list(dims)
    acting = set(action.acting_axes())
    return not any(d % action.ndim in acting for d in dims)


def _einops(action: Action, args: Sequence[Any], kwargs: dict[str, Any], kind: str) -> Action:
    pattern = args[1] if len(args) > 1 else kwargs.get("pattern")
    lengths = {k: v for k, v in kwargs.items() if k != "pattern"}
    return einops_move(action, pattern, lengths, kind)


def einops_move(action: Action, pattern: str, lengths: dict[str, int], kind: str) -> Action:
    """The action on ``einops.<kind>(x, pattern, **lengths)`` for ``rearrange`` / ``repeat``."""
    steps = plan(pattern, action.shape, lengths, kind)
    result = mv.reshape(action, steps.elementary)
    result = mv.permute(result, steps.order)
    for position, size in steps.inserted:
        result = mv.unsqueeze(result, position)
        shape = list(result.shape)
        shape[position] = size
        result = mv.expand(result, shape)
    if math.prod(result.shape) != math.prod(steps.output):
        raise UnknownMovement("einops plan does not match")
    return mv.reshape(result, steps.output)
