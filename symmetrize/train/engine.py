"""The parts of a training step: the model replica (DistributedDataParallel under torchrun),
mixed precision, gradient clipping, augmentation, and the checkpoint that lets a run resume."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from symmetrize.train.checkpoint import save_checkpoint
from symmetrize.train.config import TrainConfig, amp_dtype, grad_clip
from symmetrize.train.distributed import Distributed
from symmetrize.train.progress import MetricLog

__all__ = ["Augment", "Engine", "Loss"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Augment = Callable[[Sequence[torch.Tensor], torch.Generator], Sequence[torch.Tensor]]


@dataclass
class Engine:
    """One optimiser step (mixed precision, clipping, augmentation) and the checkpoint of a
    run; :func:`~symmetrize.train.fit` drives it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    config: TrainConfig
    env: Distributed
    device: torch.device
    loss_fn: Loss
    augment: Augment | None = None
    log: MetricLog | None = None
    result: Any = None  # the run's TrainResult
    losses: list[float] = field(default_factory=list)  # the current epoch's, so far
    early_stop: Any = None  # the run's EarlyStopping (its state travels in the checkpoint)

    def __post_init__(self) -> None:
        self.amp_dtype = amp_dtype(self.config.amp, self.device)
        self.scaler = _grad_scaler() if self.amp_dtype == torch.float16 else None
        self.clip = grad_clip(self.config.grad_clip, self.model)
        self.replica = self.model
        if self.env.enabled:
            self.replica = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None)

    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, batch: Sequence[torch.Tensor], step: int) -> float:
        if self.augment is not None:
            generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
            batch = self.augment(batch, generator)
        *inputs, target = batch
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            prediction = self.replica(*inputs)
        value = self.loss_fn(prediction.float(), target.float())
        if not torch.isfinite(value):
            raise FloatingPointError(f"the loss became {value.item()} (check the data and the "
                                     "learning rate)")
        if self.scaler is not None:
            self.scaler.scale(value).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            value.backward()
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return value.item()

    def checkpoint(self, progress: dict[str, Any]) -> None:
        """Save the run (main process): its state, the history in :attr:`result`, the losses
        of the epoch so far, and how far the log got (a resume drops the rows after that)."""
        if self.config.checkpoint is None or not self.env.is_main:
            return
        log = self.log
        extra = {"config": self.config.to_dict(), "world_size": self.env.world_size,
                 "scaler": self.scaler.state_dict() if self.scaler else None,
                 "result": asdict(self.result) if self.result is not None else {},
                 "epoch_losses": list(self.losses),
                 "early_stop": self.early_stop.state_dict() if self.early_stop else None,
                 "log": {"path": os.path.abspath(os.fspath(log.path)), "bytes": log.offset}
                 if log is not None and log.path is not None else None}
        save_checkpoint(self.config.checkpoint, model=self.model, optimizer=self.optimizer,
                        scheduler=self.scheduler, progress=progress, extra=extra)


def _grad_scaler() -> Any:
    """fp16's gradient scaler (``torch.amp`` from PyTorch 2.3, ``torch.cuda.amp`` before)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # pragma: no cover - PyTorch < 2.3

