"""Spec features: free outputs, invariant features concatenated on an axis (``(j c) + k``), a
skeleton per input; each through a conversion and the check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize import ConversionError, Rep, Spec, check, symmetrize
from symmetrize.layout import parse_layout
from tests.helpers import Net


class PoseAndState(nn.Module):
    """Returns the forecast and the encoder's last hidden state (no prescribed action)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(34, 40, batch_first=True)
        self.out = nn.Linear(40, 34)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seq, h = self.gru(x)
        return self.out(seq), h[-1]


def test_a_free_output_transforms_as_the_conversion_chose() -> None:
    spec = Spec(input="n t (j c)", output=("n t (j c)", "free"), skeleton="h36m", negate=(0,))
    assert spec.is_free_output(1) and not spec.is_free_output(0)
    with pytest.raises(ValueError, match="output 1 is 'free'"):
        spec.output_axes(1, (2, 40))
    torch.manual_seed(0)
    chiral = symmetrize(PoseAndState(), spec, (torch.randn(2, 5, 34),))
    free = chiral.symmetrize_report.free_outputs
    assert set(free) == {1} and free[1][1].size == 40 and not free[1][1].is_trivial
    result = check(chiral, localize=False)
    assert result.passed and result.case("train", "float64").max_rel < 1e-10
    # a plain model cannot be checked against a free output: nothing says how it transforms
    with pytest.raises(ValueError, match=r"output\[1\] is a free output"):
        check(PoseAndState(), spec, (torch.randn(2, 5, 34),))


def test_free_is_for_outputs_only() -> None:
    with pytest.raises(ValueError, match="'free' is for outputs only"):
        Spec(input="free", output="n t j c", skeleton="h36m")


def test_pose_plus_invariant_features_on_one_axis() -> None:
    spec = Spec(input="n t (j c) + k", output="n t (j c)", skeleton="h36m", negate=(0,),
                sizes={"c": 2})
    axes = spec.input_axes(0, (4, 7, 49))
    assert axes[2] == Rep.pose("h36m", 2) + Rep.trivial(15)
    x = torch.randn(4, 7, 49)
    mirrored = spec.mirror_input(0, x)
    torch.testing.assert_close(mirrored[..., 34:], x[..., 34:])  # the one-hot does not move
    assert parse_layout("n t (j c) + k").terms == ((("n",),), (("t",),), (("j", "c"), ("k",)))
    assert str(parse_layout("n t (j c)+k")) == "n t (j c) + k"
    with pytest.raises(ValueError, match=r"group '\(j c\) \+ k' flattens 2 axes of unknown "
                                         r"size \('c', 'k'\).*Spec\(sizes=\{'c': \.\.\.\}\)"):
        Spec(input="n t (j c) + k", output=None, skeleton="h36m")
    with pytest.raises(ValueError, match="'\\+' without a term on its right"):
        parse_layout("n t (j c) +")
    with pytest.raises(ValueError, match="'\\+' without a term on its left"):
        parse_layout("+ k")
    with pytest.raises(ValueError, match="after the 15 entries of the other terms is not a "
                                         "multiple of the 17 joints"):
        Spec(input="n (j c) + k", output=None, skeleton="h36m", sizes={"k": 15}) \
            .input_axes(0, (2, 50))


class TwoSkeletons(nn.Module):
    """2D COCO keypoints and a 3D H36M pose in, a 3D H36M pose out."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(17 * 2 + 17 * 3, 17 * 3)

    def forward(self, keypoints: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        features = torch.cat([keypoints.flatten(1), pose.flatten(1)], dim=1)
        return self.fc(features).view(-1, 17, 3)


def test_a_skeleton_per_input() -> None:
    spec = Spec(input=("n j c", "n j c"), output="n j c", skeleton=("coco", "h36m"),
                output_skeleton="h36m", negate=(0,))
    assert [s.name for s in spec.skeletons] == ["coco", "h36m"]
    assert spec.input_axes(0, (2, 17, 2))[1] == Rep.joints("coco")
    assert spec.input_axes(1, (2, 17, 3))[1] == Rep.joints("h36m")
    assert Spec.from_dict(spec.to_dict()) == spec
    torch.manual_seed(0)
    chiral = symmetrize(TwoSkeletons(), spec, (torch.randn(2, 17, 2), torch.randn(2, 17, 3)))
    assert chiral.symmetrize_report.equivariance_error < 1e-12
    with pytest.raises(ValueError, match="skeleton lists 3 skeletons but the Spec has 2 inputs"):
        Spec(input=("n j c", "n j c"), output=None, skeleton=("coco", "h36m", "ntu"))


def test_spec_files_carry_the_new_features(tmp_path) -> None:
    spec = Spec(input=("n t (j c) + k", "n j c"), output=("n t (j c)", "free"),
                skeleton=("h36m", "coco"), negate=(0,), sizes={"c": 2})
    path = tmp_path / "spec.json"
    import json
    path.write_text(json.dumps(spec.to_dict()))
    assert Spec.load(path) == spec
    assert spec.to_dict()["output"] == ["n t (j c)", "free"]
    with pytest.raises(ValueError, match=r"spec key 'sizes' must be a table"):
        Spec.from_dict({**spec.to_dict(), "sizes": [2]})


def test_negative_negate_is_refused_everywhere() -> None:
    with pytest.raises(ValueError, match=r"negate = \(-1,\): coordinate -1 is negative"):
        Spec(input="n j c", output="n j c", skeleton="h36m", negate=(-1,))
    with pytest.raises(ValueError, match=r"spec key 'negate'.*coordinate -1 is negative"):
        Spec.from_dict({"input": "n j c", "output": "n j c", "skeleton": "h36m",
                        "negate": [-1]})


def test_a_free_output_that_mixes_axes_is_refused_at_conversion() -> None:
    heads = Net(lambda m, x: m.fc(x).view(-1, 4, 9), fc=nn.Linear(34, 36))
    spec = Spec(input="n (j c)", output="free", skeleton="h36m", negate=(0,))
    with pytest.raises(ConversionError, match="output 0 is free, but the mirror mixes several "
                                              "of its axes"):
        symmetrize(heads, spec, (torch.randn(2, 34),), hidden="skeleton")
