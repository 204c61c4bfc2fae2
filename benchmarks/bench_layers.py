"""Forward+backward time of each chiral layer against the plain PyTorch layer of the same size.

Plain and chiral runs are interleaved and the median ratio over the rounds is reported
(``benchmarks/timing.py``), because time on small shared machines swings by tens of percent from
run to run. The chiral layers run in the mirror's eigenbasis (``execution`` column). Shapes are VideoPose3D's
(1020 channels = 17 joints x 60, kernel 3, batch 64, T = 27 and 243) and the paper's LSTM
forecaster (batch 64, T = 25, 34 -> 1020).

    python benchmarks/bench_layers.py                 # full shapes, 7 rounds, Markdown table
    python benchmarks/bench_layers.py --quick         # small shapes, a smoke run
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import interleaved  # noqa: E402

from symmetrize import Rep  # noqa: E402
from symmetrize.nn import (  # noqa: E402
    ChiralBatchNorm1d,
    ChiralConv1d,
    ChiralGRU,
    ChiralLinear,
    ChiralLSTM,
)


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


def measure(case: Case, rounds: int, repeats: int | None, min_seconds: float) -> dict[str, float]:
    """Median over ``rounds`` of chiral/plain time, plain and chiral timed back to back."""
    x = case.make_input()
    case.plain.train()
    case.chiral.train()
    grad = torch.randn_like(_output(case.plain, x))
    result = interleaved({"plain": lambda: _step(case.plain, x, grad),
                          "chiral": lambda: _step(case.chiral, x, grad)}, "plain", rounds,
                         min_seconds, repeats)
    return {"plain_ms": result["plain"].ms, "chiral_ms": result["chiral"].ms,
            "ratio": result["chiral"].ratio}


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
    print("| layer | execution | plain ms | chiral ms | chiral / plain |")
    print("|---|---|---:|---:|---:|")
    for case in _cases(args.quick):
        if args.only not in case.name:
            continue
        result = measure(case, rounds, repeats, min_seconds=0.3)
        execution = getattr(case.chiral, "execution", "-")
        print(f"| {case.name} | {execution} | {result['plain_ms']:.1f} | "
              f"{result['chiral_ms']:.1f} | {result['ratio']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
