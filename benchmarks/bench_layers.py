"""Forward+backward time of each chiral layer against the plain PyTorch layer of the same size.

Plain and chiral runs are interleaved and the median ratio over the rounds is reported, because
time on small shared machines swings by tens of percent from run to run. Shapes are VideoPose3D's
(1020 channels = 17 joints x 60, kernel 3, batch 64, T = 27 and 243) and the paper's LSTM
forecaster (batch 64, T = 25, 34 -> 1020).

    python benchmarks/bench_layers.py                 # full shapes, 7 rounds, Markdown table
    python benchmarks/bench_layers.py --quick         # small shapes, a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from symmetrize import Rep
from symmetrize.nn import ChiralBatchNorm1d, ChiralConv1d, ChiralGRU, ChiralLinear, ChiralLSTM


@dataclass
class Case:
    name: str
    plain: nn.Module
    chiral: nn.Module
    make_input: Callable[[], torch.Tensor]


def _cases(quick: bool) -> list[Case]:
    dims = 4 if quick else 60
    batch = 8 if quick else 64
    hidden = Rep.skeleton_hidden("h36m", dims, dims // 3)
    pose2d = Rep.pose("h36m", 2)
    width = hidden.size
    frames = (27, 243) if not quick else (27,)
    cases = []
    for t in frames:
        cases.append(Case(f"Conv1d {width}->{width} k3, batch {batch}, T={t}",
                          nn.Conv1d(width, width, 3), ChiralConv1d(hidden, hidden, 3),
                          lambda t=t: torch.randn(batch, width, t + 2)))
    cases.append(Case(f"Conv1d {width}->{width} k1, batch {batch}, T=27",
                      nn.Conv1d(width, width, 1), ChiralConv1d(hidden, hidden, 1),
                      lambda: torch.randn(batch, width, 27)))
    cases.append(Case(f"Linear {width}->{width}, {batch * 27} rows",
                      nn.Linear(width, width), ChiralLinear(hidden, hidden),
                      lambda: torch.randn(batch * 27, width)))
    seq = 25
    for name, plain_cls, chiral_cls in (("LSTM", nn.LSTM, ChiralLSTM), ("GRU", nn.GRU, ChiralGRU)):
        cases.append(Case(f"{name} {pose2d.size}->{width}, batch {batch}, T={seq}",
                          plain_cls(pose2d.size, width, batch_first=True),
                          chiral_cls(pose2d, hidden, batch_first=True),
                          lambda: torch.randn(batch, seq, pose2d.size)))
    shapes = [(batch, width, 27), (1024, width)] if quick else \
        [(batch, width, 27), (batch, width, 243), (1024, width)]
    for shape in shapes:
        cases.append(Case(f"BatchNorm1d {tuple(shape)}", nn.BatchNorm1d(width),
                          ChiralBatchNorm1d(hidden), lambda shape=shape: torch.randn(*shape)))
    return cases


def _output(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = module(x)
    return out[0] if isinstance(out, tuple) else out


def _step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    # A dense upstream gradient, as in training (``out.sum().backward()`` would hand the layer a
    # stride-0 gradient that some fused kernels special-case).
    _output(module, x).backward(grad)


def _time(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        _step(module, x, grad)
    return (time.perf_counter() - start) / repeats


def measure(case: Case, rounds: int, repeats: int | None, min_seconds: float) -> dict[str, float]:
    """Median over ``rounds`` of chiral/plain time, plain and chiral timed back to back.

    ``repeats=None`` picks the number of steps per timing so that one timing lasts at least
    ``min_seconds``.
    """
    x = case.make_input()
    case.plain.train()
    case.chiral.train()
    grad = torch.randn_like(_output(case.plain, x))
    for module in (case.plain, case.chiral):  # warm-up
        _step(module, x, grad)
    if repeats is None:
        repeats = max(1, round(min_seconds / _time(case.plain, x, grad, 1)))
    ratios, plain_times, chiral_times = [], [], []
    for r in range(rounds):
        order = (case.plain, case.chiral) if r % 2 == 0 else (case.chiral, case.plain)
        times = {id(m): _time(m, x, grad, repeats) for m in order}
        plain_times.append(times[id(case.plain)])
        chiral_times.append(times[id(case.chiral)])
        ratios.append(chiral_times[-1] / plain_times[-1])
    return {"plain_ms": 1e3 * statistics.median(plain_times),
            "chiral_ms": 1e3 * statistics.median(chiral_times),
            "ratio": statistics.median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7, quick 3)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="steps per timing (default: enough for 0.3 s, quick 1)")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 7)
    repeats = args.repeats or (1 if args.quick else None)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 CPU, "
          f"median of {rounds} interleaved rounds of >= 0.3 s, forward+backward\n")
    print("| layer | plain ms | chiral ms | chiral / plain |")
    print("|---|---:|---:|---:|")
    for case in _cases(args.quick):
        if args.only not in case.name:
            continue
        result = measure(case, rounds, repeats, min_seconds=0.3)
        print(f"| {case.name} | {result['plain_ms']:.1f} | {result['chiral_ms']:.1f} | "
              f"{result['ratio']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
