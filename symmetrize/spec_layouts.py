"""How a Spec's layouts become per-axis Reps: layouts per input and output, skeletons and sizes
per input, the Rep of one tensor axis (joints, coordinates, ``+`` terms), and the checks behind
each, every error naming the input or output and the fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from symmetrize.layout import COORDS, FREE, JOINTS, Layout, parse_layout
from symmetrize.rep import Rep
from symmetrize.skeleton import Skeleton

__all__ = ["axis_rep", "check_splittable", "normalise_negate", "parse_side", "sizes_of",
           "skeletons_of"]

_SIDES = {"input": "forward argument", "output": "output"}


def _label(skeleton: Skeleton) -> str:
    return f"skeleton {skeleton.name!r}" if skeleton.name is not None else "the skeleton"


def normalise_negate(negate: Any, what: str) -> tuple[int, ...]:
    """``negate`` as a tuple of distinct non-negative coordinate indices."""
    if isinstance(negate, (int, np.integer)) and not isinstance(negate, bool):
        negate = (negate,)
    if isinstance(negate, (str, bytes)) or not isinstance(negate, Iterable):
        raise TypeError(f"{what} must be a tuple of coordinate indices such as (0,), got {negate!r}")
    out: list[int] = []
    for c in negate:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise TypeError(f"{what} must hold integer coordinate indices, got {c!r} in {negate!r}")
        if int(c) < 0:
            raise ValueError(f"{what} = {tuple(negate)!r}: coordinate {int(c)} is negative; use "
                             "the index counted from 0 (the horizontal coordinate is usually 0)")
        if int(c) in out:
            raise ValueError(f"{what} = {tuple(negate)!r} lists coordinate {int(c)} twice; list "
                             "it once")
        out.append(int(c))
    return tuple(out)


def parse_side(value: Any, side: str) -> tuple[Layout | str | None, ...]:
    """Layouts of every input or output (``FREE`` for a free output)."""
    if value is None or isinstance(value, str):
        items: tuple[Any, ...] = (value,)
    elif isinstance(value, Sequence):
        items = tuple(value)
    else:
        raise TypeError(f"Spec {side} must be a layout string or a tuple of them (one per "
                        f"{_SIDES[side]}), got {type(value).__name__}")
    if not items:
        raise ValueError(f"Spec {side} is empty: give one layout per {_SIDES[side]}")
    layouts: list[Layout | str | None] = []
    for i, item in enumerate(items):
        if item is None:
            layouts.append(None)
            continue
        if not isinstance(item, str):
            raise TypeError(f"Spec {side} {i}: a layout must be a string such as 'n t j c' or "
                            f"None, got {type(item).__name__}")
        if item.strip() == FREE:
            if side == "input":
                raise ValueError(f"Spec input {i}: 'free' is for outputs only; an input's "
                                 "layout says how the mirror acts on it")
            layouts.append(FREE)
            continue
        try:
            layouts.append(parse_layout(item))
        except ValueError as err:
            raise ValueError(f"Spec {side} {i}: {err}") from None
    return tuple(layouts)


def skeletons_of(value: Any, n: int, what: str) -> tuple[Skeleton, ...]:
    if isinstance(value, (Skeleton, str)):
        return (Skeleton.coerce(value),) * n
    if isinstance(value, Sequence) and value:
        items = tuple(Skeleton.coerce(v) for v in value)
        if len(items) != n:
            raise ValueError(f"{what} lists {len(items)} skeletons but the Spec has {n} "
                             f"{'inputs' if what == 'skeleton' else 'outputs'}: give one each, "
                             "or a single skeleton for all")
        return items
    return (Skeleton.coerce(value),) * n


def sizes_of(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"sizes must be a dict of axis name -> size, got {type(value).__name__}")
    out = {}
    for name, size in value.items():
        if not isinstance(name, str) or name == JOINTS:
            raise ValueError(f"sizes: {name!r} is not a layout name whose size can be given "
                             "(the size of 'j' comes from the skeleton)")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"sizes[{name!r}] must be a positive integer, got {size!r}")
        out[name] = int(size)
    return out


def check_splittable(layout: Layout, where: str, sizes: Mapping[str, int]) -> None:
    """An axis holding ``j`` or ``c`` may have at most one name of unknown size (not ``j``,
    nor one given in ``sizes``)."""
    assert layout.terms is not None
    for k, (axis, terms) in enumerate(zip(layout.axes, layout.terms)):
        unknown = [name for name in axis if name != JOINTS and name not in sizes]
        if (JOINTS in axis or COORDS in axis) and len(unknown) > 1:
            shown = " + ".join(f"({' '.join(t)})" if len(t) > 1 else t[0] for t in terms)
            ungrouped = Layout(layout.axes[:k] + tuple((name,) for name in axis)
                               + layout.axes[k + 1:],
                               layout.ellipsis if layout.ellipsis is None or layout.ellipsis <= k
                               else layout.ellipsis + len(axis) - 1)
            raise ValueError(
                f"{where} (layout {layout.text!r}): the layout can't be split: group "
                f"'{shown}' flattens {len(unknown)} axes of unknown size "
                f"({', '.join(map(repr, unknown))}) and only the size of 'j' is known (from the "
                f"skeleton), so a group may hold at most one name besides 'j'; give the others "
                f"with Spec(sizes={{{unknown[0]!r}: ...}}), or use a non-grouped layout such as "
                f"{str(ungrouped)!r} (reshape the tensor to match)")


def axis_rep(side: str, where: str, terms: tuple[tuple[str, ...], ...], dim: int, size: int,
              skeleton: Skeleton, negate: tuple[int, ...], sizes: Mapping[str, int]) -> Rep:
    """The Rep of one tensor axis: the direct sum over its ``+`` terms, each the Kronecker
    product of its names (``j`` the joint swap, ``c`` the coordinate signs)."""
    skeleton_kw = "skeleton" if side == "input" else "output_skeleton"
    label = " + ".join(t[0] if len(t) == 1 else f"({' '.join(t)})" for t in terms)
    n_joints = len(skeleton)

    def known(name: str) -> int | None:
        return n_joints if name == JOINTS else sizes.get(name)

    fixed = sum(int(np.prod([known(n) for n in t])) for t in terms
                if all(known(n) is not None for n in t))
    open_terms = [t for t in terms if any(known(n) is None for n in t)]
    inferred = None
    if open_terms:
        (term,) = open_terms
        unknown = next(n for n in term if known(n) is None)
        product = int(np.prod([known(n) for n in term if n != unknown]))
        rest = size - fixed
        if rest <= 0 or rest % product:
            left = f" after the {fixed} entries of the other terms" if fixed else ""
            raise ValueError(
                f"{where}: axis {dim} ({label!r}) has size {size}, which{left} is not a multiple "
                f"of the {n_joints} joints of {_label(skeleton)}, so {unknown!r} can't be "
                f"inferred; expected a multiple of {product} ({product} * {unknown}): check the "
                f"{skeleton_kw}, the layout and Spec(sizes=...)")
        inferred = {unknown: rest // product}
    elif fixed != size:
        raise ValueError(
            f"{where}: axis {dim} ({label!r}) has size {size} but {_label(skeleton)} has "
            f"{n_joints} joints{' and the given sizes make ' + str(fixed) if sizes else ''}; "
            f"pass a tensor with {fixed} entries on that axis or the right {skeleton_kw}")
    parts = []
    for term in terms:
        rep: Rep | None = None
        for name in term:
            count = known(name) if known(name) is not None else inferred[name]  # type: ignore[index]
            if name == JOINTS:
                part = Rep.joints(skeleton)
            elif name == COORDS:
                part = _coords_rep(side, where, label, dim, count, negate)
            else:
                part = Rep.trivial(count)
            rep = part if rep is None else rep.kron(part)
        assert rep is not None
        parts.append(rep)
    return Rep.concat(parts)


def _coords_rep(side: str, where: str, label: str, dim: int, n_coords: int,
                negate: tuple[int, ...]) -> Rep:
    negate_kw = "negate" if side == "input" else "output_negate"
    for c in negate:
        if not c < n_coords:
            valid = f"0..{n_coords - 1}" if n_coords else "none (C = 0)"
            raise ValueError(
                f"{where}: {negate_kw}={negate!r} names coordinate {c} but axis {dim} "
                f"({label!r}) holds {n_coords} coordinates (C = {n_coords}); valid indices are "
                f"{valid}: fix {negate_kw} or the layout")
    return Rep.coords(n_coords, negate)
