"""Folders of takes as users have them: BVH of several namings mixed with ASF/AMC, split by
subject, through ``load_motion_split`` and ``symmetrize finetune`` end to end; another naming
with ``--joint-map``; the npz path on every skeleton preset. The folders are built in
``tmp_path`` from ``../shared/data`` (symlinks) at test time; tests skip without it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from symmetrize import Skeleton
from symmetrize.cli import main
from symmetrize.data import DataError, builtin_maps, load_takes
from symmetrize.data.archives import ArchiveError, save_positions_3d
from symmetrize.data.sources import load_motion_split

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = f"{ROOT / 'tests' / 'pose_models.py'}:TemporalModel"
MIXED = {"02_01.bvh": DATA / "cmu" / "02_01.bvh", "09_05.bvh": DATA / "cmu" / "09_05.bvh",
         "131_02.bvh": DATA / "cmu-formats" / "131_02.bvh",
         "01.asf": DATA / "cmu-formats" / "01.asf", "01_01.amc": DATA / "cmu-formats" / "01_01.amc",
         "README.md": DATA / "cmu-formats" / "README.md"}

needs_data = pytest.mark.skipif(not all(p.is_file() for p in MIXED.values()),
                                reason=f"CMU takes not found under {DATA}")


def _folder(tmp_path: Path, names: list[str] | None = None) -> Path:
    folder = tmp_path / "takes"
    folder.mkdir(parents=True)
    for name in names or list(MIXED):
        (folder / name).symlink_to(MIXED[name])
    return folder


@needs_data
def test_a_mixed_folder_loads_every_naming_in_metres(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    loaded = load_takes(folder)
    assert [(t.subject, t.path.name, name) for t, _, name in loaded] == [
        ("01", "01_01.amc", "cmu-asf"), ("02", "02_01.bvh", "cmu-cgspeed"),
        ("09", "09_05.bvh", "cmu-cgspeed"), ("131", "131_02.bvh", "cmu-chest")]
    h36m = Skeleton.preset("h36m")
    for take, motion, _ in loaded:
        assert motion.names == h36m.names and motion.fps == 120.0
        assert np.isfinite(motion.positions).all()
        shin = np.linalg.norm(motion.positions[:, 5] - motion.positions[:, 6], axis=-1)
        assert 0.3 < shin.min() and shin.max() < 0.6, take.path.name  # metres
        height = motion.positions[..., 1].max(1) - motion.positions[..., 1].min(1)
        assert 1.0 < np.median(height) < 2.0, take.path.name
    split = load_motion_split(str(folder), ["09"])
    assert len(split.train) == 3 and len(split.val) == 1 and split.skeleton == "h36m"
    assert len(split.val[0]) == (len(loaded[2][1]) + 1) // 2  # 120 fps -> every 2nd frame
    assert "cmu-asf x1, cmu-cgspeed x2, cmu-chest x1" in split.description


@needs_data
def test_a_mixed_folder_trains_through_the_cli(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path)
    out = tmp_path / "chiral.pt"
    code = main(["finetune", MODELS, "--data", str(folder), "--val-subjects", "09", "--epochs",
                 "1", "--max-steps", "3", "--cameras", "1", "--no-progress", "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "3 training and 1 validation sequences" in printed.out
    mpjpe = float(re.search(r"validation MPJPE ([\d.]+) mm", printed.out).group(1))
    assert 0 < mpjpe < 2000 and out.is_file()


def _renamed_take(folder: Path) -> Path:
    """131_02.bvh with every joint renamed ``mixamorig:<name>`` (a naming no built-in map
    knows)."""
    text = MIXED["131_02.bvh"].read_text()
    renamed = re.sub(r"^(\s*(?:ROOT|JOINT)\s+)(\S+)", r"\1mixamorig:\2", text, flags=re.M)
    path = folder / "77_01.bvh"
    path.write_text(renamed)
    return path


def _renamed_map(path: Path) -> Path:
    chest = builtin_maps()[1]
    lines = ['name = "mixamo-like"', 'target = "h36m"', "", "[bvh]",
             f"metres_per_unit = {chest.metres_per_unit!r}", "", "[joints]"]
    for joint, terms in chest.joints:
        inner = ", ".join(f'"mixamorig:{name}" = {weight!r}' for name, weight in terms)
        lines.append(f"{joint} = {{ {inner} }}")
    path.write_text("\n".join(lines) + "\n")
    return path


@needs_data
def test_another_naming_needs_a_joint_map(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, ["02_01.bvh", "09_05.bvh"])
    take = _renamed_take(folder)
    args = ["finetune", MODELS, "--data", str(folder), "--val-subjects", "09", "--epochs", "1",
            "--max-steps", "2", "--no-progress", "-o", str(tmp_path / "m.pt")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{take}: no joint map fits its joints" in err and "'cmu-chest'" in err
    assert "hint: write a joint map" in err and "--joint-map" in err
    joint_map = _renamed_map(tmp_path / "mixamo.toml")
    assert main([*args, "--joint-map", str(joint_map)]) == 0
    assert "mixamo-like x1" in capsys.readouterr().out
    split = load_motion_split(str(folder), ["09"], joint_map=joint_map)
    plain = load_motion_split(str(_folder(tmp_path / "b", ["131_02.bvh", "09_05.bvh"])), ["09"])
    np.testing.assert_array_equal(split.train[-1], plain.train[0])  # same take, same numbers


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no takes")
    with pytest.raises(DataError, match="holds no .bvh or .amc takes"):
        load_motion_split(str(tmp_path))
    (tmp_path / "05_01.amc").write_text("1\nroot 0 0 0 0 0 0\n")
    with pytest.raises(DataError, match=r"05_01.amc: no ASF skeleton 05.asf beside this AMC"):
        load_takes(tmp_path)
    with pytest.raises(ValueError, match="procedural motion is on the h36m skeleton"):
        load_motion_split("synthetic:2", skeleton="humaneva")
    with pytest.raises(ValueError, match="--data 'synthetic:2' is not a folder of takes"):
        load_motion_split("synthetic:2", joint_map="cmu-chest")


@pytest.mark.parametrize("preset", Skeleton.presets())
def test_npz_archives_on_every_preset(tmp_path: Path, preset: str) -> None:
    joints = len(Skeleton.preset(preset))
    raw = 32 if preset == "h36m" else joints
    rng = np.random.default_rng(0)
    archive = tmp_path / f"data_3d_{preset}.npz"
    save_positions_3d(archive, {s: {"Walk": rng.normal(size=(40, raw, 3))} for s in ("A", "B")})
    split = load_motion_split(str(archive), ["B"], skeleton=preset)
    assert split.skeleton == preset and split.train[0].shape == (40, joints, 3)
    assert len(split.val) == 1
    if preset != "h36m":
        wrong = tmp_path / "wrong.npz"
        save_positions_3d(wrong, {"A": {"Walk": rng.normal(size=(5, joints + 1, 3))}})
        with pytest.raises(ArchiveError, match=rf"wrong.npz: subject 'A', action 'Walk' has "
                                               rf"{joints + 1} joints, but the skeleton "
                                               rf"'{preset}' has {joints}"):
            load_motion_split(str(wrong), skeleton=preset)


def test_finetune_on_a_humaneva_archive(tmp_path: Path) -> None:
    import torch

    from symmetrize import Spec, check
    from symmetrize.finetune import finetune_lifter
    from symmetrize.train import TrainConfig
    from tests.pose_models import TemporalModel

    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.normal(0, 0.01, size=(3, 70, 15, 3)), axis=1)
    body = rng.normal(0, 0.3, size=(15, 3)) + [0, 1, 0]
    archive = tmp_path / "data_3d_humaneva15.npz"
    save_positions_3d(archive, {s: {"Walk": walk[i] + body} for i, s in enumerate("ABC")})
    torch.manual_seed(0)
    spec = Spec.preset("humaneva")
    model = TemporalModel(num_joints_in=15, num_joints_out=15, filter_widths=(3,), channels=34)
    run = finetune_lifter(model, spec, data=str(archive), config=TrainConfig(
        epochs=1, max_steps=2, batch_size=16, progress=False))
    assert "validation subjects C" in run.description
    assert np.isfinite(run.scores["mpjpe_mm"]) and run.scores["mpjpe_mm"] > 0
    assert check(run.model, spec, n_inputs=2).passed
