"""The ``"eigen"`` hidden layout: hidden channels in the mirror's eigenbasis (no swapped pairs,
the last half, or ``negated_fraction``, of them flipping sign), so chiral layers between such
axes change no basis: two views in, one ``cat`` out."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from symmetrize import Spec, symmetrize
from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn import ChiralLinear
from symmetrize.rep import Rep
from symmetrize.rules.hidden_policy import eigen_layout
from tests.helpers import TOL, equivariance_error
from tests.pose_models import MLPLifter, TemporalModel

POSE = Spec(input="n j c", output="n j c", skeleton="h36m", negate=(0,))
SEQ = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))


def test_eigen_layout_is_a_split_sign_pattern():
    rep = eigen_layout(10, 0.3)
    assert rep.n_pairs == 0
    assert rep.sign.tolist() == [1] * 7 + [-1] * 3
    basis = eigenbasis(rep)
    assert basis.split == (0, 7)
    assert (basis.n_plus, basis.n_minus) == (7, 3)


@pytest.mark.parametrize("rep", [eigen_layout(9, 0.5), Rep(np.arange(6), [-1, -1, 1, 1, 1, 1]),
                                 Rep.trivial(5), Rep.negated(4)])
def test_split_basis_round_trip_uses_views(rep):
    basis = eigenbasis(rep)
    assert basis.split is not None
    x = torch.randn(3, rep.size, 2, dtype=torch.float64)
    plus, minus = basis.to_eigen(x, 1)
    for half in (plus, minus):  # views of x, no copy
        assert half.numel() == 0 or half.untyped_storage().data_ptr() == \
            x.untyped_storage().data_ptr()
    assert torch.equal(basis.from_eigen(plus, minus, 1), x)
    # the same coordinates as the general (gather) path
    assert torch.equal(plus, x[:, torch.from_numpy(np.flatnonzero(rep.sign > 0))])
    assert torch.equal(minus, x[:, torch.from_numpy(np.flatnonzero(rep.sign < 0))])


def test_split_basis_needs_contiguous_halves():
    assert eigenbasis(Rep(np.arange(4), [1, -1, 1, -1])).split is None
    assert eigenbasis(Rep.regular(4)).split is None


def test_from_eigen_of_a_split_basis_checks_the_halves():
    basis = eigenbasis(eigen_layout(6, 0.5))
    with pytest.raises(ValueError, match="the minus half has 2 entries on axis 1, this basis has 3"):
        basis.from_eigen(torch.zeros(1, 3), torch.zeros(1, 2), 1)
    # a missing half is zero
    assert torch.equal(basis.from_eigen(torch.ones(1, 3), None, 1),
                       torch.tensor([[1.0, 1, 1, 0, 0, 0]]))


@pytest.mark.parametrize("build, spec, shape, width", [
    (lambda: MLPLifter(joints_out=17, size=128, stages=2), POSE, (4, 17, 2), 128),
    (lambda: TemporalModel(filter_widths=(3, 3), channels=96), SEQ, (2, 9, 17, 2), 96),
])
@pytest.mark.parametrize("activation", ["tanh", "mixed"])
def test_eigen_hidden_converts_exactly(build, spec, shape, width, activation):
    torch.manual_seed(0)
    plain = build()
    x = torch.randn(*shape)
    chiral = symmetrize(copy.deepcopy(plain), spec, x, hidden="eigen", activation=activation)
    hidden = [m for m in chiral.modules() if isinstance(m, ChiralLinear)
              or type(m).__name__ == "ChiralConv1d"]
    inner = [m for m in hidden if m.rep_in.size == m.rep_out.size == width]
    assert inner, "expected hidden-to-hidden layers"
    for layer in inner:  # no basis change between hidden layers
        assert eigenbasis(layer.rep_in).split is not None
        assert eigenbasis(layer.rep_out).split is not None
        assert layer.execution == "blocks"
    assert "eigenbasis layout" in str(chiral.symmetrize_report)
    # eval mode (the dropout masks of train mode are not tied between twins)
    err = equivariance_error(chiral, spec, torch.randn(*shape, dtype=torch.float64), False)
    assert err < TOL[torch.float64]


@pytest.mark.parametrize("fraction, negated", [(None, 128), (0.5, 128), (1 / 3, 85)])
def test_eigen_split_follows_negated_fraction(fraction, negated):
    """Equal halves by default (half the multiply-adds); an explicit fraction is kept, and the
    skeleton layout's default stays the paper's third."""
    torch.manual_seed(0)
    x = torch.randn(4, 17, 2)
    options = {} if fraction is None else {"negated_fraction": fraction}
    chiral = symmetrize(MLPLifter(joints_out=17, size=256, stages=1), POSE, x, hidden="eigen",
                        **options)
    assert chiral.stages[0].w1.rep_out.n_negated == negated
    assert f"({negated} of 256 channels flip sign)" in str(chiral.symmetrize_report)
    skeleton = symmetrize(MLPLifter(joints_out=17, size=17 * 6, stages=1), POSE, x,
                          hidden="skeleton", **options)
    assert skeleton.stages[0].w1.rep_out.n_negated == 17 * round(6 * (fraction or 1 / 3))


def test_eigen_hidden_halves_the_hidden_parameters():
    torch.manual_seed(0)
    plain = MLPLifter(joints_out=17, size=256, stages=2)
    chiral = symmetrize(copy.deepcopy(plain), POSE, torch.randn(4, 17, 2), hidden="eigen")
    layer = chiral.stages[0].w1
    assert isinstance(layer, ChiralLinear)
    # 128 + and 128 - channels each side: two 128 x 128 blocks of a 256 x 256 weight
    assert layer.weight_plus.shape == (128, 128) and layer.weight_minus.shape == (128, 128)
    assert layer.rep_out.sign.tolist() == [1] * 128 + [-1] * 128


def test_cli_accepts_eigen():
    out = subprocess.run([sys.executable, "-m", "symmetrize", "convert", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "eigen" in out


@pytest.mark.parametrize("build, spec, shape", [
    (lambda: MLPLifter(joints_out=17, size=128, stages=2), POSE, (4, 17, 2)),
    (lambda: TemporalModel(filter_widths=(3, 3), channels=96), SEQ, (2, 9, 17, 2)),
])
def test_eigen_layout_exports_with_views_and_a_cat(build, spec, shape):
    """Block export of the eigen layout splits a hidden activation into two views (no copy)
    and joins the halves with one cat; both exports compute what the chiral model does."""
    from symmetrize.export import EigenBlock, export_blocks, export_plain

    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    chiral = symmetrize(build(), spec, x.float(), hidden="eigen").double().eval()
    blocks, dense = export_blocks(chiral).eval(), export_plain(chiral).eval()
    with torch.no_grad():
        want = chiral(x)
        assert torch.allclose(blocks(x), want, atol=1e-12, rtol=0)
        assert torch.allclose(dense(x), want, atol=1e-12, rtol=0)
    inner = [m for m in blocks.modules() if isinstance(m, EigenBlock)
             and eigenbasis(m.to_eigen.rep).split is not None and m.to_eigen.rep.n_negated]
    assert inner, "expected block layers between eigen-layout channels"
    block = inner[0]
    h = torch.randn(3, block.to_eigen.rep.size, *([5] if spec is SEQ else []),
                    dtype=torch.float64)
    h = h if spec is SEQ else h.reshape(3, -1)
    plus, minus = block.to_eigen(h)
    assert plus.data_ptr() == h.data_ptr()  # a view, not a copy
    assert torch.equal(block.from_eigen(plus, minus), h)
