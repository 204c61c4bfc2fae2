"""examples/recognise_actions.py: plain and chiral ST-GCN action recognisers, smoke runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "recognise_actions.py"


def run_quick(tmp_path: Path, *extra: str) -> tuple[str, dict]:
    """Run the script with ``--quick --seeds 0``; its stdout and its ``--json`` figures."""
    out = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seeds", "0",
                             "--device", "cpu", "--json", str(out), *extra],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(out.read_text())


def check_figures(stdout: str, figures: dict) -> None:
    assert "| model | seed | top-1 acc |" in stdout and "| **chiral** | mean ± std |" in stdout
    runs = {row["model"]: row for row in figures["runs"]}
    assert set(runs) == {"plain", "chiral"}
    for row in runs.values():
        assert 0.0 <= row["top1"] <= 1.0 and 0.0 <= row["balanced"] <= 1.0
        assert row["parameters"] > 0 and row["train_s"] > 0
    assert runs["chiral"]["mirror_gap_f64"] < 1e-10
    assert runs["plain"]["mirror_gap_f64"] > 1e-8  # an ordinary network is not invariant
    assert runs["chiral"]["parameters"] < runs["plain"]["parameters"]


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "cmu" / "MANIFEST.tsv").is_file(),
                    reason="the CMU takes are not in ../shared/data/cmu")
def test_quick_run_on_cmu(tmp_path: Path) -> None:
    stdout, figures = run_quick(tmp_path)
    assert "CMU mocap" in stdout
    assert figures["classes"] == ["walk", "run", "jump", "dance", "basketball", "other"]
    assert all(n["test"] > 0 for n in figures["clips"].values())  # the take split tests all
    check_figures(stdout, figures)


def test_quick_run_falls_back_to_procedural_motion(tmp_path: Path) -> None:
    stdout, figures = run_quick(tmp_path, "--data", "/nonexistent")
    assert "note: /nonexistent/MANIFEST.tsv not found" in stdout
    assert figures["classes"] == ["walk", "run", "jump", "box"]
    check_figures(stdout, figures)
