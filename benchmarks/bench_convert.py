"""Conversion at published size: time, peak memory and exactness of ``symmetrize`` on the field's
flagship pose networks, each written from its paper's description (``tests/``), spec only.

Every case runs in a fresh process (so peak memory is its own). The model is built, then
converted with ``check=False`` at example batch 2 and at batch 64, alternately, ``--repeats``
times each (medians of wall time and of process CPU time; the VideoPose3D case also converts a
clip three times as long). Peak resident memory above the built model is read from the kernel
(``VmHWM``, reset before each conversion). Then the converted model's float64 equivariance error
is measured at batch 2 in eval and in train mode, exactly the work ``symmetrize(check=True)``
adds, and its time is compared with forward passes of the plain model (float32 and float64,
batch 2)::

    python benchmarks/bench_convert.py [--only mixste] [--out benchmarks/RESULTS_CONVERT.md]
    python benchmarks/bench_convert.py --quick        # small shapes: a smoke run

Targets (issue 14), each cell marked ✓ or ✗: conversion <= 3 s (wall, or process CPU time when
other load stretches the wall time), batch 64 within 10% of batch 2 (CPU time), peak <= 2 GB
above the model, float64 error <= 1e-10 in eval and train mode, the check at most a few forward
passes (here: <= 5 plain float64 forwards; it runs four, x and T x in eval and train mode).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmetrize import Spec, symmetrize  # noqa: E402
from symmetrize.atomic import write_atomic  # noqa: E402
from symmetrize.passes.check import equivariance_error  # noqa: E402
from tests.action_models import Model  # noqa: E402
from tests.pose_models import (  # noqa: E402
    ActionConditionedSeq2Seq,
    LearnedStateGRU,
    TemporalModel,
)
from tests.transformer_models import DualStreamLike, MixSTELike, PoseFormerLike  # noqa: E402

LIFT = Spec.preset("h36m")
SEQ = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
ONE_HOT = Spec(input="n t (j c) + k", output="n t (j c)", skeleton="h36m", negate=(0,),
               sizes={"c": 2})

#: issue 14's targets
MAX_SECONDS, MAX_BATCH_DRIFT, MAX_PEAK_MB, MAX_ERROR, MAX_CHECK_FORWARDS = 3.0, 0.10, 2048, \
    1e-10, 5.0

Case = tuple[Callable[[], nn.Module], Spec, tuple[int, ...]]

TITLE = """# Conversion at published size (issue 14)

Written by `PYTHONPATH=. python benchmarks/bench_convert.py --out FILE` (each model built from its
paper's description in `tests/`, converted with its Spec alone, in a fresh process)."""

LEGEND = """- **convert s**: `symmetrize(model, spec, example, check=False)` at example batch 2, median
  wall time and process CPU time (both threads; CPU time is less sensitive to other load, but
  under load it also counts OpenMP threads spinning while they wait for each other). Target
  <= 3 s: ✓ when the wall or the CPU time is within it.
- **batch 64 / batch 2**: the same conversion with an example of batch 64, as a ratio. Target:
  within 10% (judged on CPU time).
- **peak MB above model**: the peak resident memory during the conversion above the resident
  memory before it (kernel `VmHWM`, reset before each conversion). Target <= 2048 MB.
- **fp64 error**: relative float64 equivariance error of the converted model at batch 2, eval and
  train mode. Target <= 1e-10.
- **check**: the time of those two error measurements, which is what `symmetrize(check=True)`
  adds (four float64 forwards of the converted model: x and T x, eval and train, plus casting
  the model to float64 and back), in plain float32 and plain float64 forward passes of the
  original model at batch 2 (CPU-time ratios). Target "a few forward passes": ✓ at <= 5 plain
  float64 forwards.
"""


def cases(quick: bool) -> dict[str, Case]:
    """name -> (model factory, Spec, example shape at batch 1) at published sizes."""
    f = 27 if quick else 243
    if quick:
        return {
            "videopose3d": (lambda: TemporalModel(filter_widths=(3, 3, 3), channels=128), LIFT,
                            (1, 27, 17, 2)),
            "mixste": (lambda: MixSTELike(frames=9, dim=32, depth=2, heads=4), LIFT,
                       (1, 9, 17, 2)),
            "stgcn-kinetics": (lambda: Model(in_channels=3, num_class=400,
                                             graph_layout="openpose", channels=(32, 32, 64)),
                               Spec.preset("openpose-action"), (1, 3, 30, 18, 2)),
        }
    return {
        "videopose3d-243f-1024ch": (lambda: TemporalModel(filter_widths=(3, 3, 3, 3, 3),
                                                          channels=1024), LIFT, (1, f, 17, 2)),
        "poseformer-81f": (lambda: PoseFormerLike(frames=81, dim=32, depth=4, heads=8), LIFT,
                           (1, 81, 17, 2)),
        "mixste-243f-512d-depth8": (lambda: MixSTELike(frames=f, dim=512, depth=8, heads=8),
                                    LIFT, (1, f, 17, 2)),
        "dstformer-243f-512d-depth5": (lambda: DualStreamLike(frames=f, dim=512, depth=5,
                                                              heads=8), LIFT, (1, f, 17, 3)),
        "stgcn-kinetics-T300-M2-V18": (lambda: Model(in_channels=3, num_class=400,
                                                     graph_layout="openpose"),
                                       Spec.preset("openpose-action"), (1, 3, 300, 18, 2)),
        "stgcn-ntu-T300-M2-V25": (lambda: Model(in_channels=3, num_class=60),
                                  Spec.preset("ntu-action"), (1, 3, 300, 25, 2)),
        "gru-learned-h0-1024": (lambda: LearnedStateGRU(hidden=1024, horizon=25), SEQ,
                                (1, 50, 34)),
        "seq2seq-one-hot-1024": (lambda: ActionConditionedSeq2Seq(hidden=1024, horizon=25),
                                 ONE_HOT, (1, 50, 49)),
    }


# ----------------------------------------------------------------------------- measuring
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) of this process; False where it cannot
    be (then the peak is the process's lifetime peak, an over-estimate)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        return _status_mb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
    """(wall s, process CPU s, result) of one call ``fn(*args, **kwargs)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _batched(shape: tuple[int, ...], batch: int, frames: int | None = None) -> torch.Tensor:
    size = list(shape)
    size[0] = batch
    if frames is not None:
        size[1] = frames
    return torch.randn(size)


def _median_forward(model: nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of a no-grad forward, after one untimed call."""
    with torch.no_grad():
        model(x)
        times = [_timed(model, x)[:2] for _ in range(repeats)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def run_case(name: str, quick: bool, repeats: int) -> dict[str, Any]:
    """One case, in this process: conversion times and memory, then the check."""
    make, spec, shape = cases(quick)[name]
    torch.manual_seed(0)
    model = make().eval()
    out: dict[str, Any] = {
        "name": name, "parameters": sum(p.numel() for p in model.parameters()),
        "model_mb": sum(t.numel() * t.element_size()
                        for t in (*model.parameters(), *model.buffers())) / 2**20}
    symmetrize(model, spec, (_batched(shape, 1),), check=False)  # warm-up: imports, caches
    out["peak_reset"] = _reset_peak()
    times: dict[int, list[tuple[float, float]]] = {2: [], 64: []}
    peaks: dict[int, float] = {2: 0.0, 64: 0.0}
    chiral = None
    for _ in range(repeats):
        for batch in (2, 64):
            x = _batched(shape, batch)
            chiral = None
            base = _rss_mb()
            _reset_peak()
            wall, cpu, chiral = _timed(symmetrize, model, spec, (x,), check=False)
            peaks[batch] = max(peaks[batch], _peak_mb() - base)
            times[batch].append((wall, cpu))
    for batch in (2, 64):
        out[f"convert_s_b{batch}"] = statistics.median(t[0] for t in times[batch])
        out[f"convert_cpu_s_b{batch}"] = statistics.median(t[1] for t in times[batch])
        out[f"peak_mb_b{batch}"] = peaks[batch]
    out["peak_mb_above_model"] = peaks[2]
    chiral = symmetrize(model, spec, (_batched(shape, 2),), check=False)
    report = chiral.symmetrize_report
    out["parameter_ratio"] = report.parameter_ratio
    out["notes"] = [n for n in report.notes if n.startswith(("skeleton", "regular", "eigen"))]
    if name.startswith("videopose3d"):
        clip = _batched(shape, 2, frames=3 * shape[1])
        wall, cpu, _ = _timed(symmetrize, model, spec, (clip,), check=False)
        out["convert_s_triple_clip"], out["convert_cpu_s_triple_clip"] = wall, cpu
    # the check: what symmetrize(check=True) adds (api._measure), and plain forwards to compare
    x = _batched(shape, 2)
    out["fp32_forward_s"], out["fp32_forward_cpu_s"] = _median_forward(model, x, 3)
    out["check_s"] = out["check_cpu_s"] = 0.0
    for mode, train in (("eval", False), ("train", True)):
        wall, cpu, error = _timed(equivariance_error, chiral, spec, (x,), train)
        out[f"fp64_{mode}"] = error
        out["check_s"] += wall
        out["check_cpu_s"] += cpu
    del chiral
    model.double()
    out["fp64_forward_s"], out["fp64_forward_cpu_s"] = _median_forward(model, x.double(), 2)
    out["check_in_forward_passes"] = out["check_cpu_s"] / out["fp32_forward_cpu_s"]
    out["check_in_fp64_forwards"] = out["check_cpu_s"] / out["fp64_forward_cpu_s"]
    return out


# ----------------------------------------------------------------------------- the table
def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _row(r: dict[str, Any]) -> str:
    wall, cpu = r["convert_s_b2"], r["convert_cpu_s_b2"]
    fast = wall <= MAX_SECONDS or cpu <= MAX_SECONDS
    drift = r["convert_cpu_s_b64"] / r["convert_cpu_s_b2"]
    flat = abs(drift - 1) <= MAX_BATCH_DRIFT
    peak = max(r["peak_mb_b2"], r["peak_mb_b64"])
    fwd = r["check_in_fp64_forwards"]
    return (f"| {r['name']} | {r['parameters'] / 1e6:.2f} M, {r['model_mb']:.0f} MB | "
            f"{wall:.2f} / {cpu:.2f} {_mark(fast)} | "
            f"{r['convert_s_b64'] / wall:.2f} / {drift:.2f} {_mark(flat)} | "
            f"{r['peak_mb_b2']:.0f} / {r['peak_mb_b64']:.0f} {_mark(peak <= MAX_PEAK_MB)} | "
            f"{r['parameter_ratio']:.3f} | "
            f"{r['fp64_eval']:.1e} {_mark(r['fp64_eval'] <= MAX_ERROR)} | "
            f"{r['fp64_train']:.1e} {_mark(r['fp64_train'] <= MAX_ERROR)} | "
            f"{r['check_s']:.1f} s = {r['check_in_forward_passes']:.1f} fp32 / {fwd:.1f} fp64 "
            f"{_mark(fwd <= MAX_CHECK_FORWARDS)} |")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table: one row per model, each target-bearing cell marked ✓ / ✗."""
    header = ("| model | parameters, size | convert s, batch 2 (wall / CPU) | batch 64 / batch 2 "
              "(wall / CPU) | peak MB above model (batch 2 / 64) | params chiral/plain | "
              "fp64 error eval | fp64 error train | check: wall s = plain forwards (CPU time), "
              "batch 2 |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_row(r) for r in rows]
    clips = [r for r in rows if "convert_s_triple_clip" in r]
    for r in clips:
        lines.append(f"\n{r['name']}: a clip three times as long converts in "
                     f"{r['convert_s_triple_clip']:.2f} s wall / "
                     f"{r['convert_cpu_s_triple_clip']:.2f} s CPU (batch 2).")
    return "\n".join(lines)


def conditions(repeats: int) -> str:
    """When, on what, under which load."""
    load = os.getloadavg()
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min) at the end; "
            f"conversion times are medians of {repeats} alternating batch-2 / batch-64 runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="conversions per batch size (default 3, quick 1)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in a child process
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    if args.case:
        print(json.dumps(run_case(args.case, args.quick, repeats)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rows = []
    for name in cases(args.quick):
        if args.only not in name:
            continue
        command = [sys.executable, __file__, "--case", name, "--repeats", str(repeats),
                   *(["--quick"] if args.quick else [])]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"{name}: FAILED\n{done.stderr[-3000:]}", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    text = f"{conditions(repeats)}\n\n{markdown(rows)}\n"
    print(text)
    if args.out:
        write_atomic(args.out, lambda f: f.write(f"{TITLE}\n\n{text}\n{LEGEND}".encode()))


if __name__ == "__main__":
    main()
