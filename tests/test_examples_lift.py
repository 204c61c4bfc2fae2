"""examples/lift_3d.py: the lifting protocol runs end to end (smoke scale), reports every
variant with early stopping, and scores every frame exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import lift_3d

from symmetrize.data.sources import MotionSplit, load_motion_split
from symmetrize.demo import VideoPose3DLike


def test_lift_example_reports_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "lift.json"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "lift_3d.py"), "--quick",
                             "--seeds", "0", "--threads", "1", "--json", str(out), "--data",
                             str(tmp_path / "absent")],  # procedural fallback
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "not found: using procedural motion" in result.stderr
    assert "| chiral (skeleton Reps, tanh) |" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["data"].startswith("synthetic") and figures["model"] == "tcn27"
    rows = figures["rows"]
    assert list(rows) == lift_3d.rows("tcn27")  # every default row, not the eigen one
    assert "chiral (eigen layout, tanh)" not in rows
    settings = lift_3d.QUICK
    for name, runs in rows.items():
        (run,) = runs
        assert 0 < run["scores"]["mpjpe_mm"] < 5000
        assert run["scores"]["p_mpjpe_mm"] <= run["scores"]["mpjpe_mm"] + 1e-6
        steps = [s for s, _ in run["curve"]]
        assert steps == list(range(settings["eval_every"], run["steps"] + 1,
                                   settings["eval_every"]))
        best = min(v for _, v in run["curve"])
        assert dict(run["curve"])[run["best_step"]] == best  # the kept weights are the best
        assert run["tta"] == name.endswith("flip TTA")
    assert rows["plain + flip aug + flip TTA"][0]["best_step"] == \
        rows["plain + flip aug"][0]["best_step"]  # the same model, scored two ways
    assert rows["chiral (skeleton Reps, tanh)"][0]["parameters"] < \
        0.7 * rows["plain"][0]["parameters"]


def test_poseformer_takes_only_the_regular_layout() -> None:
    assert lift_3d.trainings("poseformer") == ["plain", "plain+flip", "chiral:regular"]
    assert "chiral (skeleton Reps, tanh)" not in lift_3d.rows("poseformer")
    assert len(lift_3d.rows("tcn27")) == 5 and len(lift_3d.trainings("tcn81")) == 4


def test_eigen_layout_trains_only_on_request(tmp_path: Path, capsys: pytest.CaptureFixture
                                             ) -> None:
    args = lift_3d.parse_args(["--quick", "--seeds", "0", "--data", str(tmp_path / "absent"),
                               "--trainings", "plain", "chiral:eigen"])
    figures = lift_3d.run(args)
    assert list(figures["rows"]) == ["plain", "chiral (eigen layout, tanh)"]
    (eigen,) = figures["rows"]["chiral (eigen layout, tanh)"]
    (plain,) = figures["rows"]["plain"]
    assert eigen["parameters"] < 0.7 * plain["parameters"]
    assert 0 < eigen["scores"]["mpjpe_mm"] < 5000
    with pytest.raises(SystemExit):
        lift_3d.parse_args(["--model", "poseformer", "--trainings", "chiral:eigen"])
    assert "--model poseformer cannot take it" in capsys.readouterr().err


def test_whole_sequence_prediction_equals_one_window_per_frame() -> None:
    torch.manual_seed(0)
    model = VideoPose3DLike(channels=16).double().eval()
    rng = np.random.default_rng(0)
    pairs = [(rng.normal(size=(n, 17, 2)), rng.normal(size=(n, 17, 3))) for n in (5, 31)]
    whole, target = lift_3d.predict(model, pairs, multi_frame=True)
    single, _ = lift_3d.predict(model, pairs, multi_frame=False, batch=7)
    assert whole.shape == (36, 17, 3)
    assert torch.allclose(whole, single, atol=1e-10, rtol=0)
    assert torch.equal(target, torch.cat([torch.as_tensor(p[1]) for p in pairs]))
    scores = lift_3d.scores(whole, target)
    per_joint = (whole - target).norm(dim=-1).mean(0) * 1000
    assert np.allclose(scores["per_joint_mm"], per_joint.tolist())
    assert abs(scores["mpjpe_mm"] - per_joint.mean().item()) < 1e-9


def test_demo_full_trains_to_the_plateau(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from symmetrize import demo

    tiny = {**demo.FULL_PROTOCOL, "channels": 34, "max_steps": 6, "eval_every": 2,
            "patience": 1, "train_cameras": 1, "stop_cameras": 1}
    monkeypatch.setattr(demo, "FULL_PROTOCOL", tiny)
    figures = demo.run_demo(full=True, data="synthetic:3", progress=False)
    out = capsys.readouterr().out
    assert "34 channels" in out and out.count("best step") == 2
    assert figures["check_passed"] and figures["chiral"]["mpjpe_mm"] > 0
    config, options = demo._full_settings(_split3(), 0, False)
    assert (config.eval_every, config.patience, config.keep_best) == (2, 1, True)
    assert options == {"cameras": 1, "val_cameras": 1, "frames_out": tiny["frames_out"]}
    from symmetrize.data.lifting import lifting_pairs
    from symmetrize.data.windows import PoseWindows

    windows = PoseWindows(lifting_pairs(_split3().train, 1, 0), 27, tiny["frames_out"])
    per_epoch = -(-len(windows) // tiny["batch"])  # the steps fit takes per epoch
    assert abs(config.lr_decay ** (tiny["lr_half_life"] / per_epoch) - 0.5) < 1e-12
    with pytest.raises(ValueError, match="drop quick and epochs"):
        demo.run_demo(full=True, epochs=2)


def _split3() -> MotionSplit:
    return load_motion_split("synthetic:3", None, 0)
