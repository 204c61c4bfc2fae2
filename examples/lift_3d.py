"""2D-to-3D pose lifting on real motion capture, plain vs chiral, each trained to its plateau.

The protocol of ``benchmarks/results.py`` for one lifter. The CMU takes in ``../shared/data/cmu``
(17 Human3.6M joints, 30 fps) are split by subject: 01-07 train, 08-09 validation. Every training
take is filmed by 4 random virtual cameras; the validation takes by 2 other cameras for early
stopping and by 4 more for the reported test figures, so the checkpoint is never picked on the
frames it is scored on. A lifter maps normalised 2D keypoints to root-relative 3D joints in the
camera frame. Each variant trains with ``symmetrize.train.fit`` (Adam, lr 1e-3 halved every
300 steps) until its validation MPJPE has not improved by more than 0.5 mm for 5 evaluations
(one every 100 steps; at most 5000 steps), and its best weights are kept (:data:`PROTOCOL`,
``symmetrize.demo.FULL_PROTOCOL``); ``--protocol plateau`` halves the rate every 500 steps and
waits 10 evaluations (lower errors, about three times the training). Variants:

- plain; plain + flip augmentation; plain + flip augmentation + flip test-time averaging (the
  same model, two forward passes at test time: VideoPose3D's recipe);
- chiral with skeleton hidden Reps (ReLU switched to tanh), chiral with regular hidden Reps.

Lifters (``--model``): ``tcn27`` and ``tcn81`` (``symmetrize.demo.VideoPose3DLike`` with 3 or 4
blocks, 128 channels, trained on chunks of 8 or 32 output frames), ``poseformer``
(``tests/transformer_models.PoseFormerLike``, 9 frames, needs timm and einops; LayerNorm allows
only regular hidden Reps). ``--fraction F`` trains on a share of the training takes, drawn per
seed (by take, never by frame). ``run(parse_args([...]))`` returns the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from symmetrize import Spec, symmetrize
from symmetrize.data.augment import BatchFlip
from symmetrize.data.lifting import lifting_pairs
from symmetrize.data.sources import MotionSplit, load_motion_split
from symmetrize.data.windows import PoseWindows, flip_test_average
from symmetrize.demo import FULL_PROTOCOL, VideoPose3DLike
from symmetrize.metrics import mpjpe, n_mpjpe, p_mpjpe
from symmetrize.train import TrainConfig, fit

SPEC = Spec.preset("h36m")
#: the protocol: cameras per take, evaluation, early stopping and learning-rate schedule
PROTOCOL = {key: FULL_PROTOCOL[key] for key in (
    "downsample", "train_cameras", "stop_cameras", "lr", "lr_half_life", "eval_every",
    "patience", "min_delta", "max_steps")}
PROTOCOL["test_cameras"] = 4
#: the protocols (``--protocol``): ``"hour"`` (:data:`PROTOCOL` as first defined: the whole
#: study of ``benchmarks/results.py`` in about an hour on 2 CPU cores) and ``"plateau"`` (a
#: slower learning-rate decay and twice the patience: lower errors for about three times the
#: training time)
PROTOCOLS = {"hour": dict(PROTOCOL),
             "plateau": {**PROTOCOL, "lr_half_life": 500, "patience": 10}}
#: the protocol of :data:`PROTOCOL` as first defined (and of records that name none)
DEFAULT_PROTOCOL = "hour"
#: ``--quick``: a smoke run of seconds (its figures mean nothing)
QUICK = {**PROTOCOL, "downsample": 16, "train_cameras": 1, "stop_cameras": 1, "test_cameras": 1,
         "eval_every": 2, "patience": 2, "min_delta": 0.0, "max_steps": 6}


def use_protocol(name: str) -> None:
    """Make :data:`PROTOCOL` the protocol ``name`` of :data:`PROTOCOLS` (for this process: every
    function here reads it when called)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; the protocols are "
                         f"{', '.join(map(repr, PROTOCOLS))}")
    PROTOCOL.clear()
    PROTOCOL.update(PROTOCOLS[name])


@dataclass(frozen=True)
class Lifter:
    """A lifter of the study: how to build it (full or ``--quick`` size), the output frames of
    a training window (a temporal convnet lifts a chunk at once, as VideoPose3D evaluates), the
    batch in windows, and the chiral hidden layouts it can take."""

    title: str
    build: Callable[[bool], nn.Module]
    frames_out: int
    batch: int
    layouts: tuple[str, ...] = ("skeleton", "regular")


def _poseformer(quick: bool) -> nn.Module:
    from tests.transformer_models import (
        PoseFormerLike,  # timm + einops, written for the tests
    )

    return PoseFormerLike(frames=9, dim=4 if quick else 8, depth=1 if quick else 2,
                          heads=2 if quick else 4)


LIFTERS = {
    "tcn27": Lifter("temporal convnet, 27 frames (VideoPose3DLike, 3 blocks)",
                    lambda q: VideoPose3DLike(channels=34 if q else FULL_PROTOCOL["channels"],
                                              dropout=FULL_PROTOCOL["dropout"]),
                    FULL_PROTOCOL["frames_out"], FULL_PROTOCOL["batch"]),
    "tcn81": Lifter("temporal convnet, 81 frames (VideoPose3DLike, 4 blocks)",
                    lambda q: VideoPose3DLike(filter_widths=(3, 3, 3, 3),
                                              channels=34 if q else FULL_PROTOCOL["channels"],
                                              dropout=FULL_PROTOCOL["dropout"]),
                    32, 16),
    "poseformer": Lifter("PoseFormer-style transformer, 9 frames (timm blocks)", _poseformer,
                         1, 64, ("regular",)),
}
#: row name -> (training, hidden layout, flip test-time averaging)
VARIANTS = {
    "plain": ("plain", None, False),
    "plain + flip aug": ("plain+flip", None, False),
    "plain + flip aug + flip TTA": ("plain+flip", None, True),
    "chiral (skeleton Reps, tanh)": ("chiral", "skeleton", False),
    "chiral (regular Reps, ReLU)": ("chiral", "regular", False),
    "chiral (eigen layout, tanh)": ("chiral", "eigen", False),
}
TRAININGS = ("plain", "plain+flip", "chiral:skeleton", "chiral:regular")
#: trainings run only when asked for (``--trainings``): the eigenbasis layout
#: (``hidden="eigen"``, the fastest chiral layers; docs/speed.md), for lifters without LayerNorm
OPTIONAL = {"chiral:eigen": ("tcn27", "tcn81")}


def trainings(lifter: str) -> list[str]:
    """The models ``lifter`` trains per seed by default (the TTA row reuses ``plain+flip``)."""
    return [t for t in TRAININGS
            if not t.startswith("chiral:") or t.split(":")[1] in LIFTERS[lifter].layouts]


def can_train(lifter: str, training: str) -> bool:
    """Whether ``training`` (default or :data:`OPTIONAL`) exists for ``lifter``."""
    return training in trainings(lifter) or lifter in OPTIONAL.get(training, ())


def rows(lifter: str, trained: list[str] | None = None) -> list[str]:
    """The table rows of ``lifter`` given its ``trained`` trainings (default
    :func:`trainings`); a row whose training did not run has none."""
    trained = trainings(lifter) if trained is None else trained
    return [name for name, (training, hidden, _) in VARIANTS.items()
            if (f"{training}:{hidden}" if hidden else training) in trained]


def load_split(data: str, quick: bool = False, joint_map: Any = None) -> tuple[MotionSplit, str]:
    """The takes of ``data`` split by subject (08 and 09 held out), or procedural motion when
    the folder is absent (saying so); and the source's name."""
    folder = Path(data)
    settings = QUICK if quick else PROTOCOL
    if not folder.is_dir():
        print(f"note: {folder} not found: using procedural motion instead of the CMU takes",
              file=sys.stderr)
        source = f"synthetic:{4 if quick else 24}"
        return load_motion_split(source, None), source
    return load_motion_split(str(folder), ["08", "09"], downsample=settings["downsample"],
                             joint_map=joint_map), str(folder)


def camera_sets(split: MotionSplit, seed: int, settings: dict[str, Any]) -> dict[str, list]:
    """``(2D, 3D)`` pairs of one seed: the training takes (``train_cameras`` each, from the
    seed), the validation takes for early stopping and, by other cameras, for testing."""
    return {"train": lifting_pairs(split.train, settings["train_cameras"], seed),
            "stop": lifting_pairs(split.val, settings["stop_cameras"], 10_000 + seed),
            "test": lifting_pairs(split.val, settings["test_cameras"], 20_000 + seed)}


def train(lifter: str, training: str, seed: int, pairs: dict[str, list], quick: bool = False,
          device: str = "cpu", log: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train one model of ``lifter`` (``training``: one of :func:`trainings`) to its plateau on
    ``pairs`` (:func:`camera_sets`), logging to ``log`` (``.jsonl``/``.csv``) when given; the
    model with its best weights, and the run's record."""
    spec, settings = LIFTERS[lifter], QUICK if quick else PROTOCOL
    torch.manual_seed(seed)
    model = spec.build(quick)
    field = model.receptive_field()
    kind, _, hidden = training.partition(":")
    if kind == "chiral":
        model = symmetrize(model, SPEC, (torch.zeros(8, field, 17, 2),), hidden=hidden)
    shortest = min(len(p[0]) for name in ("train", "stop") for p in pairs[name])
    windows = {name: PoseWindows(pairs[name], field, frames_out=min(spec.frames_out, shortest),
                                 skeleton=SPEC.skeleton, output_skeleton=SPEC.output_skeleton)
               for name in ("train", "stop")}
    per_epoch = math.ceil(len(windows["train"]) / spec.batch)
    config = TrainConfig(
        epochs=math.ceil(settings["max_steps"] / per_epoch), batch_size=spec.batch,
        lr=settings["lr"], lr_decay=0.5 ** (per_epoch / settings["lr_half_life"]), seed=seed,
        device=device, progress=False, check=kind == "chiral",
        eval_every=settings["eval_every"], patience=settings["patience"],
        min_delta=settings["min_delta"], keep_best=True,
        max_steps=settings["max_steps"], log=log)
    augment = BatchFlip(SPEC.skeleton) if kind == "plain+flip" else None
    start, cpu = time.perf_counter(), time.process_time()
    result = fit(model, windows["train"], config, val=windows["stop"], augment=augment)
    seconds = time.perf_counter() - start
    return model, {
        "parameters": sum(p.numel() for p in model.parameters()), "steps": result.steps,
        "best_step": result.best_step, "stopped": result.stopped, "train_s": seconds,
        "cpu_s": time.process_time() - cpu, "to_plateau_s": seconds * result.best_step
        / max(result.steps, 1), "curve": result.val_curve, "windows": len(windows["train"]),
        "steps_per_epoch": per_epoch}


def predict(model: nn.Module, pairs: list, multi_frame: bool, tta: bool = False,
            batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame of every pair lifted by ``model`` (eval mode, edge-padded windows; with
    ``tta`` flip test-time averaging): predictions and targets ``(frames, 17, 3)``."""
    model.eval()
    field = model.receptive_field()
    dtype = next(model.parameters()).dtype
    run = (lambda x: flip_test_average(model, x, SPEC.skeleton)) if tta else model
    preds, targets = [], []
    with torch.no_grad():
        for pair in pairs:
            frames = len(pair[0])
            windows = PoseWindows([pair], field, frames_out=frames if multi_frame else 1)
            x = torch.stack([windows[i][0] for i in range(len(windows))]).to(dtype)
            out = torch.cat([run(x[i:i + batch]) for i in range(0, len(x), batch)])
            preds.append(out.reshape(frames, 17, 3))
            targets.append(torch.as_tensor(pair[1]))
    return torch.cat(preds), torch.cat(targets)


def scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """MPJPE, P-MPJPE and N-MPJPE (mm) over every frame, per-joint MPJPE, and the error along
    the camera axis (depth) and across it (image plane), root-mean-square per coordinate."""
    pred, target = pred.double(), target.double()
    diff = (pred - target) * 1000
    return {"mpjpe_mm": 1000 * float(mpjpe(pred, target)),
            "p_mpjpe_mm": 1000 * float(p_mpjpe(pred, target)),
            "n_mpjpe_mm": 1000 * float(n_mpjpe(pred, target)),
            "per_joint_mm": diff.norm(dim=-1).mean(0).tolist(),
            "rms_xyz_mm": diff.square().mean((0, 1)).sqrt().tolist()}


def train_and_score(lifter: str, training: str, seed: int, split: MotionSplit,
                    quick: bool = False, device: str = "cpu", log: str | None = None
                    ) -> dict[str, Any]:
    """:func:`train` one model, then score it on the test cameras (and, for ``plain+flip``,
    with flip test-time averaging too) and on the training takes' first camera."""
    settings = QUICK if quick else PROTOCOL
    pairs = camera_sets(split, seed, settings)
    model, record = train(lifter, training, seed, pairs, quick, device, log)
    model = model.cpu()
    multi = LIFTERS[lifter].frames_out > 1
    record["test"] = scores(*predict(model, pairs["test"], multi))
    if training == "plain+flip":
        record["test_tta"] = scores(*predict(model, pairs["test"], multi, tta=True))
    first = pairs["train"][::settings["train_cameras"]]
    record["train_fit"] = scores(*predict(model, first, multi))
    record["train_frames"] = sum(len(p[0]) for p in first)
    record["takes"] = len(split.train)
    return record


def row_scores(records: dict[str, dict[str, Any]], row: str) -> dict[str, Any]:
    """The record of table row ``row`` from one seed's ``{training: record}``."""
    training, hidden, tta = VARIANTS[row]
    record = records[f"{training}:{hidden}" if hidden else training]
    return {**record, "scores": record["test_tta" if tta else "test"], "tta": tta}


def run(args: argparse.Namespace, split: MotionSplit | None = None) -> dict[str, Any]:
    """Train ``args.trainings`` (default: every variant) of ``args.model`` on every seed under
    ``args.protocol``; print each run and the table; return ``{"model", "data", "fraction",
    "seeds", "rows": {row: [per seed]}}``."""
    use_protocol(args.protocol)
    source = args.data
    if split is None:
        split, source = load_split(args.data, args.quick, args.joint_map)
    print(f"data: {split.description}", flush=True)
    todo = args.trainings or trainings(args.model)
    table: dict[str, list[dict[str, Any]]] = {row: [] for row in rows(args.model, todo)}
    for seed in args.seeds:
        part = split.subset(args.fraction, seed) if args.fraction < 1 else split
        records = {t: train_and_score(args.model, t, seed, part, args.quick, args.device)
                   for t in todo}
        for row, runs in table.items():
            runs.append(row_scores(records, row))
            r = runs[-1]
            print(f"  seed {seed}  {row:<30} MPJPE {r['scores']['mpjpe_mm']:6.1f} mm  "
                  f"best step {r['best_step']} of {r['steps']} ({r['stopped']})", flush=True)
    print(f"\n{LIFTERS[args.model].title}; {source}; {args.fraction:.0%} of the training takes; "
          f"mean ± std over seeds {' '.join(map(str, args.seeds))}\n")
    print("| variant | parameters | MPJPE mm | P-MPJPE mm | N-MPJPE mm | best step |")
    print("|---|---:|---:|---:|---:|---:|")
    for row, runs in table.items():
        cells = [_mean_std([r["scores"][k] for r in runs]) for k in
                 ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm")]
        print(f"| {row} | {runs[0]['parameters']:,} | {' | '.join(cells)} | "
              f"{_mean_std([r['best_step'] for r in runs], '.0f')} |")
    return {"model": args.model, "data": source, "fraction": args.fraction,
            "seeds": list(args.seeds), "rows": table}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``; default ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cmu"),
                        help="folder of motion-capture takes, .bvh and .amc/.asf (default "
                        "../shared/data/cmu)")
    parser.add_argument("--joint-map", action="append", metavar="FILE",
                        help="a TOML joint map for takes of another naming (docs/data.md)")
    parser.add_argument("--model", choices=sorted(LIFTERS), default="tcn27")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fraction", type=float, default=1.0, metavar="F",
                        help="train on this share of the training takes, drawn per seed "
                        "(at least one take; default 1)")
    parser.add_argument("--trainings", nargs="+", metavar="T",
                        choices=(*TRAININGS, *OPTIONAL),
                        help="the models to train per seed (default: plain, plain+flip and the "
                        "lifter's chiral layouts; chiral:eigen on request)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default=DEFAULT_PROTOCOL,
                        help="hour (default: lr halved every 300 steps, patience 5) or plateau "
                        "(every 500 steps, patience 10: lower errors, about 3x the time)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args(argv)
    if not 0.0 < args.fraction <= 1.0:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    for training in args.trainings or ():
        if not can_train(args.model, training):
            parser.error(f"--trainings {training}: --model {args.model} cannot take it (its "
                         f"trainings: {', '.join(trainings(args.model))})")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv``, run, and with ``--json`` write the figures."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    figures = run(args)
    if args.json:
        from symmetrize.atomic import write_atomic

        text = json.dumps(figures, indent=2)
        write_atomic(args.json, lambda f: f.write(text.encode()))


def _mean_std(values: list[float], fmt: str = ".1f") -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.fmean(values), fmt)} ± {format(std, fmt)}"


if __name__ == "__main__":
    main()
