"""Conversion at published size: time, peak memory and exactness of ``symmetrize`` on the field's
flagship pose networks, each written from its paper's description (``tests/``), spec only.

Every case runs in a fresh process (so peak memory is its own): the model is built, then
converted with ``check=False`` at example batch 2 and again at batch 64 (and, for the temporal
convnet, at 27 and 243 frames); the peak resident memory above the built model is read from the
kernel. Then the float64 equivariance error of the converted model is measured in eval and train
mode at batch 1, and the time of that check is compared with one float32 forward pass of the
plain model::

    python benchmarks/bench_convert.py [--only mixste] [--out benchmarks/RESULTS_CONVERT.md]
    python benchmarks/bench_convert.py --quick        # small shapes: a smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmetrize import Spec, check, symmetrize  # noqa: E402
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

Case = tuple[Callable[[], nn.Module], Spec, tuple[int, ...]]


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


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _batched(shape: tuple[int, ...], batch: int, frames: int | None = None) -> torch.Tensor:
    size = list(shape)
    size[0] = batch
    if frames is not None:
        size[1] = frames
    return torch.randn(size)


def run_case(name: str, quick: bool) -> dict[str, Any]:
    """One case, in this process: conversion times and memory, then the check."""
    make, spec, shape = cases(quick)[name]
    torch.manual_seed(0)
    model = make().eval()
    parameters = sum(p.numel() for p in model.parameters())
    out: dict[str, Any] = {"name": name, "parameters": parameters}
    symmetrize(model, spec, (_batched(shape, 1),), check=False)  # warm-up: imports, caches
    base = _rss_mb()
    for batch in (2, 64):
        start = time.perf_counter()
        chiral = symmetrize(model, spec, (_batched(shape, batch),), check=False)
        out[f"convert_s_b{batch}"] = time.perf_counter() - start
        if batch == 2:
            out["peak_mb_above_model"] = _peak_mb() - base
            out["parameter_ratio"] = chiral.symmetrize_report.parameter_ratio
            out["notes"] = [n for n in chiral.symmetrize_report.notes if n.startswith(
                ("skeleton", "regular"))]
    if name.startswith("videopose3d"):
        start = time.perf_counter()
        symmetrize(model, spec, (_batched(shape, 2, frames=3 * shape[1]),), check=False)
        out["convert_s_triple_clip"] = time.perf_counter() - start
    x = _batched(shape, 1)
    with torch.no_grad():
        start = time.perf_counter()
        model(x)
        forward = time.perf_counter() - start
    start = time.perf_counter()
    result = check(chiral, spec, (x,), n_inputs=1, dtypes=(torch.float64,), localize=False)
    out["check_s"] = time.perf_counter() - start
    out["check_in_forward_passes"] = out["check_s"] / forward
    out["fp64_eval"] = result.case("eval", "float64").max_rel
    out["fp64_train"] = result.case("train", "float64").max_rel
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | parameters | convert s (batch 2) | batch 64 / batch 2 | peak MB above "
             "model | ratio | fp64 eval | fp64 train | check (plain fp32 forwards) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['parameters']:,} | {r['convert_s_b2']:.2f} | "
            f"{r['convert_s_b64'] / r['convert_s_b2']:.2f} | {r['peak_mb_above_model']:.0f} | "
            f"{r['parameter_ratio']:.3f} | {r['fp64_eval']:.1e} | {r['fp64_train']:.1e} | "
            f"{r['check_in_forward_passes']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in a child process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.quick)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rows = []
    for name in cases(args.quick):
        if args.only not in name:
            continue
        command = [sys.executable, __file__, "--case", name] + (["--quick"] if args.quick else [])
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"{name}: FAILED\n{done.stderr[-3000:]}", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
