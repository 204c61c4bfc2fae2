"""Hypothesis strategies shared by the tests: random mirror Reps, the dtypes layers are checked
in."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from symmetrize.rep import Rep

DTYPES = st.sampled_from([torch.float64, torch.float32])


@st.composite
def reps(draw: st.DrawFn, min_size: int = 1, max_size: int = 10) -> Rep:
    """A random involutive signed permutation: shuffled indices paired up, a sign per orbit."""
    n = draw(st.integers(min_size, max_size))
    order = draw(st.permutations(range(n)))
    n_pairs = draw(st.integers(0, n // 2))
    perm = list(range(n))
    for k in range(n_pairs):
        a, b = order[2 * k], order[2 * k + 1]
        perm[a], perm[b] = b, a
    sign = [1] * n
    for i in range(n):
        if i <= perm[i] and draw(st.booleans()):
            sign[i] = sign[perm[i]] = -1
    return Rep(perm, sign)
