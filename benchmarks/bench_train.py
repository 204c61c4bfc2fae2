"""Fine-tuning figures on the lifting task: training throughput of the converted model against the
plain one (same data, same run), and the validation MPJPE each reaches in the same budget.

The data is procedural motion filmed by virtual cameras (or CMU takes with ``--data DIR``); the
model a VideoPose3D-style temporal convnet. Both train with ``symmetrize.train.fit`` for the
same number of epochs; the plain one as VideoPose3D trains it (flip augmentation, flip test-time
averaging)::

    PYTHONPATH=. python benchmarks/bench_train.py [--data synthetic:16] [--epochs 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symmetrize.finetune import finetune_lifter
from symmetrize.train import TrainConfig
from tests.pose_models import TemporalModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic:16")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    args = parser.parse_args()
    data, epochs = ("synthetic:2", 1) if args.quick else (args.data, args.epochs)
    rows = []
    for name, variant in (("plain (flip aug + flip TTA)", "plain+flip"), ("chiral", "chiral")):
        torch.manual_seed(0)
        model = TemporalModel(filter_widths=(3, 3, 3), channels=args.channels)
        config = TrainConfig(epochs=epochs, batch_size=128, progress=False, device=args.device)
        start = time.perf_counter()
        run = finetune_lifter(model, data=data, config=config, variant=variant)
        seconds = time.perf_counter() - start
        params = sum(p.numel() for p in run.model.parameters())
        tta = "_tta" if variant != "chiral" else ""
        rows.append((name, params, run.result.steps / run.result.seconds, seconds,
                     run.scores[f"mpjpe{tta}_mm"], run.scores[f"p_mpjpe{tta}_mm"]))
    print("| model | parameters | steps/s | wall s | val MPJPE mm | val P-MPJPE mm |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, params, rate, seconds, m, p in rows:
        print(f"| {name} | {params:,} | {rate:.1f} | {seconds:.1f} | {m:.1f} | {p:.1f} |")
    print(f"\nchiral/plain: parameters {rows[1][1] / rows[0][1]:.3f}, steps/s "
          f"{rows[1][2] / rows[0][2]:.2f}")


if __name__ == "__main__":
    main()
