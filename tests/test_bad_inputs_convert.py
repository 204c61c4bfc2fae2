"""Misuse of the conversion front door: one clear error naming the argument or module before any
work starts, and an in-place conversion that fails leaves the model exactly as it was."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from symmetrize import ConversionError, Spec, symmetrize
from tests.helpers import Net
from tests.pose_models import TemporalModel

LIFT = Spec.preset("h36m")
POSE = Spec(input="n (j c)", output="n (j c)", skeleton="h36m", negate=(0,))
X = torch.randn(2, 9, 17, 2)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return TemporalModel(filter_widths=(3, 3), channels=68)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"hidden": "skeletons"}, ValueError, "hidden must be one of 'auto', 'skeleton', 'regular'"),
    ({"hidden": {"expand_conv": {}}}, TypeError, r"hidden\['expand_conv'\] must be a policy"),
    ({"hidden": 1.5}, ValueError, r"hidden = 1.5: a negated fraction must lie in \[0, 1\]"),
    ({"negated_fraction": float("nan")}, ValueError, "negated_fraction must be a number in"),
    ({"negated_fraction": "1/3"}, ValueError, "negated_fraction must be a number in"),
    ({"activation": "relu"}, ValueError, "activation must be 'tanh' or 'mixed'"),
    ({"weights": "random"}, ValueError, "weights must be 'project' or 'reinit'"),
    ({"keep": "shrink"}, TypeError, r"keep must be a list of module paths.*keep=\['shrink'\]"),
    ({"average": [3]}, TypeError, "average must hold module paths"),
    ({"check": "yes"}, TypeError, "check must be True or False"),
    ({"inplace": 1}, TypeError, "inplace must be True or False"),
    ({"hiden": "regular"}, TypeError, "unknown option 'hiden'; the options are hidden, "),
    ({"keep": ["shrnk"]}, ConversionError, "keep: no module named 'shrnk'.*did you mean "
                                           "'shrink'"),
    ({"invariant_at": "drop"}, ConversionError, "invariant_at='drop' is a Dropout with no "
                                                "Linear"),
])
def test_bad_options_are_refused_with_their_name(kwargs: dict, error: type,
                                                 match: str) -> None:
    with pytest.raises(error, match=match):
        symmetrize(_model(), LIFT, (X,), **kwargs)


@pytest.mark.parametrize(("args", "error", "match"), [
    (("not a model", LIFT, (X,)), TypeError, "model must be a torch.nn.Module, got str"),
    ((None, LIFT, (X,)), TypeError, "model must be a torch.nn.Module, got NoneType"),
    (("model", "h36m", (X,)), TypeError, r"spec must be a symmetrize.Spec.*got str"),
    (("model", LIFT, [X.numpy()]), ConversionError, "example_inputs holds no tensor"),
    (("model", LIFT, 3), TypeError, "example_inputs must be a tensor or a tuple"),
    (("model", LIFT, (torch.zeros(0, 9, 17, 2),)), ConversionError,
     r"example_inputs\[0\] of shape \(0, 9, 17, 2\) has no elements"),
    (("model", LIFT, (torch.randn(2, 9, 16, 2),)), ConversionError,
     r"example_inputs\[0\] of shape \(2, 9, 16, 2\) does not fit the Spec"),
    (("model", LIFT, (torch.randn(2, 9, 17, 2, device="meta"),)), ConversionError,
     r"example_inputs\[0\] is on the meta device"),
])
def test_bad_arguments_are_refused_before_any_work(args: tuple, error: type, match: str) -> None:
    model, spec, example = args
    with pytest.raises(error, match=match):
        symmetrize(_model() if model == "model" else model, spec, example)


def test_a_model_on_the_meta_device_is_refused() -> None:
    with torch.device("meta"):
        model = TemporalModel(filter_widths=(3, 3), channels=68)
    with pytest.raises(ConversionError, match="'expand_conv.weight' is on the meta device.*"
                                              "to_empty"):
        symmetrize(model, LIFT, (X,))


def test_an_already_converted_model_is_refused() -> None:
    chiral = symmetrize(_model(), LIFT, (X,), check=False)
    with pytest.raises(ConversionError, match="module 'expand_conv' is already chiral"):
        symmetrize(chiral, LIFT, (X,))


class Tied(nn.Module):
    """An encoder and a decoder that share one weight (weight tying)."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(34, 34, bias=False)
        self.decode = nn.Linear(34, 34, bias=False)
        self.decode.weight = self.encode.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(torch.tanh(self.encode(x)))


def test_weight_tying_is_refused_naming_both_modules() -> None:
    with pytest.raises(ConversionError, match="parameter 'encode.weight' is also "
                                              "'decode.weight'.*'encode' and 'decode'"):
        symmetrize(Tied(), POSE, (torch.randn(2, 34),))


class SharedTwice(nn.Module):
    """One Linear applied to the pose and to an invariant input: two layouts, one module."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(34, 34)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.fc(y).mean() * 0


def test_a_module_called_with_two_layouts_names_both_calls() -> None:
    spec = Spec(input=("n (j c)", None), output="n (j c)", skeleton="h36m", negate=(0,))
    with pytest.raises(ConversionError, match=r"module 'fc' is called at two places with "
                                              r"different mirror Reps: at node 'fc'.*here"):
        symmetrize(SharedTwice(), spec, (torch.randn(2, 34), torch.randn(2, 34)))


def test_a_module_called_twice_with_one_layout_converts() -> None:
    torch.manual_seed(0)
    # one block applied twice to features with the same layout: converts, weights shared
    reused = Net(lambda m, x: m.out(torch.tanh(m.block(torch.tanh(m.block(torch.tanh(m.inp(x))))))),
                 inp=nn.Linear(34, 34), block=nn.Linear(34, 34), out=nn.Linear(34, 34))
    chiral = symmetrize(reused, POSE, (torch.randn(3, 34),), hidden="regular")
    assert chiral.symmetrize_report.equivariance_error < 1e-12
    assert chiral.symmetrize_report.parameter_ratio < 0.6


class Shift(nn.Module):
    """Rolls the features: not equivariant, whatever a user claims."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.roll(1, -1)


class FailsLate(nn.Module):
    """Converts (its layers are replaced), then fails the check: ``shift`` is wrongly trusted."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(34, 34), nn.Linear(34, 34)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 34))
        self.shift = Shift()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.shift(torch.tanh(self.a(x))) * self.scale)


def test_a_failed_in_place_conversion_leaves_the_model_as_it_was() -> None:
    torch.manual_seed(0)
    model = FailsLate()
    before = copy.deepcopy(model.state_dict())
    modules = dict(model.named_modules())
    parameters = dict(model.named_parameters())
    cls = type(model)
    x = torch.randn(3, 34)
    expected = model(x)
    with pytest.raises(ConversionError, match="not equivariant"):
        symmetrize(model, POSE, (x,), inplace=True, assume_equivariant=["shift"])
    assert type(model) is cls and not hasattr(model, "symmetrize_report")
    assert all(model.get_submodule(p) is m for p, m in modules.items() if p)
    assert dict(model.named_parameters()).keys() == parameters.keys()
    assert all(model.get_parameter(n) is p for n, p in parameters.items())
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_a_successful_in_place_conversion_returns_the_model_itself() -> None:
    model = _model()
    chiral = symmetrize(model, LIFT, (X,), inplace=True)
    assert chiral is model and chiral.symmetrize_report.equivariance_error < 1e-10
