"""Every figure of the README's results, regenerated from scratch in one run, as Markdown.

Sections (``--only`` picks some; default all):

- ``speed``: train step, inference, inference of the model exported to plain modules, and plain
  + flip test-time averaging, against the plain model timed in the same run (interleaved rounds,
  medians), for the demo's 27-frame lifter and a 243-frame VideoPose3D-style model; conversion
  time and parameter counts.
- ``accuracy`` (= ``lifting forecasting actions``): the three applications of ``examples/``, each
  variant with the same budget, mean ± std over ``--seeds``.
- ``efficiency``: lifting on 10 %, 30 % and 100 % of the training takes (``--fractions``), plain
  with flip augmentation (with and without flip TTA) against chiral.

Every comparison gets a verdict by one rule (:func:`verdict`). The Markdown goes to stdout (and
``--out FILE``), the raw figures to ``--json FILE``; the examples' own progress goes to stderr::

    python benchmarks/results.py --device cuda --out results.md --json results.json
    python benchmarks/results.py --quick                 # every section at smoke scale, < 1 min
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "examples"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import forecast_2d
import lift_3d
import recognise_actions

from symmetrize import Spec, symmetrize
from symmetrize.data.windows import flip_test_average
from symmetrize.demo import VideoPose3DLike
from symmetrize.export import export_plain
from symmetrize.metrics import mpjpe
from tests.pose_models import TemporalModel

SECTIONS = ("speed", "lifting", "forecasting", "actions", "efficiency")
ALIASES = {"accuracy": ("lifting", "forecasting", "actions")}
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cmu"
#: the examples' default epochs (``--epochs`` overrides them)
EPOCHS = {"lifting": 3, "forecasting": 15, "actions": 6}
SPEC = Spec.preset("h36m")
RULE = ("chiral **wins** a comparison when its mean is better than the other model's by more "
        "than the larger of the two standard deviations over seeds, **loses** when it is worse by "
        "more than that, and **ties** otherwise; with a single run there is no spread and the "
        "verdict is *undecided*.")
QUICK_NOTE = ("**`--quick`: smoke-scale settings (tiny models, a few training steps, one "
              "seed). These figures test the script; they mean nothing.**")
ACCURACY_NOTE = ("Every variant of an application trains with `symmetrize.train.fit` for the "
                 "same epochs on the same data and seeds.")
REUSED_NOTE = ("The 100 % rows are the accuracy section's lifting runs of this run (same data, "
               "seeds and schedule).")
LIFT_ROWS = ("plain", "plain + flip augmentation", "plain + flip aug + flip TTA")
CHIRAL_ROWS = ("chiral (skeleton Reps, tanh)", "chiral (regular Reps, ReLU)")
EFFICIENCY_ROWS = ["plain + flip augmentation", "plain + flip aug + flip TTA",
                   "chiral (skeleton Reps, tanh)"]


# -- command line --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``; default ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=(*SECTIONS, *ALIASES), metavar="SECTION",
                        help="run only these sections: speed, accuracy (or lifting, "
                        "forecasting, actions), efficiency (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="every section at smoke scale (tiny models, a few steps, 1 seed)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="seeds of the accuracy and efficiency runs (default 0 1 2; "
                        "--quick: 0)")
    parser.add_argument("--epochs", nargs="+", default=[], metavar="N|APP=N",
                        help="epochs for every application, or per application: lifting=N "
                        "forecasting=N actions=N (defaults: the examples' 3, 15, 6; efficiency "
                        "uses lifting's)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0],
                        help="fractions of the training takes for the efficiency section")
    parser.add_argument("--budget", choices=("steps", "epochs"), default="steps",
                        help="efficiency runs on a fraction of the takes train for the full "
                        "run's optimiser steps (default) or for the same epochs")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder of CMU .bvh takes (default: %(default)s); procedural "
                        "motion when absent")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--rounds", type=int, help="timing rounds (default 7; --quick 2)")
    parser.add_argument("--out", type=Path, help="also write the Markdown to this file")
    parser.add_argument("--json", type=Path, help="write the raw figures to this file")
    args = parser.parse_args(argv)
    args.sections = _sections(args.only)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    args.epoch_counts = _epochs(parser, args.epochs)
    if any(not 0 < f <= 1 for f in args.fractions):
        parser.error("--fractions must lie in (0, 1]")
    args.fractions = sorted(set(args.fractions))
    args.device = _device(parser, args.device)
    args.rounds = args.rounds or (2 if args.quick else 7)
    return args


def _sections(only: list[str] | None) -> list[str]:
    """The sections to run, in document order (``accuracy`` expanded)."""
    chosen = set()
    for name in only or SECTIONS:
        chosen.update(ALIASES.get(name, (name,)))
    return [s for s in SECTIONS if s in chosen]


def _epochs(parser: argparse.ArgumentParser, values: list[str]) -> dict[str, int]:
    """Epochs per application: the defaults, then each ``N`` or ``APP=N`` in order."""
    epochs = dict(EPOCHS)
    for value in values:
        app, _, number = value.rpartition("=")
        app = {"lift": "lifting", "forecast": "forecasting", "": ""}.get(app, app)
        if not number.isdigit() or int(number) < 1 or app not in ("", *EPOCHS):
            parser.error(f"--epochs {value!r}: give N or lifting=N, forecasting=N, actions=N")
        epochs.update({app: int(number)} if app else dict.fromkeys(EPOCHS, int(number)))
    return epochs


def _device(parser: argparse.ArgumentParser, name: str) -> str:
    """``auto`` resolved to ``cuda`` or ``cpu``; a CUDA device without CUDA is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {name}: torch sees no CUDA device")
    return name


# -- verdicts and statistics ---------------------------------------------------------------------

def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(chiral: list[float], other: list[float], higher_is_better: bool) -> str:
    """``wins``, ``loses`` or ``ties`` by :data:`RULE`; ``undecided`` with a single run."""
    (m_c, s_c), (m_o, s_o) = mean_std(chiral), mean_std(other)
    if min(len(chiral), len(other)) < 2:
        return "undecided"
    gain = (m_c - m_o) if higher_is_better else (m_o - m_c)
    threshold = max(s_c, s_o)
    return "wins" if gain > threshold else "loses" if -gain > threshold else "ties"


@dataclass
class Comparison:
    """One metric of chiral against another model, over seeds."""

    section: str
    chiral: str
    other: str
    metric: str
    chiral_values: list[float]
    other_values: list[float]
    higher_is_better: bool
    fmt: str = ".1f"

    def figures(self) -> dict[str, Any]:
        """Means, stds, the threshold and the verdict, for the JSON."""
        (m_c, s_c), (m_o, s_o) = mean_std(self.chiral_values), mean_std(self.other_values)
        return {"section": self.section, "chiral": self.chiral, "other": self.other,
                "metric": self.metric, "chiral_mean": m_c, "chiral_std": s_c,
                "other_mean": m_o, "other_std": s_o, "threshold": max(s_c, s_o),
                "higher_is_better": self.higher_is_better, "runs": len(self.chiral_values),
                "verdict": verdict(self.chiral_values, self.other_values,
                                   self.higher_is_better)}

    def phrase(self) -> str:
        """``MPJPE **wins** (145.7 vs 164.5, larger std 11.6)``."""
        f = self.figures()
        return (f"{self.metric} **{f['verdict']}** ({format(f['chiral_mean'], self.fmt)} vs "
                f"{format(f['other_mean'], self.fmt)}, larger std "
                f"{format(f['threshold'], self.fmt)})")


def verdict_lines(comparisons: list[Comparison]) -> list[str]:
    """One Markdown bullet per (chiral, other) pair, its metrics' verdicts side by side."""
    pairs: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        pairs.setdefault((c.chiral, c.other), []).append(c)
    return [f"- {chiral} vs {other}: " + "; ".join(c.phrase() for c in group)
            for (chiral, other), group in pairs.items()]


def _cell(values: list[float], fmt: str) -> str:
    """``mean ± std`` of ``values`` in ``fmt``."""
    mean, std = mean_std(values)
    return f"{format(mean, fmt)} ± {format(std, fmt)}"


def _epochs_text(n: int) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{n} epoch{'s' if n != 1 else ''}"


def _runs(n: int) -> str:
    """How many seeds, hence runs, a mean ± std is over."""
    return f"{n} seed{'s' if n != 1 else ''} = {n} run{'s' if n != 1 else ''} per model"


# -- speed ---------------------------------------------------------------------------------------

@dataclass
class SpeedCase:
    """A model to time: how to build it, its input frames and batch sizes."""

    name: str
    config: dict[str, Any]
    build: Callable[[], nn.Module]
    frames: int
    example_batch: int
    train_batch: int
    infer_batch: int


def speed_cases(quick: bool, cuda: bool) -> list[SpeedCase]:
    """The demo's 27-frame lifter and a 243-frame VideoPose3D-style model (VideoPose3D's 1024
    channels; tiny widths with ``quick``). Batches: the lifting example's 128 and the demo's
    256 inference windows on a CPU, 1024 (VideoPose3D's batch) on a GPU; the 243-frame model 32
    on a CPU, 256 on a GPU."""
    c27, c243 = (32, 32) if quick else (256, 1024)
    b27 = (16, 16) if quick else (1024, 1024) if cuda else (128, 256)
    b243 = (4, 4) if quick else (256, 256) if cuda else (32, 32)
    return [
        SpeedCase("27-frame lifter (symmetrize.demo.VideoPose3DLike)",
                  {"class": "symmetrize.demo.VideoPose3DLike", "filter_widths": [3, 3, 3],
                   "channels": c27},
                  lambda: VideoPose3DLike(channels=c27), 27, 8, *b27),
        SpeedCase("243-frame VideoPose3D (tests.pose_models.TemporalModel)",
                  {"class": "tests.pose_models.TemporalModel", "filter_widths": [3, 3, 3, 3, 3],
                   "channels": c243},
                  lambda: TemporalModel(filter_widths=(3, 3, 3, 3, 3), channels=c243),
                  243, 2, *b243),
    ]


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Wall seconds per call of ``fn`` over ``repeats`` calls (the device synchronised)."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor) -> None:
    """One training step: forward, MPJPE loss, backward, optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    mpjpe(model(x), y).backward()
    optimizer.step()


def convert_seconds(model: nn.Module, example: torch.Tensor, repeats: int
                    ) -> tuple[float, float, nn.Module]:
    """Median seconds of ``symmetrize`` without and with its float64 check, the two timed in
    alternation after one untimed conversion; and the converted model."""
    chiral = symmetrize(model, SPEC, (example,))  # warm-up: first-call costs, and the check
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for check in (False, True):
            start = time.perf_counter()
            symmetrize(model, SPEC, (example,), check=check)
            times[check].append(time.perf_counter() - start)
    return statistics.median(times[False]), statistics.median(times[True]), chiral


def time_case(case: SpeedCase, device: torch.device, rounds: int, quick: bool
              ) -> dict[str, Any]:
    """Conversion (on the CPU), parameters, and interleaved timings of one model."""
    torch.manual_seed(0)
    plain = case.build()
    example = torch.randn(case.example_batch, case.frames, 17, 2)
    repeats = 1 if quick else 3
    convert_s, convert_check_s, chiral = convert_seconds(plain, example, repeats)
    n_plain = sum(p.numel() for p in plain.parameters())
    n_chiral = sum(p.numel() for p in chiral.parameters())

    plain, chiral = plain.to(device).train(), chiral.to(device).train()
    plain_eval, chiral_eval = copy.deepcopy(plain).eval(), copy.deepcopy(chiral).eval()
    exported = export_plain(chiral_eval).eval()
    optimizers = {id(m): torch.optim.Adam(m.parameters(), lr=1e-4) for m in (plain, chiral)}
    x_train = torch.randn(case.train_batch, case.frames, 17, 2, device=device)
    y_train = torch.randn(case.train_batch, 1, 17, 3, device=device)
    x_infer = torch.randn(case.infer_batch, case.frames, 17, 2, device=device)

    def step(model: nn.Module) -> Callable[[], None]:
        """A train step of ``model`` on the training batch."""
        return lambda: _train_step(model, optimizers[id(model)], x_train, y_train)

    def infer(model: nn.Module, tta: bool = False) -> Callable[[], None]:
        """An inference of ``model`` on the inference batch (with flip TTA: two)."""
        def run() -> None:
            """One timed call."""
            with torch.no_grad():
                flip_test_average(model, x_infer, SPEC.skeleton) if tta else model(x_infer)
        return run

    measures = {"plain train step": step(plain), "chiral train step": step(chiral),
                "plain inference": infer(plain_eval), "chiral inference": infer(chiral_eval),
                "chiral exported inference": infer(exported),
                "plain + flip TTA inference": infer(plain_eval, tta=True)}
    baseline = {name: "plain train step" if "train" in name else "plain inference"
                for name in measures}
    min_seconds = 0.0 if quick else 0.25
    repeats_of = {}
    for name, fn in measures.items():  # warm-up, then enough calls for min_seconds a timing
        for _ in range(1 if quick else 3):
            fn()
        repeats_of[name] = max(1, min(1000, math.ceil(min_seconds / _seconds(fn, 1, device))))
    times: dict[str, list[float]] = {name: [] for name in measures}
    ratios: dict[str, list[float]] = {name: [] for name in measures}
    names = list(measures)
    for r in range(rounds):  # interleaved: every measurement once a round, order alternating
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(1000 * _seconds(measures[name], repeats_of[name], device))
        for name in names:
            ratios[name].append(times[name][-1] / times[baseline[name]][-1])
    return {"config": case.config, "frames": case.frames, "example_batch": case.example_batch,
            "train_batch": case.train_batch, "infer_batch": case.infer_batch,
            "parameters_plain": n_plain, "parameters_chiral": n_chiral,
            "parameter_ratio": n_chiral / n_plain,
            "parameters_exported": sum(p.numel() for p in exported.parameters()),
            "convert_s": convert_s, "convert_check_s": convert_check_s,
            "convert_repeats": repeats, "rounds": rounds,
            "timings": {name: {"ms": statistics.median(times[name]),
                               "ratio": statistics.median(ratios[name]),
                               "relative_to": baseline[name], "calls_per_timing":
                               repeats_of[name], "ms_per_round": times[name]}
                        for name in measures}}


def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Time every :func:`speed_cases` model on ``args.device``."""
    device = torch.device(args.device)
    return {case.name: _log_case(case, time_case(case, device, args.rounds, args.quick))
            for case in speed_cases(args.quick, device.type == "cuda")}


def _log_case(case: SpeedCase, figures: dict[str, Any]) -> dict[str, Any]:
    """Report one model's timings on stderr; return them."""
    print(f"[speed] {case.name}: " + ", ".join(f"{k} {v['ms']:.2f} ms ({v['ratio']:.3f})"
                                               for k, v in figures["timings"].items()),
          file=sys.stderr, flush=True)
    return figures


def speed_markdown(speed: dict[str, Any], args: argparse.Namespace) -> str:
    """The timing table and the conversion table."""
    synced = ", CUDA synchronised before and after" if args.device.startswith("cuda") else ""
    about = (f"On {args.device}, float32, no autocast. Each timing is the median over "
             f"{args.rounds} interleaved rounds (every measurement once a round, the order "
             "reversed every other round, after a warm-up; each timing repeats the call "
             f"{'once' if args.quick else 'for at least 0.25 s'}{synced}); a ratio is the "
             "median of the per-round ratios to the plain model's train step or inference in "
             "the same round. Train step: forward, MPJPE loss, backward, Adam step, train mode. "
             "Inference: eval mode, no grad. Exported: the chiral model as plain modules "
             "(`symmetrize.export.export_plain`). Flip TTA: VideoPose3D's test-time averaging, "
             "two forward passes and the flips.")
    lines = ["## Speed", "", about, "", "| model | measurement | batch | ms | ratio to plain |",
             "|---|---|---:|---:|---:|"]
    for name, case in speed.items():
        for measure, t in case["timings"].items():
            batch = case["train_batch"] if "train" in measure else case["infer_batch"]
            lines.append(f"| {name} | {measure} | {batch} | {t['ms']:.2f} | "
                         f"{t['ratio']:.3f} |")
    repeats = next(iter(speed.values()))["convert_repeats"]
    about = (f"Conversion on the CPU ({args.threads} threads; the median of {repeats} "
             f"conversion{'s' if repeats != 1 else ''} without and with `symmetrize`'s float64 check, alternating, after an "
             "untimed one; example batch: 8 windows for the 27-frame model, 2 for the "
             "243-frame one) and "
             "parameters (the chiral model's free parameters; exported to plain modules, it has "
             "the plain count again):")
    header = ("| model | channels | parameters plain | parameters chiral | chiral / plain | "
              "convert s | convert + check s |")
    lines += ["", about, "", header, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, case in speed.items():
        lines.append(f"| {name} | {case['config']['channels']} | {case['parameters_plain']:,} "
                     f"| {case['parameters_chiral']:,} | {case['parameter_ratio']:.4f} | "
                     f"{case['convert_s']:.3f} | {case['convert_check_s']:.3f} |")
    return "\n".join(lines)


# -- accuracy ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _to_stderr() -> Iterator[None]:
    """The examples' progress and tables go to stderr: stdout carries the Markdown only."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def lift_args(args: argparse.Namespace, fraction: float = 1.0) -> argparse.Namespace:
    """``examples/lift_3d.py``'s arguments for this run."""
    return lift_3d.parse_args(
        ["--data", str(args.data), "--seeds", *map(str, args.seeds), "--epochs",
         str(args.epoch_counts["lifting"]), "--device", args.device, "--threads",
         str(args.threads), "--train-fraction", str(fraction), "--budget", args.budget]
        + (["--quick"] if args.quick else []))


def run_lifting(args: argparse.Namespace, split: Any, data: str) -> dict[str, Any]:
    """The five lifting variants of ``examples/lift_3d.py`` on every seed."""
    with _to_stderr():
        return lift_3d.run(lift_args(args), split, data)


def run_forecasting(args: argparse.Namespace) -> dict[str, Any]:
    """Plain and chiral forecasting of ``examples/forecast_2d.py`` on every seed."""
    argv = ["--data", str(args.data), "--seeds", *map(str, args.seeds), "--epochs",
            str(args.epoch_counts["forecasting"]), "--device", args.device]
    with _to_stderr():
        return forecast_2d.run(forecast_2d.parse_args(argv + (["--quick"] * args.quick)))


def run_actions(args: argparse.Namespace) -> dict[str, Any]:
    """Plain and chiral action recognition of ``examples/recognise_actions.py`` on every seed."""
    argv = ["--data", str(args.data), "--seeds", *map(str, args.seeds), "--epochs",
            str(args.epoch_counts["actions"]), "--device", args.device]
    with _to_stderr():
        return recognise_actions.run(recognise_actions.parse_args(
            argv + (["--quick"] * args.quick)))


def _values(scores: list[dict[str, float]], key: str) -> list[float]:
    """One figure of every seed's run."""
    return [float(s[key]) for s in scores]


def lifting_markdown(lift: dict[str, Any]) -> tuple[str, list[Comparison]]:
    """The lifting table (``examples/lift_3d.py``'s) and its verdicts."""
    scores = lift["scores"]
    n = len(lift["seeds"])
    about = (f"Data: {lift['data']}: {lift['split']}; {_epochs_text(lift['epochs'])} per "
             f"variant, {_runs(n)}, mean ± std over seeds "
             f"(seeds {' '.join(map(str, lift['seeds']))}).")
    lines = ["### 2D-to-3D lifting (`examples/lift_3d.py`)", "", about, "",
             "| variant | parameters | MPJPE mm | P-MPJPE mm | train s |",
             "|---|---:|---:|---:|---:|"]
    for name, runs in scores.items():
        lines.append(f"| {name} | {int(runs[0]['parameters']):,} | "
                     f"{_cell(_values(runs, 'mpjpe_mm'), '.1f')} | "
                     f"{_cell(_values(runs, 'p_mpjpe_mm'), '.1f')} | "
                     f"{_cell(_values(runs, 'train_s'), '.1f')} |")
    comparisons = [Comparison("lifting", chiral, other, metric,
                              _values(scores[chiral], key), _values(scores[other], key), False)
                   for chiral in CHIRAL_ROWS for other in LIFT_ROWS
                   for metric, key in (("MPJPE", "mpjpe_mm"), ("P-MPJPE", "p_mpjpe_mm"))]
    return "\n".join(lines + ["", "Verdicts (mm, lower is better):", "",
                              *verdict_lines(comparisons)]), comparisons


def _rows(figures: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """An example's per-seed runs of ``model``."""
    return [r for r in figures["runs"] if r["model"] == model]


def forecasting_markdown(fc: dict[str, Any]) -> tuple[str, list[Comparison]]:
    """The forecasting table (mean ± std over seeds, mirror errors: the max) and verdicts."""
    plain, chiral = _rows(fc, "plain"), _rows(fc, "chiral")
    zero = fc["zero_velocity"]
    about = (f"Data: {fc['source']}; {fc['train_windows']:,} training / "
             f"{fc['eval_windows']:,} evaluation windows; "
             f"{_epochs_text(fc['settings']['epochs'])} per model, {_runs(len(fc['seeds']))}, "
             "mean ± std over seeds (mirror errors: the max over seeds, float64).")
    header = ("| model | PCK@0.05 | PCK@0.1 | 2D error | parameters | train s | "
              "mirror error (check) | mirror error (clips) |")
    lines = ["### 2D pose forecasting (`examples/forecast_2d.py`)", "", about, "", header,
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
             f"test clips; {_epochs_text(ac['settings']['epochs'])} per model, "
             f"{_runs(len(ac['seeds']))}, mean ± std over seeds.")
    header = ("| model | top-1 acc | balanced acc | parameters | train s | "
              "max \\|f(mirror x) − f(x)\\| (float64) |")
    lines = ["### Skeleton action recognition (`examples/recognise_actions.py`)", "", about, "",
             header, "|---|---:|---:|---:|---:|---:|"]
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


# -- data efficiency -----------------------------------------------------------------------------

def run_efficiency(args: argparse.Namespace, split: Any, data: str,
                   full: dict[str, Any] | None) -> dict[str, Any]:
    """Lifting on each of ``args.fractions`` of the training takes: plain with flip
    augmentation (scored with and without flip TTA) and chiral (skeleton Reps). ``full``: this
    run's accuracy-section lifting figures, reused for the fraction 1."""
    out = {}
    for fraction in args.fractions:
        if fraction == 1 and full is not None:
            out["1.0"] = {**full, "scores": {k: full["scores"][k] for k in EFFICIENCY_ROWS},
                          "reused": "the accuracy section's lifting runs"}
            continue
        print(f"[efficiency] {fraction:.0%} of the training takes", file=sys.stderr, flush=True)
        with _to_stderr():
            out[str(fraction)] = lift_3d.run(lift_args(args, fraction), split, data,
                                             variants=EFFICIENCY_ROWS)
    return out


def efficiency_markdown(eff: dict[str, Any], args: argparse.Namespace
                        ) -> tuple[str, list[Comparison]]:
    """The data-efficiency table and verdicts."""
    first = next(iter(eff.values()))
    n = len(first["seeds"])
    budget = ("the optimiser steps of the full-data run (more epochs over fewer takes, the "
              "learning-rate decay stretched to the same total)" if args.budget == "steps"
              else "the same epochs (fewer steps with fewer takes)")
    about = (f"Data: {first['data']}. Each seed draws its own subset of the training takes "
             "(`MotionSplit.subset`, at least one take); evaluation always on every validation "
             f"take. Every run trains for {budget}; {_epochs_text(first['epochs'])} on the "
             f"full data. {_runs(n)}, mean ± std over seeds.")
    lines = ["## Data efficiency (lifting)", "", about, "",
             "| training takes | model | epochs | MPJPE mm | P-MPJPE mm |",
             "|---|---|---:|---:|---:|"]
    comparisons = []
    for key, figures in eff.items():
        schedule = figures["schedules"][str(figures["seeds"][0])]
        epochs = sorted({s["epochs"] for s in figures["schedules"].values()})
        takes = (f"{float(key):.0%} ({schedule['sequences']} of {schedule['of']}, "
                 f"{statistics.fmean(s['frames'] for s in figures['schedules'].values()):,.0f}"
                 " frames)")
        epoch_cell = f"{epochs[0]}–{epochs[-1]}" if len(epochs) > 1 else str(epochs[0])
        for name, runs in figures["scores"].items():
            lines.append(f"| {takes} | {name} | {epoch_cell} | "
                         f"{_cell(_values(runs, 'mpjpe_mm'), '.1f')} | "
                         f"{_cell(_values(runs, 'p_mpjpe_mm'), '.1f')} |")
        scores = figures["scores"]
        comparisons += [Comparison(f"efficiency {float(key):.0%}", EFFICIENCY_ROWS[2],
                                   f"{other} ({float(key):.0%} of the takes)", metric,
                                   _values(scores[EFFICIENCY_ROWS[2]], k),
                                   _values(scores[other], k), False)
                        for other in EFFICIENCY_ROWS[:2]
                        for metric, k in (("MPJPE", "mpjpe_mm"), ("P-MPJPE", "p_mpjpe_mm"))]
    if any("reused" in f for f in eff.values()):
        lines += ["", REUSED_NOTE]
    return "\n".join(lines + ["", "Verdicts (mm, lower is better):", "",
                              *verdict_lines(comparisons)]), comparisons


# -- the document --------------------------------------------------------------------------------

def device_name(device: str, threads: int) -> str:
    """The GPU's name, or the CPU's model and the torch thread count."""
    if device.startswith("cuda"):
        return f"GPU {torch.cuda.get_device_name(torch.device(device))} (CUDA " \
               f"{torch.version.cuda})"
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"CPU {model}, {threads} torch threads"


def _wall(seconds: float) -> str:
    """``42.0 s`` or ``3 min 12 s``."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def warm_up(device: torch.device) -> None:
    """Initialise the device's libraries (CUDA context, cuDNN, cuBLAS) and the optimiser
    imports once, so that no timed run pays for them."""
    conv = nn.Conv1d(4, 4, 3).to(device)
    optimizer = torch.optim.Adam(conv.parameters())
    conv(torch.randn(2, 4, 8, device=device)).square().mean().backward()
    optimizer.step()
    nn.Linear(4, 4).to(device)(torch.randn(2, 4, device=device)).sum().backward()
    _sync(device)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chosen sections, print the Markdown, write ``--out`` and ``--json``; return the
    figures (as written to ``--json``)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warm_up(torch.device(args.device))
    started = datetime.datetime.now(datetime.timezone.utc)
    figures: dict[str, Any] = {}
    parts: dict[str, str] = {}
    comparisons: list[Comparison] = []
    wall: dict[str, float] = {}
    split = data = None
    for section in args.sections:
        print(f"[{section}] running", file=sys.stderr, flush=True)
        start = time.perf_counter()
        if section in ("lifting", "efficiency") and split is None:  # loaded once, for both
            with _to_stderr():
                split, data = lift_3d.load_split(lift_args(args))
        if section == "speed":
            figures["speed"] = run_speed(args)
            parts["speed"] = speed_markdown(figures["speed"], args)
        elif section == "efficiency":
            figures["efficiency"] = run_efficiency(args, split, data,
                                                   figures.get("accuracy", {}).get("lifting"))
            parts["efficiency"], found = efficiency_markdown(figures["efficiency"], args)
            comparisons += found
        else:
            run, render = {"lifting": (run_lifting, lifting_markdown),
                           "forecasting": (run_forecasting, forecasting_markdown),
                           "actions": (run_actions, actions_markdown)}[section]
            result = run(args, split, data) if section == "lifting" else run(args)
            figures.setdefault("accuracy", {})[section] = result
            parts[section], found = render(result)
            comparisons += found
        wall[section] = time.perf_counter() - start
    figures["verdicts"] = [c.figures() for c in comparisons]
    figures["meta"] = meta = {
        "date": started.isoformat(timespec="seconds"), "torch": torch.__version__,
        "device": args.device, "device_name": device_name(args.device, args.threads),
        "threads": args.threads, "seeds": args.seeds, "quick": args.quick,
        "epochs": _epochs_used(figures, args), "sections": args.sections,
        "wall_s": wall, "argv": sys.argv[1:] if argv is None else list(argv),
        "data": str(args.data), "data_found": args.data.is_dir(), "rule": RULE}
    markdown = document(parts, meta, args)
    print(markdown)
    if args.out is not None:
        args.out.write_text(markdown + "\n")
    figures = _finite(figures)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n")
    return figures


def _epochs_used(figures: dict[str, Any], args: argparse.Namespace) -> dict[str, int]:
    """The epochs each application actually trained (``--quick`` shrinks them)."""
    acc = figures.get("accuracy", {})
    used = dict(args.epoch_counts)
    if "lifting" in acc:
        used["lifting"] = acc["lifting"]["epochs"]
    elif "efficiency" in figures:
        used["lifting"] = next(iter(figures["efficiency"].values()))["epochs"]
    for app in ("forecasting", "actions"):
        if app in acc:
            used[app] = acc[app]["settings"]["epochs"]
    return used


def document(parts: dict[str, str], meta: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown: a header line, the rule, then one part per section."""
    apps = [a for a in ("lifting", "forecasting", "actions") if a in args.sections]
    epochs = ", ".join(f"{a} {meta['epochs'][a]}" for a in EPOCHS
                       if a in apps or (a == "lifting" and "efficiency" in args.sections))
    walls = ", ".join(f"{s} {_wall(t)}" for s, t in meta["wall_s"].items())
    header = (f"Generated {meta['date']} · torch {meta['torch']} · {meta['device_name']} · "
              f"seeds {' '.join(map(str, args.seeds))} · epochs: {epochs or '–'} · wall time: "
              f"{walls} (total {_wall(sum(meta['wall_s'].values()))})")
    lines = ["# symmetrize: results", "", header, "",
             f"Command: `{' '.join(['python benchmarks/results.py', *meta['argv']])}`"]
    if apps or "efficiency" in args.sections:
        lines += ["", f"Data: CMU takes in `{args.data}`." if meta["data_found"] else
                  f"Data: `{args.data}` not found, so every application uses procedural motion "
                  "(`symmetrize.data.synthetic`) instead of the CMU takes."]
        lines += ["", f"Verdict rule: {RULE}"]
    if args.quick:
        lines += ["", QUICK_NOTE]
    if "speed" in parts:
        lines += ["", parts["speed"]]
    if apps:
        lines += ["", "## Accuracy", "", ACCURACY_NOTE]
        lines += [line for app in apps for line in ("", parts[app])]
    if "efficiency" in parts:
        lines += ["", parts["efficiency"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
