"""Smoke runs of ``examples/forecast_2d.py`` (2D pose forecasting, plain against chiral)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "forecast_2d.py"


def _run(tmp_path: Path, *extra: str) -> tuple[str, dict]:
    figures = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seeds", "0",
                             "--json", str(figures), *extra],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(figures.read_text())


def _table_rows(stdout: str) -> dict[str, list[str]]:
    """The Markdown table's rows by model name (per-seed rows and the baseline)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and not line.startswith("| model") and len(cells) > 3:
            rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize("data", [None, "/nonexistent"], ids=["default-data", "procedural"])
def test_forecast_example_quick_run(tmp_path: Path, data: str | None) -> None:
    stdout, figures = _run(tmp_path, *(["--data", data] if data else []))
    if data is not None:
        assert "note:" in stdout and "procedural motion" in stdout, stdout
    assert "| model | seed | PCK@0.05 | PCK@0.1 | 2D error |" in stdout, stdout
    rows = _table_rows(stdout)
    assert {"plain", "chiral", "**plain**", "**chiral**", "zero-velocity"} <= set(rows), stdout
    for name in ("plain", "chiral", "zero-velocity"):
        pcks = [float(rows[name][2]), float(rows[name][3])]
        assert all(0.0 <= v <= 1.0 for v in pcks), rows[name]
    match = re.search(r"chiral equivariance error .*= ([0-9.e+-]+)$", stdout, re.MULTILINE)
    assert match is not None and float(match.group(1)) < 1e-10, stdout
    for run in figures["runs"]:
        assert 0.0 <= run["pck@0.05"] <= run["pck@0.1"] <= 1.0, run
        if run["model"] == "chiral":
            assert run["mirror_check_f64"] < 1e-10 and run["mirror_clips_f64"] < 1e-10, run
    assert {r["model"] for r in figures["runs"]} == {"plain", "chiral"}
    chiral, plain = (next(r for r in figures["runs"] if r["model"] == m)
                     for m in ("chiral", "plain"))
    assert chiral["parameters"] < plain["parameters"]
    assert plain["mirror_check_f64"] > 1e-6  # the plain network is not equivariant


def test_forecast_example_help() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                            text=True, timeout=120, check=True)
    for option in ("--quick", "--data", "--seeds", "--epochs", "--device", "--json"):
        assert option in result.stdout
