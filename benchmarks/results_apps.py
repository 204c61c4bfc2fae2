"""The paper's two other applications in ``benchmarks/results.py``: 2D pose forecasting
(``examples/forecast_2d.py``) and skeleton action recognition
(``examples/recognise_actions.py``), run through the examples' own code, mean ± std over seeds,
with verdicts."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import forecast_2d
import recognise_actions
from results_tables import Comparison, verdict_lines

#: the examples' default epochs
EPOCHS = {"forecasting": 15, "actions": 6}


@contextlib.contextmanager
def to_stderr() -> Iterator[None]:
    """The examples' progress and tables go to stderr: stdout carries the Markdown only."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def run_app(app: str, data: str, seeds: list[int], device: str, quick: bool) -> dict[str, Any]:
    """Plain and chiral models of ``app`` (``forecasting`` or ``actions``) on every seed."""
    module = forecast_2d if app == "forecasting" else recognise_actions
    argv = ["--data", data, "--seeds", *map(str, seeds), "--epochs", str(EPOCHS[app]),
            "--device", device] + (["--quick"] if quick else [])
    with to_stderr():
        return module.run(module.parse_args(argv))


def _rows(figures: dict[str, Any], model: str) -> list[dict[str, Any]]:
    return [r for r in figures["runs"] if r["model"] == model]


def _values(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows]


def _cell(values: list[float], fmt: str) -> str:
    from results_tables import mean_std

    mean, std = mean_std(values)
    return f"{format(mean, fmt)} ± {format(std, fmt)}"


def _runs(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''} = {n} run{'s' if n != 1 else ''} per model"


def forecasting_markdown(fc: dict[str, Any]) -> tuple[str, list[Comparison]]:
    """The forecasting table (mirror errors: the max over seeds) and verdicts."""
    plain, chiral = _rows(fc, "plain"), _rows(fc, "chiral")
    zero = fc["zero_velocity"]
    about = (f"Data: {fc['source']}; {fc['train_windows']:,} training / "
             f"{fc['eval_windows']:,} evaluation windows; {fc['settings']['epochs']} epochs per "
             f"model, {_runs(len(fc['seeds']))}, mean ± std over seeds (mirror errors: the max "
             "over seeds, float64).")
    lines = ["### 2D pose forecasting (`examples/forecast_2d.py`)", "", about, "",
             ("| model | PCK@0.05 | PCK@0.1 | 2D error | parameters | train s | "
              "mirror error (check) | mirror error (clips) |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in (("plain", plain), ("chiral", chiral)):
        lines.append(f"| {name} | {_cell(_values(rows, 'pck@0.05'), '.3f')} | "
                     f"{_cell(_values(rows, 'pck@0.1'), '.3f')} | "
                     f"{_cell(_values(rows, 'error_2d'), '.4f')} | {rows[0]['parameters']:,} | "
                     f"{_cell(_values(rows, 'train_s'), '.1f')} | "
                     f"{max(_values(rows, 'mirror_check_f64')):.1e} | "
                     f"{max(_values(rows, 'mirror_clips_f64')):.1e} |")
    lines.append(f"| zero-velocity | {zero['pck@0.05']:.3f} | {zero['pck@0.1']:.3f} | "
                 f"{zero['error_2d']:.4f} | – | – | – | – |")
    comparisons = [Comparison("forecasting", "chiral", "plain", title, _values(chiral, key),
                              _values(plain, key), higher, fmt)
                   for title, key, higher, fmt in (("PCK@0.05", "pck@0.05", True, ".3f"),
                                                   ("PCK@0.1", "pck@0.1", True, ".3f"),
                                                   ("2D error", "error_2d", False, ".4f"))]
    return "\n".join(lines + ["", "Verdict (PCK: higher is better; 2D error: lower):", "",
                              *verdict_lines(comparisons)]), comparisons


def actions_markdown(ac: dict[str, Any]) -> tuple[str, list[Comparison]]:
    """The action-recognition table and verdicts."""
    plain, chiral = _rows(ac, "plain"), _rows(ac, "chiral")
    about = (f"Data: {ac['source']}; {ac['train_clips']:,} training / {ac['test_clips']:,} "
             f"test clips; {ac['settings']['epochs']} epochs per model, "
             f"{_runs(len(ac['seeds']))}, mean ± std over seeds.")
    lines = ["### Skeleton action recognition (`examples/recognise_actions.py`)", "", about, "",
             ("| model | top-1 acc | balanced acc | parameters | train s | "
              "max \\|f(mirror x) − f(x)\\| (float64) |"), "|---|---:|---:|---:|---:|---:|"]
    for name, rows in (("plain", plain), ("chiral (invariance layer at block 4)", chiral)):
        lines.append(f"| {name} | {_cell(_values(rows, 'top1'), '.3f')} | "
                     f"{_cell(_values(rows, 'balanced'), '.3f')} | {rows[0]['parameters']:,} | "
                     f"{_cell(_values(rows, 'train_s'), '.1f')} | "
                     f"{_cell(_values(rows, 'mirror_gap_f64'), '.1e')} |")
    lines.append(f"| majority class ({ac['majority_class']}) | {ac['majority_top1']:.3f} | "
                 f"{ac['majority_balanced']:.3f} | – | – | – |")
    comparisons = [Comparison("actions", "chiral", "plain", title, _values(chiral, key),
                              _values(plain, key), True, ".3f")
                   for title, key in (("top-1", "top1"), ("balanced accuracy", "balanced"))]
    return "\n".join(lines + ["", "Verdict (higher is better):", "",
                              *verdict_lines(comparisons)]), comparisons
