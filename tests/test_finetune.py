"""The lifting task end to end: 3D motion -> virtual cameras -> windows -> conversion ->
fine-tuning -> metrics, from Python and from ``symmetrize finetune``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from symmetrize import Spec, check
from symmetrize.cli import main
from symmetrize.data.archives import save_positions_3d
from symmetrize.data.lifting import lifting_pairs
from symmetrize.data.sources import load_motion_split
from symmetrize.data.synthetic import generate_motion
from symmetrize.data.windows import flip_pose
from symmetrize.finetune import finetune_lifter
from symmetrize.io import load_converted
from symmetrize.train import TrainConfig
from tests.pose_models import TemporalModel

ROOT = Path(__file__).resolve().parents[1]
CMU = ROOT.parent / "shared" / "data" / "cmu"
MODELS = f"{ROOT / 'tests' / 'pose_models.py'}:TemporalModel"


def test_lifting_pairs_film_motion_in_the_camera_frame() -> None:
    motion = generate_motion(action="walk", frames=60, rng=1, in_place=True)
    pairs = lifting_pairs([motion], cameras_per_sequence=3, rng=2)
    assert len(pairs) == 3
    for keypoints, pose in pairs:
        assert keypoints.shape == (60, 17, 2) and pose.shape == (60, 17, 3)
        assert np.abs(pose[:, 0]).max() == 0  # root-relative
        assert np.abs(keypoints).max() < 1.5  # on screen (normalised coordinates)
        # bone lengths survive the change of frame
        bones = np.linalg.norm(pose[:, 1] - pose[:, 0], axis=-1)
        assert np.ptp(bones) < 1e-5
    with pytest.raises(ValueError, match="sequence 0: NaN/inf coordinates"):
        lifting_pairs([np.full((4, 17, 3), np.nan)])


def test_the_mirror_of_a_filmed_scene_is_the_same_flip_on_both_sides() -> None:
    motion = generate_motion(action="box", frames=20, rng=3, in_place=True)
    (keypoints, pose), = lifting_pairs([motion], 1, rng=4)
    # a model that is exact on the pair is exact on the flipped pair: both sides flip alike
    flipped_2d, flipped_3d = flip_pose(keypoints, "h36m"), flip_pose(pose, "h36m")
    assert not np.allclose(flipped_3d, pose, atol=1e-2)  # the motion is chiral
    assert np.allclose(flip_pose(flipped_2d, "h36m"), keypoints)
    assert np.allclose(flipped_3d[:, 0], 0)


def test_motion_sources_split_by_subject(tmp_path: Path) -> None:
    split = load_motion_split("synthetic:4", seed=0)
    assert len(split.train) == 4 and len(split.val) == 1 and split.train[0].shape[1:] == (17, 3)
    rng = np.random.default_rng(0)
    archive = tmp_path / "data_3d_h36m.npz"
    save_positions_3d(archive, {s: {"Walking": rng.normal(size=(30, 32, 3)),
                                    "Eating": rng.normal(size=(20, 32, 3))}
                                for s in ("S1", "S5", "S9")})
    split = load_motion_split(str(archive), ["S9"])
    assert len(split.train) == 4 and len(split.val) == 2 and split.val[0].shape[1] == 17
    with pytest.raises(ValueError, match="no subject 'S7'"):
        load_motion_split(str(archive), ["S7"])
    with pytest.raises(ValueError, match="training split is empty"):
        load_motion_split(str(archive), ["S1", "S5", "S9"])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_motion_split(str(tmp_path / "missing"))


@pytest.mark.skipif(not CMU.is_dir(), reason="needs ../shared/data/cmu")
def test_cmu_takes_split_by_subject() -> None:
    split = load_motion_split(str(CMU), ["09"])
    assert split.val and split.train
    assert all(seq.shape[1:] == (17, 3) and np.isfinite(seq).all() for seq in split.val)


def test_finetune_lifter_trains_an_equivariant_model() -> None:
    torch.manual_seed(0)
    config = TrainConfig(epochs=2, batch_size=64, progress=False, seed=0)
    run = finetune_lifter(TemporalModel(filter_widths=(3, 3), channels=68), data="synthetic:4",
                          config=config)
    assert run.result.epochs_done == 2 and run.result.train_loss[-1] < run.result.train_loss[0]
    assert 0 < run.scores["p_mpjpe_mm"] < run.scores["mpjpe_mm"] < 1000
    assert check(run.model, Spec.preset("h36m"), n_inputs=2).passed


def test_cli_finetune_saves_a_model_that_reloads(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, ckpt = tmp_path / "chiral.pt", tmp_path / "run.ckpt"
    args = ["finetune", MODELS, "--data", "synthetic:3", "--epochs", "1", "--max-steps", "3",
            "--checkpoint", str(ckpt), "--no-progress", "-o", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "validation MPJPE" in printed and "(max_steps)" in printed
    model = load_converted(out, TemporalModel())
    assert check(model, n_inputs=2).passed
    assert main([*args, "--resume", "--max-steps", "5"]) == 0  # continues from step 3
    assert "5 steps" in capsys.readouterr().out
    code = main(["finetune", MODELS, "--data", str(tmp_path / "nothing"), "-o", str(out)])
    assert code == 2 and "no such file or folder" in capsys.readouterr().err


def test_baseline_trains_the_plain_model_with_flips() -> None:
    torch.manual_seed(1)
    model = TemporalModel(filter_widths=(3, 3), channels=68)
    config = TrainConfig(epochs=2, batch_size=64, progress=False, seed=1)
    run = finetune_lifter(model, data="synthetic:4", config=config, variant="plain+flip")
    assert type(run.model.expand_conv) is torch.nn.Conv1d  # not converted
    assert run.result.train_loss[-1] < run.result.train_loss[0]
    assert 0 < run.scores["mpjpe_mm"] < 1000 and 0 < run.scores["mpjpe_tta_mm"] < 1000
    with pytest.raises(ValueError, match="cannot start from a converted"):
        finetune_lifter(model, data="synthetic:1", load="x.pt", variant="plain")
    with pytest.raises(ValueError, match="variant must be one of"):
        finetune_lifter(model, data="synthetic:1", variant="mirror")


def test_batch_flip_mirrors_inputs_and_targets_together() -> None:
    from symmetrize.data.augment import BatchFlip

    x, y = torch.randn(64, 9, 17, 2), torch.randn(64, 1, 17, 3)
    out = BatchFlip("h36m", p=1.0)([x, y], torch.Generator().manual_seed(0))
    assert torch.equal(out[0], flip_pose(x, "h36m")) and torch.equal(out[1], flip_pose(y, "h36m"))
    assert all(torch.equal(a, b) for a, b in zip(
        BatchFlip("h36m", p=0.0)([x, y], torch.Generator()), [x, y], strict=True))
    half = BatchFlip("h36m")
    a = half([x, y], torch.Generator().manual_seed(3))
    b = half([x, y], torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0])  # the draws are the generator's
    flipped = (a[1] != y).flatten(1).any(1)
    assert torch.equal(flipped, (a[0] != x).flatten(1).any(1)) and 10 < flipped.sum() < 54
