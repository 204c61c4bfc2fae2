"""The report's facts: compact Reps per axis and the rows the conversion fills in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize import Rep, Spec, report, symmetrize
from symmetrize.action import Action
from symmetrize.passes.rep_text import compact_rep
from tests.pose_models import TemporalModel

H36M = Rep.joints("h36m")
NTU = Rep.joints("ntu")


def _compact(spec: Spec, shape: tuple[int, ...], joints: tuple[Rep, ...]) -> str:
    return compact_rep(Action.from_axes(shape, spec.input_axes(0, shape)), joints)


@pytest.mark.parametrize("layout,shape,joints,expected", [
    ("n t j c", (2, 9, 17, 2), (H36M,), "17j x 2c: 6 pairs, x-"),
    ("n t (j c)", (2, 9, 51), (H36M,), "(17j 3c): 6 pairs, x-"),
    ("n c t j m", (2, 3, 12, 25, 2), (NTU,), "3c x 25j: x-, 10 pairs"),
    ("n t j c", (2, 9, 17, 2), (), "17 x 2c: 6 pairs, x-"),
])
def test_input_reps_read_per_axis(layout: str, shape: tuple[int, ...], joints: tuple[Rep, ...],
                                  expected: str) -> None:
    skeleton = "ntu" if shape[3:4] == (25,) else "h36m"
    spec = Spec(input=layout, output=None, skeleton=skeleton, negate=(0,))
    assert _compact(spec, shape, joints) == expected


def test_hidden_and_other_reps() -> None:
    hidden = Rep.skeleton_hidden("h36m", 4, 1)
    assert compact_rep(Action.from_axes((2, 68, 9), {1: hidden}), (H36M,)) == \
        "(17j 4): 6 pairs, 1 of 4-"
    padded = hidden + Rep.trivial(2)  # a width that does not divide the skeleton
    assert compact_rep(Action.from_axes((2, 70), {1: padded}), (H36M,)) == "70: 24 pairs, 17-"
    assert compact_rep(Action.trivial((3, 5)), (H36M,)) == "invariant"
    assert compact_rep(None) == "-"
    # axes the mirror mixes (a skeleton layout split into heads) read as one group
    heads = Action((2, 4, 17), [(1, 3, hidden)])
    assert compact_rep(heads, (H36M,)) == "(4x17): 24 pairs, 17-"


def test_rows_of_a_converted_temporal_model() -> None:
    torch.manual_seed(0)
    model = TemporalModel(filter_widths=(3, 3), channels=68)
    chiral = symmetrize(model, Spec.preset("h36m"), (torch.randn(2, 9, 17, 2),))
    rep = report(chiral)
    assert rep is chiral.symmetrize_report
    names = [row.name for row in rep.rows]
    assert len(names) == len(set(names))
    conv = rep.row("expand_conv")
    assert (conv.op, conv.target, conv.action) == ("call_module", "Conv1d", "replaced")
    assert conv.params_before == sum(p.numel() for p in model.expand_conv.parameters())
    assert conv.params_after == sum(p.numel() for p in chiral.expand_conv.parameters())
    assert 0.5 < conv.projection_error < 0.9  # random weights are far from equivariant
    assert conv.rep_out == "(17j 4): 6 pairs, 1 of 4-"
    relu = rep.row("relu")
    assert relu.action == "switched" and relu.params_before is None
    # a residual add reads two tensors with one Rep
    add = next(row for row in rep.rows if row.target == "add" and row.rep_out != "-")
    assert len(add.inputs) == 2 and ";" not in add.rep_in
    assert rep.totals()["replaced_modules"] == 7 and rep.switched == ["relu"]
    assert any("dropout module 'drop'" in w for w in rep.warnings)
    assert rep.inputs == [{"shape": [2, 9, 17, 2], "dtype": "float32"}]
    assert rep.options["hidden"] == "auto" and rep.spec == Spec.preset("h36m")
    assert any(n.startswith("skeleton layout (auto") and "expand_conv" in n for n in rep.notes)


def test_report_of_a_plain_model_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="has no conversion report"):
        report(nn.Linear(2, 2))
