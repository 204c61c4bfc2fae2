"""``symmetrize demo``: an end-to-end run of the chiral layers on a pose-lifting toy problem.

Builds a small VideoPose3D-style temporal convnet from chiral layers (2D H36M keypoints in, 3D out),
measures its equivariance in float64, compares its parameter count with the plain network of the
same widths, and trains both for a few steps on procedural motion (walking, running, jumping,
boxing) filmed by random virtual cameras.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from symmetrize.nn import ChiralActivation, ChiralBatchNorm1d, ChiralConv1d
from symmetrize.rep import Rep
from symmetrize.skeleton import Skeleton

__all__ = ["TemporalLifter", "procedural_poses", "run_demo"]


class TemporalLifter(nn.Module):
    """A VideoPose3D-style dilated temporal convnet, chiral or plain.

    Input ``(N, T, J, 2)``; output ``(N, T - receptive_field + 1, J, 3)``.
    """

    def __init__(self, skeleton: Skeleton, dims_per_joint: int = 12, negated_per_joint: int = 4,
                 blocks: int = 2, chiral: bool = True) -> None:
        super().__init__()
        self.joints = len(skeleton)
        rep_in = Rep.pose(skeleton, 2, negate=(0,))
        rep_out = Rep.pose(skeleton, 3, negate=(0,))
        rep_h = Rep.skeleton_hidden(skeleton, dims_per_joint, negated_per_joint)
        width = rep_h.size

        def conv(ri: Rep, ro: Rep, k: int, dilation: int = 1) -> nn.Module:
            if chiral:
                return ChiralConv1d(ri, ro, k, dilation=dilation, bias=False)
            return nn.Conv1d(ri.size, ro.size, k, dilation=dilation, bias=False)

        def norm() -> nn.Module:
            return ChiralBatchNorm1d(rep_h) if chiral else nn.BatchNorm1d(width)

        def act() -> nn.Module:
            return ChiralActivation(rep_h) if chiral else nn.ReLU()

        self.expand = nn.Sequential(conv(rep_in, rep_h, 3), norm(), act())
        self.blocks = nn.ModuleList()
        self.pads = []
        for b in range(blocks):
            dilation = 3 ** (b + 1)
            self.blocks.append(nn.Sequential(conv(rep_h, rep_h, 3, dilation), norm(), act(),
                                             conv(rep_h, rep_h, 1), norm(), act()))
            self.pads.append(dilation)
        self.shrink = (ChiralConv1d(rep_h, rep_out, 1) if chiral
                       else nn.Conv1d(width, rep_out.size, 1))
        self.receptive_field = 3 + sum(2 * d for d in self.pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        h = self.expand(x.reshape(n, t, -1).permute(0, 2, 1))
        for pad, block in zip(self.pads, self.blocks, strict=True):
            h = h[:, :, pad:h.shape[2] - pad] + block(h)
        out = self.shrink(h)
        return out.permute(0, 2, 1).reshape(n, out.shape[2], self.joints, 3)


def procedural_poses(batch: int, frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Procedural walking, running, jumping and boxing filmed by random virtual cameras:
    normalised 2D keypoints ``(batch, frames, 17, 2)`` and root-relative 3D joints in the camera
    frame ``(batch, frames, 17, 3)``, in metres."""
    from symmetrize.data.lifting import lifting_pairs
    from symmetrize.data.synthetic import generate_dataset

    clips = generate_dataset(batch, frames=frames, rng=seed, in_place=True)
    pairs = lifting_pairs(clips, cameras_per_sequence=1, rng=seed)
    return (torch.from_numpy(np.stack([p[0] for p in pairs])),
            torch.from_numpy(np.stack([p[1] for p in pairs])))


def mirror_pose(x: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """Swap left/right joints (axis -2) and negate the horizontal coordinate (index 0)."""
    out = x[..., torch.tensor(skeleton.mirror), :].clone()
    out[..., 0] = -out[..., 0]
    return out


@dataclass
class _Result:
    name: str
    params: int
    loss_start: float
    loss_end: float
    seconds: float


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.999))
    rf = model.receptive_field  # type: ignore[attr-defined]
    target = y[:, rf // 2: y.shape[1] - rf // 2]
    losses = []
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - target).norm(dim=-1).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def run_demo(quick: bool = False, seed: int = 0) -> dict[str, float]:
    """Run the demo, print what it measures, and return the figures."""
    torch.manual_seed(seed)
    skeleton = Skeleton.preset("h36m")
    chiral = TemporalLifter(skeleton, chiral=True)
    plain = TemporalLifter(skeleton, chiral=False)
    rf = chiral.receptive_field
    print(f"symmetrize demo: a {rf}-frame temporal lifter on the {skeleton!r} skeleton")
    print(f"  input Rep  {Rep.pose(skeleton, 2)}   output Rep {Rep.pose(skeleton, 3)}")

    x, y = procedural_poses(16 if quick else 64, rf + 8, seed)
    check = chiral.double().eval()
    x64 = x.double()
    with torch.no_grad():
        err_eval = (check(mirror_pose(x64, skeleton)) - mirror_pose(check(x64), skeleton)).abs().max()
        check.train()
        err_train = (check(mirror_pose(x64, skeleton))
                     - mirror_pose(check(x64), skeleton)).abs().max()
    chiral.float()
    print(f"  equivariance |f(Tx) - T f(x)| in float64: eval {err_eval:.2e}, train {err_train:.2e}")

    steps = 15 if quick else 150
    results = []
    for model in (plain, chiral):  # one-time set-up costs (optimizer, autograd) must not land
        _train(copy.deepcopy(model), x, y, 1)  # on whichever model is timed first
    for name, model in (("plain", plain), ("chiral", chiral)):
        start = time.perf_counter()
        first, last = _train(model, x, y, steps)
        results.append(_Result(name, sum(p.numel() for p in model.parameters()), first, last,
                               time.perf_counter() - start))
    print(f"\n  {'model':<8}{'parameters':>12}{'loss start':>12}{'loss end':>10}{'train s':>9}")
    for r in results:
        print(f"  {r.name:<8}{r.params:>12,}{r.loss_start:>12.4f}{r.loss_end:>10.4f}"
              f"{r.seconds:>9.2f}")
    ratio = results[1].params / results[0].params
    print(f"\n  chiral/plain parameters: {ratio:.3f}; {steps} Adam steps each (mean per-joint "
          "error in metres)")
    return {"equivariance_eval": err_eval.item(), "equivariance_train": err_train.item(),
            "param_ratio": ratio, "chiral_loss_start": results[1].loss_start,
            "chiral_loss_end": results[1].loss_end}
