"""rules/einsum.py on its own: einsum and matmul read one Rep per subscript letter off the feature
operands; constant operands (an adjacency) must be mirror-symmetric (a buffer is checked, a
learned one becomes mirror-shared); the result is verified numerically."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from symmetrize import symmetrize
from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError
from symmetrize.spec import Spec
from tests.helpers import TOY, Net, action_of, equivariance_error, node_named, settle

JOINTS, COORDS = Rep.joints(TOY), Rep.coords(2, (0,))
GRAPH = Spec(input="n c t j", output="n c t j", skeleton=TOY, negate=(0,))
CLIP = Spec(input="n t j c", output="free", skeleton=TOY, negate=(0,))
AT = r"^node '\w+' \(.*test_rules_einsum\.py:\d+\): "
X = torch.randn(2, 2, 4, 3)


def graph(function: Callable[..., torch.Tensor]) -> Net:
    """``function(self, x)`` with a symmetric adjacency ``A`` (the twins 0 and 2 of the toy
    skeleton alike), an asymmetric one ``B`` and a learned edge importance."""
    return Net(function, A=torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]]),
               B=torch.tensor([[1.0, 0.2, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]]),
               importance=nn.Parameter(torch.ones(3, 3)))


def test_a_graph_convolution_over_a_symmetric_adjacency_keeps_the_joints() -> None:
    ctx, _ = settle(graph(lambda m, x: torch.einsum("nctv,vw->nctw", x, m.A)), GRAPH, X)
    assert action_of(ctx, "einsum") == action_of(ctx, "x") == \
        Action.from_axes((2, 2, 4, 3), {1: COORDS, 3: JOINTS})
    assert not ctx.shared


def test_a_learned_edge_importance_becomes_mirror_shared() -> None:
    model = graph(lambda m, x: torch.einsum("nctv,vw->nctw", x, m.A * m.importance))
    ctx, gm = settle(model, GRAPH, X)
    shared = ctx.shared["importance"]
    assert shared.action == Action.from_axes((3, 3), {0: JOINTS, 1: JOINTS})
    assert shared.why == f"the einsum in {ctx.where(node_named(gm, 'einsum'))}"


def test_a_trained_edge_importance_converts() -> None:
    torch.manual_seed(0)
    model = graph(lambda m, x: torch.einsum("nctv,vw->nctw", x, m.A * m.importance))
    with torch.no_grad():
        model.importance.uniform_(0.5, 1.5)  # as after training: no longer symmetric
    chiral = symmetrize(model, GRAPH, (X,))
    assert equivariance_error(chiral, GRAPH, X, train=False) < 1e-10


def test_feature_times_feature_scores_are_unsigned_and_permuted_on_both_sides() -> None:
    ctx, _ = settle(graph(lambda m, x: x @ x.transpose(-1, -2)), CLIP, torch.randn(2, 4, 3, 2))
    # (n t j c) @ (n t c j): x^2 + y^2-like sums over the coordinates, joints on both sides
    assert action_of(ctx, "matmul") == Action.from_axes((2, 4, 3, 3), {2: JOINTS, 3: JOINTS})


@pytest.mark.parametrize(("function", "spec", "message"), [
    (lambda m, x: torch.einsum("nctv,vw->nctw", x, m.B), GRAPH,
     r"the constant 'B' \(used by the einsum in node 'einsum'.*\) is not mirror-symmetric: entry "
     r"\(0, 1\) is 0\.2 but its mirror image needs 0\.5\. Fix: make the constant"),
    (lambda m, x: torch.einsum("...c,...c->...", x, x), CLIP,
     r"einsum '\.\.\.c,\.\.\.c->\.\.\.': only explicit equations \('ab,bc->ac'\) without '\.\.\.' "
     r"have a rule\. Fix: write the output subscripts out"),
    (lambda m, x: x @ m.A[0, :2], CLIP,
     r"a matmul of shapes \(2, 4, 3, 2\) and \(2,\) \(a vector, or broadcast batch axes\) has no "
     r"rule\. Fix: expand both to the same batch shape first"),
    (lambda m, x: torch.einsum("ntjc,cd->ntjd", x, m.A[:2, :2]), CLIP,
     r"einsum letters \['c'\] are summed against a constant but flip sign on some entries only\. "
     r"Fix: give the layer producing this operand"),
])
def test_errors_name_the_node_and_the_fix(function: Callable, spec: Spec, message: str) -> None:
    with pytest.raises(ConversionError, match=AT + message):
        settle(graph(function), spec, torch.randn(2, 2, 4, 3) if spec is GRAPH
               else torch.randn(2, 4, 3, 2))


class Pair(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nj,nj->n", x, y)


def test_a_letter_the_operands_permute_differently_is_an_error() -> None:
    spec = Spec(input=["n j", None], output=None, skeleton=TOY)
    with pytest.raises(ConversionError, match=AT + r"einsum letter 'j' is permuted differently "
                                                   r"by the mirror in two operands\. Fix: "
                                                   r"contract matching layouts"):
        settle(Pair(), spec, torch.randn(2, 3), torch.randn(2, 3))
