"""``symmetrize demo``: the toolkit end to end on a fresh machine, in a few minutes on a CPU.

Builds an ordinary VideoPose3D-style temporal lifter (27-frame receptive field), converts it with
:func:`~symmetrize.symmetrize`, prints the conversion report and the equivariance check, then
fine-tunes the plain and the chiral model for the same number of epochs on procedural motion
(walking, running, jumping, boxing) filmed by random virtual cameras, or on a folder of BVH takes,
and prints parameters, validation MPJPE (plain, plain with flip test-time averaging, chiral) and
inference time of each.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from symmetrize.spec import Spec

__all__ = ["FULL_PROTOCOL", "VideoPose3DLike", "run_demo"]

#: ``symmetrize demo --full`` and ``benchmarks/results.py``: the 27-frame lifter and its training
#: to the plateau (every 4th frame of 120 fps takes, cameras per take, windows of ``frames_out``
#: output frames, ``batch`` windows a step, lr halved every ``lr_half_life`` steps, validation
#: every ``eval_every`` steps, early stopping after ``patience`` evaluations without an
#: improvement of more than ``min_delta`` metres)
FULL_PROTOCOL: dict[str, Any] = {
    "channels": 128, "dropout": 0.25, "frames_out": 8, "batch": 64, "downsample": 4,
    "train_cameras": 4, "stop_cameras": 2, "lr": 1e-3, "lr_half_life": 300, "eval_every": 100,
    "patience": 5, "min_delta": 0.0005, "max_steps": 5000}


class VideoPose3DLike(nn.Module):
    """A plain temporal convnet lifter in VideoPose3D's style: 2D keypoints ``(N, T, J, 2)`` to
    3D joints ``(N, T - receptive_field + 1, J, 3)``; dilated Conv1d blocks with BatchNorm, ReLU,
    dropout and residual connections."""

    def __init__(self, joints: int = 17, filter_widths: tuple[int, ...] = (3, 3, 3),
                 channels: int = 256, dropout: float = 0.25) -> None:
        super().__init__()
        self.joints = joints
        self.pads = []
        self.expand = nn.Conv1d(joints * 2, channels, filter_widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=0.1)
        self.relu, self.drop = nn.ReLU(inplace=True), nn.Dropout(dropout)
        convs, bns = [], []
        dilation = filter_widths[0]
        for width in filter_widths[1:]:
            self.pads.append((width - 1) * dilation // 2)
            convs += [nn.Conv1d(channels, channels, width, dilation=dilation, bias=False),
                      nn.Conv1d(channels, channels, 1, bias=False)]
            bns += [nn.BatchNorm1d(channels, momentum=0.1), nn.BatchNorm1d(channels, momentum=0.1)]
            dilation *= width
        self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)
        self.shrink = nn.Conv1d(channels, joints * 3, 1)

    def receptive_field(self) -> int:
        return 1 + 2 * sum(self.pads) + 2 * ((self.expand.kernel_size[0] - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        x = x.reshape(n, t, -1).permute(0, 2, 1)
        x = self.drop(self.relu(self.expand_bn(self.expand(x))))
        for i, pad in enumerate(self.pads):
            res = x[:, :, pad: x.shape[2] - pad]
            x = self.drop(self.relu(self.bns[2 * i](self.convs[2 * i](x))))
            x = res + self.drop(self.relu(self.bns[2 * i + 1](self.convs[2 * i + 1](x))))
        x = self.shrink(x).permute(0, 2, 1)
        return x.reshape(n, -1, self.joints, 3)


def run_demo(quick: bool = False, seed: int = 0, data: str | None = None,
             epochs: int | None = None, progress: bool = True,
             joint_map: Any = None, full: bool = False) -> dict[str, Any]:
    """Run the demo, print what it measures, and return the figures. ``data`` and
    ``joint_map`` are read as :func:`~symmetrize.finetune.finetune_lifter` reads them.
    ``full``: train the lifter of :data:`FULL_PROTOCOL` to its plateau (early stopping on the
    held-out subject, the best weights kept) instead of for ``epochs``."""
    from symmetrize.data.sources import load_motion_split
    from symmetrize.finetune import finetune_lifter
    from symmetrize.passes.check import check
    from symmetrize.api import symmetrize
    from symmetrize.train import TrainConfig

    _check_demo_args(quick=quick, seed=seed, data=data, epochs=epochs, progress=progress)
    if full and (quick or epochs is not None):
        raise ValueError("full=True (--full) trains to the plateau: drop quick and epochs")
    config = TrainConfig(epochs=epochs or (1 if quick else 4), batch_size=128, seed=seed,
                         progress=progress)
    spec = Spec.preset("h36m")
    source = data or ("synthetic:3" if quick else "synthetic:24" if full else "synthetic:12")
    split = load_motion_split(source, None, seed, FULL_PROTOCOL["downsample"] if full else None,
                              skeleton=spec.skeleton, joint_map=joint_map)  # read before work
    torch.manual_seed(seed)
    channels = 64 if quick else FULL_PROTOCOL["channels"] if full else 256
    model = VideoPose3DLike(channels=channels)
    frames = model.receptive_field()
    print(f"symmetrize demo: a {frames}-frame VideoPose3D-style lifter, {channels} channels, "
          f"on the Human3.6M skeleton\n")
    chiral = symmetrize(model, spec, (torch.zeros(8, frames, 17, 2),))  # batch 8: train-mode
    # BatchNorm statistics of 2 samples would amplify float32 rounding in the check
    print(chiral.symmetrize_report, "\n")
    result = check(chiral, n_inputs=2)
    print(result, "\n")

    options: dict[str, Any] = {}
    if full:
        config, options = _full_settings(split, seed, progress)
    runs = {}
    for variant in ("plain", "chiral"):
        torch.manual_seed(seed)
        start = time.perf_counter()
        runs[variant] = finetune_lifter(copy.deepcopy(model), spec, data=split, config=config,
                                        variant=variant, joint_map=joint_map, **options)
        runs[variant].scores["train_s"] = time.perf_counter() - start
        done = runs[variant].result
        print(f"  {variant}: {runs[variant].description}"
              + (f"; best step {done.best_step} of {done.steps} ({done.stopped})" if full
                 else ""))
    figures = _table(runs, frames, spec)
    figures.update(equivariance_fp64=result.case("eval", torch.float64).max_abs,
                   equivariance_train_fp64=result.case("train", torch.float64).max_abs,
                   check_passed=result.passed)
    return figures


def _full_settings(split: Any, seed: int, progress: bool) -> tuple[Any, dict[str, Any]]:
    """:data:`FULL_PROTOCOL` as ``fit``'s config (the lr decay per epoch from the steps an
    epoch takes) and :func:`~symmetrize.finetune.finetune_lifter`'s window options."""
    from symmetrize.train import TrainConfig

    p = FULL_PROTOCOL
    windows = p["train_cameras"] * sum(math.ceil(len(s) / p["frames_out"]) for s in split.train)
    per_epoch = math.ceil(windows / p["batch"])
    config = TrainConfig(epochs=math.ceil(p["max_steps"] / per_epoch), batch_size=p["batch"],
                         lr=p["lr"], lr_decay=0.5 ** (per_epoch / p["lr_half_life"]), seed=seed,
                         progress=progress, eval_every=p["eval_every"], patience=p["patience"],
                         min_delta=p["min_delta"], keep_best=True, max_steps=p["max_steps"])
    return config, {"cameras": p["train_cameras"], "val_cameras": p["stop_cameras"],
                    "frames_out": p["frames_out"]}


def _check_demo_args(*, quick: Any, seed: Any, data: Any, epochs: Any, progress: Any) -> None:
    for name, value in (("quick", quick), ("progress", progress)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed={seed!r} is not allowed: an integer in 0 .. 4294967295")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise ValueError(f"epochs={epochs!r} is not allowed: an integer >= 1 or None")
    if data is not None and not isinstance(data, str):
        raise TypeError(f"data must be a source string ('synthetic:N', a folder of takes, an "
                        f".npz archive) or None, got {type(data).__name__}")


def _table(runs: dict[str, Any], frames: int, spec: Spec) -> dict[str, Any]:
    """Print parameters, validation MPJPE and inference time of plain, plain + flip TTA and
    chiral; return them."""
    from symmetrize.data.windows import flip_test_average
    from symmetrize.export import export_plain

    plain, chiral = runs["plain"], runs["chiral"]
    exported = export_plain(chiral.model.cpu())  # plain modules holding the equivariant weights
    x = torch.randn(256, frames, 17, 2)

    def tta(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return flip_test_average(m, x, spec.skeleton)

    rows = [("plain", plain.model, plain.scores["mpjpe_mm"], plain.scores["p_mpjpe_mm"],
             _timed(plain.model, x)),
            ("plain + flip TTA", plain.model, plain.scores["mpjpe_tta_mm"],
             plain.scores["p_mpjpe_tta_mm"], _timed(plain.model, x, tta)),
            ("chiral", chiral.model, chiral.scores["mpjpe_mm"], chiral.scores["p_mpjpe_mm"],
             _timed(chiral.model, x)),
            ("chiral, exported", exported, chiral.scores["mpjpe_mm"], chiral.scores["p_mpjpe_mm"],
             _timed(exported, x))]
    print(f"\n  {'model':<18}{'parameters':>12}{'MPJPE mm':>10}{'P-MPJPE mm':>12}"
          f"{'infer ms':>10}")
    for name, model, mpjpe, p_mpjpe, ms in rows:
        params = sum(p.numel() for p in model.parameters())
        print(f"  {name:<18}{params:>12,}{mpjpe:>10.1f}{p_mpjpe:>12.1f}{ms:>10.1f}")
    print(f"\n  validation on held-out clips after {plain.result.epochs_done} epochs each; "
          "inference: a batch of 256 windows, eval mode, CPU; 'exported' is the chiral model "
          "as plain modules (symmetrize.export.export_plain), the same outputs")
    return {name: {"parameters": sum(p.numel() for p in model.parameters()), "mpjpe_mm": mpjpe,
                   "p_mpjpe_mm": p_mpjpe, "inference_ms": ms}
            for name, model, mpjpe, p_mpjpe, ms in rows}


def _timed(model: nn.Module, x: torch.Tensor,
           predict: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None) -> float:
    """Median milliseconds of one eval-mode prediction on ``x`` (5 runs after a warm-up)."""
    model = model.cpu().eval()
    times = []
    with torch.no_grad():
        for i in range(6):
            start = time.perf_counter()
            model(x) if predict is None else predict(model, x)
            if i:
                times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]
