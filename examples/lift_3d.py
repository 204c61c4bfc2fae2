"""2D-to-3D pose lifting on real motion capture, plain vs chiral (the paper's first application).

The CMU takes in ``../shared/data/cmu`` (mapped to the 17 Human3.6M joints) are filmed by random
virtual cameras; a VideoPose3D-style temporal convnet lifts the normalised 2D keypoints to
root-relative 3D joints in the camera frame. Training subjects 01-07, evaluation subjects 08-09
(the split is by subject, never by frame). Five variants, each trained with
``symmetrize.train.fit`` for the same epochs on the same windows, over several seeds:

- plain: the network as written;
- plain + flip augmentation (how VideoPose3D trains);
- plain + flip augmentation + flip test-time averaging (VideoPose3D's full recipe; 2 passes);
- chiral, skeleton hidden Reps (the paper's layout, ReLU switched to tanh);
- chiral, regular hidden Reps (swapped pairs only, ReLU kept).

Run ``python examples/lift_3d.py`` (``--quick`` for a smoke run, ``--json FILE`` for figures).
Without the data folder it falls back to procedural motion and says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmetrize.data.sources import MotionSplit, load_motion_split
from symmetrize.demo import VideoPose3DLike
from symmetrize.finetune import finetune_lifter
from symmetrize.train import TrainConfig

#: (row name, finetune variant, conversion options, score suffix)
VARIANTS = [
    ("plain", "plain", {}, ""),
    ("plain + flip augmentation", "plain+flip", {}, ""),
    ("plain + flip aug + flip TTA", "plain+flip", {}, "_tta"),
    ("chiral (skeleton Reps, tanh)", "chiral", {"hidden": "skeleton"}, ""),
    ("chiral (regular Reps, ReLU)", "chiral", {"hidden": "regular"}, ""),
]


def main() -> None:
    args = _parse()
    cmu = Path(args.data)
    data = str(cmu) if cmu.is_dir() else f"synthetic:{4 if args.quick else 24}"
    val = ["08", "09"] if cmu.is_dir() else None
    if not cmu.is_dir():
        print(f"note: {cmu} not found: using procedural motion instead of the CMU takes")
    torch.set_num_threads(args.threads)
    split = load_motion_split(data, val, downsample=args.downsample)  # once for every run
    print(f"data: {split.description}", flush=True)
    scores: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in VARIANTS}
    trained: dict[tuple[str, str, int], dict[str, float]] = {}
    for seed in args.seeds:
        for name, variant, options, suffix in VARIANTS:
            key = (variant, json.dumps(options), seed)
            if key not in trained:  # the TTA row reuses the flip-augmented model
                trained[key] = _train(variant, options, seed, split, args)
            run = trained[key]
            scores[name].append({"mpjpe_mm": run[f"mpjpe{suffix}_mm"],
                                 "p_mpjpe_mm": run[f"p_mpjpe{suffix}_mm"],
                                 "parameters": run["parameters"], "train_s": run["train_s"]})
            print(f"  seed {seed}  {name:<30} MPJPE {run[f'mpjpe{suffix}_mm']:6.1f} mm  "
                  f"P-MPJPE {run[f'p_mpjpe{suffix}_mm']:6.1f} mm", flush=True)
    _print_table(scores, args, data)
    if args.json:
        Path(args.json).write_text(json.dumps({"data": data, "seeds": args.seeds,
                                               "epochs": args.epochs, "scores": scores},
                                              indent=2))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cmu"),
                        help="folder of CMU .bvh takes (default ../shared/data/cmu)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--downsample", type=int, default=4, help="keep every n-th frame "
                                                                   "(4: 30 fps)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.channels, args.downsample = 1, 32, 16
    return args


def _train(variant: str, options: dict, seed: int, split: MotionSplit,
           args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(seed)
    model = VideoPose3DLike(channels=args.channels)
    config = TrainConfig(epochs=args.epochs, batch_size=128, seed=seed, progress=False,
                         device=args.device, max_steps=8 if args.quick else None)
    start = time.perf_counter()
    run = finetune_lifter(model, data=split, cameras=1, conversion=options, config=config,
                          variant=variant)
    return {**run.scores, "train_s": time.perf_counter() - start,
            "parameters": float(sum(p.numel() for p in run.model.parameters()))}


def _print_table(scores: dict[str, list[dict[str, float]]], args: argparse.Namespace,
                 data: str) -> None:
    print(f"\nlifting, {data}, {len(args.seeds)} seeds, {args.epochs} epochs each, "
          f"{args.channels} channels (mean ± std over seeds)\n")
    print("| variant | parameters | MPJPE mm | P-MPJPE mm | train s |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in scores.items():
        print(f"| {name} | {int(runs[0]['parameters']):,} | {_mean_std(runs, 'mpjpe_mm')} | "
              f"{_mean_std(runs, 'p_mpjpe_mm')} | {_mean_std(runs, 'train_s')} |")


def _mean_std(runs: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in runs]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {std:.1f}"


if __name__ == "__main__":
    main()
