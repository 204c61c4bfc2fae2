"""einops patterns as plain reshape / permute / broadcast steps, so that the mirror's action can
follow ``rearrange``, ``repeat`` and ``reduce`` calls without running them.

Only the pattern language is read here (names, ``(groups)``, ``...``, ``1`` / ``()`` unit axes,
numbers for new axes of ``repeat``); einops itself is never imported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["EinopsPlan", "plan"]

_TOKEN = re.compile(r"\.\.\.|[()]|[A-Za-z_][A-Za-z0-9_]*|\d+|\S")
_ELLIPSIS = "…"


@dataclass(frozen=True)
class EinopsPlan:
    """``x.reshape(elementary) -> .permute(order) -> insert new axes -> .reshape(output)``.

    Attributes:
        elementary: the input split into its elementary axes (left side order).
        reduced: elementary axes (indices into ``elementary``) that ``reduce`` removes.
        order: the kept elementary axes in right-side order (indices into ``elementary``).
        inserted: ``(position, size)`` of the new axes ``repeat`` adds, positions in the
            right-side elementary order.
        output: the result's shape.
    """

    elementary: tuple[int, ...]
    reduced: tuple[int, ...]
    order: tuple[int, ...]
    inserted: tuple[tuple[int, int], ...]
    output: tuple[int, ...]


def _parse(side: str, pattern: str) -> list[list[str]]:
    axes: list[list[str]] = []
    group: list[str] | None = None
    for token in _TOKEN.findall(side):
        if token == "(":
            if group is not None:
                raise ValueError(f"einops pattern {pattern!r}: nested parentheses")
            group = []
        elif token == ")":
            if group is None:
                raise ValueError(f"einops pattern {pattern!r}: unbalanced ')'")
            axes.append(group)
            group = None
        else:
            name = _ELLIPSIS if token == "..." else token
            if not (name == _ELLIPSIS or name.isdigit() or re.fullmatch(r"[A-Za-z_]\w*", name)):
                raise ValueError(f"einops pattern {pattern!r}: unexpected {token!r}")
            if name == "1":
                name = ""  # a unit axis: an empty group
            if group is None:
                axes.append([name] if name else [])
            elif name:
                group.append(name)
    if group is not None:
        raise ValueError(f"einops pattern {pattern!r}: unbalanced '('")
    return axes


def plan(pattern: str, shape: Sequence[int], lengths: Mapping[str, int] | None = None,
         kind: str = "rearrange") -> EinopsPlan:
    """The steps of ``einops.<kind>(x, pattern, **lengths)`` on a tensor of ``shape``.

    Raises:
        ValueError: a malformed pattern, or sizes that do not fit ``shape``.
    """
    if "->" not in pattern:
        raise ValueError(f"einops pattern {pattern!r} has no '->'")
    left_text, right_text = pattern.split("->", 1)
    left, right = _parse(left_text, pattern), _parse(right_text, pattern)
    sizes: dict[str, int] = {k: int(v) for k, v in (lengths or {}).items()}
    shape = tuple(int(s) for s in shape)
    n_ellipsis = sum(axis == [_ELLIPSIS] for axis in left)
    extra = len(shape) - (len(left) - n_ellipsis)
    if n_ellipsis > 1 or extra < 0 or (not n_ellipsis and extra):
        raise ValueError(f"einops pattern {pattern!r} does not fit a tensor of shape {shape}")
    elementary_names: list[str] = []
    elementary: list[int] = []
    dim = 0
    for axis in left:
        if axis == [_ELLIPSIS]:
            for k in range(extra):
                name = f"{_ELLIPSIS}{k}"
                sizes[name] = shape[dim]
                elementary_names.append(name)
                elementary.append(shape[dim])
                dim += 1
            continue
        unknown = [n for n in axis if n not in sizes and not n.isdigit()]
        known = math.prod(int(n) if n.isdigit() else sizes[n] for n in axis if n not in unknown)
        if len(unknown) > 1 or (not unknown and known != shape[dim]) or \
                (unknown and (known == 0 or shape[dim] % known)):
            raise ValueError(f"einops pattern {pattern!r}: axis {dim} of size {shape[dim]} "
                             f"cannot be split as ({' '.join(axis)})")
        if unknown:
            sizes[unknown[0]] = shape[dim] // known
        for n in axis:
            elementary_names.append(n)
            elementary.append(int(n) if n.isdigit() else sizes[n])
        dim += 1
    right_names: list[str] = []
    output: list[int] = []
    for axis in right:
        names = [f"{_ELLIPSIS}{k}" for k in range(extra)] if axis == [_ELLIPSIS] else axis
        if axis == [_ELLIPSIS]:
            for name in names:
                right_names.append(name)
                output.append(sizes[name])
            continue
        size = 1
        for name in names:
            if name.isdigit():
                sizes.setdefault(name, int(name))
            elif name not in sizes:
                raise ValueError(f"einops pattern {pattern!r}: the size of {name!r} is unknown")
            right_names.append(name)
            size *= sizes[name]
        output.append(size)
    kept = [i for i, n in enumerate(elementary_names) if n in right_names]
    reduced = tuple(i for i, n in enumerate(elementary_names) if n not in right_names)
    if reduced and kind != "reduce":
        raise ValueError(f"einops {kind} pattern {pattern!r} drops axes "
                         f"{[elementary_names[i] for i in reduced]}")
    new = [(p, sizes[n]) for p, n in enumerate(right_names) if n not in elementary_names]
    if new and kind != "repeat":
        raise ValueError(f"einops {kind} pattern {pattern!r} adds axes {[n for _, n in new]}")
    order = tuple(sorted(kept, key=lambda i: right_names.index(elementary_names[i])))
    return EinopsPlan(tuple(elementary), reduced, order, tuple(new), tuple(output))
