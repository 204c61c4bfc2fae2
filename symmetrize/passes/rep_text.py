"""Compact text for the mirror's action on a tensor, per axis: ``17j x 2c: 6 pairs, x-``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symmetrize.action import Action
from symmetrize.rep import Rep

__all__ = ["compact_rep", "short_rep"]


def short_rep(rep: Rep | None) -> str:
    """``"68: 32 pairs, 12-"``: size, swapped pairs, negated entries of a flat Rep."""
    if rep is None:
        return "-"
    if rep.is_trivial:
        return "invariant"
    return f"{rep.size}: {rep.n_pairs} pairs, {rep.n_negated}-"


_COORD_NAMES = "xyz"


def compact_rep(action: Action | None, joints: Sequence[Rep] = ()) -> str:
    """A node's action per tensor axis, e.g. ``"17j x 2c: 6 pairs, x-"``.

    Only the axes the mirror acts on are shown: ``17j`` an axis whose Rep is the skeleton's
    joint swap (one of ``joints``), ``2c`` a short axis that only flips signs (coordinates;
    negated ones named ``x``, ``y``, ``z``), a bare size for any other (hidden channels, with
    their pairs and negated count). ``invariant`` when nothing moves, ``-`` for no tensor.
    Axes the mirror mixes are shown as one group (``(4x9): 12 pairs, 17-``).
    """
    if action is None:
        return "-"
    if action.is_trivial:
        return "invariant"
    axes = action.axes()
    if axes is None:
        parts = []
        for first, stop, rep in action.groups:
            signed = Rep._trusted(rep.perm, -rep.sign) if action.sign < 0 and \
                first == action.groups[-1][0] else rep
            sizes = "x".join(str(s) for s in action.shape[first:stop])
            parts.append(f"({sizes}): {short_rep(signed).split(': ', 1)[1]}")
        return "; ".join(parts)
    tokens, facts = [], []
    for axis, rep in _readable_signs([axes[a] for a in range(action.ndim)]):
        if any(rep.unsigned() == j and rep.n_negated == 0 for j in joints):
            tokens.append(f"{rep.size}j")
            facts.append(f"{rep.n_pairs} pairs")
        elif rep.n_pairs == 0 and rep.size <= len(_COORD_NAMES):
            tokens.append(f"{rep.size}c")
            facts.append(_negated_coords(rep.sign))
        elif (per_joint := _joint_major(rep, joints)) is not None:
            joint, inner = per_joint
            pairs = f"{joint.n_pairs} pairs"
            if inner.size <= len(_COORD_NAMES):  # flattened (joints, coordinates)
                tokens.append(f"({joint.size}j {inner.size}c)")
                facts.append(", ".join(f for f in (pairs, _negated_coords(inner.sign)) if f))
            else:  # the paper's hidden layout: D features per joint
                tokens.append(f"({joint.size}j {inner.size})")
                facts.append(f"{pairs}, {inner.n_negated} of {inner.size}-" if inner.n_negated
                             else pairs)
        else:
            tokens.append(str(rep.size))
            facts.append(", ".join(part for part in (
                f"{rep.n_pairs} pairs" if rep.n_pairs else "",
                f"{rep.n_negated}-" if rep.n_negated else "") if part))
    return f"{' x '.join(tokens)}: {', '.join(f for f in facts if f)}"


def _negated_coords(sign: Any) -> str:
    return "".join(f"{_COORD_NAMES[i]}-" for i in range(len(sign)) if sign[i] < 0)


def _joint_major(rep: Rep, joints: Sequence[Rep]) -> tuple[Rep, Rep] | None:
    """``(joints Rep, per-joint sign-only Rep)`` when ``rep`` is their Kronecker product (the
    joints outermost, every joint's features flipping alike), else ``None``."""
    for joint in joints:
        dims, rest = divmod(rep.size, joint.size)
        if rest or dims < 1 or joint.is_trivial:
            continue
        inner = Rep._trusted(np.arange(dims), np.asarray(rep.sign[:dims]))
        if joint.kron(inner) == rep:
            return joint, inner
    return None


def _readable_signs(reps: list[Rep]) -> list[tuple[int, Rep]]:
    """The non-trivial axis Reps, with each global ``-1`` that factoring left on an axis whose
    every entry flips moved onto the axis it negates most entries of (the product is the same),
    so ``(N, C, T, V, M)`` reads ``3c x 25j: x-, 10 pairs`` rather than with ``M`` negated."""
    reps = list(reps)
    for a, rep in enumerate(reps):
        if rep.n_negated != rep.size:
            continue
        others = [b for b, r in enumerate(reps) if b != a and not r.is_trivial]
        if others:
            b = min(others, key=lambda k: (reps[k].size - 2 * reps[k].n_negated, k))
            reps[a] = Rep._trusted(rep.perm, -rep.sign)
            reps[b] = Rep._trusted(reps[b].perm, -reps[b].sign)
    return [(a, r) for a, r in enumerate(reps) if not r.is_trivial]
