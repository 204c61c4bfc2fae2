"""The command line, the demo, and README's promises about install and test commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from symmetrize.cli import main
from symmetrize.demo import run_demo

ROOT = Path(__file__).resolve().parents[1]


def test_demo_quick_is_equivariant_and_learns(capsys: pytest.CaptureFixture[str]) -> None:
    figures = run_demo(quick=True)
    out = capsys.readouterr().out
    assert "equivariance" in out and "chiral/plain parameters" in out
    assert figures["equivariance_eval"] < 1e-10
    assert figures["equivariance_train"] < 1e-10
    assert 0.4 < figures["param_ratio"] < 0.7
    assert figures["chiral_loss_end"] < figures["chiral_loss_start"]


def test_cli_skeletons_lists_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["skeletons"]) == 0
    out = capsys.readouterr().out
    for name in ("h36m", "humaneva", "coco", "openpose", "ntu", "smpl"):
        assert re.search(rf"^{name}\s", out, re.M), name
    assert "left_hip/right_hip" in out


def test_cli_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2


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
                             "--quick", "--only", "gru-classifier"],
                            capture_output=True, text=True, timeout=300, check=True)
    row = next(line for line in result.stdout.splitlines() if line.startswith("gru-classifier"))
    cells = row.split()
    ratio, fp32, fp64 = float(cells[4]), float(cells[5]), float(cells[6])
    assert 0.45 < ratio < 0.6 and fp32 < 1e-5 and fp64 < 1e-12, result.stdout


def test_training_benchmark_smoke_run() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"),
                             "--quick", "--channels", "68"],
                            capture_output=True, text=True, timeout=300, check=True)
    ratio = re.search(r"chiral/plain: parameters ([0-9.]+), steps/s ([0-9.]+)", result.stdout)
    assert ratio is not None, result.stdout
    assert 0.45 < float(ratio.group(1)) < 0.6 and float(ratio.group(2)) > 0
