"""2D-to-3D pose lifting on real motion capture, plain vs chiral (the paper's first application).

The CMU takes in ``../shared/data/cmu`` (mapped to the 17 Human3.6M joints) are filmed by random
virtual cameras; a VideoPose3D-style temporal convnet lifts the normalised 2D keypoints to
root-relative 3D joints in the camera frame. Training subjects 01-07, evaluation subjects 08-09
(the split is by subject, never by frame). Seven variants, each trained with
``symmetrize.train.fit`` for the same epochs on the same windows, over several seeds:

- plain: the network as written;
- plain + flip augmentation (how VideoPose3D trains);
- plain + flip augmentation + flip test-time averaging (VideoPose3D's full recipe; 2 passes);
- chiral, skeleton hidden Reps (the paper's layout, ReLU switched to tanh);
- chiral, regular hidden Reps (swapped pairs only, ReLU kept);
- a PoseFormer-style transformer (timm blocks, einops) with flip augmentation and flip
  test-time averaging, and converted with regular hidden Reps.

Run ``python examples/lift_3d.py`` (``--quick`` for a smoke run, ``--json FILE`` for figures).
Without the data folder it falls back to procedural motion and says so. ``--train-fraction F``
trains on a fraction of the training takes, drawn per seed (the data-efficiency runs of
``benchmarks/results.py``); ``run(parse_args([...]))`` returns the figures instead of printing
only.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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
    # a PoseFormer-style transformer (timm blocks, einops), plain as its authors train it and
    # converted with regular hidden Reps (LayerNorm needs channels that do not flip sign)
    ("PoseFormer-style + flip aug + flip TTA", "plain+flip", {"model": "poseformer"}, "_tta"),
    ("chiral PoseFormer-style (regular Reps)", "chiral",
     {"model": "poseformer", "hidden": "regular"}, ""),
]


#: the training schedule's fixed parts (``TrainConfig``'s learning-rate decay per epoch)
BATCH_SIZE, CAMERAS, LR_DECAY = 128, 1, TrainConfig.lr_decay


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default ``sys.argv``), train every variant over the seeds, print the table
    and, with ``--json``, write the figures."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    figures = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def load_split(args: argparse.Namespace) -> tuple[MotionSplit, str]:
    """The motion (CMU takes of ``args.data``, or procedural motion when the folder is absent,
    saying so) split by subject, and the source's name."""
    cmu = Path(args.data)
    data = str(cmu) if cmu.is_dir() else f"synthetic:{4 if args.quick else 24}"
    val = ["08", "09"] if cmu.is_dir() else None
    if not cmu.is_dir():
        print(f"note: {cmu} not found: using procedural motion instead of the CMU takes")
    return load_motion_split(data, val, downsample=args.downsample), data


def run(args: argparse.Namespace, split: MotionSplit | None = None, data: str | None = None,
        variants: list[str] | None = None) -> dict[str, Any]:
    """Train the ``variants`` (row names of :data:`VARIANTS`, default all) for every seed, print
    each run and the table, and return the figures: ``data``, ``seeds``, ``epochs``,
    ``scores`` (``{row: [one dict per seed]}``), ``split`` (the data's description),
    ``train_fraction``, ``budget`` and ``schedules`` (per seed: the training sequences and frames used, epochs, lr decay, step
    cap). ``split`` (with its source's name ``data``) is loaded once here when not given."""
    if split is None:
        split, data = load_split(args)
    print(f"data: {split.description}", flush=True)
    rows = [v for v in VARIANTS if variants is None or v[0] in variants]
    scores: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in rows}
    schedules: dict[str, dict[str, Any]] = {}
    trained: dict[tuple[str, str, int], dict[str, float]] = {}
    for seed in args.seeds:
        part = split.subset(args.train_fraction, seed) if args.train_fraction < 1 else split
        schedules[str(seed)] = schedule = training_schedule(split, part, args)
        if args.train_fraction < 1:
            print(f"  seed {seed}  training on {schedule['sequences']} of {schedule['of']} "
                  f"training sequences ({schedule['frames']} frames): {schedule['epochs']} epochs, lr decay {schedule['lr_decay']:.4f} per epoch, "
                  f"at most {schedule['max_steps']} steps", flush=True)
        for name, variant, options, suffix in rows:
            key = (variant, json.dumps(options), seed)
            if key not in trained:  # the TTA row reuses the flip-augmented model
                trained[key] = train_variant(variant, options, seed, part, args, schedule)
            result = trained[key]
            scores[name].append({"mpjpe_mm": result[f"mpjpe{suffix}_mm"],
                                 "p_mpjpe_mm": result[f"p_mpjpe{suffix}_mm"],
                                 "parameters": result["parameters"],
                                 "train_s": result["train_s"]})
            print(f"  seed {seed}  {name:<30} MPJPE {result[f'mpjpe{suffix}_mm']:6.1f} mm  "
                  f"P-MPJPE {result[f'p_mpjpe{suffix}_mm']:6.1f} mm", flush=True)
    _print_table(scores, args, data or "")
    return {"data": data, "seeds": args.seeds, "epochs": args.epochs, "scores": scores,
            "split": split.description, "train_fraction": args.train_fraction,
            "budget": args.budget, "schedules": schedules}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``; default ``sys.argv``); ``--quick`` shrinks the settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cmu"),
                        help="folder of CMU .bvh takes (default ../shared/data/cmu)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--downsample", type=int, default=4, help="keep every n-th frame "
                                                                   "(4: 30 fps)")
    parser.add_argument("--train-fraction", type=float, default=1.0, metavar="F",
                        help="train on this fraction of the training takes (at least one), "
                        "drawn per seed (MotionSplit.subset); evaluation always uses every "
                        "validation take (default 1)")
    parser.add_argument("--budget", choices=("steps", "epochs"), default="steps",
                        help="with --train-fraction below 1: 'steps' trains for the optimiser "
                        "steps of the full-data run (more epochs over fewer takes, the lr decay "
                        "stretched to the same total); 'epochs' for the same epochs (fewer "
                        "steps) (default steps)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args(argv)
    if not 0.0 < args.train_fraction <= 1.0:
        parser.error(f"--train-fraction must be in (0, 1], got {args.train_fraction}")
    if args.quick:
        args.epochs, args.channels, args.downsample = 1, 32, 16
    return args


def training_schedule(full: MotionSplit, part: MotionSplit, args: argparse.Namespace
                      ) -> dict[str, Any]:
    """Epochs, per-epoch lr decay and step cap for training on ``part`` of ``full``.

    The full data (or ``--budget epochs``) trains ``args.epochs`` epochs with the usual decay.
    With ``--budget steps`` a subset trains for the full run's optimiser steps: ``epochs`` grows
    so that they fit, the decay per epoch shrinks to the same total decay, and ``max_steps``
    stops at exactly the full run's step count. Every frame of every take is one training window
    per camera (``PoseWindows`` with stride 1), so steps per epoch are
    ``ceil(frames * CAMERAS / BATCH_SIZE)``."""
    frames_full = sum(len(s) for s in full.train)
    frames = sum(len(s) for s in part.train)
    epochs, lr_decay, max_steps = args.epochs, LR_DECAY, None
    if args.budget == "steps" and part is not full:
        total = args.epochs * math.ceil(frames_full * CAMERAS / BATCH_SIZE)
        epochs = max(args.epochs, math.ceil(total / math.ceil(frames * CAMERAS / BATCH_SIZE)))
        lr_decay, max_steps = LR_DECAY ** (args.epochs / epochs), total
    if args.quick:
        max_steps = min(max_steps or 8, 8)
    return {"sequences": len(part.train), "of": len(full.train), "frames": frames,
            "frames_full": frames_full, "epochs": epochs, "lr_decay": lr_decay,
            "max_steps": max_steps}


def make_model(name: str, channels: int) -> torch.nn.Module:
    """The lifter of a variant: the VideoPose3D-style convnet (27 frames, ``channels`` wide), or
    a PoseFormer-style transformer over the same 27-frame windows (needs timm and einops)."""
    if name == "videopose3d":
        return VideoPose3DLike(channels=channels)
    from tests.transformer_models import (
        PoseFormerLike,  # timm + einops, written for the tests
    )

    return PoseFormerLike(frames=27, dim=8, depth=2, heads=4, drop_path=0.1)


def train_variant(variant: str, options: dict, seed: int, split: MotionSplit,
                  args: argparse.Namespace, schedule: dict[str, Any]) -> dict[str, float]:
    """Train one ``finetune_lifter`` variant on ``split`` with ``schedule``; its scores, train
    seconds and parameter count."""
    torch.manual_seed(seed)
    options = dict(options)
    model = make_model(options.pop("model", "videopose3d"), args.channels)
    config = TrainConfig(epochs=schedule["epochs"], batch_size=BATCH_SIZE, seed=seed,
                         lr_decay=schedule["lr_decay"], progress=False, device=args.device,
                         max_steps=schedule["max_steps"])
    start = time.perf_counter()
    result = finetune_lifter(model, data=split, cameras=CAMERAS, conversion=options,
                             config=config, variant=variant)
    return {**result.scores, "train_s": time.perf_counter() - start,
            "parameters": float(sum(p.numel() for p in result.model.parameters()))}


def _print_table(scores: dict[str, list[dict[str, float]]], args: argparse.Namespace,
                 data: str) -> None:
    budget = (f", {args.train_fraction:.0%} of the training takes (same {args.budget})"
              if args.train_fraction < 1 else "")
    print(f"\nlifting, {data}, {len(args.seeds)} seeds, {args.epochs} epochs each, "
          f"{args.channels} channels{budget} (mean ± std over seeds)\n")
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
