"""``fit``: fine-tune a (converted) model on a pose dataset, safely interruptible.

The batch order of every epoch is a function of the seed and the epoch alone, checkpoints carry
the model, optimiser, scheduler, the position inside the epoch and every random state, so a run
killed at any moment and resumed from its last checkpoint reaches the weights an uninterrupted
run reaches.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from symmetrize.metrics import mpjpe
from symmetrize.train.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from symmetrize.train.distributed import Distributed, setup_distributed
from symmetrize.train.progress import MetricLog
from symmetrize.train.schedule import bn_momentum, set_bn_momentum

__all__ = ["NotEquivariantError", "TrainConfig", "TrainResult", "fit"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Augment = Callable[[Sequence[torch.Tensor], torch.Generator], Sequence[torch.Tensor]]
Predict = Callable[[nn.Module, Sequence[torch.Tensor]], torch.Tensor]


class NotEquivariantError(ValueError):
    """The model failed :func:`~symmetrize.check` before training."""


@dataclass
class TrainConfig:
    """How to train. The defaults follow VideoPose3D and the Chirality Nets paper.

    Attributes:
        epochs: passes over the training set.
        batch_size: samples per step and process.
        lr: Adam's initial learning rate.
        betas: Adam's ``(beta1, beta2)``.
        lr_decay: the learning rate is multiplied by this after every epoch.
        bn_momentum: BatchNorm momentum decayed exponentially from the first value to the
            second over the run (``None``: left as it is).
        grad_clip: max gradient norm; ``"auto"``: 5.0 for models with recurrent layers
            (LSTM/GRU and their cells), none otherwise.
        amp: ``"auto"`` (bf16 on a CUDA GPU that supports it, else fp16; off on CPU),
            ``"bf16"``, ``"fp16"`` or ``"off"``.
        device: ``"auto"`` (this process's CUDA GPU when there is one, else CPU) or a device.
        seed: seeds the batch order, dropout and every random generator.
        checkpoint: file to write checkpoints to (atomically); ``None``: none.
        checkpoint_every: also write one every this many steps (0: at epoch ends only).
        resume: continue from ``checkpoint`` if it exists.
        max_minutes: stop (with a checkpoint) when this much wall time has passed.
        max_steps: stop after this many optimiser steps in all (smoke runs).
        log: a ``.csv`` or ``.jsonl`` file receiving one record per step and per epoch.
        progress: show a progress bar (tqdm) on the main process.
        check: run :func:`~symmetrize.check` first and refuse a model that is not equivariant.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    lr_decay: float = 0.95
    bn_momentum: tuple[float, float] | None = (0.1, 0.001)
    grad_clip: float | str | None = "auto"
    amp: str = "auto"
    device: str = "auto"
    seed: int = 0
    checkpoint: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    max_minutes: float | None = None
    max_steps: int | None = None
    log: str | None = None
    progress: bool = True
    check: bool = True


@dataclass
class TrainResult:
    """What :func:`fit` did: per-epoch mean losses, validation metrics, and why it stopped."""

    epochs_done: int = 0
    steps: int = 0
    train_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    stopped: str = "completed"
    seconds: float = 0.0


def fit(model: nn.Module, train: Dataset, config: TrainConfig | None = None, *,
        loss: Loss | None = None, val: Dataset | None = None, metric: Loss | None = None,
        spec: Any = None, augment: Augment | None = None,
        predict: Predict | None = None) -> TrainResult:
    """Train ``model`` in place on ``train`` (items ``(input, ..., target)`` of tensors).

    Args:
        model: the network (a converted one, or any model with ``check=False``).
        train: the training set; each item a tuple of tensors, the last one the target.
        config: see :class:`TrainConfig`.
        loss: ``loss(prediction, target)``; default MPJPE.
        val: evaluated after every epoch with ``metric`` (default MPJPE), in eval mode.
        spec: the model's Spec for the pre-training check (a converted model's own by default).
        augment: ``augment(batch, generator) -> batch`` on every training batch (e.g.
            :class:`~symmetrize.data.augment.BatchFlip`); the generator is seeded from the seed
            and the step, so a resumed run draws what an uninterrupted one draws.
        predict: ``predict(model, inputs)`` for validation (e.g. flip test-time averaging);
            default ``model(*inputs)``.

    Returns:
        A :class:`TrainResult`. Under ``torchrun`` every process trains a DistributedDataParallel
        replica on its share of each batch order; the main process writes the checkpoint, the
        log and the progress bar.

    Raises:
        NotEquivariantError: ``config.check`` and the model fails the check.
        ValueError: an empty dataset, a bad item, a bad option.
    """
    config = config or TrainConfig()
    loss_fn, metric_fn = loss or mpjpe, metric or mpjpe
    n = _check_dataset(train, "train")
    if val is not None:
        _check_dataset(val, "val")
    device = _device(config.device)
    env = setup_distributed(device)
    started = time.monotonic()
    try:
        model.to(device)
        if config.check:
            _check_first(model, spec, train, device)
        torch.manual_seed(config.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
        progress = {"epoch": 0, "batch": 0, "step": 0}
        result = TrainResult()
        saved = None
        if config.resume and config.checkpoint is not None:
            saved = _resume(config.checkpoint, model, optimizer, scheduler, result)
        engine = _Engine(model, optimizer, scheduler, config, env, device, loss_fn, augment)
        if saved is not None:
            progress = dict(saved["progress"])
            if engine.scaler is not None and saved["extra"].get("scaler"):
                engine.scaler.load_state_dict(saved["extra"]["scaler"])
        log = MetricLog(config.log if env.is_main else None, resume=config.resume)
        try:
            _run(engine, train, n, val, (metric_fn, predict), progress, result, log, started)
        finally:
            log.close()
        result.seconds = time.monotonic() - started
        return result
    finally:
        env.close()


# ----------------------------------------------------------------------------- the loop
@dataclass
class _Engine:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    config: TrainConfig
    env: Distributed
    device: torch.device
    loss_fn: Loss
    augment: Augment | None = None

    def __post_init__(self) -> None:
        self.amp_dtype = _amp_dtype(self.config.amp, self.device)
        self.scaler = _grad_scaler() if self.amp_dtype == torch.float16 else None
        self.clip = _grad_clip(self.config.grad_clip, self.model)
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
        if self.config.checkpoint is not None and self.env.is_main:
            save_checkpoint(self.config.checkpoint, model=self.model, optimizer=self.optimizer,
                            scheduler=self.scheduler, progress=progress,
                            extra={"config": _plain_config(self.config),
                                   "scaler": self.scaler.state_dict() if self.scaler else None})


def _run(engine: _Engine, train: Dataset, n: int, val: Dataset | None,
         scoring: tuple[Loss, Predict | None], progress: dict[str, Any], result: TrainResult,
         log: MetricLog, started: float) -> None:
    config, env = engine.config, engine.env
    per_step = config.batch_size * env.world_size
    n_batches = max(n // per_step, 1) if env.enabled else math.ceil(n / config.batch_size)
    for epoch in range(progress["epoch"], config.epochs):
        if config.bn_momentum is not None:
            set_bn_momentum(engine.model, bn_momentum(epoch, config.epochs, *config.bn_momentum))
        order = _order(n, config.seed, epoch)
        engine.model.train()
        losses: list[float] = []
        bar = _bar(n_batches, progress["batch"], epoch, config, env)
        for b in range(progress["batch"], n_batches):
            chunk = order[b * per_step:(b + 1) * per_step]
            mine = chunk[env.rank::env.world_size] if env.enabled else chunk
            value = engine.step(_collate(train, mine, engine.device), progress["step"])
            losses.append(value)
            progress = {"epoch": epoch, "batch": b + 1, "step": progress["step"] + 1}
            result.steps = progress["step"]
            log.write({"epoch": epoch + 1, "step": progress["step"], "loss": value,
                       "lr": engine.optimizer.param_groups[0]["lr"]})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}")
            stop = _should_stop(config, progress["step"], started)
            if stop or (config.checkpoint_every and progress["step"] % config.checkpoint_every
                        == 0):
                engine.checkpoint(progress)
            if stop:
                env.average_buffers(engine.model)
                result.stopped = stop
                if bar is not None:
                    bar.close()
                return
        if bar is not None:
            bar.close()
        engine.scheduler.step()
        env.average_buffers(engine.model)
        progress = {"epoch": epoch + 1, "batch": 0, "step": progress["step"]}
        mean = env.all_mean(sum(losses) / max(len(losses), 1), engine.device)
        result.train_loss.append(mean)
        record: dict[str, Any] = {"epoch": epoch + 1, "step": progress["step"], "loss": mean,
                                  "lr": engine.optimizer.param_groups[0]["lr"]}
        if val is not None:
            score = evaluate(engine.model, val, scoring[0], config.batch_size, engine.device,
                             scoring[1])
            result.val_metric.append(score)
            record["val"] = score
        log.write(record)
        result.epochs_done = epoch + 1
        engine.checkpoint(progress)


def evaluate(model: nn.Module, data: Dataset, metric: Loss, batch_size: int,
             device: torch.device | str = "cpu", predict: Predict | None = None) -> float:
    """The mean of ``metric(prediction, target)`` over ``data`` in eval mode (weighted by batch
    size), predictions from ``predict(model, inputs)`` (default ``model(*inputs)``); the
    model's train flag is restored."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    n = _check_dataset(data, "val")
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                *inputs, target = _collate(data, torch.arange(start, min(start + batch_size, n)),
                                           torch.device(device))
                prediction = predict(model, inputs) if predict is not None else model(*inputs)
                total += metric(prediction.float(), target.float()).item() * len(target)
                count += len(target)
    finally:
        model.train(was_training)
    return total / count


# ----------------------------------------------------------------------------- pieces
def _order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's sample order: a function of the seed and the epoch only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def _collate(data: Dataset, indices: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    items = [data[int(i)] for i in indices]
    first = items[0]
    if not isinstance(first, (tuple, list)) or len(first) < 2:
        raise ValueError("each dataset item must be a tuple (input, ..., target) of tensors, got "
                         f"{type(first).__name__}")
    columns = []
    for k in range(len(first)):
        column = [torch.as_tensor(item[k]) for item in items]
        columns.append(torch.stack(column).to(device, non_blocking=True))
    return columns


def _check_dataset(data: Dataset, name: str) -> int:
    try:
        n = len(data)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"the {name} set must have a length (a map-style Dataset)") from None
    if n == 0:
        raise ValueError(f"the {name} set is empty: check the split (subjects, actions, files)")
    return n


def _should_stop(config: TrainConfig, step: int, started: float) -> str | None:
    if config.max_steps is not None and step >= config.max_steps:
        return "max_steps"
    if config.max_minutes is not None and time.monotonic() - started >= 60 * config.max_minutes:
        return "max_minutes"
    return None


def _bar(total: int, done: int, epoch: int, config: TrainConfig, env: Distributed) -> Any:
    if not (config.progress and env.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{config.epochs}",
                dynamic_ncols=True, leave=False)


def _device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {amp!r}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device (use 'bf16' or 'off' on CPU)")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _grad_clip(value: float | str | None, model: nn.Module) -> float | None:
    if value == "auto":
        recurrent = any(isinstance(m, (nn.RNNBase, nn.RNNCellBase)) for m in model.modules())
        return 5.0 if recurrent else None
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    raise ValueError(f"grad_clip must be a number, None or 'auto', got {value!r}")


def _check_first(model: nn.Module, spec: Any, train: Dataset, device: torch.device) -> None:
    from symmetrize.passes.check import check

    *inputs, _ = _collate(train, torch.arange(min(8, len(train))), device)  # type: ignore[arg-type]
    try:
        result = check(model, spec, tuple(inputs), n_inputs=2, dtypes=(torch.float64,))
    except ValueError as err:
        raise NotEquivariantError(f"cannot check the model before training: {err}. Fix: pass "
                                  "the Spec (fit(..., spec=spec)) or config.check=False") from None
    if not result.case("eval", torch.float64).passed or \
            not result.case("train", torch.float64).passed:
        raise NotEquivariantError(
            f"the model is not equivariant, so training it as a chiral model would waste the "
            f"run:\n{result}\nFix: convert it with symmetrize(...), or pass config.check=False "
            "to train it as it is")


def _resume(path: str, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            result: TrainResult) -> dict[str, Any] | None:
    """Load the checkpoint at ``path`` into the model, optimiser, scheduler and the random
    generators; its content, or ``None`` when there is no checkpoint yet (a fresh start)."""
    if not Path(path).exists():
        return None
    data = load_checkpoint(path)
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    if data.get("scheduler") is not None:
        scheduler.load_state_dict(data["scheduler"])
    set_rng_state(data["rng"])
    result.steps, result.epochs_done = data["progress"]["step"], data["progress"]["epoch"]
    return data


def _grad_scaler() -> Any:
    """fp16's gradient scaler (``torch.amp`` from PyTorch 2.3, ``torch.cuda.amp`` before)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # pragma: no cover - PyTorch < 2.3


def _plain_config(config: TrainConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
