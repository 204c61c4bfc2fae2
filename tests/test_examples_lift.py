"""examples/lift_3d.py runs end to end (smoke scale) and reports every variant."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "lift.json"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "lift_3d.py"), "--quick",
                             "--seeds", "0", "--json", str(out), *extra],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| chiral (skeleton Reps, tanh) |" in result.stdout
    return json.loads(out.read_text())


def test_lift_example_reports_every_variant(tmp_path: Path) -> None:
    figures = _run(tmp_path, "--data", str(tmp_path / "absent"))  # procedural fallback
    scores = figures["scores"]
    assert set(scores) == {"plain", "plain + flip augmentation", "plain + flip aug + flip TTA",
                           "chiral (skeleton Reps, tanh)", "chiral (regular Reps, ReLU)",
                           "PoseFormer-style + flip aug + flip TTA",
                           "chiral PoseFormer-style (regular Reps)"}
    for runs in scores.values():
        assert len(runs) == 1 and 0 < runs[0]["mpjpe_mm"] < 5000
    assert scores["chiral (skeleton Reps, tanh)"][0]["parameters"] < \
        0.7 * scores["plain"][0]["parameters"]
    transformer = [scores[name][0]["parameters"] for name in (
        "PoseFormer-style + flip aug + flip TTA", "chiral PoseFormer-style (regular Reps)")]
    assert 0.45 < transformer[1] / transformer[0] < 0.55
    assert figures["data"].startswith("synthetic")
