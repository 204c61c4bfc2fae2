"""symmetrize() options on whole models: invariant_at, reinit, assume_equivariant, keep, average,
inplace, user rules; unknown modules and couplings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize import ConversionError, Spec, symmetrize
from symmetrize.nn import (
    ChiralConv1d,
)
from tests.helpers import equivariance_error
from tests.pose_models import TemporalModel

H36M_SEQ = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))



class WithUnknownLayer(nn.Module):
    """A layer with no rule (GroupNorm over joints and coordinates) between two Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(34, 68)
        self.norm = nn.GroupNorm(4, 68)
        self.b = nn.Linear(68, 34)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.norm(self.a(x))))


def test_unknown_module_names_its_path_and_the_fixes() -> None:
    spec = Spec(input="n (j c)", output="n (j c)", skeleton="h36m")
    with pytest.raises(ConversionError, match=r"no rule for module 'norm' of type GroupNorm.*"
                                              r"average=\['norm'\]"):
        symmetrize(WithUnknownLayer(), spec, (torch.randn(2, 34),))


def test_average_makes_an_unknown_module_equivariant() -> None:
    torch.manual_seed(0)
    spec = Spec(input="n (j c)", output="n (j c)", skeleton="h36m")
    model = WithUnknownLayer()
    chiral = symmetrize(model, spec, (torch.randn(2, 34),), average=["norm"])
    row = chiral.symmetrize_report.row("norm")
    assert row.action == "averaged" and row.detail.startswith("averaged with its mirror")
    assert isinstance(chiral.norm.module, nn.GroupNorm)
    for train in (False, True):
        assert equivariance_error(chiral, spec, torch.randn(6, 34), train) < 1e-10
    # the wrapper computes (f(x) + T f(T x)) / 2 with the GroupNorm's own parameters
    assert chiral.norm.module.weight is dict(chiral.named_parameters())["norm.module.weight"]
    with pytest.raises(ConversionError, match="no module named 'nrom'.*did you mean 'norm'"):
        symmetrize(model, spec, (torch.randn(2, 34),), average=["nrom"])


def test_asymmetric_slicing_is_a_clear_error() -> None:
    class DropsAJoint(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(15 * 2, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # drops joints 0 (pelvis, a centre joint: fine) and 1 (right hip, whose twin stays)
            return self.a(x[:, 2:].reshape(x.shape[0], -1))

    spec = Spec(input="n j c", output="n k", skeleton="h36m")
    with pytest.raises(ConversionError,
                       match=r"test_convert_options.py:\d+\).*drops its mirror image"):
        symmetrize(DropsAJoint(), spec, (torch.randn(2, 17, 2),))

    class DropsTheCentre(DropsAJoint):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(torch.cat([x[:, 1:7], x[:, 8:]], 1)[:, :15].reshape(x.shape[0], -1))

    # dropping centre joints 0 and 7 keeps every pair: the logits come out invariant
    chiral = symmetrize(DropsTheCentre(), spec, (torch.randn(2, 17, 2),))
    assert chiral.symmetrize_report.equivariance_error < 1e-10


class ConvClassifier(nn.Module):
    """Temporal conv blocks over (N, T, J, 3) clips, global pooling, class logits."""

    def __init__(self, width: int = 51, blocks: int = 5, classes: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 17 * 3
        for _ in range(blocks):
            layers += [nn.Conv1d(channels, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU()]
            channels = width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x.flatten(2).transpose(1, 2))
        return self.fc(h.mean(dim=2))


CLIP_SPEC = Spec(input="n t j c", output="n k", skeleton="h36m", negate=(0,))


def test_invariance_layer_at_a_named_module() -> None:
    torch.manual_seed(5)
    model = ConvClassifier()
    x = torch.randn(4, 16, 17, 3)
    chiral = symmetrize(model, CLIP_SPEC, (x,), invariant_at="blocks.9",
                        hidden={"blocks.6": 1 / 6})
    # blocks.9 is the fourth conv: the invariance layer; everything after it stays plain
    assert isinstance(chiral.blocks[9], ChiralConv1d) and chiral.blocks[9].rep_out.is_trivial
    assert type(chiral.blocks[12]) is nn.Conv1d and type(chiral.fc) is nn.Linear
    assert type(chiral.blocks[10]) is nn.BatchNorm1d
    kept = chiral.symmetrize_report.actions("kept")
    assert "blocks.12" in kept and "fc" in kept
    assert chiral.symmetrize_report.actions("invariance layer") == ["blocks.9"]
    # the schedule override took effect: 1/6 of each joint's 3 dims rounds to 0 negated
    assert chiral.blocks[6].rep_out.n_negated == 17 * round(3 / 6)
    for train in (False, True):
        assert equivariance_error(chiral, CLIP_SPEC, x, train, invariant=True) < 1e-10


def test_invariant_output_without_invariant_at_constrains_the_last_layer() -> None:
    torch.manual_seed(6)
    chiral = symmetrize(ConvClassifier(blocks=2), CLIP_SPEC, (torch.randn(2, 8, 17, 3),))
    assert chiral.fc.rep_out.is_trivial
    assert chiral.symmetrize_report.equivariance_error < 1e-10


def test_reinit_explain_and_bad_names() -> None:
    torch.manual_seed(7)
    model = TemporalModel(dropout=0.0)
    x = torch.randn(2, 27, 17, 2)
    projected = symmetrize(model, H36M_SEQ, (x,))
    fresh = symmetrize(model, H36M_SEQ, (x,), weights="reinit")
    assert not torch.allclose(fresh.shrink.weight, projected.shrink.weight)
    assert fresh.symmetrize_report.equivariance_error < 1e-10
    assert any("re-initialised" in row.detail for row in fresh.symmetrize_report.rows)
    assert all(row.projection_error is None for row in fresh.symmetrize_report.rows)
    from symmetrize import explain

    report = explain(model, H36M_SEQ, (x,))
    assert report.rows == projected.symmetrize_report.rows
    assert type(model.shrink) is nn.Conv1d  # explain changed nothing
    with pytest.raises(ConversionError, match=r"no module named 'shrnk'.*did you mean 'shrink'"):
        symmetrize(model, H36M_SEQ, (x,), invariant_at="shrnk")
    with pytest.raises(ConversionError, match="no module named 'layers_conv.9'"):
        symmetrize(model, H36M_SEQ, (x,), hidden={"layers_conv.9": "regular"})
    with pytest.raises(ValueError, match="weights must be 'project' or 'reinit'"):
        symmetrize(model, H36M_SEQ, (x,), weights="zeros")


class TemporalSmoothing(nn.Module):
    """A running sum over time: equivariant, but an op the pass has no rule for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(dim=2) * 0.1


class SmoothedLifter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(34, 68, 3, padding=1)
        self.smooth = TemporalSmoothing()
        self.out = nn.Conv1d(68, 51, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.smooth(torch.tanh(self.conv(x.flatten(2).transpose(1, 2))))
        return self.out(h).transpose(1, 2).unflatten(2, (17, 3))


def test_assume_equivariant_and_keep() -> None:
    torch.manual_seed(8)
    model = SmoothedLifter()
    x = torch.randn(2, 9, 17, 2)
    with pytest.raises(ConversionError, match="no rule for cumsum"):
        symmetrize(model, H36M_SEQ, (x,))
    chiral = symmetrize(model, H36M_SEQ, (x,), assume_equivariant=["smooth"])
    assert type(chiral.smooth) is TemporalSmoothing
    row = chiral.symmetrize_report.row("smooth")
    assert (row.op, row.target, row.action) == ("call_module", "TemporalSmoothing", "assumed")
    assert chiral.symmetrize_report.equivariance_error < 1e-10
    kept = symmetrize(model, H36M_SEQ, (x,), assume_equivariant=["smooth"], keep=["out"])
    assert type(kept.out) is nn.Conv1d
    assert any("expected with keep=['out']" in w for w in kept.symmetrize_report.warnings)
    assert kept.symmetrize_report.row("out").action == "kept"
    assert kept.symmetrize_report.equivariance_error > 1e-3


def test_width_that_does_not_divide_the_skeleton_is_reported() -> None:
    torch.manual_seed(9)
    model = TemporalModel(channels=70, dropout=0.0)  # 70 = 17 x 4 + 2
    chiral = symmetrize(model, H36M_SEQ, (torch.randn(2, 27, 17, 2),))
    assert any("width 70 is not a multiple of 17 joints" in n
               for n in chiral.symmetrize_report.warnings)
    assert chiral.symmetrize_report.equivariance_error < 1e-10



def test_conversion_check_leaves_dtypes_and_statistics_as_they_were() -> None:
    torch.manual_seed(0)
    model = TemporalModel(dropout=0.0)
    chiral = symmetrize(model, H36M_SEQ, (torch.randn(2, 27, 17, 2),))
    dtypes = {t.dtype for t in (*chiral.parameters(), *chiral.buffers()) if t.is_floating_point()}
    assert dtypes == {torch.float32}
    assert all(int(bn.num_batches_tracked) == 0 for bn in chiral.modules()
               if isinstance(bn, nn.BatchNorm1d))
    assert chiral.training and all(m.training for m in chiral.modules())


def test_residual_couplings_are_reported_as_one_group() -> None:
    model = TemporalModel(filter_widths=(3, 3, 3, 3))
    chiral = symmetrize(model, H36M_SEQ, (torch.randn(2, 81, 17, 2),))
    notes = [n for n in chiral.symmetrize_report.notes if n.startswith("coupled")]
    assert notes == [("coupled by residual connections (one Rep): expand_conv, layers_conv.1, "
                      "layers_conv.3, layers_conv.5")]
    reps = {chiral.expand_conv.rep_out, *(chiral.layers_conv[i].rep_out for i in (1, 3, 5))}
    assert len(reps) == 1


def test_inplace_converts_the_model_itself() -> None:
    torch.manual_seed(0)
    model = TemporalModel(dropout=0.0)
    x = torch.randn(2, 27, 17, 2)
    copied = symmetrize(model, H36M_SEQ, (x,))
    assert type(model.expand_conv) is nn.Conv1d  # not modified without inplace
    converted = symmetrize(model, H36M_SEQ, (x,), inplace=True)
    assert converted is model and isinstance(model.expand_conv, ChiralConv1d)
    assert converted.symmetrize_report.parameters_after == copied.symmetrize_report.parameters_after
    with torch.no_grad():
        assert torch.allclose(converted.eval()(x), copied.eval()(x), atol=1e-5)




class MovingAverage(nn.Module):
    """A user module with no built-in rule: a moving average along time (axis 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([x[:, :1], x, x[:, -1:]], dim=1)
        return (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3


class AveragedInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.smooth = MovingAverage()
        self.a, self.b = nn.Linear(34, 68), nn.Linear(68, 34)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(self.smooth(x))))


def test_a_registered_rule_handles_a_user_module_type() -> None:
    from symmetrize.rules import register_module_rule, unregister_module_rule
    spec = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
    model = AveragedInput()
    x = torch.randn(2, 6, 34)

    calls = []

    @register_module_rule(MovingAverage)
    def smoothing(ctx, node, module, path):  # the README's example
        calls.append(path)
        return ctx.action(node.args[0])

    try:
        chiral = symmetrize(model, spec, (x,))
        # a module type with a rule is traced as one node, and the rule handles it
        assert calls and set(calls) == {"smooth"}
        assert isinstance(chiral.smooth, MovingAverage)
        assert chiral.symmetrize_report.equivariance_error < 1e-10
    finally:
        unregister_module_rule(MovingAverage)
    calls.clear()
    assert symmetrize(model, spec, (x,)).symmetrize_report.equivariance_error < 1e-10
    assert not calls  # without the rule the module is traced through (movement, arithmetic)
