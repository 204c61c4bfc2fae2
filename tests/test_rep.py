"""Rep algebra and the weight-sharing builder."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from symmetrize import Rep, Skeleton, weight_sharing
from tests.strategies import reps


def equivariant_space_dim(rep_in: Rep, rep_out: Rep) -> int:
    """Dimension of {W : M_out W = W M_in}, by a numerical null-space computation."""
    m_in, m_out = rep_in.matrix().numpy(), rep_out.matrix().numpy()
    n = rep_in.size * rep_out.size
    if n == 0:
        return 0
    # vec(M_out W M_in^-1) = (M_in^-T kron M_out) vec(W), column-major vec.
    op = np.kron(np.linalg.inv(m_in).T, m_out) - np.eye(n)
    return n - np.linalg.matrix_rank(op, tol=1e-9)


# ---------------------------------------------------------------- validation
def test_rejects_non_involution_naming_index() -> None:
    with pytest.raises(ValueError, match=r"not an involution at index 0: perm\[0\] = 1"):
        Rep([1, 2, 0])


def test_rejects_sign_mismatch_across_pair() -> None:
    with pytest.raises(ValueError, match=r"index 2: sign\[2\] = -1 but sign\[3\] = 1"):
        Rep([0, 1, 3, 2], [1, 1, -1, 1])


def test_rejects_bad_sign_value_and_range() -> None:
    with pytest.raises(ValueError, match=r"sign\[1\] = 0"):
        Rep([0, 1], [1, 0])
    with pytest.raises(ValueError, match=r"perm\[1\] = 5 is out of range"):
        Rep([0, 5])
    with pytest.raises(ValueError, match="shape"):
        Rep([0, 1], [1])
    with pytest.raises(ValueError, match="non-negative integer"):
        Rep.regular(-1)


# ---------------------------------------------------------------- constructors
def test_pose_rep_h36m_2d() -> None:
    rep = Rep.pose("h36m", 2, negate=(0,))
    assert str(rep) == "Rep(34: 12 swapped pairs, 10 fixed; 17 negated)"
    assert eval(repr(rep), {"Rep": Rep}) == rep  # noqa: S307 - the repr is Python that parses back
    skel = Skeleton.preset("h36m")
    x = torch.randn(3, 17, 2, dtype=torch.float64)
    mirrored = x[:, torch.tensor(skel.mirror)] * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert torch.equal(rep.apply(x.reshape(3, 34)), mirrored.reshape(3, 34))


def test_regular_trivial_negated() -> None:
    assert str(Rep.regular(5)) == "Rep(5: 2 swapped pairs, 1 fixed; 0 negated)"
    for rep in (Rep.regular(5), Rep.trivial(3), Rep.negated(2), Rep([1, 0, 2]),
                Rep([1, 0, 2], [-1, -1, 1]), Rep.pose("h36m", 2)):
        assert eval(repr(rep), {"Rep": Rep}) == rep  # noqa: S307
    assert Rep.regular(4).perm.tolist() == [1, 0, 3, 2]
    assert Rep.trivial(3).is_trivial and not Rep.regular(2).is_trivial
    assert not Rep.negated(2).is_trivial and Rep.negated(2).n_negated == 2
    assert Rep.trivial(0).size == 0


def test_skeleton_hidden_layout() -> None:
    rep = Rep.skeleton_hidden("h36m", dims_per_joint=60, negated_per_joint=20)
    assert rep.size == 1020 and rep.n_negated == 17 * 20
    assert rep.n_pairs == 6 * 60
    # joint-major: joint 1's dims sit at 60..119 and swap with joint 4's
    assert rep.perm[60] == 4 * 60 and rep.sign[60] == -1 and rep.sign[60 + 20] == 1
    with pytest.raises(ValueError, match="negated_per_joint"):
        Rep.skeleton_hidden("h36m", 4, 5)


def test_coords_rejects_bad_index() -> None:
    with pytest.raises(ValueError, match="negated coordinate 3"):
        Rep.coords(3, negate=(3,))


# ---------------------------------------------------------------- algebra
@given(reps(), reps())
def test_direct_sum_is_concatenation(a: Rep, b: Rep) -> None:
    x = torch.randn(2, a.size + b.size, dtype=torch.float64)
    expected = torch.cat([a.apply(x[:, : a.size]), b.apply(x[:, a.size:])], dim=1)
    assert torch.equal((a + b).apply(x), expected)
    assert Rep.concat([a, b]) == a + b


@given(reps(max_size=6), reps(max_size=6))
def test_kron_is_flattening(a: Rep, b: Rep) -> None:
    x = torch.randn(4, a.size, b.size, dtype=torch.float64)
    expected = b.apply(a.apply(x, dim=1), dim=2).reshape(4, -1)
    assert torch.equal(a.kron(b).apply(x.reshape(4, -1)), expected)


@given(reps())
def test_apply_is_involution_and_matches_matrix(rep: Rep) -> None:
    x = torch.randn(rep.size, 3, dtype=torch.float64)
    assert torch.equal(rep.apply(rep.apply(x, 0), 0), x)
    assert torch.allclose(rep.matrix() @ x, rep.apply(x, 0))
    m = rep.matrix()
    assert torch.equal(m @ m, torch.eye(rep.size, dtype=torch.float64))


@given(reps())
def test_unsigned_equality_hash_pickle(rep: Rep) -> None:
    u = rep.unsigned()
    assert u.n_negated == 0 and np.array_equal(u.perm, rep.perm)
    same = Rep(rep.perm.tolist(), rep.sign.tolist())
    assert same == rep and hash(same) == hash(rep)
    assert pickle.loads(pickle.dumps(rep)) == rep
    assert (rep == u) == (rep.n_negated == 0)


def test_repeat_and_read_only_arrays() -> None:
    rep = Rep.regular(2).repeat(3)
    assert rep.perm.tolist() == [1, 0, 3, 2, 5, 4]
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        rep.perm[0] = 3


def test_apply_checks_size() -> None:
    with pytest.raises(ValueError, match="size 4 cannot act on axis -1"):
        Rep.regular(4).apply(torch.zeros(2, 3))


# ---------------------------------------------------------------- weight sharing
@given(reps(max_size=7), reps(max_size=7))
def test_free_parameters_span_all_equivariant_maps(rep_in: Rep, rep_out: Rep) -> None:
    sharing = weight_sharing(rep_in, rep_out)
    assert sharing.n_free == equivariant_space_dim(rep_in, rep_out)
    # and the materialised basis really spans a space of that dimension
    basis = sharing.materialize(torch.eye(sharing.n_free, dtype=torch.float64))
    assert basis.shape == (rep_out.size, rep_in.size, sharing.n_free)
    if sharing.n_free:
        flat = basis.reshape(-1, sharing.n_free)
        assert np.linalg.matrix_rank(flat.numpy()) == sharing.n_free


@given(reps(max_size=8), reps(max_size=8), st.integers(0, 2 ** 31 - 1))
def test_materialized_weight_is_equivariant(rep_in: Rep, rep_out: Rep, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    sharing = weight_sharing(rep_in, rep_out)
    w = sharing.materialize(torch.randn(sharing.n_free, generator=gen, dtype=torch.float64))
    x = torch.randn(rep_in.size, 5, generator=gen, dtype=torch.float64)
    assert torch.allclose(w @ rep_in.apply(x, 0), rep_out.apply(w @ x, 0), atol=1e-12)


@given(reps(max_size=8), reps(max_size=8), st.integers(0, 2 ** 31 - 1))
def test_projection_is_orthogonal(rep_in: Rep, rep_out: Rep, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    sharing = weight_sharing(rep_in, rep_out)
    dense = torch.randn(rep_out.size, rep_in.size, generator=gen, dtype=torch.float64)
    expected = (dense + rep_out.matrix() @ dense @ rep_in.matrix()) / 2
    projected = sharing.project_dense(dense)
    assert torch.allclose(projected, expected, atol=1e-12)
    # idempotent, and exact on equivariant weights
    assert torch.allclose(sharing.project_dense(projected), projected, atol=1e-12)
    theta = torch.randn(sharing.n_free, generator=gen, dtype=torch.float64)
    assert torch.allclose(sharing.project(sharing.materialize(theta)), theta, atol=1e-12)
    assert sharing.projection_error(sharing.materialize(theta)) < 1e-12


def test_projection_error_of_a_non_equivariant_weight() -> None:
    sharing = weight_sharing(Rep.regular(2), Rep.trivial(1))
    # W = [1, -1] is anti-symmetric under the swap: its projection is 0
    assert sharing.projection_error(torch.tensor([[1.0, -1.0]])) == pytest.approx(1.0)
    assert sharing.projection_error(torch.tensor([[1.0, 1.0]])) == pytest.approx(0.0)


def test_forced_zeros_and_counts() -> None:
    # centre-negated output from centre-positive input: forced zero
    sharing = weight_sharing(Rep.trivial(1), Rep.negated(1))
    assert sharing.n_free == 0 and sharing.n_zero == 1
    rep_in, rep_out = Rep.pose("h36m", 2), Rep.skeleton_hidden("h36m", 6, 2)
    sharing = weight_sharing(rep_in, rep_out)
    n = rep_in.size * rep_out.size
    # every entry is the first of a free parameter, the second of a pair, or a forced zero
    assert sharing.n_free + sharing.n_pairs + sharing.n_zero == n
    # fixed entries: centre joints x centre joints (5 x 5) times the coordinate sign patterns
    fixed = (rep_in.n_fixed) * (rep_out.n_fixed)
    assert sharing.n_zero < fixed and sharing.n_free == (n - fixed) // 2 + fixed - sharing.n_zero


def test_sharing_rejects_non_reps_and_bad_shapes() -> None:
    with pytest.raises(TypeError, match="two Reps"):
        weight_sharing([0, 1], Rep.regular(2))  # type: ignore[arg-type]
    sharing = weight_sharing(Rep.regular(2), Rep.regular(4))
    with pytest.raises(ValueError, match=r"does not match this sharing's \(out, in\) = \(4, 2\)"):
        sharing.project(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="free parameters"):
        sharing.materialize(torch.zeros(3))


def test_sample_like_keeps_row_variance() -> None:
    torch.manual_seed(0)
    rep_in, rep_out = Rep.trivial(200), Rep.negated(1) + Rep.regular(2)
    # row 0 of a negated output from trivial inputs is all forced zero; rows 1-2 keep every entry
    sharing = weight_sharing(rep_in, rep_out)
    dense = torch.randn(3, 200, dtype=torch.float64)
    w = sharing.materialize(sharing.sample_like(dense))
    assert torch.all(w[0] == 0)
    assert w[1:].var().item() == pytest.approx(1.0, rel=0.2)
