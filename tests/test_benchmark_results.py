"""benchmarks/results.py: the ``--quick`` run has every section and table with finite figures,
its JSON round-trips, its speed ratios are positive and its parameter ratios exact."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from symmetrize import Spec, symmetrize
from symmetrize.data.sources import load_motion_split
from symmetrize.demo import VideoPose3DLike
from tests.pose_models import TemporalModel

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "results.py"
CMU = ROOT.parent / "shared" / "data" / "cmu"
HEADINGS = ("## Speed", "## Accuracy", "### 2D-to-3D lifting", "### 2D pose forecasting",
            "### Skeleton action recognition", "## Data efficiency")
TABLE_HEADERS = ("| model | measurement | batch | ms | ratio to plain |",
                 "| model | channels | parameters plain | parameters chiral |",
                 "| variant | parameters | MPJPE mm | P-MPJPE mm | train s |",
                 "| model | PCK@0.05 | PCK@0.1 | 2D error |",
                 "| model | top-1 acc | balanced acc |",
                 "| training takes | model | epochs | MPJPE mm | P-MPJPE mm |")
NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?", re.IGNORECASE)


def _run(tmp_path: Path, *extra: str) -> tuple[str, str, str]:
    """``results.py --quick`` on the CPU: its stdout, ``--out`` Markdown and ``--json`` text."""
    md, js = tmp_path / "results.md", tmp_path / "results.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", "cpu",
                             "--out", str(md), "--json", str(js), *extra],
                            capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout, md.read_text(), js.read_text()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """One ``--quick`` run (every section) shared by the tests of this module."""
    return _run(tmp_path_factory.mktemp("results"))


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table: its rows (header and separator included) as lists of cells."""
    tables: list[list[list[str]]] = []
    previous = False
    for line in markdown.splitlines():
        is_row = line.startswith("|")
        if is_row:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if previous:
                tables[-1].append(cells)
            else:
                tables.append([cells])
        previous = is_row
    return tables


def test_markdown_has_every_section_and_table(quick: tuple[str, str, str]) -> None:
    stdout, markdown, _ = quick
    assert stdout.strip() == markdown.strip()  # stdout carries the Markdown only
    header = markdown.splitlines()[2]
    for part in ("Generated", "torch", "CPU", "seeds 0", "epochs:", "wall time:", "speed",
                 "lifting", "forecasting", "actions", "efficiency", "total"):
        assert part in header, header
    if CMU.is_dir():
        assert "Data: CMU takes" in markdown
    else:
        assert "not found" in markdown and "procedural" in markdown
    positions = [markdown.index(h) for h in HEADINGS]
    assert positions == sorted(positions)
    tables = _tables(markdown)
    assert len(tables) == len(TABLE_HEADERS)
    for table, expected in zip(tables, TABLE_HEADERS):
        assert ("| " + " | ".join(table[0]) + " |").startswith(expected), table[0]
        assert set("".join(table[1])) <= set("-:"), table[1]
        assert len(table) > 2
        for row in table[2:]:
            assert len(row) == len(table[0]), row
            numbers = [float(n.replace(",", "")) for cell in row[1:]
                       for n in NUMBER.findall(cell)]
            assert numbers and all(math.isfinite(n) for n in numbers), row
            assert not any(re.search(r"\b(nan|inf)\b", cell, re.IGNORECASE)
                           for cell in row), row
    assert markdown.count("**undecided**") >= 8  # one seed: no verdict is claimed


def test_json_round_trips(quick: tuple[str, str, str]) -> None:
    _, _, text = quick
    figures = json.loads(text)
    assert json.dumps(figures, indent=2, allow_nan=False) + "\n" == text
    assert set(figures) == {"speed", "accuracy", "efficiency", "verdicts", "meta"}
    assert set(figures["accuracy"]) == {"lifting", "forecasting", "actions"}
    assert figures["meta"]["seeds"] == [0] and figures["meta"]["quick"] is True
    assert set(figures["meta"]["wall_s"]) == {"speed", "lifting", "forecasting", "actions",
                                              "efficiency"}
    lifting = figures["accuracy"]["lifting"]["scores"]
    assert len(lifting) == 7 and all(len(runs) == 1 for runs in lifting.values())
    assert set(figures["efficiency"]) == {"0.1", "0.3", "1.0"}
    for fraction, eff in figures["efficiency"].items():
        assert len(eff["scores"]) == 3
        schedule = eff["schedules"]["0"]
        assert 1 <= schedule["sequences"] <= schedule["of"]
        assert (schedule["sequences"] == schedule["of"]) == (fraction == "1.0")
    for verdict in figures["verdicts"]:
        assert verdict["verdict"] == "undecided" and verdict["runs"] == 1


def test_speed_ratios_are_positive(quick: tuple[str, str, str]) -> None:
    speed = json.loads(quick[2])["speed"]
    assert len(speed) == 2
    for case in speed.values():
        assert case["convert_s"] > 0 and case["convert_check_s"] > 0
        for name, timing in case["timings"].items():
            assert timing["ms"] > 0 and timing["ratio"] > 0, name
        assert case["timings"]["plain train step"]["ratio"] == 1.0
        assert case["timings"]["plain inference"]["ratio"] == 1.0


def _rebuild(config: dict[str, Any]) -> torch.nn.Module:
    """The plain model a speed case timed, from its JSON ``config`` (seeded as the script)."""
    torch.manual_seed(0)
    widths = tuple(config["filter_widths"])
    if config["class"] == "symmetrize.demo.VideoPose3DLike":
        return VideoPose3DLike(filter_widths=widths, channels=config["channels"])
    assert config["class"] == "tests.pose_models.TemporalModel"
    return TemporalModel(filter_widths=widths, channels=config["channels"])


def test_parameter_ratio_is_exact(quick: tuple[str, str, str]) -> None:
    for case in json.loads(quick[2])["speed"].values():
        model = _rebuild(case["config"])
        chiral = symmetrize(model, Spec.preset("h36m"),
                            (torch.zeros(case["example_batch"], case["frames"], 17, 2),),
                            check=False)
        plain_count = sum(p.numel() for p in model.parameters())
        chiral_count = sum(p.numel() for p in chiral.parameters())
        assert (case["parameters_plain"], case["parameters_chiral"]) == (plain_count,
                                                                         chiral_count)
        assert case["parameter_ratio"] == chiral_count / plain_count
        assert case["parameters_exported"] == plain_count
        assert 0.4 < case["parameter_ratio"] < 1


def test_falls_back_to_procedural_motion(tmp_path: Path) -> None:
    _, markdown, text = _run(tmp_path, "--only", "lifting", "efficiency", "--data",
                             str(tmp_path / "absent"))
    assert "not found, so every application uses procedural motion" in markdown
    assert "## Speed" not in markdown and "### 2D pose forecasting" not in markdown
    figures = json.loads(text)
    assert figures["accuracy"]["lifting"]["data"].startswith("synthetic")
    assert figures["efficiency"]["1.0"]["reused"]  # the lifting runs, not trained again
    assert len(_tables(markdown)) == 2


def _results_module() -> ModuleType:
    """``benchmarks/results.py`` imported as a module (nothing runs on import)."""
    name = "benchmarks_results_under_test"
    if name not in sys.modules:  # registered first: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_verdict_rule_and_options() -> None:
    results = _results_module()
    assert results.verdict([10.0, 12.0], [20.0, 22.0], higher_is_better=False) == "wins"
    assert results.verdict([10.0, 12.0], [20.0, 22.0], higher_is_better=True) == "loses"
    assert results.verdict([10.0, 14.0], [12.0, 16.0], higher_is_better=False) == "ties"
    assert results.verdict([10.0], [20.0], higher_is_better=False) == "undecided"
    args = results.parse_args(["--epochs", "5", "forecasting=20", "--only", "accuracy",
                               "--device", "cpu"])
    assert args.epoch_counts == {"lifting": 5, "forecasting": 20, "actions": 5}
    assert args.sections == ["lifting", "forecasting", "actions"] and args.seeds == [0, 1, 2]
    assert results.parse_args(["--device", "cpu"]).epoch_counts == results.EPOCHS
    with pytest.raises(SystemExit):
        results.parse_args(["--epochs", "walking=3"])


def test_training_subsets_are_deterministic_per_seed() -> None:
    split = load_motion_split("synthetic:10")
    a, b, c = split.subset(0.3, seed=1), split.subset(0.3, seed=1), split.subset(0.3, seed=2)
    assert len(a.train) == 3 and a.val is split.val
    assert [id(s) for s in a.train] == [id(s) for s in b.train]
    assert [id(s) for s in a.train] != [id(s) for s in c.train]
    order = [id(s) for s in split.train]
    assert [order.index(id(s)) for s in a.train] == sorted(order.index(id(s)) for s in a.train)
    assert len(split.subset(0.01).train) == 1
    assert [id(s) for s in split.subset(1.0).train] == order
    with pytest.raises(ValueError):
        split.subset(0.0)
