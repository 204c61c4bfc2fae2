"""symmetrize.eigenbasis: the change of basis, projection onto blocks and back, exactly."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symmetrize import Rep
from symmetrize.eigenbasis import (
    blocks_to_dense,
    eigenbasis,
    project_blocks,
    project_vector,
    vector_to_dense,
    vector_to_plus,
)
from symmetrize.weight_sharing import weight_sharing
from tests.helpers import MIXED, max_err
from tests.strategies import reps


@given(reps(), st.integers(0, 2))
def test_round_trip_and_mirror_is_diagonal(rep: Rep, dim: int) -> None:
    basis = eigenbasis(rep)
    shape = [2, 3, 4]
    shape[dim] = rep.size
    x = torch.randn(shape, dtype=torch.float64)
    plus, minus = basis.to_eigen(x, dim)
    assert plus.shape[dim] == basis.n_plus and minus.shape[dim] == basis.n_minus
    assert basis.n_plus + basis.n_minus == rep.size
    assert max_err(basis.from_eigen(plus, minus, dim), x) < 1e-14
    # the mirror is diag(+1, -1) in the eigenbasis
    plus_m, minus_m = basis.to_eigen(rep.apply(x, dim), dim)
    assert max_err(plus_m, plus) < 1e-14 and max_err(minus_m, -minus) < 1e-14
    # Q is orthogonal: the norm is kept
    assert abs(float(plus.square().sum() + minus.square().sum() - x.square().sum())) < 1e-10


def test_convention_and_order() -> None:
    basis = eigenbasis(MIXED)
    x = torch.arange(1.0, 10.0, dtype=torch.float64)
    plus, minus = basis.to_eigen(x)
    r = 1 / math.sqrt(2)
    # + half: pair (0,1) s=+1, fixed 2, pair (4,5) s=-1, fixed 6, pair (7,8) s=-1 (orbit order)
    assert torch.allclose(plus, torch.tensor([(1 + 2) * r, 3, (5 - 6) * r, 7, (8 - 9) * r],
                                             dtype=torch.float64))
    # - half: pair (0,1), fixed negated 3, pair (4,5), pair (7,8)
    assert torch.allclose(minus, torch.tensor([(1 - 2) * r, 4, (5 + 6) * r, (8 + 9) * r],
                                              dtype=torch.float64))
    # direct sums split into the parts' halves
    both = eigenbasis(MIXED + Rep.regular(4))
    p2, m2 = both.to_eigen(torch.cat([x, torch.arange(4.0, dtype=torch.float64)]))
    assert torch.equal(p2[:5], plus) and torch.equal(m2[:4], minus)
    assert eigenbasis(Rep.trivial(3)).is_identity


@settings(max_examples=40, deadline=None)
@given(reps(), reps(), st.integers(1, 3))
def test_projection_is_the_old_projection_and_counts_free_parameters(rep_in: Rep, rep_out: Rep,
                                                                      taps: int) -> None:
    weight = torch.randn(rep_out.size, rep_in.size, taps, dtype=torch.float64)
    w_plus, w_minus = project_blocks(weight, rep_in, rep_out)
    sharing = weight_sharing(rep_in, rep_out)
    assert (w_plus.numel() + w_minus.numel()) // taps == sharing.n_free
    dense = blocks_to_dense(w_plus, w_minus, rep_in, rep_out)
    assert max_err(dense, sharing.project_dense(weight)) < 1e-13
    # an equivariant weight is its own projection; its blocks round-trip
    again = project_blocks(dense, rep_in, rep_out)
    assert max_err(again[0], w_plus) < 1e-13 and max_err(again[1], w_minus) < 1e-13


@given(reps())
def test_vectors_by_orbit_values(rep: Rep) -> None:
    v = torch.randn(rep.size, dtype=torch.float64)
    theta = project_vector(v, rep)
    assert theta.numel() == eigenbasis(rep).n_plus == weight_sharing(Rep.trivial(1), rep).n_free
    dense = vector_to_dense(theta, rep)
    assert max_err(dense, (v + rep.apply(v)) / 2) < 1e-14
    assert max_err(rep.apply(dense), dense) == 0.0  # exactly symmetric
    assert torch.equal(project_vector(dense, rep), theta)  # exact: no sqrt(2)
    plus = vector_to_plus(theta, rep)
    assert max_err(eigenbasis(rep).from_eigen(plus, None, 0), dense) < 1e-14


def test_errors() -> None:
    basis = eigenbasis(MIXED)
    with pytest.raises(ValueError, match="axis 1 of a tensor of shape \\(2, 8\\) has 8 entries"):
        basis.to_eigen(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="the plus half has 4 entries on axis 0, this basis has 5"):
        basis.from_eigen(torch.zeros(4), torch.zeros(4), 0)
    with pytest.raises(ValueError, match="does not match \\(out, in\\) = \\(9, 9\\)"):
        project_blocks(torch.zeros(9, 8), MIXED, MIXED)
    with pytest.raises(TypeError, match="expects a Rep"):
        type(basis)([0, 1])  # type: ignore[arg-type]
