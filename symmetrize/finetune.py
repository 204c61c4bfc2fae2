"""Fine-tune a 2D-to-3D pose lifter (VideoPose3D-style) end to end: 3D motion, virtual cameras,
temporal windows, conversion (or a saved converted model), :func:`~symmetrize.train.fit`, and
the field's metrics on the validation split."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from symmetrize.atomic import write_atomic
from symmetrize.data.sources import MotionSplit, load_motion_split
from symmetrize.spec import Spec
from symmetrize.train import TrainConfig, TrainResult, evaluate, fit

__all__ = ["VARIANTS", "LifterRun", "finetune", "finetune_lifter"]

#: how :func:`finetune_lifter` trains: converted, plain, plain with VideoPose3D's flip augmentation
VARIANTS = ("chiral", "plain", "plain+flip")


@dataclass
class LifterRun:
    """A fine-tuned lifter, its training record and its validation scores (millimetres):
    ``mpjpe_mm`` and ``p_mpjpe_mm``, and for plain variants also ``mpjpe_tta_mm`` and
    ``p_mpjpe_tta_mm`` (with flip test-time averaging)."""

    model: nn.Module
    result: TrainResult
    scores: dict[str, float]
    description: str


def finetune_lifter(model: nn.Module, spec: Spec | None = None, *,
                    data: str | MotionSplit = "synthetic",
                    val_subjects: list[str] | None = None, frames: int | None = None,
                    cameras: int = 2, noise: float = 0.0, downsample: int | None = None,
                    load: str | None = None,
                    conversion: dict[str, Any] | None = None,
                    config: TrainConfig | None = None, variant: str = "chiral") -> LifterRun:
    """Convert ``model`` (or reload the converted model saved in ``load``) and train it to lift
    normalised 2D keypoints ``(N, frames, J, 2)`` to root-relative camera-frame 3D poses.

    ``spec`` defaults to ``Spec.preset("h36m")``; ``data`` is read by
    :func:`~symmetrize.data.sources.load_motion_split` (or given already loaded, a
    :class:`~symmetrize.data.sources.MotionSplit`, to train several variants on it); ``frames`` defaults to the model's
    ``receptive_field()``; ``downsample`` keeps every n-th frame of real motion (default 2 for
    120 fps BVH). ``variant`` (:data:`VARIANTS`): ``"chiral"`` converts; ``"plain"``
    trains the model as it is (no check); ``"plain+flip"`` as VideoPose3D does, with flip
    augmentation. Returns the model with validation MPJPE and P-MPJPE in millimetres (plain
    variants also with flip test-time averaging).
    """
    from symmetrize.data.lifting import lifting_pairs
    from symmetrize.data.windows import PoseWindows
    from symmetrize.metrics import mpjpe, p_mpjpe

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant != "chiral" and load is not None:
        raise ValueError(f"variant {variant!r} trains the plain model: it cannot start from a "
                         "converted one (drop load / --load)")
    config = config or TrainConfig()
    frames = frames or _receptive_field(model)
    split = data if isinstance(data, MotionSplit) else load_motion_split(
        data, val_subjects, config.seed, downsample)
    if load is not None:
        from symmetrize.io import load_converted

        model = load_converted(load, model)
        spec = spec or model.symmetrize_report.spec
    spec = spec or Spec.preset("h36m")
    joints = len(spec.skeleton)
    train = PoseWindows(lifting_pairs(split.train, cameras, config.seed, noise=noise), frames,
                        skeleton=spec.skeleton, output_skeleton=spec.output_skeleton)
    val = PoseWindows(lifting_pairs(split.val, 1, config.seed + 1), frames,
                      skeleton=spec.skeleton, output_skeleton=spec.output_skeleton)
    augment, tta = None, partial(_flip_average, spec=spec)
    if variant != "chiral":
        config = replace(config, check=False)
        if variant == "plain+flip":
            from symmetrize.data.augment import BatchFlip

            augment = BatchFlip(spec.skeleton, spec.output_skeleton, spec.negate,
                                spec.output_negate)
    elif load is None:
        from symmetrize.api import symmetrize

        model = symmetrize(model, spec, (torch.zeros(2, frames, joints, 2),),
                           **(conversion or {}))
    result = fit(model, train, config, val=val, spec=spec, augment=augment)
    device = next(model.parameters()).device
    scores = {}
    for suffix, predict in (("", None), ("_tta", tta if variant != "chiral" else None)):
        if suffix and predict is None:
            continue
        for name, metric in (("mpjpe", mpjpe), ("p_mpjpe", p_mpjpe)):
            value = evaluate(model, val, metric, config.batch_size, device, predict)
            scores[f"{name}{suffix}_mm"] = 1000 * value
    description = (f"{split.description}; {len(train)} training and {len(val)} validation "
                   f"windows of {frames} frames")
    return LifterRun(model, result, scores, description)


def finetune(model: nn.Module, spec: Spec | None, args: argparse.Namespace,
             conversion: dict[str, Any]) -> int:
    """``symmetrize finetune``: run :func:`finetune_lifter` from parsed arguments, save the model
    like ``symmetrize convert`` and print a summary (the main process only)."""
    from symmetrize.io import save_converted

    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_decay=args.lr_decay,
        grad_clip="auto" if args.grad_clip is None else args.grad_clip, amp=args.amp,
        device=args.device, seed=args.seed, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume,
        max_minutes=args.max_minutes, max_steps=args.max_steps, log=args.log,
        progress=not args.no_progress, check=not args.no_check)
    run = finetune_lifter(model, spec, data=args.data, val_subjects=args.val_subjects,
                          frames=args.frames, cameras=args.cameras, noise=args.noise,
                          load=args.load, conversion=conversion, config=config,
                          variant=args.variant)
    if int(os.environ.get("RANK", "0")) == 0:
        if args.variant != "chiral":
            write_atomic(args.out, lambda f: torch.save(run.model.cpu().state_dict(), f))
        else:
            save_converted(run.model.cpu(), args.out, factory=args.target)
        losses = ", ".join(f"{v * 1000:.1f}" for v in run.result.train_loss)
        print(f"Fine-tuned on {run.description}: {run.result.epochs_done} epochs, "
              f"{run.result.steps} steps in {run.result.seconds:.0f} s ({run.result.stopped}); "
              f"training MPJPE per epoch (mm): {losses or '-'}; validation MPJPE "
              f"{run.scores['mpjpe_mm']:.1f} mm, P-MPJPE {run.scores['p_mpjpe_mm']:.1f} mm"
              + (f" (with flip test-time averaging {run.scores['mpjpe_tta_mm']:.1f} mm)"
                 if "mpjpe_tta_mm" in run.scores else "")
              + f". Saved to {args.out}.")
    return 0


def _flip_average(model: nn.Module, inputs: Any, spec: Spec) -> torch.Tensor:
    from symmetrize.data.windows import flip_test_average

    return flip_test_average(model, inputs[0], spec.skeleton, spec.output_skeleton, spec.negate,
                             spec.output_negate)


def _receptive_field(model: nn.Module) -> int:
    field = getattr(model, "receptive_field", None)
    if callable(field):
        return int(field())
    raise ValueError(f"{type(model).__name__} has no receptive_field() method: give the input "
                     "frames per sample with --frames (frames=...)")
