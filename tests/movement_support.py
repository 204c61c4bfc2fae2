"""Shared by the flat-Rep movement tests: factor a flat Rep onto axes, mirror a tensor, check
op(T x) == R op(x), and hypothesis strategies."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from hypothesis import settings
from hypothesis import strategies as st

from symmetrize.action import Action
from symmetrize.flat_movement import (
    flat_rep,
    forward_rep,
)
from symmetrize.rep import Rep
from tests.strategies import reps

seeded = settings(derandomize=True, max_examples=20, deadline=None)

H36M = Rep.joints("h36m")
X_NEGATED = Rep.coords(2, (0,))


# ----------------------------------------------------------------------------- helpers
def factor_axes(shape: Sequence[int], flat: Rep, axes: Sequence[int]) -> dict[int, Rep] | None:
    """Per-axis Reps of a flat Rep over ``axes`` (every other axis untouched, the global sign on
    the last listed axis), or ``None``: read through :class:`Action`."""
    if flat.size != math.prod(shape):
        raise ValueError(f"flat Rep of size {flat.size} does not match shape {tuple(shape)}")
    action = Action.from_flat(shape, flat)
    if not axes:
        return {} if action.is_trivial else None
    found = action.axes(sign_on=axes[-1])
    if found is None:
        return None
    norm = [a % len(shape) for a in axes]
    if any(not found[a].is_trivial for a in range(len(shape)) if a not in norm):
        return None
    return {key: found[a] for key, a in zip(axes, norm)}



def mirror(x: torch.Tensor, rep: Rep) -> torch.Tensor:
    """T x with a flat Rep: reshape to one axis, apply, reshape back."""
    return rep.apply(x.reshape(-1), 0).reshape(x.shape)


def assert_property(op: Callable[..., Any], data: Sequence[torch.Tensor], in_reps: Sequence[Rep],
                    out_reps: Rep | list[Rep]) -> None:
    """op(T x) == R_out op(x), exactly, for every output."""
    out = op(*data)
    out_mirrored = op(*[mirror(x, r) for x, r in zip(data, in_reps)])
    if isinstance(out_reps, Rep):
        out, out_mirrored, out_reps = [out], [out_mirrored], [out_reps]
    assert len(out) == len(out_mirrored) == len(out_reps)
    for o, om, r in zip(out, out_mirrored, out_reps):
        torch.testing.assert_close(om, mirror(o, r), rtol=0, atol=0)


def check(op: Callable[..., Any], data: Sequence[torch.Tensor],
          in_reps: Sequence[Rep]) -> Rep | list[Rep]:
    """forward_rep on ``op`` plus the semantic check on random data."""
    out_reps = forward_rep(op, data, in_reps)
    assert_property(op, data, in_reps, out_reps)
    return out_reps


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


@st.composite
def sized(draw: st.DrawFn, n: int) -> Rep:
    return draw(reps(min_size=n, max_size=n))


@st.composite
def product_rep(draw: st.DrawFn, shape: Sequence[int], axes: Sequence[int]) -> Rep:
    """A flat Rep with a random Rep on each of ``axes`` and identity elsewhere."""
    return flat_rep(shape, {a: draw(sized(shape[a])) for a in axes})


@st.composite
def any_flat(draw: st.DrawFn, shape: Sequence[int]) -> Rep:
    """A product of per-axis Reps, or an arbitrary signed permutation of all elements."""
    if draw(st.booleans()):
        return draw(sized(math.prod(shape)))
    return draw(product_rep(shape, range(len(shape))))


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
