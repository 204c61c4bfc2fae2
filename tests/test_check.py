"""``check``: the equivariance check of any model, its state hygiene, and the localiser that names
the first node where the symmetry breaks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from symmetrize import Rep, Spec, check, symmetrize
from symmetrize.export import export_plain
from symmetrize.passes.localize import symmetry_gap
from tests.action_models import H36M_CLIPS, small_gru_classifier
from tests.pose_models import Seq2Seq, TemporalModel

H36M_SEQ = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
X = torch.randn(2, 27, 17, 2, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def temporal() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = TemporalModel(filter_widths=(3, 3, 3), channels=68)
    return model, symmetrize(model, H36M_SEQ, (X,))


def test_plain_temporal_model_fails_at_its_first_conv(temporal) -> None:
    model, _ = temporal
    result = check(model, H36M_SEQ, (X,))
    assert not result.passed
    assert all(not case.passed for case in result.cases)
    broken = result.first_broken
    assert (broken.op, broken.module, broken.target) == ("call_module", "expand_conv", "Conv1d")
    assert "pose_models.py:" in broken.source and broken.gap > 1e-2
    assert "first broken: node 'expand_conv'" in str(result)


def test_converted_model_passes_every_mode_and_dtype(temporal) -> None:
    _, chiral = temporal
    result = check(chiral)  # the Spec and input shapes it was converted with
    assert result.passed and result.first_broken is None
    assert {(c.mode, c.dtype) for c in result.cases} == {
        ("eval", "float64"), ("train", "float64"), ("eval", "float32"), ("train", "float32")}
    assert result.case("eval", torch.float64).max_rel < 1e-10
    assert result.case("train", "float32").max_rel < 1e-5
    assert result.to_dict()["passed"] is True and result.n_inputs == 3


def test_check_restores_running_statistics_rng_mode_and_dtype(temporal) -> None:
    _, chiral = temporal
    model = copy.deepcopy(chiral).train()
    model.layers_bn[0].eval()  # a mixed train/eval state must come back as it was
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    weight = model.shrink.weight_plus
    torch.manual_seed(123)
    rng = torch.random.get_rng_state()
    check(model, H36M_SEQ, (X,))
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert {name: m.training for name, m in model.named_modules()} == modes
    after = model.state_dict()
    assert all(torch.equal(after[k], v) and after[k].dtype == v.dtype for k, v in state.items())
    assert model.shrink.weight_plus is weight
    assert weight.dtype == torch.float32


def test_one_perturbed_weight_deep_inside_is_localised() -> None:
    torch.manual_seed(1)
    chiral = symmetrize(TemporalModel(filter_widths=(3, 3, 3), channels=68), H36M_SEQ, (X,))
    plain = export_plain(chiral)  # ordinary nn.Conv1d layers with equivariant weights
    assert check(plain, H36M_SEQ, (X,)).passed
    with torch.no_grad():
        plain.layers_conv[3].weight[5, 7, 0] += 0.05
    result = check(plain, H36M_SEQ, (X,))
    assert not result.case("eval", "float64").passed
    assert result.first_broken.module == "layers_conv.3"


def test_kept_layer_is_where_the_check_points() -> None:
    torch.manual_seed(2)
    model = TemporalModel(filter_widths=(3, 3), channels=68, dropout=0.0)
    kept = symmetrize(model, H36M_SEQ, (X[:, :9],), keep=["layers_conv.1"])
    result = check(kept, n_inputs=2, modes=("eval",))
    assert not result.passed and result.first_broken.module == "layers_conv.1"


def test_outputs_that_do_not_transform_as_the_spec_says_point_at_the_output(temporal) -> None:
    _, chiral = temporal
    wrong = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,),
                 output_negate=(1,))
    result = check(chiral, wrong, modes=("eval",), dtypes=(torch.float64,))
    assert not result.passed
    assert result.first_broken.op == "output" and "Spec(output=...)" in result.first_broken.reason


def test_switched_functional_activations_and_recurrent_models() -> None:
    torch.manual_seed(3)
    spec, model = H36M_CLIPS, small_gru_classifier()
    x = torch.randn(3, 7, 17, 2)
    plain = check(model, spec, (x,), n_inputs=2)
    assert not plain.passed and plain.first_broken.target in ("GRU", "Linear")
    chiral = symmetrize(model, spec, (x,))
    assert chiral.symmetrize_report.switched  # F.relu on flipping features became tanh
    assert check(chiral, spec, (x,), n_inputs=2).passed


def test_seq2seq_with_a_flag_argument() -> None:
    torch.manual_seed(4)
    spec = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
    model = Seq2Seq(cell=nn.GRU)
    x = torch.randn(4, 13, 34)
    chiral = symmetrize(model, spec, (x,))
    assert check(chiral, spec, (x, False), n_inputs=2).passed
    result = check(model, spec, (x, False), n_inputs=2, modes=("eval",))
    assert not result.passed and result.first_broken.op == "call_module"


def test_low_precision_failure_is_not_localised(temporal) -> None:
    _, chiral = temporal
    result = check(chiral, tolerances={torch.float32: 1e-12}, modes=("eval",))
    assert not result.passed and result.case("eval", "float64").passed
    assert result.first_broken is None
    assert any("rounding in the lower precision" in note for note in result.notes)


def test_bad_arguments_are_clear(temporal) -> None:
    model, _ = temporal
    with pytest.raises(ValueError, match="needs a spec"):
        check(model)
    with pytest.raises(ValueError, match="needs example_inputs"):
        check(model, H36M_SEQ)
    with pytest.raises(ValueError, match="unknown mode 'test'"):
        check(model, H36M_SEQ, (X,), modes=("test",))


def test_symmetry_gap_accepts_signed_permutations_only() -> None:
    g = torch.Generator().manual_seed(5)
    ys = [torch.randn(4, 50, generator=g, dtype=torch.float64) for _ in range(3)]
    order = torch.randperm(50, generator=g)
    perm = torch.arange(50)
    perm[order[0:40:2]], perm[order[1:40:2]] = order[1:40:2], order[0:40:2]  # 20 swapped pairs
    sign = torch.where(torch.rand(50, generator=g) < .5, -1, 1)
    rep = Rep(perm, sign * sign[perm])  # twins share a sign
    assert symmetry_gap(ys, [rep.apply(y) for y in ys]) < 1e-15
    # repeated values (ReLU zeros, saturated tanh) are matched too
    flat = [torch.where(y > 0, y, torch.zeros(())) for y in ys]
    assert symmetry_gap(flat, [rep.apply(y) for y in flat]) < 1e-15
    mixed = torch.linalg.qr(torch.randn(50, 50, generator=g, dtype=torch.float64))[0]
    assert symmetry_gap(ys, [y @ mixed for y in ys]) > 1e-2
    assert symmetry_gap(ys, [y[:, :10] for y in ys]) == float("inf")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_check_runs_on_the_models_device(temporal) -> None:
    _, chiral = temporal
    model = copy.deepcopy(chiral).cuda()
    result = check(model, H36M_SEQ, (X,))
    assert result.passed and result.device.startswith("cuda")
    assert next(model.parameters()).device.type == "cuda"


class PerChannelScale(nn.Module):
    """Scales every feature by its own learned factor: not equivariant (a joint and its twin get
    different factors), so a rule claiming it keeps the Rep is wrong."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class ScaledLifter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.scale, self.b = nn.Linear(34, 68), PerChannelScale(68), nn.Linear(68, 34)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.scale(self.a(x))))


def test_a_wrong_rule_is_caught_and_localised_and_explain_still_reports() -> None:
    from symmetrize import ConversionError, explain
    from symmetrize.rules import register_module_rule, unregister_module_rule

    torch.manual_seed(6)
    spec = Spec(input="n (j c)", output="n (j c)", skeleton="h36m")
    register_module_rule(PerChannelScale)(lambda ctx, node, module, path: ctx.action(node.args[0]))
    try:
        with pytest.raises(ConversionError, match="not equivariant.*first broken: node 'scale'"):
            symmetrize(ScaledLifter(), spec, (torch.randn(4, 34),))
        report = explain(ScaledLifter(), spec, (torch.randn(4, 34),))
        assert report.equivariance_error > 1e-3
        assert any("first broken: node 'scale'" in w for w in report.warnings)
    finally:
        unregister_module_rule(PerChannelScale)
