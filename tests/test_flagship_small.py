"""Every flagship architecture of benchmarks/bench_convert.py, at a small size, converted with the
Spec alone (no hidden hint), exact in float64 in eval and train mode. The published sizes are
measured in the benchmark, not here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from symmetrize import Spec, check, symmetrize
from tests.action_models import Model
from tests.helpers import Net
from tests.pose_models import ActionConditionedSeq2Seq, LearnedStateGRU, TemporalModel
from tests.transformer_models import DualStreamLike, MixSTELike, PoseFormerLike

LIFT = Spec.preset("h36m")
SEQ = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
ONE_HOT = Spec(input="n t (j c) + k", output="n t (j c)", skeleton="h36m", negate=(0,),
               sizes={"c": 2})

CASES = {
    "videopose3d": (lambda: TemporalModel(filter_widths=(3, 3), channels=68), LIFT,
                    (2, 9, 17, 2)),
    "poseformer": (lambda: PoseFormerLike(frames=9, dim=8, depth=2, heads=4), LIFT,
                   (2, 9, 17, 2)),
    "mixste": (lambda: MixSTELike(frames=9, dim=16, depth=2, heads=2), LIFT, (2, 9, 17, 2)),
    "dstformer": (lambda: DualStreamLike(frames=8, dim=16, depth=2, heads=2), LIFT,
                  (2, 8, 17, 3)),
    "stgcn-kinetics": (lambda: Model(in_channels=3, num_class=5, graph_layout="openpose",
                                     channels=(16, 16, 32), temporal_kernel_size=3),
                       Spec.preset("openpose-action"), (2, 3, 8, 18, 2)),
    "stgcn-ntu": (lambda: Model(in_channels=3, num_class=5, channels=(16, 16, 32),
                                temporal_kernel_size=3), Spec.preset("ntu-action"),
                  (2, 3, 8, 25, 2)),
    "gru-learned-h0": (lambda: LearnedStateGRU(hidden=32, horizon=3), SEQ, (2, 6, 34)),
    "seq2seq-one-hot": (lambda: ActionConditionedSeq2Seq(hidden=32, horizon=3), ONE_HOT,
                        (2, 6, 49)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_converts_with_the_spec_alone_and_is_exact(name: str) -> None:
    make, spec, shape = CASES[name]
    torch.manual_seed(0)
    model = make()
    chiral = symmetrize(model, spec, (torch.randn(shape),))
    report = chiral.symmetrize_report
    assert report.options["hidden"] == "auto"
    assert report.equivariance_error < 1e-10
    assert 0.45 < report.parameter_ratio < 0.75, report.parameter_ratio
    result = check(chiral, localize=False, n_inputs=2)
    for mode in ("eval", "train"):
        assert result.case(mode, "float64").max_rel <= 1e-10, result


def test_transformers_get_regular_pairs_and_conv_nets_the_skeleton_layout() -> None:
    torch.manual_seed(0)
    mix = symmetrize(MixSTELike(frames=9, dim=16, depth=2, heads=2), LIFT,
                     (torch.randn(2, 9, 17, 2),), check=False).symmetrize_report
    assert any(n.startswith("regular pairs: LayerNorm") and "embed" in n for n in mix.notes)
    assert not any(n.startswith("skeleton layout") for n in mix.notes)
    conv = symmetrize(TemporalModel(filter_widths=(3, 3), channels=68), LIFT,
                      (torch.randn(2, 9, 17, 2),), check=False).symmetrize_report
    assert any(n.startswith("skeleton layout (auto") for n in conv.notes)
    assert conv.switched  # ReLU -> tanh, as in the paper


def test_joints_folded_into_the_batch_tie_stochastic_depth() -> None:
    torch.manual_seed(0)
    chiral = symmetrize(MixSTELike(frames=9, dim=16, depth=2, heads=2, drop_path=0.5), LIFT,
                        (torch.randn(2, 9, 17, 2),))
    tied = type(chiral.tte[1].drop_path).__name__
    assert tied == "TiedDropPath"
    assert type(chiral.ste[1].drop_path).__name__ == "DropPath"  # samples are frames: untied
    x = torch.randn(2, 9, 17, 2, dtype=torch.float64)
    chiral = chiral.double().train()
    torch.manual_seed(1)
    y = chiral(x)
    torch.manual_seed(1)
    y_mirror = chiral(LIFT.mirror_input(0, x))
    torch.testing.assert_close(y_mirror, LIFT.mirror_output(0, y), rtol=0, atol=1e-12)


def test_learned_initial_state_is_mirror_shared() -> None:
    torch.manual_seed(0)
    chiral = symmetrize(LearnedStateGRU(hidden=32, horizon=2), SEQ, (torch.randn(2, 5, 34),))
    assert chiral.symmetrize_report.shared == ["h0"]
    assert chiral.h0.shape == (2, 1, 32)


def test_unconvertible_layout_errors_still_name_the_node() -> None:
    # keeps joints whose twins it drops
    flat = Net(lambda m, x: m.fc(x[:, :10]), fc=nn.Linear(10, 34))
    with pytest.raises(ValueError, match=r"node 'getitem'.*test_flagship_small.py:\d+.*drops "
                                         r"its mirror image.*keep both joints"):
        symmetrize(flat, Spec(input="n (j c)", output="n (j c)", skeleton="h36m",
                                negate=(0,)), (torch.randn(2, 34),))
