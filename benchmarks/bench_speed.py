"""Whole-model speed of converted (chiral) models against the plain ones, in the same run.

For each model: a train step (forward, MSE loss, backward, Adam step) and inference
(``torch.no_grad``, eval mode), chiral / plain; chiral inference against plain + flip
test-time averaging (the plain model run on ``x`` and on the mirrored ``x``); the model exported
in block form (``export_blocks``) and as plain dense modules (``export_plain``) against plain
inference. VideoPose3D and the MLP lifter also appear converted with ``hidden="eigen"`` (rows
marked so; the other rows use the default hidden policy). Plain and chiral run interleaved;
each figure is the median of the per-round ratios (``benchmarks/timing.py``)::

    PYTHONPATH=. python benchmarks/bench_speed.py [--quick] [--only NAME] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import interleaved  # noqa: E402

from symmetrize import Spec, symmetrize  # noqa: E402
from symmetrize.atomic import write_atomic  # noqa: E402
from symmetrize.export import export_blocks, export_plain  # noqa: E402
from tests.pose_models import MLPLifter, Seq2Seq, TemporalModel  # noqa: E402

H36M_SEQ = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
H36M_POSE = Spec(input="n j c", output="n j c", skeleton="h36m", negate=(0,))
H36M_FLAT = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    spec: Spec
    batch: Callable[[], torch.Tensor]
    options: dict[str, Any]


def cases(quick: bool) -> list[Case]:
    """The five models (published sizes; ``quick``: small ones for a smoke run), and VideoPose3D
    and the MLP lifter once more converted with ``hidden="eigen"`` (hidden channels in the
    mirror's eigenbasis: no basis change between consecutive chiral layers)."""
    from tests.transformer_models import PoseFormerLike

    width, frames, batch = (68, 27, 4) if quick else (1024, 243, 64)
    widths = (3, 3, 3) if quick else (3, 3, 3, 3, 3)
    former = dict(frames=9, dim=8, depth=1, heads=2) if quick else \
        dict(frames=81, dim=32, depth=4, heads=8)
    seq_in, seq_out = (6, 3) if quick else (25, 10)
    return [
        Case(f"VideoPose3D {frames}f x {width}, batch {batch}",
             lambda: TemporalModel(filter_widths=widths, channels=width), H36M_SEQ,
             lambda: torch.randn(batch, frames, 17, 2), {}),
        Case(f"VideoPose3D {frames}f x {width}, batch {batch}, `hidden=\"eigen\"`",
             lambda: TemporalModel(filter_widths=widths, channels=width), H36M_SEQ,
             lambda: torch.randn(batch, frames, 17, 2), {"hidden": "eigen"}),
        Case(f"MLP lifter {width} wide, 4 blocks, batch {4 * batch}",
             lambda: MLPLifter(joints_in=17, joints_out=17, size=width, stages=4), H36M_POSE,
             lambda: torch.randn(4 * batch, 17, 2), {}),
        Case(f"MLP lifter {width} wide, 4 blocks, batch {4 * batch}, `hidden=\"eigen\"`",
             lambda: MLPLifter(joints_in=17, joints_out=17, size=width, stages=4), H36M_POSE,
             lambda: torch.randn(4 * batch, 17, 2), {"hidden": "eigen"}),
        Case(f"PoseFormer-style {former['frames']}f, dim {former['dim']}, depth "
             f"{former['depth']}, regular, batch {batch // 2}",
             lambda: PoseFormerLike(**former), H36M_SEQ,
             lambda: torch.randn(batch // 2, former["frames"], 17, 2), {"hidden": "regular"}),
        Case(f"Seq2Seq LSTM hidden {width}, {seq_in}+{seq_out} frames, batch {batch}",
             lambda: Seq2Seq(hidden=width, input_len=seq_in, output_len=seq_out, cell=nn.LSTM),
             H36M_FLAT, lambda: torch.randn(batch, seq_in + seq_out, 34), {}),
        Case(f"Seq2Seq GRU hidden {width}, {seq_in}+{seq_out} frames, batch {batch}",
             lambda: Seq2Seq(hidden=width, input_len=seq_in, output_len=seq_out, cell=nn.GRU),
             H36M_FLAT, lambda: torch.randn(batch, seq_in + seq_out, 34), {}),
    ]


def _train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = (model(x) - target).square().mean()
        loss.backward()
        opt.step()
    return step


def _infer(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x)
    return run


def _flip_tta(model: nn.Module, spec: Spec, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            y = model(x)
            y_m = spec.mirror_output(0, model(spec.mirror_input(0, x)))
            (y + y_m) / 2
    return run


def measure(case: Case, rounds: int, min_seconds: float) -> dict[str, float]:
    """The ratios of one model (see the module docstring)."""
    torch.manual_seed(0)
    plain = case.build()
    x = case.batch()
    chiral = symmetrize(copy.deepcopy(plain), case.spec, (x[:2],), **case.options)
    with torch.no_grad():
        target = torch.randn_like(plain(x))
    plain.train()
    chiral.train()
    train = interleaved({"plain": _train_step(plain, x, target),
                         "chiral": _train_step(chiral, x, target)}, "plain", rounds, min_seconds)
    plain.eval()
    chiral.eval()
    blocks, dense = export_blocks(chiral), export_plain(chiral)
    infer = interleaved({"plain": _infer(plain, x), "chiral": _infer(chiral, x),
                         "plain+flip": _flip_tta(plain, case.spec, x),
                         "blocks": _infer(blocks, x), "dense": _infer(dense, x)},
                        "plain", rounds, min_seconds)
    return {"params": sum(p.numel() for p in chiral.parameters())
            / sum(p.numel() for p in plain.parameters()),
            "train": train["chiral"].ratio, "train_ms": train["plain"].ms,
            "infer": infer["chiral"].ratio, "infer_ms": infer["plain"].ms,
            "tta": infer["chiral"].ratio / infer["plain+flip"].ratio,
            "blocks": infer["blocks"].ratio, "dense": infer["dense"].ratio}


def _ms(value: float) -> str:
    """Milliseconds with three significant digits at most (small models run in under 1 ms)."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(rows: list[tuple[str, dict[str, float]]], header: str) -> str:
    lines = [header, "",
             "| model | params chiral/plain | plain train step ms | train chiral/plain | "
             "plain inference ms | inference chiral/plain | chiral / (plain + flip TTA) | "
             "exported blocks/plain | exported dense/plain |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['params']:.3f} | {_ms(r['train_ms'])} | {r['train']:.2f} | "
                     f"{_ms(r['infer_ms'])} | {r['infer']:.2f} | {r['tta']:.2f} | "
                     f"{r['blocks']:.2f} | {r['dense']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, 3 rounds (seconds)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--only", default="", help="run the models whose name contains this")
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 7)
    min_seconds = 0.0 if args.quick else 0.3
    header = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 CPU; "
              f"medians of {rounds} interleaved rounds (ratios: median of per-round ratios)")
    rows = []
    for case in cases(args.quick):
        if args.only and args.only not in case.name:
            continue
        rows.append((case.name, measure(case, rounds, min_seconds)))
        print(f"{case.name}: {rows[-1][1]}", flush=True)
    text = table(rows, header)
    print(text)
    if args.out:
        write_atomic(args.out, lambda f: f.write(text.encode()))
    return text


if __name__ == "__main__":
    main()
