"""Conversion figures for the test pose networks: wall time, parameter ratio, equivariance.

For each model (written in its authors' style, in ``tests/``): the time ``symmetrize`` takes
(with and without its float64 check), the exact parameter ratio, the equivariance error of the
converted model in float32 and float64 (eval mode), and the forward+backward time of the
converted model against the plain one, measured in the same run::

    PYTHONPATH=. python benchmarks/bench_convert.py [--device cuda] [--only stgcn] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symmetrize import Spec, symmetrize  # noqa: E402
from tests.action_models import Model, SkeletonGRUClassifier  # noqa: E402
from tests.pose_models import MLPLifter, Seq2Seq, TemporalModel, TemporalModelOptimized  # noqa: E402

H36M = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))


def cases(quick: bool) -> dict[str, tuple[Callable[[], nn.Module], Spec, torch.Tensor, dict]]:
    frames = 81 if quick else 243
    wide = (3, 3, 3, 3) if quick else (3, 3, 3, 3, 3)
    clip = Spec(input="n c t j m", output="n k", skeleton="ntu", negate=(0,))
    return {
        "videopose3d-27f": (lambda: TemporalModel(filter_widths=(3, 3, 3), channels=1024),
                            H36M, torch.randn(2, 27, 17, 2), {}),
        f"videopose3d-{frames}f-1024ch": (lambda: TemporalModel(filter_widths=wide,
                                                                 channels=1024),
                                          H36M, torch.randn(2, frames, 17, 2), {}),
        f"videopose3d-{frames}f-1020ch": (lambda: TemporalModel(filter_widths=wide,
                                                                 channels=1020),
                                          H36M, torch.randn(2, frames, 17, 2), {}),
        "videopose3d-optimized": (lambda: TemporalModelOptimized(filter_widths=wide,
                                                                 channels=1024),
                                  H36M, torch.randn(2, frames, 17, 2), {}),
        "mlp-lifter-17to15": (lambda: MLPLifter(joints_in=17, joints_out=15, size=1024),
                              Spec(input="n j c", output="n j c", skeleton="h36m",
                                   output_skeleton="humaneva", negate=(0,)),
                              torch.randn(64, 17, 2), {}),
        "seq2seq-lstm": (lambda: Seq2Seq(cell=nn.LSTM, hidden=1024),
                         Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m",
                              negate=(0,)), torch.randn(16, 13, 34), {}),
        "seq2seq-gru": (lambda: Seq2Seq(cell=nn.GRU, hidden=1024),
                        Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m",
                             negate=(0,)), torch.randn(16, 13, 34), {}),
        "stgcn-ntu": (lambda: Model(in_channels=3, num_class=60), clip,
                      torch.randn(4, 3, 32 if quick else 64, 25, 2), {}),
        "stgcn-ntu-invariant@4": (lambda: Model(in_channels=3, num_class=60, channels=(
            64, 64, 64, 128, 128, 128, 256, 256, 256)), clip,
            torch.randn(4, 3, 32 if quick else 64, 25, 2),
            {"invariant_at": "st_gcn_networks.3"}),
        "gru-classifier": (lambda: SkeletonGRUClassifier(num_joints=17, in_channels=2,
                                                         hidden_size=512, fc_size=256),
                           Spec(input="n t j c", output="n k", skeleton="h36m", negate=(0,)),
                           torch.randn(16, 30, 17, 2), {}),
    }


def error(model: nn.Module, spec: Spec, x: torch.Tensor, dtype: torch.dtype) -> float:
    probe = copy.deepcopy(model).to(dtype).eval()
    x = x.to(dtype)
    with torch.no_grad():
        y, y_m = probe(x), probe(spec.mirror_input(0, x))
    return (y_m - spec.mirror_output(0, y)).abs().max().item() / max(y.abs().max().item(), 1e-12)


def step_time(model: nn.Module, x: torch.Tensor, rounds: int) -> float:
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for i in range(rounds + 2):
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model(x)
        out.float().pow(2).mean().backward()
        for p in params:
            p.grad = None
        if x.is_cuda:
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--quick", action="store_true", help="shorter clips, fewer rounds")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    rounds = 2 if args.quick else args.rounds
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    header = ("model", "convert s", "+check s", "params", "ratio", "fp32 err", "fp64 err",
              "step ratio")
    print("  ".join(f"{h:>12}" if i else f"{h:<26}" for i, h in enumerate(header)))
    for name, (make, spec, x, options) in cases(args.quick).items():
        if args.only not in name:
            continue
        torch.manual_seed(0)
        model = make()
        symmetrize(model, spec, (x[:2],), check=False, **options)  # warm-up (imports, caches)
        start = time.perf_counter()
        symmetrize(model, spec, (x,), check=False, **options)
        bare = time.perf_counter() - start
        start = time.perf_counter()
        chiral = symmetrize(model, spec, (x,), **options)
        full = time.perf_counter() - start
        report = chiral.symmetrize_report
        x_dev = x.to(device)
        plain_dev, chiral_dev = model.to(device), chiral.to(device)
        e32 = error(chiral_dev, spec, x_dev, torch.float32)
        e64 = error(chiral_dev, spec, x_dev, torch.float64)
        ratio = step_time(chiral_dev, x_dev, rounds) / step_time(plain_dev, x_dev, rounds)
        row = (name, f"{bare:.3f}", f"{full:.3f}", f"{report.parameters_after:,}",
               f"{report.parameter_ratio:.4f}", f"{e32:.1e}", f"{e64:.1e}", f"{ratio:.3f}")
        print("  ".join(f"{c:>12}" if i else f"{c:<26}" for i, c in enumerate(row)), flush=True)


if __name__ == "__main__":
    main()
