"""The check covers every output structure and every leaf, runs code as authors write it (tensors
made in forward, random ops), and never passes what it cannot interpret."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from symmetrize import ConversionError, Spec, check, symmetrize
from symmetrize.passes.output_errors import OutputError, tensor_leaves
from tests.helpers import Net

POSE = Spec(input="n (j c)", output="n (j c)", skeleton="h36m", negate=(0,))
X = torch.randn(4, 34)


class Mirrored(nn.Module):
    """Equivariant by construction: the identity on the pose."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


@dataclass
class Prediction:
    pose: torch.Tensor
    score: torch.Tensor | None


class DictOut(nn.Module):
    def __init__(self, broken: bool) -> None:
        super().__init__()
        self.broken = broken

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pose = x.flip(-1) if self.broken else x  # flipping the features is not the mirror
        return {"pose": pose, "extra": [x * 3.0, None]}


class DataclassOut(nn.Module):
    def __init__(self, broken: bool) -> None:
        super().__init__()
        self.broken = broken

    def forward(self, x: torch.Tensor) -> Prediction:
        return Prediction(x.roll(1, -1) if self.broken else x, None)


@pytest.mark.parametrize("model_cls", [DictOut, DataclassOut])
def test_every_leaf_of_every_structure_is_compared(model_cls: type[nn.Module]) -> None:
    two = Spec(input="n (j c)", output=("n (j c)", "n (j c)"), skeleton="h36m", negate=(0,))
    spec = two if model_cls is DictOut else POSE
    assert check(model_cls(False), spec, (X,), localize=False).passed
    result = check(model_cls(True), spec, (X,), localize=False)
    assert not result.passed and result.case("eval", "float64").max_rel > 0.1


def test_an_output_the_check_cannot_read_is_an_error() -> None:
    class Weird(nn.Module):
        def forward(self, x: torch.Tensor) -> object:
            return {"pose": x, "meta": object()}

    with pytest.raises(OutputError, match=r"output\['meta'\] is a object, which the "
                                          "equivariance check cannot compare"):
        check(Weird(), POSE, (X,))
    assert [p for p, _ in tensor_leaves({"a": (X, None), "b": [1, "s"]})] == \
        ["output['a'][0]", "output['a'][1]", "output['b'][0]", "output['b'][1]"]


def test_more_tensor_outputs_than_the_spec_annotates_is_an_error() -> None:
    class Two(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    with pytest.raises(OutputError, match=r"output\[1\] is tensor output 1, but the Spec "
                                          "annotates 1"):
        check(Two(), POSE, (X,))


def test_string_keyed_tolerances_are_honoured_and_bad_ones_refused() -> None:
    class Noisy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1e-3 * x.roll(1, -1)  # slightly not equivariant

    loose = check(Noisy(), POSE, (X,), tolerances={"float64": 1.0, "fp32": 1.0}, localize=False)
    assert loose.passed and loose.case("eval", "float64").tolerance == 1.0
    with pytest.raises(ValueError, match="tolerances: 'float33' is not a floating dtype"):
        check(Noisy(), POSE, (X,), tolerances={"float33": 1.0})
    with pytest.raises(ValueError, match=r"tolerances\['float32'\] must be a finite number"):
        check(Noisy(), POSE, (X,), tolerances={"float32": float("nan")})
    with pytest.raises(ValueError, match="n_inputs must be an integer >= 1, got 0"):
        check(Noisy(), POSE, (X,), n_inputs=0)
    with pytest.raises(ValueError, match="dtypes must be floating torch dtypes"):
        check(Noisy(), POSE, (X,), dtypes=(torch.int64,))


class SampleDrop(nn.Module):
    """Stochastic depth written by hand (not named DropPath): one ``torch.rand`` per sample."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = (torch.rand(x.shape[0], 1) > self.p).to(x.dtype)
        return x * keep / (1 - self.p)


class Residual(nn.Module):
    def __init__(self, broken: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(34, 34)
        self.drop = SampleDrop()
        self.broken = broken

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(torch.tanh(self.fc(x)))
        if self.training and self.broken:  # a train-only path that breaks the symmetry
            y = y + torch.rand(y.shape[-1])
        return x + y


def test_random_ops_draw_the_same_numbers_for_x_and_its_mirror() -> None:
    torch.manual_seed(0)
    chiral = symmetrize(Residual(), POSE, (X,))
    result = check(chiral, localize=False)
    assert result.passed, result
    assert result.case("train", "float64").max_rel < 1e-10


def test_a_broken_train_mode_path_still_fails() -> None:
    torch.manual_seed(0)
    with pytest.raises(ConversionError, match="the constant 'rand_1'.*is not mirror-symmetric"):
        symmetrize(Residual(broken=True), POSE, (X,))  # traced in train mode: refused
    # traced in eval mode the broken path is not seen; the train-mode check still finds it
    chiral = symmetrize(Residual(broken=True).eval(), POSE, (X,), check=False)
    result = check(chiral, localize=False)
    assert result.case("eval", "float64").passed
    assert not result.case("train", "float64").passed


def test_tensors_made_in_forward_follow_the_float64_check() -> None:
    # a bias made in forward, in the default dtype, as authors write it
    made_in_forward = Net(lambda m, x: m.fc(x) + torch.zeros(x.shape[0], 34),
                          fc=nn.Linear(34, 34))
    torch.manual_seed(0)
    chiral = symmetrize(made_in_forward, POSE, (X,))
    assert chiral.symmetrize_report.equivariance_error < 1e-12


def test_a_zero_size_example_is_refused() -> None:
    with pytest.raises(ConversionError, match=r"example_inputs\[0\] of shape \(0, 34\) has no "
                                              "elements"):
        symmetrize(Mirrored(), POSE, (torch.zeros(0, 34),))
