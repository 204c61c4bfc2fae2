"""Fine-tune a 2D-to-3D pose lifter (VideoPose3D-style) end to end: 3D motion, virtual cameras,
temporal windows, conversion (or a saved converted model), :func:`~symmetrize.train.fit`, and
the field's metrics on the validation split."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from symmetrize.atomic import write_atomic
from symmetrize.data.sources import MotionSplit, load_motion_split
from symmetrize.spec import Spec
from symmetrize.train import TrainConfig, TrainResult, evaluate, fit

__all__ = ["VARIANTS", "LifterRun", "check_lifter_args", "finetune", "finetune_lifter",
           "train_config"]

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
                    joint_map: Any = None, load: str | None = None,
                    conversion: dict[str, Any] | None = None,
                    config: TrainConfig | None = None, variant: str = "chiral",
                    frames_out: int = 1, val_cameras: int = 1) -> LifterRun:
    """Convert ``model`` (or reload the converted model saved in ``load``) and train it to lift
    normalised 2D keypoints ``(N, frames, J, 2)`` to root-relative camera-frame 3D poses.

    ``spec`` defaults to ``Spec.preset("h36m")``; ``data`` is read by
    :func:`~symmetrize.data.sources.load_motion_split` (or given already loaded, a
    :class:`~symmetrize.data.sources.MotionSplit`, to train several variants on it); ``frames`` defaults to the model's
    ``receptive_field()``; ``downsample`` keeps every n-th frame of real motion (default 2 for
    120 fps takes); ``joint_map`` (TOML files or :class:`~symmetrize.data.joint_maps.JointMap` s)
    maps takes of another naming onto the spec's skeleton. ``variant`` (:data:`VARIANTS`):
    ``"chiral"`` converts; ``"plain"`` trains the model as it is (no check); ``"plain+flip"``
    as VideoPose3D does, with flip augmentation. ``frames_out``: output frames per window (a
    temporal convnet lifts a chunk at once); ``val_cameras``: cameras filming each validation
    sequence. Returns the model with validation MPJPE and P-MPJPE in millimetres (plain
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
    check_lifter_args(model, spec, data=data, val_subjects=val_subjects, frames=frames,
                      cameras=cameras, noise=noise, downsample=downsample, load=load,
                      conversion=conversion, config=config)
    for name, value in (("frames_out", frames_out), ("val_cameras", val_cameras)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is not allowed: an integer >= 1")
    frames = frames or _receptive_field(model)
    if load is not None:
        from symmetrize.io import load_converted

        model = load_converted(load, model)
        spec = spec or model.symmetrize_report.spec
    spec = spec or Spec.preset("h36m")
    split = data if isinstance(data, MotionSplit) else load_motion_split(
        data, val_subjects, config.seed, downsample, skeleton=spec.skeleton, joint_map=joint_map)
    joints = len(spec.skeleton)
    train = PoseWindows(lifting_pairs(split.train, cameras, config.seed, noise=noise), frames,
                        frames_out, skeleton=spec.skeleton, output_skeleton=spec.output_skeleton)
    val = PoseWindows(lifting_pairs(split.val, val_cameras, config.seed + 1), frames, frames_out,
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


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`~symmetrize.train.TrainConfig` of ``symmetrize finetune``'s options (a bad
    value raises :class:`~symmetrize.train.ConfigError`)."""
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_decay=args.lr_decay,
        grad_clip="auto" if args.grad_clip is None else args.grad_clip, amp=args.amp,
        device=args.device, seed=args.seed, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume,
        max_minutes=args.max_minutes, max_steps=args.max_steps, log=args.log,
        progress=not args.no_progress, check=not args.no_check)


def finetune(model: nn.Module, spec: Spec | None, args: argparse.Namespace,
             conversion: dict[str, Any], config: TrainConfig | None = None) -> int:
    """``symmetrize finetune``: run :func:`finetune_lifter` from parsed arguments (``config``
    made from them by the command line), save the model like ``symmetrize convert`` and print a
    summary (the main process only). A resumed run that had nothing left to train keeps an
    existing ``-o`` file as it is."""
    from symmetrize.io import save_converted

    if config is None:
        config = train_config(args)
    run = finetune_lifter(model, spec, data=args.data, val_subjects=args.val_subjects,
                          frames=args.frames, cameras=args.cameras, noise=args.noise,
                          joint_map=getattr(args, "joint_map", None), load=args.load,
                          conversion=conversion, config=config, variant=args.variant)
    if int(os.environ.get("RANK", "0")) == 0:
        idle = run.result.steps == run.result.start_step > 0 and os.path.exists(args.out)
        if idle:
            saved = (f". Nothing left to train (the checkpoint {args.checkpoint} is at step "
                     f"{run.result.steps}): {args.out} is left as it is.")
        elif args.variant != "chiral":
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
              + (saved if idle else f". Saved to {args.out}."))
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


def check_lifter_args(model: Any, spec: Any, *, data: Any, val_subjects: Any, frames: Any,
                      cameras: Any, noise: Any, downsample: Any, load: Any, conversion: Any,
                      config: Any) -> None:
    """:func:`finetune_lifter`'s arguments, checked before any data is read: one error naming
    the argument, the value given and what is allowed."""
    from symmetrize.atomic import check_writable

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if spec is not None and not isinstance(spec, Spec):
        raise TypeError(f"spec must be a Spec or None, got {type(spec).__name__}")
    if not isinstance(data, (str, MotionSplit)):
        raise TypeError(f"data must be a source string ('synthetic', a folder, an .npz) or a "
                        f"MotionSplit, got {type(data).__name__}")
    if val_subjects is not None and (isinstance(val_subjects, str) or not isinstance(
            val_subjects, (list, tuple)) or not all(isinstance(v, str) and v.strip()
                                                    for v in val_subjects) or not val_subjects):
        raise ValueError(f"val_subjects={val_subjects!r} is not allowed: a non-empty list of "
                         "subject names such as ['S9', 'S11'], or None")
    for name, value, low in (("frames", frames, 1), ("downsample", downsample, 1),
                             ("cameras", cameras, 1)):
        if value is None and name != "cameras":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} is not allowed: an integer >= {low}"
                             + ("" if name == "cameras" else " or None"))
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or \
            not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise={noise!r} is not allowed: a finite number >= 0")
    if conversion is not None and not isinstance(conversion, Mapping):
        raise TypeError(f"conversion must be a dict of symmetrize() options or None, got "
                        f"{type(conversion).__name__}")
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or None, got {type(config).__name__}")
    if load is not None:
        if not isinstance(load, (str, os.PathLike)):
            raise TypeError(f"load must be a file path or None, got {type(load).__name__}")
        if not os.path.isfile(load):
            raise FileNotFoundError(f"load={os.fspath(load)!r}: no such file. Fix: give the "
                                    "file 'symmetrize convert' or save_converted wrote")
    if config is not None:
        config.validate()
        for path, what in ((config.checkpoint, "checkpoint"), (config.log, "log")):
            if path is None:
                continue
            check_writable(path, what)
            if load is not None and os.path.abspath(path) == os.path.abspath(load):
                raise ValueError(f"the {what} {os.fspath(path)!r} is also the model to load: "
                                 f"writing it would destroy it. Fix: give the {what} another "
                                 "name")
