"""The command line, the demo, and README's promises about install and test commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from symmetrize.cli import main
from symmetrize.demo import run_demo

ROOT = Path(__file__).resolve().parents[1]


def test_demo_quick_converts_checks_and_compares(capsys: pytest.CaptureFixture[str]) -> None:
    figures = run_demo(quick=True, progress=False)
    out = capsys.readouterr().out
    assert "symmetrize report: VideoPose3DLike" in out and "equivariance check" in out
    assert "plain + flip TTA" in out and "chiral, exported" in out
    assert figures["check_passed"] and figures["equivariance_fp64"] < 1e-10
    assert figures["equivariance_train_fp64"] < 1e-10
    plain, chiral = figures["plain"], figures["chiral"]
    assert 0.4 < chiral["parameters"] / plain["parameters"] < 0.6
    # flip TTA runs the plain model itself; the export holds the equivariant weights in plain
    # modules: both have exactly the plain model's parameters
    tta, exported = figures["plain + flip TTA"], figures["chiral, exported"]
    assert tta["parameters"] == exported["parameters"] == plain["parameters"]
    for name in ("plain", "plain + flip TTA", "chiral", "chiral, exported"):
        row = figures[name]  # the printed table shows the returned figures
        printed = re.search(rf"^  {re.escape(name)} +([\d,]+) +(\S+) +(\S+) +(\S+)$", out, re.M)
        assert printed is not None, (name, out)
        assert printed.groups() == (f"{row['parameters']:,}", f"{row['mpjpe_mm']:.1f}",
                                    f"{row['p_mpjpe_mm']:.1f}", f"{row['inference_ms']:.1f}")


def test_cli_skeletons_lists_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["skeletons"]) == 0
    out = capsys.readouterr().out
    for name in ("h36m", "humaneva", "coco", "openpose", "ntu", "smpl"):
        assert re.search(rf"^{name}\s", out, re.M), name
    assert "left_hip/right_hip" in out


def test_cli_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="^2$"):
        main(["nonsense"])
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("## ")]
    return re.findall(r"```bash\n(.+?)\n```", head, re.S)


def test_readme_opens_with_two_commands_and_ci_runs_the_second() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("symmetrize demo")
    install, test = commands[1].rsplit(" && ", 1)
    ci = (ROOT / ".ci" / "run").read_text()
    assert install.split(" && ")[-1] in ci  # the same pip install
    assert test in ci  # the same pytest command
    assert "venv" in ci


def test_layers_example_runs() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "chiral_layers.py")],
                            capture_output=True, text=True, timeout=120, check=True)
    errors = [float(m) for m in re.findall(r"= ([0-9.e+-]+)$", result.stdout, re.M)]
    assert len(errors) == 2 and max(errors) < 1e-10, result.stdout


def test_layer_benchmark_smoke_run() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_layers.py"),
                             "--quick", "--rounds", "1"],
                            capture_output=True, text=True, timeout=300, check=True)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "ms" not in line]
    names = [row.split("|")[1].strip() for row in rows]
    for layer in ("Conv1d", "Linear", "LSTM", "GRU", "BatchNorm1d"):
        assert any(name.startswith(layer) for name in names), (layer, result.stdout)
    ratios = [float(row.split("|")[4]) for row in rows]
    assert all(r > 0 for r in ratios)


def test_conversion_benchmark_smoke_run() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_convert.py"),
                             "--quick", "--only", "videopose3d"],
                            capture_output=True, text=True, timeout=300, check=True)
    row = json.loads(next(line for line in result.stdout.splitlines()
                          if line.startswith('{"name": "videopose3d"')))
    assert 0.45 < row["parameter_ratio"] < 0.6, row
    assert row["fp64_eval"] < 1e-10 and row["fp64_train"] < 1e-10, row
    assert row["convert_s_b2"] > 0 and row["peak_mb_above_model"] >= 0, row


def test_training_benchmark_smoke_run() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"),
                             "--quick", "--channels", "68"],
                            capture_output=True, text=True, timeout=300, check=True)
    ratio = re.search(r"chiral/plain: parameters ([0-9.]+), steps/s ([0-9.]+)", result.stdout)
    assert ratio is not None, result.stdout
    assert 0.45 < float(ratio.group(1)) < 0.6 and float(ratio.group(2)) > 0
